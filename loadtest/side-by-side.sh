#!/usr/bin/env bash
# Comet Gateway and nginx+Nchan side by side on loopback, same scenarios, same generator:
# idle memory per subscriber, fan-out of a burst to N subscribers (with the floor measured
# in the same run), and latency at a steady rate. Installs nginx and the Nchan module from
# Debian if missing. Bounded: every run has its own time limits.
#
#   loadtest/side-by-side.sh          # N=10000
#   N=2000 loadtest/side-by-side.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
BURST=${BURST:-100}
OUT=${OUT:-target/side-by-side}
SRC=127.0.0.2-127.0.0.20
mkdir -p "$OUT"

if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan
fi
cargo build --release -q -p comet-gateway -p comet-loadtest
LT=target/release/comet-loadtest

SERVER_PID=
start_server() { # gateway|nchan
  case "$1" in
    gateway)
      target/release/comet-gateway --listen 127.0.0.1:18100 --admin-listen 127.0.0.1:18000 \
        --buffer 1000 --poll-timeout 60s >"$OUT/gateway.log" 2>&1 &
      MASTER=$!; SERVER_PID=$MASTER; TARGET=127.0.0.1:18100; ADMIN=127.0.0.1:18000
      for _ in $(seq 100); do grep -q listening "$OUT/gateway.log" && break; sleep 0.05; done ;;
    nchan)
      P=$(realpath "$OUT")/nginx; rm -rf "$P"; mkdir -p "$P"
      sed "s#@PREFIX@#$P#g; s#@PORT@#18300#g" loadtest/nchan/nginx.conf.in >"$P/nginx.conf"
      nginx -c "$P/nginx.conf" -p "$P" >"$P/out.log" 2>&1 &
      MASTER=$!; TARGET=127.0.0.1:18300; ADMIN=127.0.0.1:18300
      for _ in $(seq 100); do SERVER_PID=$(pgrep -P "$MASTER" | head -1 || true); [ -n "$SERVER_PID" ] && break; sleep 0.05; done
      for _ in $(seq 100); do curl -s -o /dev/null -X POST -d x "http://$TARGET/pub/ping" && break; sleep 0.05; done ;;
  esac
}
stop_server() { kill "$MASTER" 2>/dev/null || true; wait "$MASTER" 2>/dev/null || true; sleep 0.3; }
trap stop_server EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
lt() { "$LT" --quiet --target-kind "$KIND" --target "$TARGET" --admin "$ADMIN" --source "$SRC" --server-pid "$SERVER_PID" "$@"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); nginx $(nginx -v 2>&1 | cut -d/ -f2); date: $(date -u +%F)"
for KIND in gateway nchan; do
  # Idle memory: N EventSource subscribers, nothing published.
  start_server $KIND
  before=$(rss "$SERVER_PID")
  lt --transport events --subscribers "$N" --rate 0 --burst 0 --drain 1s --json "$OUT/$KIND-idle.json" >"$OUT/$KIND-idle.txt" || true
  echo "{\"before_kib\": $before}" >"$OUT/$KIND-idle-before.json"
  stop_server
  # Fan-out: a burst to N subscribers, EventSource and long-poll.
  for t in events poll; do
    start_server $KIND
    lt --transport $t --subscribers "$N" --burst "$BURST" --rate 0 --drain 90s --json "$OUT/$KIND-fanout-$t.json" >"$OUT/$KIND-fanout-$t.txt" || true
    stop_server
  done
  # Steady rate: 2,000 EventSource subscribers, 100 messages/s, 10 s.
  start_server $KIND
  lt --transport events --subscribers 2000 --rate 100 --duration 10s --json "$OUT/$KIND-steady.json" >"$OUT/$KIND-steady.txt" || true
  stop_server
done
"$LT" --floor --subscribers "$N" --burst "$BURST" --size 152 --source "$SRC" --json "$OUT/floor.json" >"$OUT/floor.txt"

python3 - "$OUT" "$N" <<'PY'
import json, sys, os
out, n = sys.argv[1], int(sys.argv[2])
def load(name):
    p = os.path.join(out, name + ".json")
    try: return json.load(open(p))
    except Exception: return None
floor = load("floor")
rows = []
print()
print("| %s subscribers | Comet Gateway | nginx + Nchan | ratio |" % f"{n:,}")
print("|---|---|---|---|")
def mem(k):
    b, s = load(k + "-idle-before"), load(k + "-idle")
    if not b or not s or s.get("server_rss_kib") is None: return None
    return (s["server_rss_kib"] - b["before_kib"]) * 1024 / s["subscribers"]
g, c = mem("gateway"), mem("nchan")
if g and c: print("| idle EventSource subscriber, bytes of server RSS | %.0f | %.0f | %.2f× (gateway/Nchan) |" % (g, c, g / c))
for t in ["events", "poll"]:
    gs, cs = load("gateway-fanout-" + t), load("nchan-fanout-" + t)
    if gs and cs:
        print("| fan-out %s, deliveries/s | %.0f | %.0f | %.2f× |" % (t, gs["deliveries_per_sec"], cs["deliveries_per_sec"], gs["deliveries_per_sec"] / max(cs["deliveries_per_sec"], 1)))
        for k, s in [("gateway", gs), ("nchan", cs)]:
            if not (s["received"] + s["lost"] == s["expected"] and s["clean"]):
                print("|  (%s %s not clean: expected %d received %d lost %d missing %d) | | | |" % (k, t, s["expected"], s["received"], s["lost"], s["missing"]))
if floor:
    gs = load("gateway-fanout-events")
    print("| floor (one write per socket), deliveries/s | %.0f | | gateway events = %.0f %% of floor |" % (floor["deliveries_per_sec"], 100 * gs["deliveries_per_sec"] / floor["deliveries_per_sec"] if gs else 0))
gs, cs = load("gateway-steady"), load("nchan-steady")
if gs and cs:
    for q in ["p50", "p99"]:
        print("| steady 100 msg/s × 2,000 EventSource, latency %s µs | %d | %d | |" % (q, gs["latency_us"][q], cs["latency_us"][q]))
    print("| steady: lost / duplicate / out-of-order / missing | %d / %d / %d / %d | %d / %d / %d / %d | |" % tuple([gs[k] for k in ["lost","duplicates","out_of_order","missing"]] + [cs[k] for k in ["lost","duplicates","out_of_order","missing"]]))
PY
