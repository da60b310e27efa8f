#!/usr/bin/env bash
# Install what pip cannot: Debian's chromium-headless-shell (Playwright's default headless browser,
# the one the runner launches), chromium (headed debugging, the full-browser tests) and ffmpeg, and
# point Playwright's video recorder at Debian's ffmpeg (Playwright cannot download browsers here).
# Usage: scripts/install-system-deps.sh PYTHON   (the virtualenv's python)
set -euo pipefail
PY="${1:-python3}"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/lib/chromium/chromium-headless-shell ] || missing+=(chromium-headless-shell)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Playwright records video through "its" ffmpeg under PLAYWRIGHT_BROWSERS_PATH; link Debian's.
: "${PLAYWRIGHT_BROWSERS_PATH:=$PWD/var/pw-browsers}"
REV=$("$PY" -c 'import json,os,playwright;p=os.path.join(os.path.dirname(playwright.__file__),"driver","package","browsers.json");print(next(b["revision"] for b in json.load(open(p))["browsers"] if b["name"]=="ffmpeg"))')
mkdir -p "$PLAYWRIGHT_BROWSERS_PATH/ffmpeg-$REV"
ln -sfn "$(command -v ffmpeg)" "$PLAYWRIGHT_BROWSERS_PATH/ffmpeg-$REV/ffmpeg-linux"
