#!/usr/bin/env bash
# Shows that tests/autobahn/run.sh works before the gateway speaks WebSocket: a run against
# Autobahn's own echo server (`wstest -m echoserver`) passes, and a run against a deliberately
# broken echo server (tests/autobahn/broken_echo.py) fails. Loopback only; every server it
# starts is bounded in time and stopped on exit.
#
#   tests/autobahn/selftest.sh [CASES]   (CASES as for run.sh; default 1.*,2.*,5.*)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
cases=${1:-1.*,2.*,5.*}
wstest=$(autobahn_wstest)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(free_port)
timeout 1500 "$wstest" -m echoserver -w "ws://127.0.0.1:$port" -u 0 >/dev/null 2>&1 &
pids+=($!)
echo "== selftest: Autobahn's echo server on 127.0.0.1:$port, cases $cases: expect PASS"
AUTOBAHN_AGENT=autobahn-echoserver "$here/run.sh" "ws://127.0.0.1:$port" "$cases"

port=$(free_port)
timeout 300 "$AUTOBAHN_PYTHON" "$here/broken_echo.py" "$port" >/dev/null 2>&1 &
pids+=($!)
echo "== selftest: a broken echo server (drops each message's last byte) on 127.0.0.1:$port, cases 1.1.1,1.1.2,1.2.2,2.1: expect FAIL"
rc=0
AUTOBAHN_AGENT=broken-echo "$here/run.sh" "ws://127.0.0.1:$port" "1.1.1,1.1.2,1.2.2,2.1" || rc=$?
if [ "$rc" -ne 1 ]; then
  echo "selftest: FAIL: run.sh exited with $rc against the broken echo server, expected 1" >&2
  exit 1
fi
echo "selftest: PASS: run.sh passes a correct echo server and fails a broken one"
