#!/usr/bin/env bash
# Comet Gateway and nginx+Nchan side by side on loopback, same scenarios, same generator,
# the server under test pinned to one core and the generator to the other (loadtest/pin.sh),
# every scenario repeated RUNS times and reported as the median and the spread (min–max).
# Installs nginx and the Nchan module from Debian if missing. Bounded: every generator run
# is cut off by `timeout` after LT_TIMEOUT seconds.
#
#   loadtest/side-by-side.sh                       # N=10000, every scenario, 3 runs each
#   N=2000 RUNS=1 loadtest/side-by-side.sh
#   SCENARIOS="fanout poll" BATCH=50 loadtest/side-by-side.sh
#   SCENARIOS=ws RUNS=2 N=19000 loadtest/side-by-side.sh
#
# SCENARIOS picks what runs (any of these, space separated; `events` is the first five):
#   idle    idle memory per EventSource subscriber, N subscribers
#   steady  STEADY_RATE msg/s (100) to STEADY_N (2,000) EventSource subscribers for
#           STEADY_SECS (10), published open-loop (IN_FLIGHT, 64, requests pipelined):
#           latency p50/p99, nothing lost
#   fanout  a burst of BURST (100) messages to N EventSource subscribers: deliveries/s,
#           nothing lost, and the floor (one write per socket per message) in the same
#           repetition; the gateway both one message per publish and with --batch BATCH
#   poll    the same burst to N long-poll subscribers, gateway (both ways) vs Nchan
#   pipelined  the EventSource burst as BURST single publishes all sent at once
#           (--in-flight BURST), gateway vs Nchan: coalescing without a batch API
#   ws      WebSocket: idle memory and burst fan-out against Nchan's websocket subscriber,
#           its own floor, and the gateway's idle EventSource memory as a reference
# After each gateway fan-out run the gateway's deliveries per write syscall are read from
# its /stats (the difference between a reading just before the first publish and one after
# the run), if it counts writes. Nchan publishes one message per request (no batch).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
BURST=${BURST:-100}
BATCH=${BATCH:-100}
STEADY_N=${STEADY_N:-2000}
STEADY_RATE=${STEADY_RATE:-100}
STEADY_SECS=${STEADY_SECS:-10}
# The steady publisher is open-loop: up to IN_FLIGHT publish requests pipelined, so a server
# slow to answer gets its messages on schedule anyway (their latency counts from the due time).
IN_FLIGHT=${IN_FLIGHT:-64}
OUT=${OUT:-target/side-by-side}
SCENARIOS=${SCENARIOS:-events ws}
RUNS=${RUNS:-3}
LT_TIMEOUT=${LT_TIMEOUT:-${WS_TIMEOUT:-300}}
# The floor's message size for ws: about one gateway text frame of this run (4-byte header
# and the data event of a 64-byte payload). Nchan's frames carry the bare payload (66 bytes).
WS_FRAME=${WS_FRAME:-146}
# Ports: another run on this host (say a second checkout's) must use others.
GW_PORT=${GW_PORT:-18100}
ADMIN_PORT=${ADMIN_PORT:-18000}
NCHAN_PORT=${NCHAN_PORT:-18300}
SRC=127.0.0.2-127.0.0.20
mkdir -p "$OUT"
case " $SCENARIOS " in *" events "*) SCENARIOS="$SCENARIOS idle steady fanout poll pipelined" ;; esac
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
. loadtest/pin.sh

if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan
fi
cargo build --release -q -p comet-gateway -p comet-loadtest
LT=target/release/comet-loadtest

MASTER=
SERVER_PID=
SHOWN=
start_server() { # gateway|nchan
  case "$1" in
    gateway)
      # A fresh log, so the wait below cannot see the previous gateway's "listening".
      rm -f "$OUT/gateway.log"
      "${ON_SERVER[@]}" target/release/comet-gateway --listen 127.0.0.1:$GW_PORT --admin-listen 127.0.0.1:$ADMIN_PORT \
        --buffer 1000 --poll-timeout 60s >"$OUT/gateway.log" 2>&1 &
      MASTER=$!; SERVER_PID=$MASTER; TARGET=127.0.0.1:$GW_PORT; ADMIN=127.0.0.1:$ADMIN_PORT
      for _ in $(seq 100); do grep -q listening "$OUT/gateway.log" && break; sleep 0.05; done
      grep -q listening "$OUT/gateway.log" || SERVER_PID= ;;
    nchan)
      P=$(realpath "$OUT")/nginx; rm -rf "$P"; mkdir -p "$P"
      sed "s#@PREFIX@#$P#g; s#@PORT@#$NCHAN_PORT#g" loadtest/nchan/nginx.conf.in >"$P/nginx.conf"
      # The master and its worker, pinned like the gateway (the worker inherits it).
      "${ON_SERVER[@]}" nginx -c "$P/nginx.conf" -p "$P" >"$P/out.log" 2>&1 &
      MASTER=$!; TARGET=127.0.0.1:$NCHAN_PORT; ADMIN=127.0.0.1:$NCHAN_PORT
      for _ in $(seq 100); do SERVER_PID=$(pgrep -P "$MASTER" | head -1 || true); [ -n "$SERVER_PID" ] && break; kill -0 "$MASTER" 2>/dev/null || break; sleep 0.05; done
      for _ in $(seq 100); do curl -s -o /dev/null -X POST -d x "http://$TARGET/pub/ping" && break; sleep 0.05; done ;;
  esac
  # Never measure a server this script did not start (a busy port: another run's).
  if [ -z "$SERVER_PID" ] || ! kill -0 "$MASTER" 2>/dev/null || ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "side-by-side.sh: $1 did not start (port in use? see $OUT)" >&2; exit 1
  fi
  pin_tree "$MASTER"
  case " $SHOWN " in *" $1 "*) ;; *) echo "$1 affinity: $(affinity "$MASTER")"; SHOWN="$SHOWN $1" ;; esac
}
stop_server() {
  if [ -n "$MASTER" ]; then kill "$MASTER" 2>/dev/null || true; wait "$MASTER" 2>/dev/null || true; MASTER=; sleep 0.3; fi
}
trap stop_server EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time, clock ticks
lt() { timeout "$LT_TIMEOUT" "${ON_GEN[@]}" "$LT" --quiet --target-kind "$KIND" --target "$TARGET" --admin "$ADMIN" --source "$SRC" --server-pid "$SERVER_PID" "$@"; }
# The floor's writer on the server's core, its reader on the generator's.
FLOOR_PIN=()
if [ "$PIN" = 1 ]; then FLOOR_PIN=(--floor-writer-cpus "$SERVER_CPU"); fi
floor() { # NAME SIZE
  timeout "$LT_TIMEOUT" "${ON_GEN[@]}" "$LT" --floor "${FLOOR_PIN[@]}" --subscribers "$N" --burst "$BURST" \
    --size "$2" --source "$SRC" --json "$OUT/$1.json" >"$OUT/$1.txt" || true
}
# Deliveries per write syscall of the gateway run NAME, from its two /stats readings.
per_write() {
  python3 -c 'import sys; sys.path.insert(0, "loadtest"); import tables
x = tables.per_write(sys.argv[1], sys.argv[2])
print("%s: %s" % (sys.argv[2], "%.1f deliveries per write syscall (gateway /stats)" % x if x else "deliveries per write syscall n/a (/stats counts no writes)"))' "$OUT" "$1"
}
# One burst fan-out run: KIND, transport, label, run, extra flags.
fanout() {
  local kind=$1 t=$2 label=$3 r=$4; shift 4
  local name="$label-fanout-$t-$r"
  KIND=$kind; start_server "$kind"
  if [ "$kind" = gateway ]; then
    lt --transport "$t" --subscribers "$N" --burst "$BURST" --rate 0 --drain 90s \
      --stats-before "$OUT/$name-stats0.json" --json "$OUT/$name.json" "$@" >"$OUT/$name.txt" || true
    curl -s "http://$ADMIN/stats" >"$OUT/$name-stats1.json" || true
    per_write "$name"
  else
    lt --transport "$t" --subscribers "$N" --burst "$BURST" --rate 0 --drain 90s --json "$OUT/$name.json" "$@" >"$OUT/$name.txt" || true
  fi
  stop_server
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); nginx $(nginx -v 2>&1 | cut -d/ -f2); date: $(date -u +%F)"
pinning
echo "N=$N BURST=$BURST BATCH=$BATCH RUNS=$RUNS SCENARIOS=\"$SCENARIOS\" STEADY: $STEADY_RATE msg/s × $STEADY_N for ${STEADY_SECS}s"
# This run's results only: a scenario left out must not show an older run's figures.
rm -f "$OUT"/*.json "$OUT"/*.txt
for r in $(seq "$RUNS"); do
  echo "== run $r of $RUNS ($(date -u +%T))" >&2
  if want idle; then
    for KIND in gateway nchan; do
      start_server $KIND
      before=$(rss "$SERVER_PID")
      lt --transport events --subscribers "$N" --rate 0 --burst 0 --drain 1s --json "$OUT/$KIND-idle-$r.json" >"$OUT/$KIND-idle-$r.txt" || true
      echo "{\"before_kib\": $before}" >"$OUT/$KIND-idle-before-$r.json"
      stop_server
    done
  fi
  for t in events poll; do
    if { [ $t = events ] && want fanout; } || { [ $t = poll ] && want poll; }; then
      fanout gateway $t gateway "$r"
      fanout gateway $t gateway-batch "$r" --batch "$BATCH"
      fanout nchan $t nchan "$r"
    fi
  done
  # The same burst, one message per request but every request sent at once (pipelined,
  # answers read in order): the publisher a backend without batching would be.
  if want pipelined; then
    fanout gateway events gateway-pipe "$r" --in-flight "$BURST"
    fanout nchan events nchan-pipe "$r" --in-flight "$BURST"
  fi
  want fanout && floor "floor-$r" 152
  if want steady; then
    for KIND in gateway nchan; do
      start_server $KIND
      lt --transport events --subscribers "$STEADY_N" --rate "$STEADY_RATE" --duration "${STEADY_SECS}s" --in-flight "$IN_FLIGHT" --json "$OUT/$KIND-steady-$r.json" >"$OUT/$KIND-steady-$r.txt" || true
      stop_server
    done
  fi
  # WebSocket: idle memory then burst fan-out, gateway then Nchan, then the floor for
  # frames of the gateway's size.
  if want ws; then
    for KIND in gateway nchan; do
      start_server $KIND
      before=$(rss "$SERVER_PID"); cpu0=$(cpu "$SERVER_PID")
      lt --transport ws --subscribers "$N" --rate 0 --burst 0 --drain 1s --json "$OUT/$KIND-ws-idle-$r.json" >"$OUT/$KIND-ws-idle-$r.txt" || true
      echo "{\"before_kib\": $before, \"ticks\": $(( $(cpu "$SERVER_PID") - cpu0 ))}" >"$OUT/$KIND-ws-idle-before-$r.json"
      stop_server
      if [ $KIND = gateway ]; then # the reference: idle EventSource, same build, same hour
        start_server gateway
        before=$(rss "$SERVER_PID")
        lt --transport events --subscribers "$N" --rate 0 --burst 0 --drain 1s --json "$OUT/gateway-ws-ref-events-idle-$r.json" >"$OUT/gateway-ws-ref-events-idle-$r.txt" || true
        echo "{\"before_kib\": $before}" >"$OUT/gateway-ws-ref-events-idle-before-$r.json"
        stop_server
      fi
      start_server $KIND
      cpu0=$(cpu "$SERVER_PID")
      lt --transport ws --subscribers "$N" --burst "$BURST" --rate 0 --drain 90s --json "$OUT/$KIND-ws-fanout-$r.json" >"$OUT/$KIND-ws-fanout-$r.txt" || true
      echo "{\"ticks\": $(( $(cpu "$SERVER_PID") - cpu0 )), \"hz\": $(getconf CLK_TCK)}" >"$OUT/$KIND-ws-fanout-cpu-$r.json"
      stop_server
    done
    floor "floor-ws-$r" "$WS_FRAME"
  fi
done

python3 - "$OUT" "$N" "$SCENARIOS" "$RUNS" "$BURST" "$BATCH" "$STEADY_N" "$STEADY_RATE" <<'PY'
import sys
sys.path.insert(0, "loadtest")
import tables
from tables import load, each, spread, ratio, cleanliness, per_write, has_write_counter, gen_busy
out, n, scenarios, runs, burst, batch, steady_n, steady_rate = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
tables.RUNS = runs
R = range(1, runs + 1)
def mem(k, r):
    b, s = load(out, "%s-idle-before-%d" % (k, r)), load(out, "%s-idle-%d" % (k, r))
    if not b or not s or s.get("server_rss_kib") is None: return None
    if s.get("connects") != s["subscribers"]: print("(%s run %d: %s connects for %d subscribers)" % (k, r, s.get("connects"), s["subscribers"]))
    return (s["server_rss_kib"] - b["before_kib"]) * 1024 / s["subscribers"]
def dps(runs_): return [s["deliveries_per_sec"] for s in runs_]
def row(*cells): print("| " + " | ".join(cells) + " |")

gb = "Comet Gateway --batch %d" % batch
head = "median (min–max) of %d runs" % runs if runs > 1 else "one run"
if any(s in scenarios for s in ["idle", "fanout", "poll", "steady", "pipelined"]):
    print()
    row("%s subscribers, %s" % (f"{n:,}", head), "Comet Gateway", gb, "nginx + Nchan", "gateway / Nchan")
    row("---", "---", "---", "---", "---")
if "idle" in scenarios:
    g, c = [mem("gateway", r) for r in R], [mem("nchan", r) for r in R]
    row("idle EventSource subscriber, bytes of server RSS", spread(g), "", spread(c), ratio(g, c))
for t, what, on in [("events", "EventSource", "fanout"), ("poll", "long-poll", "poll")]:
    if on not in scenarios: continue
    g, b, c = (each(out, "%s-fanout-%s" % (k, t), runs) for k in ["gateway", "gateway-batch", "nchan"])
    row("fan-out %s, burst of %d, deliveries/s" % (what, burst), spread(dps(g)), spread(dps(b)), spread(dps(c)),
        "%s; --batch: %s" % (ratio(dps(g), dps(c)), ratio(dps(b), dps(c))))
    row("fan-out %s: nothing lost" % what, cleanliness(g), cleanliness(b), cleanliness(c), "")
    if t == "poll":
        rt = lambda rs: [s["answers"] / s["delivery_secs"] for s in rs if s.get("delivery_secs")]
        row("fan-out long-poll, poll round trips/s", spread(rt(g)), spread(rt(b)), spread(rt(c)), "")
    names = lambda k: ["%s-fanout-%s-%d" % (k, t, r) for r in R]
    if has_write_counter(out, names("gateway") + names("gateway-batch")):
        pw = lambda k: [per_write(out, x) for x in names(k)]
        row("fan-out %s: deliveries per write syscall (gateway /stats, publishing only)" % what, spread(pw("gateway"), "{:.1f}"), spread(pw("gateway-batch"), "{:.1f}"), "", "")
    else:
        row("fan-out %s: deliveries per write syscall" % what, "n/a: /stats counts no writes", "", "", "")
    if t == "events":
        fl = [load(out, "floor-%d" % r) for r in R]
        share = lambda k: [100 * s["deliveries_per_sec"] / f["deliveries_per_sec"] for s, f in ((load(out, "%s-fanout-events-%d" % (k, r)), fl[r - 1]) for r in R) if s and f]
        row("floor (one write of 152 B per socket per message, same runs), deliveries/s", spread([f["deliveries_per_sec"] for f in fl if f]), "", "", "")
        row("fan-out EventSource, share of the floor", spread(share("gateway"), "{:.0f} %"), spread(share("gateway-batch"), "{:.0f} %"), spread(share("nchan"), "{:.0f} %"), "")
if "pipelined" in scenarios:
    g, c = each(out, "gateway-pipe-fanout-events", runs), each(out, "nchan-pipe-fanout-events", runs)
    row("fan-out EventSource, burst of %d single publishes pipelined (--in-flight %d), deliveries/s" % (burst, burst), spread(dps(g)), "", spread(dps(c)), ratio(dps(g), dps(c)))
    row("fan-out EventSource pipelined: nothing lost", cleanliness(g), "", cleanliness(c), "")
    names = ["gateway-pipe-fanout-events-%d" % r for r in R]
    if has_write_counter(out, names):
        row("fan-out EventSource pipelined: deliveries per write syscall (gateway /stats)", spread([per_write(out, x) for x in names], "{:.1f}"), "", "", "")
if "steady" in scenarios:
    g, c = each(out, "gateway-steady", runs), each(out, "nchan-steady", runs)
    for i, q in enumerate(["p50", "p99"]):
        gq, cq = [s["latency_us"][q] for s in g], [s["latency_us"][q] for s in c]
        row("steady %d msg/s × %s EventSource, latency %s µs" % (steady_rate, f"{steady_n:,}", q), spread(gq), "", spread(cq), ratio(gq, cq))
    row("steady: nothing lost", cleanliness(g), "", cleanliness(c), "")
    # Near 100 %, the generator's core was saturated: latency then measures its backlog too.
    row("steady: generator CPU, % of the run's wall time", spread([gen_busy(s) for s in g], "{:.0f} %"), "", spread([gen_busy(s) for s in c], "{:.0f} %"), "")

if "ws" in scenarios:
    print()
    row("%s subscribers, WebSocket, %s" % (f"{n:,}", head), "Comet Gateway", "nginx + Nchan", "ratio")
    row("---", "---", "---", "---")
    g, c, e = [mem("gateway-ws", r) for r in R], [mem("nchan-ws", r) for r in R], [mem("gateway-ws-ref-events", r) for r in R]
    row("idle ws subscriber, bytes of server RSS", spread(g), spread(c), ratio(g, c, "{:.3f}× (gateway/Nchan)"))
    row("(reference) idle EventSource subscriber, gateway", spread(e), "", "")
    gs, cs = each(out, "gateway-ws-fanout", runs), each(out, "nchan-ws-fanout", runs)
    row("fan-out ws, burst of %d, deliveries/s" % burst, spread(dps(gs)), spread(dps(cs)), ratio(dps(gs), dps(cs)))
    row("fan-out ws: nothing lost", cleanliness(gs), cleanliness(cs), "")
    # Server CPU of the fan-out run less that of the idle run (the same ramp of N
    # connects, nothing published), per delivery: less noisy than a rate on a shared box.
    # Clock ticks are 10 ms: at 1,000,000 deliveries, ±0.01 µs.
    def us(k):
        xs = []
        for r in R:
            f, i, s = load(out, "%s-ws-fanout-cpu-%d" % (k, r)), load(out, "%s-ws-idle-before-%d" % (k, r)), load(out, "%s-ws-fanout-%d" % (k, r))
            if f and i and s and "ticks" in i and s["received"]:
                xs.append(1e6 * (f["ticks"] - i["ticks"]) / f["hz"] / s["received"])
        return xs
    row("fan-out ws, server CPU (user+system, less the idle run's) µs per delivery", spread(us("gateway"), "{:.2f}"), spread(us("nchan"), "{:.2f}"), ratio(us("gateway"), us("nchan")))
    fl = [load(out, "floor-ws-%d" % r) for r in R]
    share = [100 * s["deliveries_per_sec"] / f["deliveries_per_sec"] for s, f in ((load(out, "gateway-ws-fanout-%d" % r), fl[r - 1]) for r in R) if s and f]
    size = next((f["size"] for f in fl if f), 0)
    row("floor (one write of %d B per socket per message), deliveries/s" % size, spread([f["deliveries_per_sec"] for f in fl if f]), "", "gateway ws = %s of floor" % spread(share, "{:.0f} %"))
PY
