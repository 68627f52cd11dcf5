#!/usr/bin/env bash
# Render an HTML report in Debian's headless Chromium and save a PNG screenshot to look at.
#   apt-get install -y chromium         (once)
#   scripts/screenshot_report.sh report.html report.png [WIDTHxHEIGHT]
set -euo pipefail
html=$(realpath "$1"); png=$(realpath -m "$2"); size=${3:-1400x2400}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="${size/x/,}" \
  --screenshot="$png" "file://$html" 2>/dev/null
test -s "$png" && echo "wrote $png"
