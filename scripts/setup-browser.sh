#!/usr/bin/env bash
# Installs what the browser tests need, for crates/segsync/tests/server/browser.rs:
#   - Chromium: Debian's package `chromium` (/usr/bin/chromium), unless $CHROMIUM names an
#     executable that is there already;
#   - Node.js (18 or newer) and npm, from Debian when they are missing;
#   - crates/segsync/tests/browser/node_modules: `npm ci` from its package-lock.json
#     (playwright-core only, which drives the installed Chromium and downloads no browser).
# Idempotent and fast when nothing changed: node_modules is redone only when the lock file
# differs from what was last installed (a stamp file holds a copy of it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  sudo="sudo"
fi
apt_updated=""
apt_install() {
  if [[ -z "$apt_updated" ]]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Chromium.
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$chromium" ]]; then
  echo "setup-browser: Chromium present ($chromium)"
else
  echo "setup-browser: installing Debian's chromium"
  apt_install chromium fonts-liberation
  if [[ ! -x /usr/bin/chromium ]]; then
    echo "setup-browser: /usr/bin/chromium is still missing after installing the chromium package" >&2
    exit 1
  fi
  if [[ -n "${CHROMIUM:-}" && "$CHROMIUM" != /usr/bin/chromium ]]; then
    echo "setup-browser: note: CHROMIUM=$CHROMIUM does not exist; unset it to use /usr/bin/chromium" >&2
  fi
fi

# Node.js and npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-browser: installing Node.js and npm"
  apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 18 )); then
  echo "setup-browser: Node.js $(node --version) is too old: the browser tests need 18 or newer" >&2
  exit 1
fi

# playwright-core, from the lock file.
dir="$root/crates/segsync/tests/browser"
stamp="$dir/node_modules/.installed-package-lock.json"
if [[ -f "$dir/node_modules/playwright-core/package.json" ]] && cmp -s "$dir/package-lock.json" "$stamp"; then
  echo "setup-browser: node_modules up to date ($dir/node_modules)"
else
  echo "setup-browser: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
fi
