#!/bin/sh
# System packages the tests need: Debian's chromium (the governance report is checked in a real browser,
# driven by playwright-core; never a downloaded browser). Needs root (or sudo) on Debian/Ubuntu.
set -eu
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
