#!/usr/bin/env bash
# The example, end to end: build fixtures/hello into dist/ (wheels fetched from PyPI by
# pyapp-build through pip), install it into the scratch root scratch/, and run it.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --quiet --bins
bundle=$(target/debug/pyapp-build fixtures/hello -o dist)
echo "built $bundle"

rm -rf scratch
target/debug/pyapp-install --root scratch "$bundle"
app=scratch/applications/hello

# install wrote config/config.yaml from the spec's defaults (the secret generated); change a value
target/debug/pyapp-install --root scratch config hello --set greeting=Howdy
target/debug/pyapp-install --root scratch config hello

echo "running the installed app:"
PYAPP_CONFIG_FILE="$app/config/config.yaml" "$app/current/venv/bin/python" "$app/current/venv/bin/hello" pyapp
"$app/current/venv/bin/python" -c 'import hello.web, sys; print("hello.web imports from", sys.prefix)'
echo "its systemd units, written to scratch/etc/systemd/system:"
ls scratch/etc/systemd/system
