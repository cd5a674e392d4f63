#!/usr/bin/env bash
# Download the real wheels the tests install, once each (a stamp keyed by the pin list's
# hash skips a download that is already complete):
#   target/wheels/hello      the pins of fixtures/hello
#   target/wheels/reference  tests/reference-wheels.txt, the set the native installer is
#                            compared with `python -m installer` on
#   target/wheels/old-gunicorn  tests/old-gunicorn.txt, a server the hardening breaks
#   target/wheels/servers    the pins of fixtures/servers: uvicorn, hypercorn, daphne,
#                            waitress, gunicorn and celery, run under the hardening
#   target/wheels/backends   tests/build-backends.txt, the build backends apps are built with
#   target/wheels/sdists     tests/sdist-pins.txt, sdists of pins that have no wheel
#   target/wheels/apps/NAME  the hash-pinned wheels of fixtures/apps/NAME: real public apps
#                            (datasette, pypiserver, Django, huey) as their authors published
#                            them, for tests/it/real_apps, and the older releases its
#                            previous-requirements.txt pins (the release upgraded from)
# and the reference installer itself.
set -euo pipefail
cd "$(dirname "$0")/.."

fetch() { # fetch DIR REQUIREMENTS-FILE [sdists]
  local dir=$1 requirements=$2 stamp
  stamp="$dir/.complete-$(sha256sum "$requirements" | cut -c1-16)"
  [ -e "$stamp" ] && return 0
  mkdir -p "$dir"
  if [ "${3:-}" = sdists ]; then
    python3 -m pip download --quiet --disable-pip-version-check --no-binary=:all: --no-deps \
      -d "$dir" -r "$requirements"
  else
    python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
      --python-version 3.11 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      -d "$dir" -r "$requirements"
  fi
  touch "$stamp"
}
fetch target/wheels/hello fixtures/hello/pinned-requirements.txt
fetch target/wheels/reference tests/reference-wheels.txt
fetch target/wheels/old-gunicorn tests/old-gunicorn.txt
fetch target/wheels/servers fixtures/servers/pinned-requirements.txt
fetch target/wheels/backends tests/build-backends.txt
fetch target/wheels/sdists tests/sdist-pins.txt sdists
for app in fixtures/apps/*/; do
  app=$(basename "$app")
  for requirements in pinned previous; do
    file=fixtures/apps/$app/$requirements-requirements.txt
    if [ -e "$file" ]; then fetch "target/wheels/apps/$app" "$file"; fi
  done
done

python3 -c 'import installer' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check installer
