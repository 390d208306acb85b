#!/usr/bin/env bash
# 100,000 concurrent stream subscribers on one host, past one process's descriptor limit:
# `comet-gateway --workers 7 --engine redis://…` (7 reactor processes on shared ports)
# and `comet-loadtest --processes 6`, 100 messages to all of them. Samples the workers'
# summed RSS and the kernel's TCP sockets and slab every 2 s into $OUT/rss.log
# (epoch, KiB summed over workers, TCP sockets in use, TCP pages, Slab KiB).
# Loopback only; bounded by timeouts. Needs redis-server (tests/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/scale}
N=${N:-100000}
mkdir -p "$OUT"
cargo build --release -q -p comet-gateway -p comet-loadtest
redis-server --port 16500 --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
REDIS=$!
trap 'kill $REDIS 2>/dev/null || true; kill $GW 2>/dev/null || true' EXIT
sleep 0.3
target/release/comet-gateway --workers 7 --engine redis://127.0.0.1:16500 \
  --listen 127.0.0.1:18700 --admin-listen 127.0.0.1:18600 --buffer 1000 \
  --poll-timeout 60s --max-conns 19500 >"$OUT/gw.log" 2>&1 &
GW=$!
sleep 1.5
(for _ in $(seq 300); do
   s=0; for p in $(pgrep -P $GW); do r=$(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null); s=$((s + ${r:-0})); done
   echo "$(date +%s) $s $(awk '/^TCP:/{print $3, $11}' /proc/net/sockstat) $(awk '/Slab:/{print $2}' /proc/meminfo)"
   sleep 2
 done >"$OUT/rss.log") &
SAMPLER=$!
timeout 600 target/release/comet-loadtest --target 127.0.0.1:18700 --admin 127.0.0.1:18600 \
  --source 127.0.0.2-127.0.0.20 --transport stream --subscribers "$N" --processes 6 \
  --burst 100 --rate 0 --drain 240s --json "$OUT/run.json" | tee "$OUT/run.txt"
kill $SAMPLER
kill -TERM $GW; wait $GW || true
