#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (Playwright drives
# /usr/bin/chromium; it never downloads a browser of its own). Prints the binary's path.
set -euo pipefail
if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Chromium is not installed and this user cannot apt-get install it." >&2
    exit 1
  fi
  echo "Installing Chromium (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
echo /usr/bin/chromium
