#!/usr/bin/env bash
# Old-vs-new comparison, exactly as run for issue 10 (2026-11-29): OLD was a checkout of
# bcdbeb6 in /work/wt-old, NEW a checkout of 7c8ea6c in /work/wt-meas, both built with
# `cargo build --release -p comet-gateway -p comet-loadtest` and
# `cargo test --release --test memory --no-run`. Edit the paths to compare two others.
set -uo pipefail
N=${N:-10000}
BURST=${BURST:-200}
SRC=127.0.0.2-127.0.0.20
OUT=${OUT:-/tmp/meas10/fanout}
mkdir -p "$OUT"
GW_OLD=/work/wt-old/target/release/comet-gateway
GW_NEW=/work/wt-meas/target/release/comet-gateway
LT=/work/wt-meas/target/release/comet-loadtest

start_gateway() {  # $1 = gateway binary, $2 = log
  timeout 400 "$1" --listen 127.0.0.1:18100 --admin-listen 127.0.0.1:18000 --buffer 1000 \
        --poll-timeout 60s >"$2" 2>&1 &
  TO_PID=$!
  for _ in $(seq 100); do
    GW_PID=$(pgrep -P "$TO_PID")   # the gateway itself (child of timeout), for --server-pid
    [ -n "$GW_PID" ] && grep -q listening "$2" && return 0
    sleep 0.05
  done
  echo "gateway did not start: $(cat "$2")" >&2; return 1
}
stop_gateway() { [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null; wait "${TO_PID:-}" 2>/dev/null; GW_PID=; TO_PID=; }
# gateway CPU time (user+system, clock ticks) so far
gw_cpu() { awk '{print $14+$15}' "/proc/$GW_PID/stat"; }
trap stop_gateway EXIT

floor() {  # $1 = tag
  echo "== floor $1 $(date -u +%T) loadavg=$(cut -d" " -f1 /proc/loadavg)"
  timeout 300 "$LT" --floor --subscribers "$N" --burst "$BURST" --size 152 --source "$SRC" \
     --json "$OUT/floor-$1.json" >"$OUT/floor-$1.txt" 2>&1; echo "rc=$?"
}

floor start
for t in events stream poll; do
  for i in 1 2; do
    for side in OLD NEW; do
      gw=GW_$side; tag=$t-$side-$i
      echo "== $tag $(date -u +%T) loadavg=$(cut -d' ' -f1 /proc/loadavg)"
      start_gateway "${!gw}" "$OUT/gateway-$tag.log" || { echo "rc=startfail"; continue; }
      timeout 300 "$LT" --quiet --target 127.0.0.1:18100 --admin 127.0.0.1:18000 --source "$SRC" \
         --server-pid "$GW_PID" --transport "$t" --subscribers "$N" --burst "$BURST" --rate 0 \
         --drain 60s --json "$OUT/fanout-$tag.json" >"$OUT/fanout-$tag.txt" 2>&1
      echo "rc=$? gateway-cpu-ticks=$(gw_cpu) loadavg-after=$(cut -d' ' -f1 /proc/loadavg)"
      stop_gateway
      sleep 2   # let loopback sockets in TIME_WAIT / FIN settle a little
    done
  done
done
floor end
