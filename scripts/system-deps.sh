#!/usr/bin/env bash
# System packages the test suite uses: Debian's chromium (browser tests), postgresql (the
# PostgreSQL half of the store tests; the suite starts its own throw-away server with these binaries),
# dicom3tools (dciodvfy, the DICOM validator the DICOM export is checked with), dcmtk (dcmdump) and
# nginx (tests/test_deploy.py checks and serves deploy/nginx in front of two replicas).
# Installs them when we can (root); otherwise says what is missing and the tests that need them skip
# (outside CI) with that reason.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
command -v dcmdump >/dev/null 2>&1 || missing+=(dcmtk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system test tools: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} not installed and not root; tests needing them will skip." \
       "Install with: sudo apt-get install ${missing[*]}"
fi
exit 0
