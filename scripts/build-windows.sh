#!/usr/bin/env bash
# Builds oci2wsl.exe for x86_64 Windows on this Linux machine, with Debian's second Rust
# toolchain (rustc-web, which ships the standard library's sources) and mingw-w64:
# rustup cannot download the Windows target here. Recipe: ../shared/docs/windows-cross.md.
#
#   scripts/build-windows.sh         # -> target-windows/x86_64-pc-windows-gnu/release/oci2wsl.exe
#                                    #    and wsl-stand-in.exe (tests/wsl-stand-in) beside it
#   scripts/build-windows.sh --wine  # also prepares Wine (with the ProcessPrng shim Wine 8 lacks)
#                                    # and runs the Windows smoke test (CI does this)
#
# The smoke test, all under Wine, in directories whose names have spaces and non-ASCII
# characters: flatten the example image to a .tar.gz and compare it byte for byte with the
# Linux build's; --import it, streamed and from a file, into the stand-in wsl.exe (which
# reads and checks the whole tarball), once into the default %LOCALAPPDATA%\Wsl\NAME; and
# check that an existing name is refused.
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
CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target-windows}")
export CARGO_TARGET_DIR
# The windows-gnu link wants rsbegin.o and rsend.o, which a rustup target ships and
# rust-web-src does not: built from the standard library's sources (they are empty on
# x86_64) and put on the search path rustc looks them up in.
rtstartup="$CARGO_TARGET_DIR/rtstartup"
mkdir -p "$rtstartup"
src=$(echo /usr/src/rustc-*/library/rtstartup)
for obj in rsbegin rsend; do
  [ -f "$rtstartup/$obj.o" ] || RUSTC_BOOTSTRAP=1 /usr/bin/rustc --target x86_64-pc-windows-gnu \
    --crate-type lib --emit=obj -C panic=abort -O -o "$rtstartup/$obj.o" "$src/$obj.rs"
done
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-L native=$rtstartup"
build=(env PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release --quiet
  -Z build-std=std,panic_abort --target x86_64-pc-windows-gnu)
"${build[@]}"
"${build[@]}" --manifest-path tests/wsl-stand-in/Cargo.toml
bin="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release"
exe="$bin/oci2wsl.exe"
echo "built $exe and $bin/wsl-stand-in.exe"
[ "${1:-}" = "--wine" ] || exit 0

# Rust's std calls bcryptprimitives!ProcessPrng, which Wine 8.0 does not have.
shim_dir=$(mktemp -d)
trap 'rm -rf "$shim_dir"' EXIT
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
export WINEDEBUG=-all
wine=/usr/lib/wine/wine64
"$wine" wineboot -i >/dev/null 2>&1 || true
cp "$shim_dir/bcryptprimitives.dll" "$HOME/.wine/drive_c/windows/system32/"

winpath() { echo "Z:$(echo "$1" | tr / '\\')"; }
fail() { echo "windows smoke test: $*" >&2; exit 1; }
# The stand-in logs each call as one line, arguments separated by tabs.
expect_call() {
  grep -qxF -- "$1" "$work/wsl state/calls.log" \
    || fail "wsl.exe was not called as: $1; calls: $(cat "$work/wsl state/calls.log")"
}
work=$(mktemp -d "/tmp/oci2wsl wine ü.XXXX")
trap 'cd /; rm -rf "$shim_dir" "$work"' EXIT
cp "$bin/wsl-stand-in.exe" "$work/wsl stand-in.exe"
stand_in=$(winpath "$work/wsl stand-in.exe")
# Relative, so that both builds record the same source in /etc/oci2wsl/image.json.
mkdir "$work/in put ü"
cp -r testdata/example "$work/in put ü/example"
example="oci:in put ü/example:latest"
linux="$(pwd)/target/release/oci2wsl"
export WSL_STAND_IN_DIR; WSL_STAND_IN_DIR=$(winpath "$work/wsl state")

# The Linux build's output is the reference.
cargo build --release --quiet
cd "$work"
"$linux" -q "$example" -o "$work/linux.tar.gz"
"$linux" -q "$example" > "$work/linux.tar"

"$wine" "$exe" "$example" -o "$(winpath "$work/out ü")\\example.rootfs.tar.gz" 2>/dev/null \
  && fail "writing into a missing directory succeeded"
mkdir "$work/out ü"
"$wine" "$exe" "$example" -o "$(winpath "$work/out ü")\\example.rootfs.tar.gz"
cmp "$work/linux.tar.gz" "$work/out ü/example.rootfs.tar.gz" || fail "the .tar.gz differs from the Linux build's"
tar -tzf "$work/out ü/example.rootfs.tar.gz" >/dev/null
# Standard output is written through a duplicate of the handle, not Rust's Stdout.
"$wine" "$exe" -q "$example" > "$work/wine.tar"
cmp "$work/linux.tar" "$work/wine.tar" || fail "the tar on standard output differs from the Linux build's"

# Streamed: nothing on disk but what WSL keeps.
"$wine" "$exe" "$example" --import smoke --install-dir "$(winpath "$work/distros ü")\\smoke" \
  --wsl-exe "$stand_in" --wsl-version 2
expect_call "--import	smoke	$(winpath "$work/distros ü")\\smoke	-	--version	2"
cmp "$work/linux.tar" "$work/wsl state/smoke.tar" || fail "WSL received another tar than the Linux build writes"
[ -d "$work/distros ü/smoke" ] || fail "the install directory was not created"

# From a file, into the default %LOCALAPPDATA%\Wsl\NAME.
user="${USER:-$(id -un)}"
default_dir="$HOME/.wine/drive_c/users/$user/AppData/Local/Wsl/smoke-file"
rm -rf "$default_dir"
"$wine" "$exe" "$example" -o "$(winpath "$work/out ü")\\file.tar.gz" --import smoke-file \
  --wsl-exe "$stand_in"
expect_call "--import	smoke-file	C:\\users\\$user\\AppData\\Local\\Wsl\\smoke-file	$(winpath "$work/out ü")\\file.tar.gz"
cmp "$work/linux.tar" "$work/wsl state/smoke-file.tar" || fail "the imported file differs"
rm -rf "$default_dir"

# An existing name is refused, whatever its case.
if "$wine" "$exe" "$example" --import SMOKE --wsl-exe "$stand_in" 2>"$work/err"; then
  fail "importing over an existing distribution succeeded"
fi
grep -q "a WSL distribution named SMOKE already exists" "$work/err" || fail "$(cat "$work/err")"
echo "windows smoke test passed: flatten, streamed and file --import under Wine"
