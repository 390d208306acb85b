#!/usr/bin/env bash
# The Redis engine against the memory engine, one run, same machine, same generator:
#   1. publish throughput: wrk posting to POST /pub (32 connections, 10 s, no subscriber;
#      each publish is answered once its seq is known: one Redis round trip with Redis);
#   2. publish -> delivery latency at a steady rate: comet-loadtest, 2,000 EventSource
#      subscribers, 200 messages/s for 20 s (the stamp is the time each message was due,
#      so a publisher that falls behind shows it: no coordinated omission);
# for: memory (1 process), redis (1 process), redis with --workers 2.
# Loopback only; every run bounded by its own time limits. Needs redis-server and wrk
# (tests/setup.sh installs redis-server; wrk: apt-get install wrk).
#
#   loadtest/redis-vs-memory.sh            # results in target/redis-vs-memory/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/redis-vs-memory}
SUBS=${SUBS:-2000}
RATE=${RATE:-200}
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release -q -p comet-gateway -p comet-loadtest
REDIS_PORT=16600
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
REDIS=$!
GW=
stop_gw() { [ -n "$GW" ] && { kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; GW=; }; }
trap 'stop_gw; kill $REDIS 2>/dev/null || true' EXIT
cat >"$OUT/pub.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "t=0;n=0;a payload of about sixty-four bytes, like the load generator's"
LUA
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); $(redis-server --version | cut -d' ' -f3); date: $(date -u '+%F %T') UTC"
for setup in memory redis redis-w2; do
  case $setup in
    memory) args=() ;;
    redis) args=(--engine "redis://127.0.0.1:$REDIS_PORT") ;;
    redis-w2) args=(--engine "redis://127.0.0.1:$REDIS_PORT" --workers 2) ;;
  esac
  redis-cli -p $REDIS_PORT FLUSHALL >/dev/null
  target/release/comet-gateway --listen 127.0.0.1:18800 --admin-listen 127.0.0.1:18801 \
    --buffer 1000 "${args[@]}" >"$OUT/$setup-gw.log" 2>&1 &
  GW=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18801/healthz && break; sleep 0.1; done
  timeout 60 wrk -t2 -c32 -d10s --latency -s "$OUT/pub.lua" "http://127.0.0.1:18801/pub?channel=bench" >"$OUT/$setup-wrk.txt"
  timeout 180 target/release/comet-loadtest --quiet --target 127.0.0.1:18800 --admin 127.0.0.1:18801 \
    --transport events --subscribers "$SUBS" --rate "$RATE" --duration 20s --drain 10s \
    --source 127.0.0.2-127.0.0.5 --json "$OUT/$setup-latency.json" >"$OUT/$setup-latency.txt" || true
  stop_gw
  printf '%-9s publishes/s %-10s publish p50 %-8s p99 %-8s | ' "$setup" \
    "$(awk '/Requests\/sec/{print $2}' "$OUT/$setup-wrk.txt")" \
    "$(awk '$1=="50%"{print $2}' "$OUT/$setup-wrk.txt")" "$(awk '$1=="99%"{print $2}' "$OUT/$setup-wrk.txt")"
  grep -E "latency|lost|received" "$OUT/$setup-latency.txt" | tr '\n' ' '; echo
done
