#!/usr/bin/env bash
# Old-vs-new comparison, exactly as run for issue 10 (2026-11-29): OLD was a checkout of
# bcdbeb6 in /work/wt-old, NEW a checkout of 7c8ea6c in /work/wt-meas, both built with
# `cargo build --release -p comet-gateway -p comet-loadtest` and
# `cargo test --release --test memory --no-run`. Edit the paths to compare two others.
set -u
OUT=/tmp/meas10
OLD=/work/wt-old/target/release/deps/memory-1872aa840af99149
NEW=/work/wt-meas/target/release/deps/memory-1872aa840af99149
for i in 1 2 3; do
  for side in OLD NEW; do
    bin=${!side}
    log=$OUT/mem-$side-$i.txt
    echo "== $side run $i $(date -u +%T)" | tee "$log"
    timeout 600 "$bin" --ignored --nocapture --test-threads=1 rss_per_parked_poll rss_per_idle_stream >>"$log" 2>&1
    echo "rc=$?" >>"$log"
    grep -E "bytes per|rc=|test result" "$log"
  done
done
