#!/usr/bin/env bash
# Checks what `cargo package` would publish and what `cargo install --path .` gives:
# - the package lists only the crate's code, its user docs and licences (no tests, fixtures,
#   fuzzers or benchmarks, which need tools a build does not);
# - the unpacked package builds by itself;
# - the installed binary flattens the example image.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo package --quiet --allow-dirty --no-verify --locked
crate="$(ls -t "$target"/package/oci2wsl-*.crate | head -1)"
tar -tzf "$crate" | sed 's|^[^/]*/||' | sort >"$work/list"
for needed in Cargo.toml Cargo.lock README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE \
  src/lib.rs src/main.rs docs/user-guide.md; do
  grep -qx "$needed" "$work/list" || { echo "check-package: $needed is missing from $crate" >&2; exit 1; }
done
if grep -E '^(tests|testdata|fuzz|benches|scripts|\.ci)/' "$work/list" >&2; then
  echo "check-package: the files above do not belong in $crate" >&2
  exit 1
fi

tar -xzf "$crate" -C "$work"
cargo build --quiet --release --locked --offline \
  --manifest-path "$work"/oci2wsl-*/Cargo.toml --target-dir "$target"

cargo install --quiet --locked --offline --path . --root "$work/root" --target-dir "$target"
"$work/root/bin/oci2wsl" --version
"$work/root/bin/oci2wsl" oci:testdata/example:latest -o "$work/example.tar.gz"
# The listing goes to a file first: with pipefail, `grep -q` quitting early would kill tar
# with SIGPIPE and fail a good run.
tar -tzf "$work/example.tar.gz" >"$work/example.list"
grep -q '^etc/' "$work/example.list" || { echo "check-package: the installed binary's output lacks etc/" >&2; exit 1; }
echo "check-package: ok ($(wc -l <"$work/list") files in $(basename "$crate"))"
