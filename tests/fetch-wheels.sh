#!/usr/bin/env bash
# Download the real wheels of tests/reference-wheels.txt into target/wheels/reference (once:
# a stamp keyed by the pin list's hash skips the download when they are there), and the
# reference installer (`python -m installer`) the native one is compared against.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=target/wheels/reference
requirements=tests/reference-wheels.txt
stamp="$dir/.complete-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  mkdir -p "$dir"
  python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
    --python-version 3.11 --platform manylinux_2_17_x86_64 -d "$dir" -r "$requirements"
  touch "$stamp"
fi
python3 -c 'import installer' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check installer
