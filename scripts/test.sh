#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, integration, the differential
# test against umoci, the registry tests, the WSL hand-off), the Windows build under Wine,
# each fuzz target briefly, then the small end-to-end benchmark, which prints and never
# fails on a time. What CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh machine needs the reference tools first (idempotent, quiet when all are present).
# Without root and without sudo it says what to run and stops.
scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --release

# The library's API documentation builds without a warning (missing docs, broken links), and
# the example program that embeds the library (issue 17) flattens testdata's example image to
# the very bytes the command line writes.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib
example_out="$(mktemp -d)"
trap 'rm -rf "$example_out"' EXIT
cargo run --quiet --release --example flatten -- testdata/example:latest "$example_out/lib.tar"
cargo run --quiet --release -- -q oci:testdata/example:latest -o "$example_out/cli.tar"
cmp "$example_out/lib.tar" "$example_out/cli.tar"

# The Windows build and its smoke test under Wine (issue 4): flatten, and --import into a
# stand-in wsl.exe, streamed and from a file.
scripts/build-windows.sh --wine

# Every fuzz target briefly (issue 6); a crash fails the run. Longer: scripts/fuzz.sh 600.
scripts/fuzz.sh "${OCI2WSL_FUZZ_SECONDS:-10}"

# The small end-to-end benchmark (issue 5): prints timings and ratios against the
# reference tools, asserts nothing. Needs root (debootstrap, umoci unpack).
if [ "$(id -u)" -eq 0 ] && command -v umoci >/dev/null && command -v debootstrap >/dev/null; then
  python3 scripts/bench.py --small
else
  echo "benchmark skipped: scripts/bench.py needs root, umoci and debootstrap"
fi

# Packaging (issue 17): the published crate holds only what it needs and builds on its own,
# and `cargo install` gives a binary that does the main job. Both reuse the release build's
# dependencies (same target directory), so only oci2wsl itself is compiled again.
scripts/check-package.sh
