#!/usr/bin/env bash
# A flood of attacks (comet-flood --mode mix) against a gateway on loopback while a
# legitimate run (comet-loadtest: EventSource subscribers and a steady publisher) measures
# delivery and latency, with the gateway's memory sampled once per second. Bounded: every
# process has its own time limit, and the gateway is killed if its RSS passes
# RSS_LIMIT_KIB (default 8 GiB) so a leaking gateway cannot take the machine down.
#
#   loadtest/flood.sh                                   # 60 s, mix of every attack
#   DURATION=20 loadtest/flood.sh
#   GATEWAY_FLAGS="--max-conns 12000" loadtest/flood.sh # extra gateway flags
#   FLOOD_FLAGS="--hog-conns 8000" LEGIT_FLAGS="--churn 2" loadtest/flood.sh
#
# Prints the legitimate run's latency (p50/p99) and delivery account, the flood's JSON
# summary, and the gateway's RSS at start, max and end. Files go to $OUT (target/flood):
# rss.csv (one row per second), legit.json, flood.json, and each process's log.
#
# Layout: the gateway is pinned to CPU 0 and both generators to CPU 1 (taskset, if there
# are 2+ cores); the flood runs at nice 10 so that it takes the whole core yet does not
# delay the legitimate generator's own wake-ups (whose latency it measures). The flood
# connects from 127.0.0.2-127.0.0.41, the legitimate clients from 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}             # seconds of flood, and of legitimate publishing
FLOOD_DELAY=${FLOOD_DELAY:-1}        # the legitimate run starts first (creates its channel, subscribes)
SETTLE=${SETTLE:-5}                  # seconds sampled after both runs end
OUT=${OUT:-target/flood}
PUBLIC=${PUBLIC:-127.0.0.1:18500}
ADMIN=${ADMIN:-127.0.0.1:18501}
LEGIT_SUBS=${LEGIT_SUBS:-200}
LEGIT_RATE=${LEGIT_RATE:-20}
LEGIT_TRANSPORT=${LEGIT_TRANSPORT:-events}
RSS_LIMIT_KIB=${RSS_LIMIT_KIB:-8388608}
RSS_BOUND_KIB=${RSS_BOUND_KIB:-}     # optional: the stated bound to check the max against
GATEWAY_FLAGS=${GATEWAY_FLAGS:-}
FLOOD_FLAGS=${FLOOD_FLAGS:-}
LEGIT_FLAGS=${LEGIT_FLAGS:-}
mkdir -p "$OUT"
rm -f "$OUT"/{rss.csv,legit.json,flood.json,killed,gateway.log,legit.txt,legit.log,flood.log}

cargo build --release -q -p comet-gateway -p comet-loadtest
GW=${GW:-target/release/comet-gateway} # GW=path runs another gateway binary
LT=target/release/comet-loadtest
FL=target/release/comet-flood

GW_PIN=() GEN_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  GW_PIN=(taskset -c 0); GEN_PIN=(taskset -c 1)
fi

GW_PID= SAMPLER_PID= LT_PID= FL_PID=
cleanup() {
  for p in $FL_PID $LT_PID; do kill "$p" 2>/dev/null || true; done
  if [ -n "$GW_PID" ]; then kill -9 "$GW_PID" 2>/dev/null || true; fi
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# shellcheck disable=SC2086 # GATEWAY_FLAGS is a list of flags
"${GW_PIN[@]}" "$GW" --listen "$PUBLIC" --admin-listen "$ADMIN" $GATEWAY_FLAGS >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do
  grep -q listening "$OUT/gateway.log" && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$OUT/gateway.log"; echo "gateway did not start" >&2; exit 1; }
  sleep 0.05
done
grep -q listening "$OUT/gateway.log" || { echo "gateway did not start" >&2; exit 1; }

# One row per second until the gateway exits (bounded by the longest run, plus margin).
sample() {
  local start now target i=0 max=$((DURATION * 3 + 400)) ticks last_ticks= last_ns= hz
  hz=$(getconf CLK_TCK)
  echo "t_s,vmrss_kib,vmhwm_kib,cpu_pct,fds,tcp_mem_pages,tcp_timewait,channels,sessions,public_conns,parked_polls" >"$OUT/rss.csv"
  start=$(date +%s%N)
  while kill -0 "$GW_PID" 2>/dev/null && [ $i -lt $max ]; do
    local st rss hwm fds tcp tw stats ch se pc pp ms ts cpu=
    st=$(cat "/proc/$GW_PID/status" 2>/dev/null) || break
    rss=$(awk '/^VmRSS/{print $2}' <<<"$st"); hwm=$(awk '/^VmHWM/{print $2}' <<<"$st")
    fds=$(ls "/proc/$GW_PID/fd" 2>/dev/null | wc -l)
    # utime + stime (fields 14 and 15; the name in field 2 has no spaces here).
    ticks=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat" 2>/dev/null || echo)
    now=$(date +%s%N)
    if [ -n "$last_ticks" ] && [ -n "$ticks" ]; then
      cpu=$(( (ticks - last_ticks) * 100 * 1000000000 / hz / (now - last_ns) ))
    fi
    last_ticks=$ticks last_ns=$now
    read -r tcp tw < <(awk '/^TCP:/{for(i=1;i<NF;i++){if($i=="mem")m=$(i+1); if($i=="tw")t=$(i+1)}; print m, t}' /proc/net/sockstat)
    stats=$(curl -s -m 0.4 "http://$ADMIN/stats" 2>/dev/null || true)
    ch=$(grep -o '"channels":[0-9]*' <<<"$stats" | head -1 | cut -d: -f2 || true)
    se=$(grep -o '"sessions":[0-9]*' <<<"$stats" | head -1 | cut -d: -f2 || true)
    pc=$(grep -o '"public":[0-9]*' <<<"$stats" | head -1 | cut -d: -f2 || true)
    pp=$(grep -o '"parked_polls":[0-9]*' <<<"$stats" | head -1 | cut -d: -f2 || true)
    now=$(date +%s%N); ms=$(( (now - start) / 1000000 ))
    printf -v ts '%d.%03d' $((ms / 1000)) $((ms % 1000))
    echo "$ts,$rss,$hwm,$cpu,$fds,$tcp,$tw,$ch,$se,$pc,$pp" >>"$OUT/rss.csv"
    if [ -n "$rss" ] && [ "$rss" -gt "$RSS_LIMIT_KIB" ]; then
      echo "gateway RSS $rss KiB passed RSS_LIMIT_KIB=$RSS_LIMIT_KIB at $(( (now - start) / 1000000000 )) s: killed" | tee "$OUT/killed" >&2
      kill -9 "$GW_PID" 2>/dev/null || true
      break
    fi
    i=$((i + 1))
    target=$((start + i * 1000000000)); now=$(date +%s%N)
    if [ "$target" -gt "$now" ]; then sleep "$(awk -v d=$((target - now)) 'BEGIN{printf "%.3f", d/1e9}')"; fi
  done
}
sample &
SAMPLER_PID=$!
sleep 1 # the first row is the idle gateway

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); date: $(date -u +%FT%TZ)"
echo "gateway: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'), pid $GW_PID, flags: --listen $PUBLIC --admin-listen $ADMIN $GATEWAY_FLAGS"
echo "pinning: gateway ${GW_PIN[*]:-(none)}, generators ${GEN_PIN[*]:-(none)}"

LIMIT=$((DURATION + 200)) # outer bound of each generator (their own bounds are tighter)
# shellcheck disable=SC2086
timeout -k 5 "$LIMIT" "${GEN_PIN[@]}" "$LT" --target "$PUBLIC" --admin "$ADMIN" \
  --transport "$LEGIT_TRANSPORT" --subscribers "$LEGIT_SUBS" --rate "$LEGIT_RATE" \
  --duration "${DURATION}s" --drain 10s --server-pid "$GW_PID" --json "$OUT/legit.json" \
  $LEGIT_FLAGS >"$OUT/legit.txt" 2>"$OUT/legit.log" &
LT_PID=$!
sleep "$FLOOD_DELAY"
# shellcheck disable=SC2086
timeout -k 5 "$LIMIT" "${GEN_PIN[@]}" nice -n 10 "$FL" --target "$PUBLIC" --mode mix \
  --duration "${DURATION}s" --json "$OUT/flood.json" $FLOOD_FLAGS >/dev/null 2>"$OUT/flood.log" &
FL_PID=$!
echo "legit run (pid $LT_PID) and flood (pid $FL_PID) started; up to $((DURATION + 15)) s..."
LT_RC=0; wait "$LT_PID" || LT_RC=$?
FL_RC=0; wait "$FL_PID" || FL_RC=$?
LT_PID= FL_PID=
sleep "$SETTLE"
# Graceful stop (the gateway's --shutdown-timeout is 10 s by default), then by force.
if kill -TERM "$GW_PID" 2>/dev/null; then
  for _ in $(seq 150); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$GW_PID" 2>/dev/null || true
fi
wait "$GW_PID" 2>/dev/null || true
GW_PID=
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

python3 - "$OUT" "$LT_RC" "$FL_RC" "$DURATION" "$RSS_BOUND_KIB" <<'PY'
import csv, json, os, sys
out, lt_rc, fl_rc, duration, bound = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def load(n):
    try: return json.load(open(os.path.join(out, n)))
    except Exception: return None
def tail(n, k=5):
    try: return "".join(open(os.path.join(out, n)).readlines()[-k:])
    except Exception: return ""
legit, flood = load("legit.json"), load("flood.json")
print()
print("== legitimate run (exit %d) ==" % lt_rc)
ok = True
if legit:
    l = legit["latency_us"]
    print("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f" % tuple(l[k] / 1000 for k in ["p50", "p90", "p99", "p999", "max"]))
    print("published %d (%d errors)  expected %d  received %d  lost %d  duplicates %d  out-of-order %d  missing %d  resets %d"
          % (legit["published"], legit["publish_errors"], legit["expected"], legit["received"], legit["lost"],
             legit["duplicates"], legit["out_of_order"], legit["missing"], legit["resets"]))
    e = legit["errors"]
    print("errors: " + "  ".join("%s %d" % (k, v) for k, v in e.items()))
    checks = [("p99 < 50 ms", l["p99"] < 50_000), ("no publish errors", legit["publish_errors"] == 0),
              ("nothing lost, duplicated, out of order or missing",
               legit["lost"] + legit["duplicates"] + legit["out_of_order"] + legit["missing"] == 0),
              ("every subscriber stayed connected", e["connect"] + e["closed_by_server"] + e["read"] + e["write"] + e["http"] == 0)]
    for name, good in checks:
        print("  %s %s" % ("PASS" if good else "FAIL", name))
        ok &= good
else:
    ok = False
    print("FAIL: no summary; last lines of its output:")
    print(tail("legit.log") + tail("legit.txt"))
print()
print("== flood (exit %d) ==" % fl_rc)
if flood:
    print(json.dumps(flood, separators=(",", ":")))
    print()
    print("%-8s %8s %9s %8s %9s %9s %7s %9s %9s %7s %8s %7s" % ("attack", "conns", "connects", "conn-err", "requests", "answers", "503s", "resets-ev", "sessions", "srv-fin", "srv-rst", "stalls"))
    for name, a in list(flood["attacks"].items()) + [("total", flood["totals"])]:
        print("%-8s %8d %9d %8d %9d %9d %7d %9d %9d %7d %8d %7d" % (name, a["target_conns"], a["connects"], a["connect_errors"] + a["connect_timeouts"],
              a["requests"], a["answers"], a["status"].get("503", 0), a["reset_events"], a["sessions"], a["closed_by_server"], a["resets"], a["stalled"]))
    print("answer statuses: %s  errors by kind: %s  peak open: %d" % (flood["totals"]["status"], flood["errors_by_kind"], flood["peak_open"]))
else:
    print("no summary; last lines of its log:")
    print(tail("flood.log"))
print()
print("== gateway memory (rss.csv, one row per second) ==")
rows = list(csv.DictReader(open(os.path.join(out, "rss.csv"))))
num = lambda r, k: int(r[k]) if r.get(k) not in (None, "") else None
rows = [r for r in rows if num(r, "vmrss_kib") is not None]
if rows:
    mx = max(rows, key=lambda r: num(r, "vmrss_kib"))
    last = rows[-1]
    mib = lambda k: "%.1f MiB" % (k / 1024)
    print("RSS start %s  max %s (at %.0f s)  end %s  VmHWM %s   (%d samples)" % (
        mib(num(rows[0], "vmrss_kib")), mib(num(mx, "vmrss_kib")), float(mx["t_s"]), mib(num(last, "vmrss_kib")),
        mib(max(num(r, "vmhwm_kib") for r in rows)), len(rows)))
    series = [num(r, "vmrss_kib") // 1024 for r in rows]
    step = max(1, len(series) // 20)
    print("RSS MiB every %d s: %s" % (step, " ".join(str(v) for v in series[::step])))
    cpu = [num(r, "cpu_pct") for r in rows if num(r, "cpu_pct") is not None]
    if cpu:
        print("gateway CPU %% each s: %s" % " ".join(str(v) for v in cpu))
    for k, label in [("fds", "descriptors"), ("tcp_mem_pages", "kernel TCP memory, pages (all sockets on the host)"),
                     ("channels", "channels"), ("sessions", "sessions"), ("public_conns", "public connections"), ("parked_polls", "parked polls")]:
        vals = [num(r, k) for r in rows if num(r, k) is not None]
        if vals:
            print("max %s: %d (end %d)" % (label, max(vals), vals[-1]))
    if bound:
        good = num(mx, "vmrss_kib") <= int(bound)
        print("  %s RSS max within %s KiB" % ("PASS" if good else "FAIL", bound))
        ok &= good
if os.path.exists(os.path.join(out, "killed")):
    ok = False
    print("FAIL: " + open(os.path.join(out, "killed")).read().strip())
print()
print("RESULT: %s" % ("the legitimate run kept working" if ok else "NOT OK (see above)"))
PY
