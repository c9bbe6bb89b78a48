#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20); non-zero exit on a crash, whose input
# libFuzzer leaves in fuzz/artifacts/TARGET/. cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP
# lets the stable toolchain accept them. Installs cargo-fuzz from crates.io if missing.
# Leak detection is off: the crate has no unsafe code, and LeakSanitizer reports glibc's
# per-thread destructor records of our worker threads (__cxa_thread_atexit_impl) as leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
for target in $(cargo fuzz list); do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run --release "$target" "fuzz/corpus/$target" fuzz/seeds -- \
    -max_total_time="$seconds" -jobs=1 -workers=1 -print_final_stats=1 -detect_leaks=0 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|.*panicked|Done)" || true
  if ls "fuzz/artifacts/$target"/{crash,oom,timeout,leak}-* >/dev/null 2>&1; then
    echo "fuzz target $target crashed: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
