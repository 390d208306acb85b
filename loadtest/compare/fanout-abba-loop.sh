# The counterbalanced loop of series D (issue 10): it replaces the `for t in events stream
# poll` loop of fanout.sh (same header, same floors), so each pair runs in the order
# NEW OLD OLD NEW. Source it in place of that loop.
n=0
for t in stream events; do
  blocks=3; [ $t = events ] && blocks=2
  for b in $(seq $blocks); do
    for side in NEW OLD OLD NEW; do
      n=$((n+1)); gw=GW_$side; tag=$t-$side-$b-$n
      start_gateway "${!gw}" "$OUT/gateway-$tag.log" || { echo "rc=startfail"; continue; }
      timeout 300 "$LT" --quiet --target 127.0.0.1:18100 --admin 127.0.0.1:18000 --source "$SRC" \
         --server-pid "$GW_PID" --transport "$t" --subscribers "$N" --burst "$BURST" --rate 0 \
         --drain 60s --json "$OUT/fanout-$tag.json" >"$OUT/fanout-$tag.txt" 2>&1
      echo "rc=$? gateway-cpu-ticks=$(gw_cpu)"
      stop_gateway; sleep 2
    done
  done
done
