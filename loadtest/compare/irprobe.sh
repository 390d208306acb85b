#!/usr/bin/env bash
# As run for issue 10 (2026-11-29) against /work/wt-old (bcdbeb6) and /work/wt (the final tree); edit the paths.
# Instruction counts (valgrind callgrind, Ir) of each gateway over one fan-out run:
# N=2000 subscribers, burst 50 (100,000 deliveries), per transport. Not timing: noise-immune.
set -uo pipefail
OUT=/tmp/finalir; mkdir -p $OUT
LT=/work/wt/target/release/comet-loadtest
SRC=127.0.0.2-127.0.0.20
for t in ${TRANSPORTS:-stream events}; do
for side in old wt; do
  tag=$t-$side; DIR=wt-old; [ $side = wt ] && DIR=wt
  timeout 600 valgrind --tool=callgrind --callgrind-out-file=$OUT/cg-$tag.out \
     /work/$DIR/target/release/comet-gateway --listen 127.0.0.1:18100 --admin-listen 127.0.0.1:18000 \
     --buffer 1000 --poll-timeout 60s >$OUT/gw-$tag.log 2>&1 &
  VG=$!
  for _ in $(seq 600); do grep -q listening $OUT/gw-$tag.log && break; sleep 0.1; done
  timeout 400 $LT --quiet --target 127.0.0.1:18100 --admin 127.0.0.1:18000 --source $SRC --ramp 500 \
     --transport $t --subscribers ${N:-2000} --burst ${BURST:-50} --rate 0 --drain 120s --json $OUT/lt-$tag.json >$OUT/lt-$tag.txt 2>&1
  echo "$tag lt rc=$? $(grep -E 'expected|deliveries/s' $OUT/lt-$tag.txt | tr '\n' ' ')"
  kill $VG; wait $VG
  echo "$tag $(grep -E '^summary|^totals' $OUT/cg-$tag.out)"
done
done
