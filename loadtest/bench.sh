#!/usr/bin/env bash
# Gateway-side benchmark scenarios for BENCHMARKS.md, all on loopback and bounded in time:
# fan-out per transport at N subscribers (and EventSource with --batch BATCH) with the floor
# measured in the same repetition, steady latency, long-poll round trips, churn. The gateway
# is pinned to one core and the generator to the other (loadtest/pin.sh); every scenario is
# repeated RUNS times and the tables give the median and the spread (min–max). Prints
# Markdown tables; raw JSON goes to $OUT (NAME-RUN.json).
#
#   loadtest/bench.sh            # N=10000 subscribers, 3 runs
#   N=2000 RUNS=1 loadtest/bench.sh
#
# Nchan beside the gateway: loadtest/side-by-side.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
BURST=${BURST:-200}
BATCH=${BATCH:-100}
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench}
LT_TIMEOUT=${LT_TIMEOUT:-300}
# Ports: another run on this host (say a second checkout's) must use others.
GW_PORT=${GW_PORT:-18100}
ADMIN_PORT=${ADMIN_PORT:-18000}
SRC=127.0.0.2-127.0.0.20
mkdir -p "$OUT"
. loadtest/pin.sh
cargo build --release -q -p comet-gateway -p comet-loadtest
GW=target/release/comet-gateway
LT=target/release/comet-loadtest

GW_PID=
start_gateway() {
  rm -f "$OUT/gateway.log"
  "${ON_SERVER[@]}" "$GW" --listen 127.0.0.1:$GW_PORT --admin-listen 127.0.0.1:$ADMIN_PORT --buffer 1000 \
        --poll-timeout 60s "$@" >"$OUT/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    grep -q listening "$OUT/gateway.log" && { pin_tree "$GW_PID"; return 0; }
    # Exited (a busy port: another run's): never measure a server this script did not start.
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "gateway did not start (port in use? see $OUT/gateway.log)" >&2; GW_PID=; exit 1
}
stop_gateway() { if [ -n "$GW_PID" ]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; GW_PID=; fi; }
trap stop_gateway EXIT

lt() { timeout "$LT_TIMEOUT" "${ON_GEN[@]}" "$LT" --quiet --target 127.0.0.1:$GW_PORT --admin 127.0.0.1:$ADMIN_PORT --source "$SRC" --server-pid "$GW_PID" "$@"; }
FLOOR_PIN=()
if [ "$PIN" = 1 ]; then FLOOR_PIN=(--floor-writer-cpus "$SERVER_CPU"); fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); date: $(date -u +%F)"
pinning
echo "N=$N BURST=$BURST BATCH=$BATCH RUNS=$RUNS"
rm -f "$OUT"/*.json "$OUT"/*.txt
for r in $(seq "$RUNS"); do
  echo "== run $r of $RUNS ($(date -u +%T))" >&2
  # 1. Fan-out: N subscribers on one channel, a burst of $BURST messages, per transport
  # (and EventSource again with the burst in batches of $BATCH), each on a fresh gateway.
  for t in stream iframe events events-batch poll; do
    start_gateway
    [ $r = 1 ] && [ $t = stream ] && echo "gateway affinity: $(affinity "$GW_PID")"
    extra=(); tr=$t
    if [ $t = events-batch ]; then extra=(--batch "$BATCH"); tr=events; fi
    lt --transport "$tr" --subscribers "$N" --burst "$BURST" --rate 0 --drain 60s "${extra[@]}" \
      --stats-before "$OUT/fanout-$t-$r-stats0.json" --json "$OUT/fanout-$t-$r.json" >"$OUT/fanout-$t-$r.txt" || true
    curl -s "http://127.0.0.1:$ADMIN_PORT/stats" >"$OUT/fanout-$t-$r-stats1.json" || true
    stop_gateway
  done
  # The floor, same shape: one write of a 152-byte message (the size of a /stream delivery
  # of a 64-byte payload) per socket per message; the writer on the gateway's core.
  timeout "$LT_TIMEOUT" "${ON_GEN[@]}" "$LT" --floor "${FLOOR_PIN[@]}" --subscribers "$N" --burst "$BURST" --size 152 \
    --source "$SRC" --json "$OUT/floor-$r.json" >"$OUT/floor-$r.txt" || true

  # 2. Steady rate: 2,000 subscribers per transport, 10 s.
  start_gateway
  for t in stream iframe events; do
    lt --transport "$t" --subscribers 2000 --rate 100 --duration 10s --in-flight 64 --json "$OUT/steady-$t-$r.json" >"$OUT/steady-$t-$r.txt" || true
  done
  lt --transport poll --subscribers 2000 --rate 20 --duration 10s --json "$OUT/steady-poll-$r.json" >"$OUT/steady-poll-$r.txt" || true
  # 3. Churn: 10 % of subscribers drop and resume every second.
  for t in stream poll; do
    lt --transport "$t" --subscribers 2000 --rate 20 --duration 10s --churn 10 --json "$OUT/churn-$t-$r.json" >"$OUT/churn-$t-$r.txt" || true
  done
  stop_gateway
done

python3 - "$OUT" "$RUNS" "$BATCH" <<'PY'
import sys
sys.path.insert(0, "loadtest")
import tables
from tables import each, spread, per_write, has_write_counter, gen_busy
out, runs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tables.RUNS = runs
R = range(1, runs + 1)
def row(*cells): print("| " + " | ".join(str(c) for c in cells) + " |")
def total(rs, k): return sum(s[k] for s in rs)
floors = [tables.load(out, "floor-%d" % r) for r in R]
n = next((f["connections"] for f in floors if f), None)
head = "median (min–max) of %d runs" % runs if runs > 1 else "one run"
print()
row("fan-out, %s subscribers, %s" % (n, head), "deliveries/s", "share of floor", "deliveries per write syscall", "expected (each run)", "received", "lost", "dup", "out-of-order", "missing")
row(*["---"] * 10)
counted = has_write_counter(out, ["fanout-%s-%d" % (t, r) for t in ["stream", "events"] for r in R])
for t in ["stream", "iframe", "events", "events-batch", "poll"]:
    rs = each(out, "fanout-" + t, runs)
    label = "events, --batch %d" % batch if t == "events-batch" else t
    if not rs: row(label, "(failed)", "", "", "", "", "", "", "", ""); continue
    share = [100 * s["deliveries_per_sec"] / f["deliveries_per_sec"] for s, f in ((tables.load(out, "fanout-%s-%d" % (t, r)), floors[r - 1]) for r in R) if s and f]
    pw = spread([per_write(out, "fanout-%s-%d" % (t, r)) for r in R], "{:.1f}") if counted else "n/a (/stats counts no writes)"
    row(label, spread([s["deliveries_per_sec"] for s in rs]), spread(share, "{:.0f} %"), pw, rs[0]["expected"],
        total(rs, "received"), total(rs, "lost"), total(rs, "duplicates"), total(rs, "out_of_order"), total(rs, "missing"))
fl = [f["deliveries_per_sec"] for f in floors if f]
if fl:
    row("floor (one write per socket)", spread(fl), "100 %", "1", "", "", "", "", "", "")
print()
print("(received, lost, dup, out-of-order, missing: summed over the runs)")
print()
row("steady, 2,000 subscribers, %s" % head, "msgs/s", "deliveries/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "lost", "dup", "ooo", "missing", "round trips/s", "generator CPU % of wall")
row(*["---"] * 14)
for name in ["steady-stream", "steady-iframe", "steady-events", "steady-poll", "churn-stream", "churn-poll"]:
    rs = each(out, name, runs)
    if not rs: row(name, "(failed)", *[""] * 12); continue
    lat = lambda q: spread([s["latency_us"][q] for s in rs])
    rate = spread([s["published"] / s["publish_secs"] for s in rs if s["publish_secs"]])
    rt = spread([s["answers"] / s["delivery_secs"] for s in rs if s["answers"] and s["delivery_secs"]]) if any(s["answers"] for s in rs) else ""
    row(name, rate, spread([s["deliveries_per_sec"] for s in rs]), lat("p50"), lat("p90"), lat("p99"), lat("p999"), lat("max"),
        total(rs, "lost"), total(rs, "duplicates"), total(rs, "out_of_order"), total(rs, "missing"), rt,
        spread([gen_busy(s) for s in rs], "{:.0f} %"))
PY
