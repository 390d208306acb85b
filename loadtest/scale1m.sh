#!/usr/bin/env bash
# N concurrent stream subscribers on one host (toward 1,000,000; N=100000 BURST=100 is
# the 100,000 run of BENCHMARKS.md): `comet-gateway --workers W --engine redis://…` with W = ceil(N/19000)+1
# reactor processes on shared ports, `comet-loadtest --processes P` with
# P = ceil(N/18000) generator processes (every process here, gateway worker or generator,
# may open at most 20,000 descriptors), source addresses from 127.0.0.2 on (at most
# PER_ADDR=5000 connections each: see below), every subscriber held idle for HOLD, then
# --burst messages to all of them with an exact account (expected = received, nothing
# lost, duplicated or out of order).
#
#   N=200000 BURST=5 loadtest/scale1m.sh          # OUT defaults to target/scale1m/N
#
# Knobs (environment): N; BURST (5); RAMP (new connections per second in all, 5000);
# W; P; PER_ADDR (connections per source address, 5000); HEARTBEAT and ENGINE_TIMEOUT
# (the gateway's --heartbeat and --engine-timeout: 25s and 5s, its defaults); HOLD
# (seconds every subscriber is held idle before publishing, 30s); PUBLISH_TIMEOUT (the
# generator's wait for a publish's answer, 120s: under a full fan-out the worker that
# holds the admin connection answers late); DRAIN (s, 600); RUN_TIMEOUT (s); TCP_MEM;
# NOBUILD=1; FORCE=1 (run even if the memory estimate does not fit); REDIS_PORT,
# PUB_PORT, ADMIN_PORT (16511, 18711, 18611).
#
# Before the run it checks, and raises only where needed and writable, the kernel limits
# that would cap the count silently: fs.file-max, net.ipv4.ip_local_port_range (widened
# only if one source address would need more than 2/3 of one parity's ports),
# net.core.somaxconn and net.ipv4.tcp_max_syn_backlog (accept/SYN queues of each
# worker's listener), net.netfilter.nf_conntrack_max (if conntrack is tracking
# anything), and net.ipv4.tcp_mem only if TCP_MEM="min pressure max" is given. Old and
# new values go to $OUT/sysctl.log; nothing is restored.
#
# Every 2 s a sampler appends to $OUT/samples.log (header in the file): summed RSS of the
# gateway workers and of the load generators, /proc/net/sockstat TCP inuse/orphan/tw/mem
# pages, /proc/meminfo Slab, SUnreclaim and MemAvailable, nf_conntrack_count, and the
# counters that show a silent cap: TcpExt ListenOverflows, ListenDrops,
# TCPMemoryPressures, TCPAbortOnMemory, TCPRcvQDrop, TCPBacklogDrop, Tcp RetransSegs;
# plus the load generator's last progress (ready, delivered), the load average and
# running tasks, /proc/stat CPU jiffies (user+nice, system, irq, softirq, idle) and
# /proc/pressure/cpu some avg10, the CPU jiffies of pid 1 (this VM's agent, which
# lists every process's /proc/PID/fd), and of the gateway workers, the generators and
# Redis. The sampler runs at nice -10 so that it keeps its pace when the box is
# overloaded. $OUT/summary.txt has the figures per subscriber at the idle point (all
# ready, nothing delivered) and at the peak, the CPU of the fan-out, the counters and
# the kernel caches that grew.
#
# Bounded: every loop has a count, the load generator runs under `timeout`, and an EXIT
# trap ends every process this script started (Redis, the gateway and its workers, the
# generators, the sampler) by pid. Loopback only; needs redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
BURST=${BURST:-5}
RAMP=${RAMP:-5000}
W=${W:-$(((N + 18999) / 19000 + 1))}
P=${P:-$(((N + 17999) / 18000))}
HEARTBEAT=${HEARTBEAT:-25s}
ENGINE_TIMEOUT=${ENGINE_TIMEOUT:-5s}
HOLD=${HOLD:-30s}
PUBLISH_TIMEOUT=${PUBLISH_TIMEOUT:-120s}
DRAIN=${DRAIN:-600}
RAMP_LIMIT=${RAMP_LIMIT:-$((N / RAMP * 2 + 60))}
RUN_TIMEOUT=${RUN_TIMEOUT:-$((RAMP_LIMIT + ${HOLD%s} + DRAIN + 300))}
REDIS_PORT=${REDIS_PORT:-16511}
PUB_PORT=${PUB_PORT:-18711}
ADMIN_PORT=${ADMIN_PORT:-18611}
OUT=${OUT:-target/scale1m/$N}
mkdir -p "$OUT"
: >"$OUT/sysctl.log"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/script.log" >&2; }

# ---- processes started here, ended on exit ---------------------------------------------
REDIS="" GW="" LT="" SAMPLER="" GW_KIDS=""
kids() { pgrep -P "$1" 2>/dev/null || true; }
cleanup() {
  set +e
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  if [ -n "$LT" ]; then
    local coord gens
    coord=$(kids "$LT")
    gens=$(for c in $coord; do kids "$c"; done)
    kill -TERM $LT $coord $gens 2>/dev/null
  fi
  if [ -n "$GW" ]; then
    GW_KIDS="$GW_KIDS $(kids "$GW")"
    kill -TERM "$GW" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$GW" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$GW" $GW_KIDS 2>/dev/null
  fi
  if [ -n "$LT" ]; then
    kill -KILL $LT $coord $gens 2>/dev/null
  fi
  [ -n "$REDIS" ] && kill "$REDIS" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- kernel limits ---------------------------------------------------------------------
sysfile() { echo "/proc/sys/${1//.//}"; }
# set NAME VALUE: writes VALUE if the file is writable; logs old and new.
set_sysctl() {
  local f old
  f=$(sysfile "$1")
  old=$(tr -s '\t ' ' ' <"$f")
  if [ -w "$f" ] && echo "$2" >"$f" 2>/dev/null; then
    echo "$1: $old -> $(tr -s '\t ' ' ' <"$f") (raised)" >>"$OUT/sysctl.log"
  else
    echo "$1: $old (wanted $2, not writable: kept)" >>"$OUT/sysctl.log"
  fi
}
# at_least NAME MIN: raises a one-number sysctl to MIN if it is below.
at_least() {
  local f old
  f=$(sysfile "$1")
  [ -e "$f" ] || { echo "$1: absent" >>"$OUT/sysctl.log"; return; }
  old=$(cat "$f")
  if [ "$old" -lt "$2" ]; then set_sysctl "$1" "$2"; else echo "$1: $old (enough)" >>"$OUT/sysctl.log"; fi
}
conns=$((2 * N)) # both ends of every connection are on this box
at_least fs.file-max $((conns + 200000))
at_least net.core.somaxconn 65535
at_least net.ipv4.tcp_max_syn_backlog 65536
if [ -e "$(sysfile net.netfilter.nf_conntrack_max)" ]; then
  # Present; it tracks connections only if some rule uses it (count > 0). Sampled.
  ct=$(cat /proc/sys/net/netfilter/nf_conntrack_count)
  echo "conntrack present: nf_conntrack_count $ct, nf_conntrack_max $(cat "$(sysfile net.netfilter.nf_conntrack_max)")" >>"$OUT/sysctl.log"
  [ "$ct" = 0 ] || at_least net.netfilter.nf_conntrack_max $((conns + 65536))
fi
# tcp_mem (pages) caps the data queued in all TCP sockets, not their count: an idle
# connection holds 0 pages (measured at 200,000), so it is raised only when TCP_MEM is
# given; TCPMemoryPressures / TCPAbortOnMemory in the samples would show it biting.
read -r m0 m1 m2 <"$(sysfile net.ipv4.tcp_mem)"
if [ -n "${TCP_MEM:-}" ]; then
  set_sysctl net.ipv4.tcp_mem "$TCP_MEM"
else
  echo "net.ipv4.tcp_mem: $m0 $m1 $m2 pages (kept; pressure at $((m1 / 256)) MiB queued)" >>"$OUT/sysctl.log"
fi
# Source addresses. bind(addr, 0) takes ports of one parity first (every other port of
# ip_local_port_range, 14,116 of the default 28,232) and scans them linearly from a
# random start: measured here, ~5 µs per bind up to 13,000 ports bound on one address,
# ~2 ms per bind past 14,000 (the generators' system time then stalls the ramp near
# 760,000 subscribers with 59 addresses). So each address carries at most PER_ADDR
# (5,000) connections: each generator process gets its own ceil(share / PER_ADDR)
# consecutive addresses from 127.0.0.2 on (127.0.0.0/8 is all loopback).
PER_ADDR=${PER_ADDR:-5000}
share=$(((N + P - 1) / P))
per_proc=$(((share + PER_ADDR - 1) / PER_ADDR))
S=$((P * per_proc))
ip4() { echo "127.$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }
SRC="$(ip4 2)-$(ip4 $((S + 1)))"
per_addr=$(((share + per_proc - 1) / per_proc))
read -r plo phi <"$(sysfile net.ipv4.ip_local_port_range)"
half=$(((phi - plo + 1) / 2))
if [ "$per_addr" -gt $((half * 2 / 3)) ]; then
  set_sysctl net.ipv4.ip_local_port_range "20000 65535"
else
  echo "net.ipv4.ip_local_port_range: $plo $phi ($half ports of one parity; at most $per_addr connections per source address, $S addresses $SRC: kept)" >>"$OUT/sysctl.log"
fi
echo "ulimit -n (each process): $(ulimit -n) soft, $(ulimit -Hn) hard" >>"$OUT/sysctl.log"

# ---- will it fit? ----------------------------------------------------------------------
avail_kib=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)
need_kib=$((N * 11)) # measured: ~10 KB slab per loopback pair + ~1 KB user on both sides
log "N=$N W=$W P=$P hold=$HOLD burst=$BURST ramp=$RAMP/s ramp-limit=${RAMP_LIMIT}s heartbeat=$HEARTBEAT engine-timeout=$ENGINE_TIMEOUT; ${per_addr} conns on each of $S source addresses; need ~$((need_kib / 1024)) MiB of $((avail_kib / 1024)) MiB available"
if [ "$need_kib" -gt $((avail_kib - 2 * 1024 * 1024)) ] && [ -z "${FORCE:-}" ]; then
  log "refusing: the estimate leaves less than 2 GiB available (FORCE=1 to run anyway)"
  exit 3
fi
if [ $(((N + W - 2) / (W - 1))) -gt 19500 ] || [ $(((N + P - 1) / P)) -gt 19900 ]; then
  log "refusing: a worker or a generator would need more than its 20,000 descriptors"
  exit 3
fi

# ---- start -----------------------------------------------------------------------------
[ -n "${NOBUILD:-}" ] || cargo build --release -q -p comet-gateway -p comet-loadtest
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
REDIS=$!
sleep 0.5
target/release/comet-gateway --workers "$W" --engine "redis://127.0.0.1:$REDIS_PORT" \
  --listen "127.0.0.1:$PUB_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" --buffer 1000 \
  --backlog 65535 --max-conns 19500 --heartbeat "$HEARTBEAT" --engine-timeout "$ENGINE_TIMEOUT" --stream-max-age 60m \
  --log-level warn >"$OUT/gw.log" 2>&1 &
GW=$!
for _ in $(seq 100); do
  [ "$(kids "$GW" | wc -l)" -ge "$W" ] && curl -sf "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null && break
  sleep 0.1
done
sleep 1
GW_KIDS=$(kids "$GW" | tr '\n' ' ')
log "redis $REDIS, gateway $GW with $(echo $GW_KIDS | wc -w) workers"

# ---- sampler ---------------------------------------------------------------------------
cpu_of() { # summed user+system CPU (jiffies) of the given pids
  [ $# -gt 0 ] || { echo 0; return; }
  for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{sub(/^.*\) /, ""); s+=$12+$13} END{print s+0}'
}
rss_of() { # summed VmRSS (KiB) of the given pids
  [ $# -gt 0 ] || { echo 0; return; }
  for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done | awk '/^VmRSS:/{s+=$2} END{print s+0}'
}
gens() { # the load generator's coordinator and its processes (lt.pid: its `timeout`)
  local t c
  t=$(cat "$OUT/lt.pid" 2>/dev/null) || return 0
  for c in $(kids "$t"); do echo "$c"; kids "$c"; done
}
sample() {
  local prog ready delivered
  prog=$(tail -n1 "$OUT/progress.log" 2>/dev/null || true)
  ready=$(echo "$prog" | sed -n 's/.* ready \([0-9]*\) .*/\1/p')
  delivered=$(echo "$prog" | sed -n 's/.* delivered \([0-9]*\) .*/\1/p')
  local g
  g=$(gens)
  echo "$(date +%s) $(rss_of $GW_KIDS) $(rss_of $g)" \
    "$(awk '/^TCP:/{print $3, $5, $7, $11}' /proc/net/sockstat)" \
    "$(awk '/^Slab:/{s=$2} /^SUnreclaim:/{u=$2} /^MemAvailable:/{a=$2} END{print s, u, a}' /proc/meminfo)" \
    "$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo -)" \
    "$(awk '$1=="TcpExt:"{if(!h){for(i=2;i<=NF;i++)k[i]=$i;h=1}else{for(i=2;i<=NF;i++)v[k[i]]=$i}}
        END{print v["ListenOverflows"]+0, v["ListenDrops"]+0, v["TCPMemoryPressures"]+0, v["TCPAbortOnMemory"]+0, v["TCPRcvQDrop"]+0, v["TCPBacklogDrop"]+0}' /proc/net/netstat)" \
    "$(awk '$1=="Tcp:"{if(!h){for(i=2;i<=NF;i++)k[i]=$i;h=1}else{for(i=2;i<=NF;i++)v[k[i]]=$i}} END{print v["RetransSegs"]+0}' /proc/net/snmp)" \
    "${ready:-0} ${delivered:-0} $(cut -d' ' -f1,4 /proc/loadavg)" \
    "$(awk '/^cpu /{print $2+$3, $4, $7, $8, $5}' /proc/stat)" \
    "$(awk -F'[= ]' '/^some/{print $3}' /proc/pressure/cpu 2>/dev/null || echo -)" \
    "$(awk '{print $14+$15}' /proc/1/stat 2>/dev/null || echo -)" \
    "$(cpu_of $GW_KIDS) $(cpu_of $g) $(cpu_of $REDIS)"
}
echo "# epoch gw_rss_kib gen_rss_kib tcp_inuse tcp_orphan tcp_tw tcp_mem_pages slab_kib sunreclaim_kib memavail_kib conntrack listen_overflows listen_drops tcp_mem_pressures tcp_abort_on_memory tcp_rcvq_drop tcp_backlog_drop retrans_segs lt_ready lt_delivered load1 running/total cpu_user_jiffies cpu_sys cpu_irq cpu_softirq cpu_idle cpu_pressure_avg10 pid1_jiffies gw_cpu_jiffies gen_cpu_jiffies redis_cpu_jiffies" >"$OUT/samples.log"
rm -f "$OUT/lt.pid" "$OUT"/slabinfo.* "$OUT/progress.log" "$OUT/run.json"
sample | tee "$OUT/before.log" >>"$OUT/samples.log"
cat /proc/slabinfo >"$OUT/slabinfo.before" 2>/dev/null || true
(for _ in $(seq $(((RUN_TIMEOUT + 120) / 2))); do
   line=$(sample)
   echo "$line" >>"$OUT/samples.log"
   # the kernel's caches while every subscriber is ready and nothing delivered yet
   set -- $line
   if [ "${19}" = "$N" ] && [ "${20}" = 0 ]; then
     cat /proc/slabinfo >"$OUT/slabinfo.idle" 2>/dev/null || true
   fi
   sleep 2
 done) &
SAMPLER=$!
# The sampler must keep its pace when the box is overloaded (that is when it matters).
renice -n -10 -p "$SAMPLER" >/dev/null 2>&1 || true

# ---- the run ---------------------------------------------------------------------------
log "loadtest: $N subscribers over $P processes, burst $BURST"
T0=$(date +%s)
set +e
timeout --kill-after=30 "$RUN_TIMEOUT" target/release/comet-loadtest \
  --target "127.0.0.1:$PUB_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
  --source "$SRC" --transport stream --subscribers "$N" \
  --processes "$P" --ramp "$RAMP" --ramp-limit "${RAMP_LIMIT}s" --hold "$HOLD" \
  --burst "$BURST" --rate 0 --publish-timeout "$PUBLISH_TIMEOUT" \
  --duration 1s --drain "${DRAIN}s" --json "$OUT/run.json" >"$OUT/run.txt" 2>"$OUT/progress.log" &
LT=$!
echo "$LT" >"$OUT/lt.pid"
wait "$LT"
RC=$?
set -e
LT=""
log "loadtest exit $RC after $(($(date +%s) - T0)) s"
sleep 4 # two more samples after the generators closed
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""
cat "$OUT/run.txt"
grep -v '^\[' "$OUT/progress.log" | head -20 || true

# ---- figures ---------------------------------------------------------------------------
# idle: the first sample with every subscriber ready and nothing delivered yet (the
# last one may already see the burst's first publish before the generator counts a
# delivery: the gateway's RSS jumps by its write buffers); peak: the sample with the
# most kernel slab.
awk -v n="$N" '
  /^#/ {next}
  NR==2 || b=="" {b=$0; split($0, B)}
  $19==n && $20==0 && $3>0 && idle=="" {idle=$0}
  $8>ps {ps=$8; peak=$0}
  $4>pt {pt=$4}
  END {
    print "before: " b
    print "idle:   " idle
    print "peak:   " peak
    print "max tcp_inuse " pt
    if (idle != "") { split(idle, I)
      printf "idle, per subscriber: gateway RSS %.0f B, generator RSS %.0f B; per pair: Slab %.0f B (SUnreclaim %.0f B), tcp mem %.2f pages; MemAvailable %d -> %d kB\n",
        (I[2]-B[2])*1024/n, (I[3]-B[3])*1024/n, (I[8]-B[8])*1024/n, (I[9]-B[9])*1024/n, (I[7]-B[7])/n, B[10], I[10] }
    split(peak, K)
    printf "peak, per subscriber: gateway RSS %.0f B, generator RSS %.0f B; per pair: Slab %.0f B (SUnreclaim %.0f B); MemAvailable %d -> %d kB\n",
      (K[2]-B[2])*1024/n, (K[3]-B[3])*1024/n, (K[8]-B[8])*1024/n, (K[9]-B[9])*1024/n, B[10], K[10]
  }' "$OUT/samples.log" | tee "$OUT/summary.txt"
# CPU (jiffies, 100 per second) of the gateway workers, the generators, Redis and pid 1
# from the last idle sample to the last one before the connections began to close (TCP
# inuse still at least 95% of idle): publishing, the fan-out, the heartbeats meanwhile.
awk -v n="$N" -v b="$BURST" '
  !/^#/ && $19==n && $20==0 && $3>0 {i=$0; split(i, I); e=""; stop=0; next}
  !/^#/ && i!="" && !stop { if ($4 >= 0.95*I[4]) e=$0; else stop=1 }
  END {if (i=="" || e=="") exit; split(e, E);
    printf "CPU from the last idle sample to the last before closing (%d s, %d of %d deliveries): gateway %.1f s, generators %.1f s, redis %.1f s, pid 1 %.1f s, box busy %.1f s of %d; gateway %.1f µs per delivery seen\n",
      E[1]-I[1], E[20], n*b, (E[30]-I[30])/100, (E[31]-I[31])/100, (E[32]-I[32])/100, (E[29]-I[29])/100,
      ((E[23]+E[24]+E[25]+E[26])-(I[23]+I[24]+I[25]+I[26]))/100, 2*(E[1]-I[1]),
      (E[30]-I[30])*10000/(E[20] > 0 ? E[20] : 1)}' "$OUT/samples.log" | tee -a "$OUT/summary.txt"
awk 'NR>2 && !/^#/ {for (i=12;i<=18;i++) if ($i+0 > m[i]+0) m[i]=$i} NR==2 {for (i=12;i<=18;i++) m[i]=$i; split($0,F)}
  END {printf "counters over the run (delta): ListenOverflows %d ListenDrops %d TCPMemoryPressures %d TCPAbortOnMemory %d TCPRcvQDrop %d TCPBacklogDrop %d RetransSegs %d\n",
    m[12]-F[12], m[13]-F[13], m[14]-F[14], m[15]-F[15], m[16]-F[16], m[17]-F[17], m[18]-F[18]}' "$OUT/samples.log" | tee -a "$OUT/summary.txt"
# the kernel caches that grew from before to idle (bytes of their slabs), per pair
if [ -e "$OUT/slabinfo.idle" ]; then
  awk -v n="$N" 'NR==FNR {if ($1 !~ /^#|^slabinfo/) b[$1]=$15*$6*4096; next}
    $1 !~ /^#|^slabinfo/ {d=$15*$6*4096-b[$1]; if (d > 1048576) printf "%-24s %+10.1f MiB %8.0f B per pair\n", $1, d/1048576, d/n}' \
    "$OUT/slabinfo.before" "$OUT/slabinfo.idle" | sort -k2 -g -r | tee "$OUT/slab-growth.txt" | tee -a "$OUT/summary.txt"
fi
exit "$RC"
