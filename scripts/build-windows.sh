#!/usr/bin/env bash
# Builds oci2wsl.exe for x86_64 Windows on this Linux machine, with Debian's second Rust
# toolchain (rustc-web, which ships the standard library's sources) and mingw-w64:
# rustup cannot download the Windows target here. Recipe: ../shared/docs/windows-cross.md.
#
#   scripts/build-windows.sh            # -> target-windows/x86_64-pc-windows-gnu/release/oci2wsl.exe
#   scripts/build-windows.sh --wine     # also prepares Wine (with the ProcessPrng shim Wine 8 lacks)
#                                       # and runs the .exe on the example image
set -euo pipefail
cd "$(dirname "$0")/.."
need=(rustc-web cargo-web rust-web-src mingw-w64)
[ "${1:-}" = "--wine" ] && need+=(wine64)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-windows}"
PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release \
  -Z build-std=std,panic_abort --target x86_64-pc-windows-gnu
exe="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release/oci2wsl.exe"
echo "built $exe"

if [ "${1:-}" = "--wine" ]; then
  # Rust's std calls bcryptprimitives!ProcessPrng, which Wine 8.0 does not have.
  shim_dir=$(mktemp -d)
  cat > "$shim_dir/shim.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID, ULONG);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk; len -= chunk;
    }
    return TRUE;
}
C
  x86_64-w64-mingw32-gcc -shared -O2 -o "$shim_dir/bcryptprimitives.dll" "$shim_dir/shim.c" -ladvapi32
  WINEDEBUG=-all /usr/lib/wine/wine64 wineboot -i >/dev/null 2>&1 || true
  cp "$shim_dir/bcryptprimitives.dll" "$HOME/.wine/drive_c/windows/system32/"
  out_dir=$(mktemp -d "/tmp/oci2wsl wine ü.XXXX")
  WINEDEBUG=-all /usr/lib/wine/wine64 "$exe" "oci:Z:$(pwd | tr / '\\')\\testdata\\example:latest" \
    -o "Z:$(echo "$out_dir" | tr / '\\')\\example.rootfs.tar.gz"
  tar -tzf "$out_dir/example.rootfs.tar.gz" >/dev/null
  echo "the Windows build flattened the example under Wine: $out_dir/example.rootfs.tar.gz"
fi
