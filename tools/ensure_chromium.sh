#!/usr/bin/env bash
# The browser tests (the report's, the explorer's through Playwright) drive Debian's Chromium: no browser build is
# ever downloaded. `make test` calls this first: as root it installs Debian's chromium when it is missing, as CI
# does; otherwise it says in one line how to get it, and the browser tests then fail naming it (never skip).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests (apt-get)"
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
    exit 0
  fi
  echo "chromium could not be installed (apt-get failed): the browser tests will fail, naming it"
else
  echo "the browser tests need Debian's chromium: sudo apt-get install chromium (make test as root installs it)"
fi
