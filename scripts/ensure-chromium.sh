#!/usr/bin/env bash
# Installs Debian's Chromium when it is missing: the review console's browser tests drive it
# headless (internal/console/browser_test.go). Never a downloaded browser build.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "ensure-chromium: installing chromium from the distribution's packages" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version >&2
