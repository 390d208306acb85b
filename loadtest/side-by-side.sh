#!/usr/bin/env bash
# Comet Gateway and nginx+Nchan side by side on loopback, same scenarios, same generator:
# idle memory per subscriber, fan-out of a burst to N subscribers (with the floor measured
# in the same run), and latency at a steady rate. Installs nginx and the Nchan module from
# Debian if missing. Bounded: every run has its own time limits.
#
#   loadtest/side-by-side.sh                    # N=10000, every scenario
#   N=2000 loadtest/side-by-side.sh
#   SCENARIOS=ws RUNS=2 N=19000 loadtest/side-by-side.sh
#
# SCENARIOS picks what runs: `events` (EventSource and long-poll: idle memory, fan-out,
# steady latency) and `ws` (WebSocket: idle memory and fan-out against Nchan's websocket
# subscriber, its own floor, and the gateway's idle EventSource memory as a reference in
# the same run). RUNS repeats the ws scenarios (gateway and Nchan alternate within each
# repetition); every ws generator run is cut off by `timeout` after WS_TIMEOUT seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
BURST=${BURST:-100}
OUT=${OUT:-target/side-by-side}
SCENARIOS=${SCENARIOS:-events ws}
RUNS=${RUNS:-1}
WS_TIMEOUT=${WS_TIMEOUT:-300}
# The floor's message size for ws: about one gateway text frame of this run (4-byte header
# and the data event of a 64-byte payload). Nchan's frames carry the bare payload (66 bytes).
WS_FRAME=${WS_FRAME:-146}
SRC=127.0.0.2-127.0.0.20
mkdir -p "$OUT"
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

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
      # A fresh log, so the wait below cannot see the previous gateway's "listening".
      rm -f "$OUT/gateway.log"
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
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time, clock ticks
lt() { "$LT" --quiet --target-kind "$KIND" --target "$TARGET" --admin "$ADMIN" --source "$SRC" --server-pid "$SERVER_PID" "$@"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); nginx $(nginx -v 2>&1 | cut -d/ -f2); date: $(date -u +%F)"
want events && for KIND in gateway nchan; do
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
want events && "$LT" --floor --subscribers "$N" --burst "$BURST" --size 152 --source "$SRC" --json "$OUT/floor.json" >"$OUT/floor.txt"

# WebSocket: per repetition, idle memory then burst fan-out, gateway then Nchan, then the
# floor for frames of the gateway's size.
if want ws; then
  rm -f "$OUT"/*-ws-*.json "$OUT"/*-ws-*.txt "$OUT"/floor-ws-*.json
  for r in $(seq "$RUNS"); do
    for KIND in gateway nchan; do
      start_server $KIND
      before=$(rss "$SERVER_PID"); cpu0=$(cpu "$SERVER_PID")
      timeout "$WS_TIMEOUT" "$LT" --quiet --target-kind "$KIND" --target "$TARGET" --admin "$ADMIN" --source "$SRC" --server-pid "$SERVER_PID" \
        --transport ws --subscribers "$N" --rate 0 --burst 0 --drain 1s --json "$OUT/$KIND-ws-idle-$r.json" >"$OUT/$KIND-ws-idle-$r.txt" || true
      echo "{\"before_kib\": $before, \"ticks\": $(( $(cpu "$SERVER_PID") - cpu0 ))}" >"$OUT/$KIND-ws-idle-before-$r.json"
      stop_server
      if [ $KIND = gateway ]; then # the reference: idle EventSource, same build, same hour
        start_server gateway
        before=$(rss "$SERVER_PID")
        timeout "$WS_TIMEOUT" "$LT" --quiet --target-kind gateway --target "$TARGET" --admin "$ADMIN" --source "$SRC" --server-pid "$SERVER_PID" \
          --transport events --subscribers "$N" --rate 0 --burst 0 --drain 1s --json "$OUT/gateway-ws-ref-events-idle-$r.json" >"$OUT/gateway-ws-ref-events-idle-$r.txt" || true
        echo "{\"before_kib\": $before}" >"$OUT/gateway-ws-ref-events-idle-before-$r.json"
        stop_server
      fi
      start_server $KIND
      cpu0=$(cpu "$SERVER_PID")
      timeout "$WS_TIMEOUT" "$LT" --quiet --target-kind "$KIND" --target "$TARGET" --admin "$ADMIN" --source "$SRC" --server-pid "$SERVER_PID" \
        --transport ws --subscribers "$N" --burst "$BURST" --rate 0 --drain 90s --json "$OUT/$KIND-ws-fanout-$r.json" >"$OUT/$KIND-ws-fanout-$r.txt" || true
      echo "{\"ticks\": $(( $(cpu "$SERVER_PID") - cpu0 )), \"hz\": $(getconf CLK_TCK)}" >"$OUT/$KIND-ws-fanout-cpu-$r.json"
      stop_server
    done
    timeout "$WS_TIMEOUT" "$LT" --floor --subscribers "$N" --burst "$BURST" --size "$WS_FRAME" --source "$SRC" --json "$OUT/floor-ws-$r.json" >"$OUT/floor-ws-$r.txt" || true
  done
fi

python3 - "$OUT" "$N" "$SCENARIOS" "$RUNS" <<'PY'
import json, sys, os
out, n, scenarios, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
def load(name):
    p = os.path.join(out, name + ".json")
    try: return json.load(open(p))
    except Exception: return None
def mem(k, suffix=""):
    b, s = load(k + "-idle-before" + suffix), load(k + "-idle" + suffix)
    if not b or not s or s.get("server_rss_kib") is None: return None
    if s.get("connects") != s["subscribers"]: print("(%s%s: %s connects for %d subscribers)" % (k, suffix, s.get("connects"), s["subscribers"]))
    return (s["server_rss_kib"] - b["before_kib"]) * 1024 / s["subscribers"]
def unclean(k, what, s):
    if not (s["received"] + s["lost"] == s["expected"] and s["clean"]):
        print("|  (%s %s not clean: expected %d received %d lost %d missing %d) | | | |" % (k, what, s["expected"], s["received"], s["lost"], s["missing"]))
if "ws" in scenarios:
    print()
    print("| %s subscribers, WebSocket | Comet Gateway | nginx + Nchan | ratio |" % f"{n:,}")
    print("|---|---|---|---|")
    for r in range(1, runs + 1):
        g, c, e = mem("gateway-ws", "-%d" % r), mem("nchan-ws", "-%d" % r), mem("gateway-ws-ref-events", "-%d" % r)
        fmt = lambda x: "%.0f" % x if x is not None else "n/a"
        ratio = "%.3f× (gateway/Nchan)" % (g / c) if g and c else ""
        print("| run %d: idle ws subscriber, bytes of server RSS | %s | %s | %s |" % (r, fmt(g), fmt(c), ratio))
        print("| run %d: (reference) idle EventSource subscriber, gateway | %s | | |" % (r, fmt(e)))
        gs, cs, fl = load("gateway-ws-fanout-%d" % r), load("nchan-ws-fanout-%d" % r), load("floor-ws-%d" % r)
        if gs and cs:
            print("| run %d: fan-out ws, deliveries/s | %.0f | %.0f | %.2f× |" % (r, gs["deliveries_per_sec"], cs["deliveries_per_sec"], gs["deliveries_per_sec"] / max(cs["deliveries_per_sec"], 1)))
            print("| run %d: fan-out ws, received / expected, lost, dup, ooo, missing | %d / %d, %d, %d, %d, %d | %d / %d, %d, %d, %d, %d | |" % tuple([r] + [s[k] for s in (gs, cs) for k in ["received", "expected", "lost", "duplicates", "out_of_order", "missing"]]))
            for k, s in [("gateway", gs), ("nchan", cs)]:
                unclean(k, "ws", s)
            # Server CPU of the fan-out run less that of the idle run (the same ramp of N
            # connects, nothing published), per delivery: less noisy than a rate on a
            # shared box. Clock ticks are 10 ms: at 1,000,000 deliveries, ±0.01 µs.
            gc, cc = load("gateway-ws-fanout-cpu-%d" % r), load("nchan-ws-fanout-cpu-%d" % r)
            gi, ci = load("gateway-ws-idle-before-%d" % r), load("nchan-ws-idle-before-%d" % r)
            if gc and cc and gi and ci and "ticks" in gi and "ticks" in ci and gs["received"] and cs["received"]:
                us = lambda c, i, s: 1e6 * (c["ticks"] - i["ticks"]) / c["hz"] / s["received"]
                g_us, c_us = us(gc, gi, gs), us(cc, ci, cs)
                print("| run %d: fan-out ws, server CPU (user+system, less the idle run's) µs per delivery | %.2f | %.2f | %.2f× |" % (r, g_us, c_us, g_us / c_us if c_us > 0 else float("nan")))
        if fl:
            share = "gateway ws = %.0f %% of floor" % (100 * gs["deliveries_per_sec"] / fl["deliveries_per_sec"]) if gs else ""
            print("| run %d: floor (one write of %d B per socket), deliveries/s | %.0f | | %s |" % (r, fl["size"], fl["deliveries_per_sec"], share))
if "events" not in scenarios:
    sys.exit(0)
floor = load("floor")
rows = []
print()
print("| %s subscribers | Comet Gateway | nginx + Nchan | ratio |" % f"{n:,}")
print("|---|---|---|---|")
g, c = mem("gateway"), mem("nchan")
if g and c: print("| idle EventSource subscriber, bytes of server RSS | %.0f | %.0f | %.2f× (gateway/Nchan) |" % (g, c, g / c))
for t in ["events", "poll"]:
    gs, cs = load("gateway-fanout-" + t), load("nchan-fanout-" + t)
    if gs and cs:
        print("| fan-out %s, deliveries/s | %.0f | %.0f | %.2f× |" % (t, gs["deliveries_per_sec"], cs["deliveries_per_sec"], gs["deliveries_per_sec"] / max(cs["deliveries_per_sec"], 1)))
        for k, s in [("gateway", gs), ("nchan", cs)]:
            unclean(k, t, s)
if floor:
    gs = load("gateway-fanout-events")
    print("| floor (one write per socket), deliveries/s | %.0f | | gateway events = %.0f %% of floor |" % (floor["deliveries_per_sec"], 100 * gs["deliveries_per_sec"] / floor["deliveries_per_sec"] if gs else 0))
gs, cs = load("gateway-steady"), load("nchan-steady")
if gs and cs:
    for q in ["p50", "p99"]:
        print("| steady 100 msg/s × 2,000 EventSource, latency %s µs | %d | %d | |" % (q, gs["latency_us"][q], cs["latency_us"][q]))
    print("| steady: lost / duplicate / out-of-order / missing | %d / %d / %d / %d | %d / %d / %d / %d | |" % tuple([gs[k] for k in ["lost","duplicates","out_of_order","missing"]] + [cs[k] for k in ["lost","duplicates","out_of_order","missing"]]))
PY
