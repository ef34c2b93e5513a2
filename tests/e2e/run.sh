#!/usr/bin/env bash
# Browser end-to-end test of `portcullis demo` (see README.md beside this file).
# Installs what it needs (Debian's chromium, fonts, the npm packages in package-lock.json),
# builds the binary unless PORTCULLIS_BIN names one, then runs run.mjs with node.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chromium="${CHROMIUM_BIN:-/usr/bin/chromium}"

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "e2e: $* missing and not root: install it with apt-get install $*" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The browser: Debian's chromium, never a downloaded build. Screenshots need a font.
if [ -n "${CHROMIUM_BIN:-}" ] && [ ! -x "$chromium" ]; then
  echo "e2e: CHROMIUM_BIN=$chromium is not an executable" >&2
  exit 1
elif [ ! -x "$chromium" ]; then
  echo "e2e: installing Debian chromium"
  apt_install chromium fonts-dejavu-core
fi
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_install fonts-dejavu-core

# Node.js 20 or later (playwright-core's minimum).
for tool in node npm; do
  need "$tool" || { echo "e2e: $tool not found: Node.js 20 or later is needed" >&2; exit 1; }
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "e2e: node $(node --version) is too old: Node.js 20 or later is needed" >&2
  exit 1
fi

# npm packages, from the lock file, when node_modules is missing or not what the lock says.
cd "$here"
locked="$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')"
installed="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')"
if [ "$installed" != "$locked" ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "e2e: npm ci (playwright-core $locked)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

# The binary under test.
if [ -z "${PORTCULLIS_BIN:-}" ]; then
  echo "e2e: cargo build --locked --bin portcullis"
  (cd "$root" && cargo build --locked --bin portcullis)
  export PORTCULLIS_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/portcullis"
fi
export CHROMIUM_BIN="$chromium"

exec node "$here/run.mjs"
