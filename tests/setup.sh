#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust: Debian's Chromium (the browser tests),
# playwright-core (to drive it) from the npm registry, Debian's redis-server, the SSE and
# WebSocket client libraries, and the Autobahn|Testsuite (PyPI, under pyenv's Python 2.7.18). Idempotent and quick when
# everything is there already. Node.js and pyenv's Pythons come with the machine.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/setup.sh: installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# Redis for the Redis-engine tests; they start their own redis-server on a free loopback
# port, so the system service Debian starts on install is stopped and disabled.
if [ ! -x /usr/bin/redis-server ]; then
  echo "tests/setup.sh: installing redis-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  (systemctl disable --now redis-server || service redis-server stop) >/dev/null 2>&1 || true
fi
# nginx, openssl and curl for tests/deploy_nginx.rs (deploy/nginx.conf, run by the test on
# loopback with a certificate it makes), systemd's systemd-analyze for
# tests/deploy_systemd.rs. The nginx service Debian starts on install is stopped and
# disabled: the test runs its own nginx on free ports.
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  (systemctl disable --now nginx || service nginx stop) >/dev/null 2>&1 || true
fi
if [ ! -d browser/node_modules/playwright-core ]; then
  echo "tests/setup.sh: installing playwright-core"
  (cd browser && npm ci --no-audit --no-fund --silent)
fi
# The client-library tests: SSE (tests/sse_clients_*.rs; tests/sse/) and WebSocket
# (tests/ws_clients_*.rs; tests/ws/). In each directory: npm packages pinned in its
# package-lock.json, and Python packages pinned in its requirements.txt (from PyPI) in a
# Python 3.11 venv at DIR/.venv (tests/sse: httpx-sse with httpx; tests/ws: websockets).
# Each is reinstalled only when what is installed differs from the pins.
for dir in sse ws; do
  if ! node -e '
    const dir = process.argv[1];
    const want = require(dir + "/package.json").dependencies;
    for (const [name, version] of Object.entries(want)) {
      let got;
      try { got = require(dir + "/node_modules/" + name + "/package.json").version; } catch {}
      if (got !== version) process.exit(1);
    }' "$PWD/$dir" 2>/dev/null; then
    echo "tests/setup.sh: installing the $dir client libraries (npm)"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
  if ! "$dir"/.venv/bin/python - "$dir"/requirements.txt 2>/dev/null <<'PY'
import sys, importlib.metadata as md
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, version = line.split("==")
        if md.version(name) != version:
            sys.exit(1)
PY
  then
    echo "tests/setup.sh: installing the $dir client libraries (PyPI) into tests/$dir/.venv"
    python=""
    for p in python3.11 "$HOME"/.pyenv/versions/3.11*/bin/python3.11 python3; do
      if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv' 2>/dev/null; then
        python=$p
        break
      fi
    done
    if [ -z "$python" ]; then
      echo "tests/setup.sh: no Python 3 with venv found" >&2
      exit 1
    fi
    rm -rf "$dir"/.venv
    "$python" -m venv "$dir"/.venv
    "$dir"/.venv/bin/python -m pip install -q --disable-pip-version-check --no-input \
      -r "$dir"/requirements.txt
  fi
done
# The Autobahn|Testsuite (wstest, for tests/autobahn/run.sh): from PyPI into pyenv's Python 2.7.18,
# in pip's user site (~/.local; wstest in ~/.local/bin), with everything it pulls in pinned in
# tests/autobahn/requirements.txt. The same as `PYENV_VERSION=2.7.18 python -m pip install --user
# autobahntestsuite`, pinned. Reinstalled only when what is installed differs from the pins.
. autobahn/env.sh
if ! autobahn_installed; then
  echo "tests/setup.sh: installing the Autobahn|Testsuite (PyPI) under Python 2.7.18"
  autobahn_wstest >/dev/null
  "$AUTOBAHN_PYTHON" -m pip install -q --user --no-input --disable-pip-version-check \
    --no-warn-script-location -r "$AUTOBAHN_REQUIREMENTS"
  if ! autobahn_installed; then
    echo "tests/setup.sh: the Autobahn|Testsuite did not install as pinned" >&2
    exit 1
  fi
fi
