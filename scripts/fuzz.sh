#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, default 20, one process at a
# time; exits non-zero if any target crashed, timed out or ran out of memory. The input that
# did it is in fuzz/artifacts/TARGET/; reproduce with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a -s none TARGET fuzz/artifacts/TARGET/crash-…
# and keep it as a test in tests/fuzz_regressions.rs.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP lets the stable toolchain accept them.
# cargo-fuzz is installed from crates.io if missing. Builds use debug assertions (overflow
# checks) and no sanitizer by default: the crate is safe Rust (its only unsafe blocks are
# Linux system calls on its own output and spool files, which pass no memory), the C libraries are not
# instrumented anyway, and AddressSanitizer costs 5x the speed and reports glibc's
# per-thread destructor records of worker threads as leaks. FUZZ_SANITIZER=address turns it
# back on (with leak detection off).
#
# Corpora grow in fuzz/corpus/TARGET (git-ignored), starting from fuzz/seeds/TARGET
# (committed; regenerate with `cargo run --manifest-path fuzz/Cargo.toml --example
# gen_seeds`; the `wsl` seeds are written by hand); the tar targets get the tokens of
# fuzz/dicts/tar.dict, the `wsl` target (image config, passwd, wsl.conf, profile into the
# WSL stage) those of fuzz/dicts/wsl.dict. Logs:
# fuzz/target/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true

command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target directory, away from the main build.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
sanitizer="${FUZZ_SANITIZER:-none}"
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
flags=(--release --debug-assertions --sanitizer "$sanitizer")

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build "${flags[@]}" 2>&1 | grep -vE "^\s*(Compiling|Downloaded|Downloading)" || true
mkdir -p fuzz/target/logs

failed=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="fuzz/target/logs/$target.log"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  dict=()
  case "$target" in
    flatten_layers | tar_reader | archive) dict=(-dict=fuzz/dicts/tar.dict) ;;
    wsl) dict=(-dict=fuzz/dicts/wsl.dict) ;;
  esac
  status=0
  cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -detect_leaks=0 \
    "${dict[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+" "$log" | tail -1 || true)
  echo "fuzz $target: ${seconds}s, ${runs:-?} runs, ${cov:-no coverage line}"
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "fuzz $target FAILED (exit $status); log: $log" >&2
    grep -E "panicked at|^thread '|ERROR: libFuzzer|SUMMARY|Test unit written to|^Failing input" -A2 "$log" \
      | head -30 >&2 || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]}" >&2
  exit 1
fi
