#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust: Debian's Chromium (the browser tests)
# and playwright-core (to drive it) from the npm registry. Idempotent and quick when
# everything is there already. Node.js itself comes with the machine.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/setup.sh: installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d browser/node_modules/playwright-core ]; then
  echo "tests/setup.sh: installing playwright-core"
  (cd browser && npm ci --no-audit --no-fund --silent)
fi
