#!/usr/bin/env bash
# Installs Debian's Chromium for the explorer's browser tests, where this machine allows it.
# Playwright (a Python test dependency) drives this browser; Playwright's own browser download
# is never used. Without root or apt-get, one line says so and the browser tests are skipped
# (unless CNNLAB_REQUIRE_BROWSER=1, as in CI, makes that a failure).
set -u
CHROMIUM="${CNNLAB_CHROMIUM:-/usr/bin/chromium}"

# Korean glyphs, so that the page's Korean shows in screenshots (Debian's fonts-nanum).
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=ko 2>/dev/null)" ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-nanum >/dev/null 2>&1 \
        && echo "browser: Korean font installed (Debian package fonts-nanum)"
fi
if [ -x "$CHROMIUM" ]; then
    echo "browser: Chromium present ($CHROMIUM)"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: no Chromium at $CHROMIUM and no root apt-get to install it: browser tests will be skipped"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; then
    echo "browser: Chromium installed (Debian package chromium)"
else
    echo "browser: Chromium could not be installed with apt-get: browser tests will be skipped"
fi
