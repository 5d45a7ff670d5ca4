#!/usr/bin/env bash
# What the real-browser test (tests/ui, marked `browser`) needs: Debian's Chromium at /usr/bin/chromium.
# Playwright drives it through its Python API (executable_path=/usr/bin/chromium); nothing is
# downloaded by `playwright install`, which cannot work offline.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== browser deps: installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
else
  echo "browser-deps: /usr/bin/chromium is missing and this shell cannot install it (needs root and apt-get);" >&2
  echo "install Debian's 'chromium' package, or run the tests without the browser one: pytest -m 'not browser'" >&2
  exit 1
fi
