#!/usr/bin/env bash
# Gateway-side benchmark scenarios for BENCHMARKS.md, all on loopback and bounded in time:
# fan-out per transport at N subscribers with the floor measured in the same run, steady
# latency, long-poll round trips, churn. Prints a Markdown table; raw JSON goes to $OUT.
#
#   loadtest/bench.sh            # N=10000 subscribers
#   N=2000 loadtest/bench.sh
#
# The Nchan side-by-side half of the load-generator issue is not written yet.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
BURST=${BURST:-200}
OUT=${OUT:-target/bench}
SRC=127.0.0.2-127.0.0.20
mkdir -p "$OUT"
cargo build --release -q -p comet-gateway -p comet-loadtest
GW=target/release/comet-gateway
LT=target/release/comet-loadtest

start_gateway() {
  "$GW" --listen 127.0.0.1:18100 --admin-listen 127.0.0.1:18000 --buffer 1000 \
        --poll-timeout 60s "$@" >"$OUT/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    grep -q listening "$OUT/gateway.log" && return 0
    sleep 0.05
  done
  echo "gateway did not start" >&2; exit 1
}
stop_gateway() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }
trap stop_gateway EXIT

lt() { "$LT" --quiet --target 127.0.0.1:18100 --admin 127.0.0.1:18000 --source "$SRC" --server-pid "$GW_PID" "$@"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); date: $(date -u +%F)"

# 1. Fan-out: N subscribers on one channel, a burst of $BURST messages, per transport.
for t in stream iframe events poll; do
  start_gateway
  lt --transport "$t" --subscribers "$N" --burst "$BURST" --rate 0 --drain 60s --json "$OUT/fanout-$t.json" >"$OUT/fanout-$t.txt" || true
  stop_gateway
done
# The floor, same shape: one write of a 152-byte message (the size of a /stream delivery of
# a 64-byte payload) per socket per message.
"$LT" --floor --subscribers "$N" --burst "$BURST" --size 152 --source "$SRC" --json "$OUT/floor.json" >"$OUT/floor.txt"

# 2. Steady rate: 2,000 subscribers per transport, 10 s.
start_gateway
for t in stream iframe events; do
  lt --transport "$t" --subscribers 2000 --rate 100 --duration 10s --json "$OUT/steady-$t.json" >"$OUT/steady-$t.txt" || true
done
lt --transport poll --subscribers 2000 --rate 20 --duration 10s --json "$OUT/steady-poll.json" >"$OUT/steady-poll.txt" || true
# 3. Churn: 10 % of subscribers drop and resume every second.
for t in stream poll; do
  lt --transport "$t" --subscribers 2000 --rate 20 --duration 10s --churn 10 --json "$OUT/churn-$t.json" >"$OUT/churn-$t.txt" || true
done
stop_gateway

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def load(n):
    p = os.path.join(out, n + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
floor = load("floor")
print()
print("| fan-out, %s subscribers | deliveries/s | share of floor | expected | received | lost | dup | out-of-order | missing |" % (floor and floor["connections"]))
print("|---|---|---|---|---|---|---|---|---|")
for t in ["stream", "iframe", "events", "poll"]:
    s = load("fanout-" + t)
    if not s: print("| %s | (failed) |" % t); continue
    share = "%.0f %%" % (100 * s["deliveries_per_sec"] / floor["deliveries_per_sec"]) if floor else "-"
    print("| %s | %.0f | %s | %d | %d | %d | %d | %d | %d |" % (t, s["deliveries_per_sec"], share, s["expected"], s["received"], s["lost"], s["duplicates"], s["out_of_order"], s["missing"]))
if floor:
    print("| floor (one write per socket) | %.0f | 100 %% | | | | | | |" % floor["deliveries_per_sec"])
print()
print("| steady, 2,000 subscribers | msgs/s | deliveries/s | p50 us | p90 us | p99 us | p99.9 us | max us | lost | dup | ooo | missing | round trips/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in ["steady-stream", "steady-iframe", "steady-events", "steady-poll", "churn-stream", "churn-poll"]:
    s = load(n)
    if not s: print("| %s | (failed) |" % n); continue
    l = s["latency_us"]
    rate = s["published"] / s["publish_secs"] if s["publish_secs"] else 0
    rt = "%.0f" % (s["answers"] / s["delivery_secs"]) if s["answers"] else ""
    print("| %s | %.0f | %.0f | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s |" % (n, rate, s["deliveries_per_sec"], l["p50"], l["p90"], l["p99"], l["p999"], l["max"], s["lost"], s["duplicates"], s["out_of_order"], s["missing"], rt))
PY
