#!/usr/bin/env bash
# As run for issue 10 (2026-11-29): the final tree (/work/wt) against bcdbeb6 (/work/wt-old), order NEW OLD OLD NEW.
set -uo pipefail
N=10000; BURST=200; SRC=127.0.0.2-127.0.0.20; OUT=/tmp/finalfan; mkdir -p $OUT
GW_OLD=/work/wt-old/target/release/comet-gateway
GW_NEW=/work/wt/target/release/comet-gateway
LT=/work/wt/target/release/comet-loadtest
floor() { timeout 300 "$LT" --floor --subscribers "$N" --burst "$BURST" --size 152 --source "$SRC" --json "$OUT/floor-$1.json" >"$OUT/floor-$1.txt" 2>&1; python3 -c "import json;print('floor $1', round(json.load(open('$OUT/floor-$1.json'))['deliveries_per_sec']))"; }
floor start
n=0
for t in stream events; do
  for side in NEW OLD OLD NEW; do
    n=$((n+1)); gw=GW_$side
    "${!gw}" --listen 127.0.0.1:18100 --admin-listen 127.0.0.1:18000 --buffer 1000 --poll-timeout 60s >"$OUT/gw-$n.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do grep -q listening "$OUT/gw-$n.log" && break; sleep 0.05; done
    timeout 300 "$LT" --quiet --target 127.0.0.1:18100 --admin 127.0.0.1:18000 --source "$SRC" --server-pid "$PID" --transport "$t" --subscribers "$N" --burst "$BURST" --rate 0 --drain 60s --json "$OUT/f-$n.json" >"$OUT/f-$n.txt" 2>&1
    python3 -c "import json;d=json.load(open('$OUT/f-$n.json'));print('$t $side', round(d['deliveries_per_sec']), d['received'], d['lost'], d['duplicates'], d['out_of_order'], d['missing'])"
    grep -o "server RSS [0-9]* KiB" "$OUT/f-$n.txt" || true
    kill $PID; wait $PID 2>/dev/null; sleep 2
  done
done
floor end
