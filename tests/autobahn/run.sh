#!/usr/bin/env bash
# Autobahn|Testsuite conformance run against a WebSocket echo endpoint (issue 12).
#
#   tests/autobahn/run.sh SERVER_URL [CASES]
#
# SERVER_URL: a ws:// URL on the loopback (127.0.0.0/8, localhost or [::1]) of an endpoint that
# echoes every message back. CASES: `all` (the default: 1-7, 9, 10, 12, 13), `quick` (the same
# without 9.*, the large-message performance cases), or a comma-separated list of case patterns
# (e.g. `1.*,2.*,5.*` or `7.1.1`). Needs tests/setup.sh to have run (it installs wstest under pyenv's
# Python 2.7.18).
#
# It writes target/autobahn/spec.json, runs `wstest -m fuzzingclient -s target/autobahn/spec.json`
# (log in target/autobahn/wstest.log, at most AUTOBAHN_TIMEOUT seconds: 600 for `all`, 300
# otherwise), and summarises the report (target/autobahn/reports/index.json, with index.html
# beside it) by tests/autobahn/summarize.py: counts per case group and behavior, and the failed
# case ids. Exits 0 only if no case failed: in 1-7, 9, 10 every case OK, NON-STRICT or
# INFORMATIONAL and no close behavior FAILED or UNCLEAN; in 12-13 (permessage-deflate, which the
# gateway does not negotiate) every case UNIMPLEMENTED. AUTOBAHN_AGENT names the server in the
# report (default comet-gateway).
#
# Against the gateway (its test-only `--ws-echo` flag turns on the echo endpoint, with the very
# framing of /ws and messages of up to 16 MiB), e.g. on a free loopback port:
#
#   bash tests/setup.sh
#   cargo build --release
#   target/release/comet-gateway --listen 127.0.0.1:18080 --ws-echo &   # flags as the binary has them
#   tests/autobahn/run.sh ws://127.0.0.1:18080/ws-echo quick            # the path --ws-echo serves
#   tests/autobahn/run.sh ws://127.0.0.1:18080/ws-echo                  # with 9.*, by hand
#   kill %1
#
# How long it takes, measured against Autobahn's own echo server (`wstest -m echoserver`, the
# reference) on this 2-core machine: `quick` (463 cases) 8 s, `all` (517 cases, 9.* being 54
# of them) 25 s; every case passes there (all: 290 OK, 8 NON-STRICT, 3 INFORMATIONAL, 216
# UNIMPLEMENTED). A server that fails cases is slower: wstest waits out each failed case's
# timeout (1 to 5 s each, seen here), which is what AUTOBAHN_TIMEOUT bounds.
#
# tests/autobahn/selftest.sh shows the harness itself works: a quick subset passes against
# Autobahn's echo server and fails against a deliberately broken one.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/autobahn
. "$here/env.sh"

usage() {
  echo "usage: tests/autobahn/run.sh ws://127.0.0.1:PORT[/PATH] [all|quick|PATTERN,...]" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
url=$1
selection=${2:-all}
agent=${AUTOBAHN_AGENT:-comet-gateway}

# Loopback only: this suite floods the server it is pointed at.
if [[ ! $url =~ ^ws://(\[[0-9a-fA-F:]+\]|[^/:?#]+):([0-9]+)(/[^[:space:]]*)?$ ]]; then
  echo "autobahn: $url: want ws://HOST:PORT[/PATH]" >&2
  exit 2
fi
host=${BASH_REMATCH[1]}
port=${BASH_REMATCH[2]}
case $host in
  localhost | 127.* | '[::1]') ;;
  *)
    echo "autobahn: $host is not a loopback address: this harness runs on the loopback only" >&2
    exit 2
    ;;
esac
host=${host#[}
host=${host%]}

all='"1.*","2.*","3.*","4.*","5.*","6.*","7.*","9.*","10.*","12.*","13.*"'
quick='"1.*","2.*","3.*","4.*","5.*","6.*","7.*","10.*","12.*","13.*"'
case $selection in
  all) cases=$all default_timeout=600 ;;
  quick) cases=$quick default_timeout=300 ;;
  *)
    if [[ ! $selection =~ ^[0-9.*]+(,[0-9.*]+)*$ ]]; then
      echo "autobahn: $selection: want all, quick, or case patterns such as 1.*,2.*,5.*" >&2
      exit 2
    fi
    cases=\"${selection//,/\",\"}\"
    default_timeout=300
    ;;
esac
limit=${AUTOBAHN_TIMEOUT:-$default_timeout}

if ! autobahn_installed; then
  echo "autobahn: wstest is not installed as tests/autobahn/requirements.txt pins it: run tests/setup.sh" >&2
  exit 1
fi
wstest=$(autobahn_wstest)

# The server must be listening already (a fuzzingclient facing a closed port reports nothing useful).
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    break
  fi
  sleep 0.2
done
if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  echo "autobahn: nothing listens on $host port $port" >&2
  exit 1
fi

out=$root/target/autobahn
rm -rf "$out/reports"
mkdir -p "$out/reports"
cat >"$out/spec.json" <<EOF
{
  "outdir": "$out/reports",
  "servers": [{"agent": "$agent", "url": "$url"}],
  "cases": [$cases],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF

echo "autobahn: wstest -m fuzzingclient against $url, cases [$cases], at most ${limit}s (log: $out/wstest.log)"
start=$(date +%s)
rc=0
(cd "$out" && timeout --kill-after=10 "$limit" "$wstest" -m fuzzingclient -s "$out/spec.json") \
  >"$out/wstest.log" 2>&1 || rc=$?
elapsed=$(($(date +%s) - start))
if [ "$rc" -ne 0 ] || [ ! -f "$out/reports/index.json" ]; then
  tail -n 20 "$out/wstest.log" >&2
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "autobahn: FAIL: wstest did not finish within ${limit}s (AUTOBAHN_TIMEOUT)" >&2
  else
    echo "autobahn: FAIL: wstest exited with $rc after ${elapsed}s and no report" >&2
  fi
  exit 1
fi
echo "autobahn: wstest took ${elapsed}s; report: $out/reports/index.html"
"$AUTOBAHN_PYTHON" "$here/summarize.py" "$out/reports/index.json" "$agent"
