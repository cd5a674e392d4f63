#!/usr/bin/env bash
# A short fuzzing run of every target, as CI does it: build all targets once, then fuzz
# each for SECONDS (default 20) on its corpus (fuzz/corpus/TARGET, which grows) and its
# seeds (fuzz/seeds/TARGET, real inputs).
#   fuzz/run.sh [SECONDS] [TARGET...]
# Exits 1 on the first crash, timeout or out-of-memory, naming the reproducer libFuzzer
# saved under fuzz/artifacts/TARGET/. Longer runs: `cargo fuzz run`, see fuzz/README.md.
#
# Needs only stable Rust, and not cargo-fuzz (whose install from source would cost CI more
# than the fuzzing): this builds the fuzz crate itself with the flags `cargo fuzz build
# --sanitizer none --no-trace-compares` passes, RUSTC_BOOTSTRAP=1 letting stable rustc take
# the one nightly flag among them, in the unoptimised `smoke` profile (fuzz/Cargo.toml).
# FUZZ_TARGET_DIR moves the build out of fuzz/target, e.g. to keep it across clones; under
# CI it defaults to ~/.cache/pyapp/fuzz-target.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
shift || true

if [ -z "${FUZZ_TARGET_DIR:-}" ] && [ -n "${CI:-}" ]; then
  FUZZ_TARGET_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/pyapp/fuzz-target
fi
target_dir=${FUZZ_TARGET_DIR:-$PWD/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$triple/smoke

# Coverage instrumentation for libFuzzer. `--target` keeps it off build scripts and proc
# macros. Comparison tracing is left out: unoptimised, it makes every run ten times slower.
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Cdebug-assertions"
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | tail -n +2)
fi

# Not --locked: fuzz/Cargo.lock follows the main workspace's dependencies as they change.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
start=$SECONDS
if ! cargo build --manifest-path Cargo.toml --profile smoke --target "$triple" \
    --target-dir "$target_dir" "${targets[@]/#/--bin=}" >"$logs/build.log" 2>&1; then
  grep -v '^ *Compiling' "$logs/build.log" >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s" >&2

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target" "artifacts/$target"
  log="$logs/$target.log"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: 2 GiB is a memory blow-up.
  if ! timeout $((seconds + 300)) "$bin_dir/$target" -artifact_prefix="artifacts/$target/" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      "corpus/$target" "seeds/$target" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED; reproducer(s):" >&2
    ls -1 "artifacts/$target/" | sed "s|^|  fuzz/artifacts/$target/|" >&2
    echo "hint: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a $target artifacts/$target/FILE" >&2
    exit 1
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  echo "fuzz: $target: ${runs:-?} runs in $seconds s, no crash" >&2
done
echo "fuzz: ${#targets[@]} targets clean, $((SECONDS - start)) s in all" >&2
