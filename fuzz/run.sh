#!/usr/bin/env bash
# Build every cargo-fuzz target once, then fuzz each for SECONDS (default 20) on its corpus
# (fuzz/corpus/TARGET, which grows) and its seeds (fuzz/seeds/TARGET, real inputs).
#   fuzz/run.sh [SECONDS] [TARGET...]
# Exits 1 on the first crash, leak, timeout or out-of-memory, naming the reproducer that
# libFuzzer saved under fuzz/artifacts/TARGET/. See fuzz/README.md for longer runs.
#
# Needs only stable Rust: RUSTC_BOOTSTRAP=1 lets it take the nightly-only flags
# cargo-fuzz passes. cargo-fuzz itself is installed from crates.io if it is missing.
# FUZZ_TARGET_DIR moves the build out of fuzz/target (e.g. to keep it across clones).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
shift || true
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The main workspace's target dir must not leak in: cargo-fuzz builds with other flags.
unset CARGO_TARGET_DIR

cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --quiet
fi

# No AddressSanitizer: the code under test forbids `unsafe`, and ASan makes the build
# four times slower. Debug assertions stay on, so arithmetic overflow is a crash too.
build_flags=(--sanitizer none --debug-assertions)
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  build_flags+=(--target-dir "$FUZZ_TARGET_DIR")
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

start=$SECONDS
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
if ! cargo fuzz build "${build_flags[@]}" >"$logs/build.log" 2>&1; then
  grep -v '^ *Compiling' "$logs/build.log" >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
echo "fuzz: built every target in $((SECONDS - start)) s" >&2

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  log="$logs/$target.log"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: 2 GiB is a memory blow-up.
  if ! timeout $((seconds + 300)) cargo fuzz run "${build_flags[@]}" "$target" \
      "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED; reproducer(s):" >&2
    ls -1 "artifacts/$target/" 2>/dev/null | sed "s|^|  fuzz/artifacts/$target/|" >&2
    echo "hint: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} $target fuzz/artifacts/$target/FILE" >&2
    exit 1
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  echo "fuzz: $target: ${runs:-?} runs in $seconds s, corpus $(ls "corpus/$target" | wc -l) files, no crash" >&2
done
echo "fuzz: ${#targets[@]} targets clean after $((SECONDS - start)) s" >&2
