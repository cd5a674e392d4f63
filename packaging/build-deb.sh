#!/usr/bin/env bash
# Build the Debian package `pyapp` (both binaries, their man pages and shell completions)
# with cargo-deb, from the [package.metadata.deb] of pyapp-install/Cargo.toml.
#
#   packaging/build-deb.sh                 release build -> target/debian/pyapp_VERSION_ARCH.deb
#   packaging/build-deb.sh --profile dev   reuse the debug build (what the tests check)
#
# Needs cargo-deb (`cargo install cargo-deb --locked`); prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--profile" ]; then
  profile=${2:?--profile needs a name}
fi
# A dev package is for the tests: light compression, binaries kept as built.
deb_flags=()
case "$profile" in
  dev) out=debug deb_flags=(--fast --no-strip) ;;
  *) out=$profile ;;
esac
command -v cargo-deb >/dev/null || {
  echo "error: cargo-deb is not installed" >&2
  echo "hint: cargo install cargo-deb --locked" >&2
  exit 1
}

cargo build --quiet --profile "$profile" -p pyapp-build -p pyapp-install --bins

# Generated from the binaries themselves, so they always match --help.
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/bash" "$assets/zsh" "$assets/fish"
for bin in pyapp-build pyapp-install; do
  "target/$out/$bin" man --out-dir "$assets/man" >/dev/null
  "target/$out/$bin" completions bash >"$assets/bash/$bin"
  "target/$out/$bin" completions zsh >"$assets/zsh/_$bin"
  "target/$out/$bin" completions fish >"$assets/fish/$bin.fish"
done
gzip -9n "$assets"/man/*.1

cargo deb --no-build --profile "$profile" -p pyapp-install --quiet "${deb_flags[@]}"
