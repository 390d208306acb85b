# Sourced by loadtest/side-by-side.sh and loadtest/bench.sh: pins the server under test to
# one core and the load generator to another with `taskset`, so that neither takes the
# other's CPU and both servers (the gateway, nginx + Nchan) get the same single core.
#
#   SERVER_CPU=0 GEN_CPU=1   the defaults; PIN=0 pins nothing (the runs before issue 13)
#
# "${ON_SERVER[@]}" CMD...  runs CMD pinned to SERVER_CPU (an array, empty unpinned; taskset
#                   execs CMD, so after `... &` $! is CMD's own pid, and its children, e.g.
#                   nginx's worker, inherit the pinning). Not a shell function: one run in
#                   the background is a subshell, and $! would name that, not the server.
# "${ON_GEN[@]}" CMD...     runs CMD pinned to GEN_CPU
# pin_tree PID      pins PID, every thread of it and its children to SERVER_CPU (again:
#                   so that nothing escapes); affinity PID prints what each one has
PIN=${PIN:-1}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
if [ "$PIN" = 1 ] && { ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; }; then
  echo "pin.sh: needs taskset and 2 cores; running unpinned" >&2
  PIN=0
fi
ON_SERVER=(); ON_GEN=()
if [ "$PIN" = 1 ]; then ON_SERVER=(taskset -c "$SERVER_CPU"); ON_GEN=(taskset -c "$GEN_CPU"); fi
pin_tree() {
  [ "$PIN" = 1 ] || return 0
  local p
  for p in "$1" $(pgrep -P "$1" || true); do
    taskset -a -p -c "$SERVER_CPU" "$p" >/dev/null 2>&1 || true
  done
}
# One line for the record: each process of the tree and the CPUs it may run on.
affinity() {
  local p
  for p in "$1" $(pgrep -P "$1" || true); do
    printf '%s(%s): %s  ' "$(cat "/proc/$p/comm" 2>/dev/null)" "$p" "$(taskset -c -p "$p" 2>/dev/null | sed 's/.*: //')"
  done
  echo
}
pinning() {
  if [ "$PIN" = 1 ]; then
    echo "pinned: server under test on CPU $SERVER_CPU, generator on CPU $GEN_CPU (taskset)"
  else
    echo "not pinned (PIN=0)"
  fi
}
