#!/usr/bin/env bash
# scripts/stack.sh, tested: on free ports of its own (through the STACK_*
# variables, so the default ports of a stack someone runs are left alone):
#   1. `scripts/stack.sh --check` says PASS and exits 0: Prometheus scraped the
#      three replicas and saw traffic on each, test alerts reached the receiver
#      routed (pager, tickets) and inhibited as deploy/alertmanager/ says;
#      then no process it started is left and every port is free again.
#   2. A second run on the same ports, as a person runs it (until Ctrl-C): it
#      comes up, SIGINT stops it with status 130, and again nothing is left and
#      every port is free.
# stack.sh runs the Prometheus and Alertmanager on PATH: here Debian 13's
# (2.53.3, 0.28.1), put first on PATH by use_trixie_tools.
# About a minute; every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

if ! use_trixie_tools prometheus promtool prometheus-alertmanager; then
  echo "stack-test: FAIL: Debian 13's prometheus, promtool and prometheus-alertmanager could not be had"
  exit 1
fi
echo "stack-test: $(server_versions prometheus promtool prometheus-alertmanager)"

out=$PWD/target/stack-test
rm -rf "$out"
mkdir -p "$out"

STACK_REPLICA_PORTS="$(free_port) $(free_port) $(free_port)"
STACK_PROMETHEUS_PORT=$(free_port)
STACK_ALERTMANAGER_PORT=$(free_port)
STACK_RECEIVER_PORT=$(free_port)
export STACK_REPLICA_PORTS STACK_PROMETHEUS_PORT STACK_ALERTMANAGER_PORT STACK_RECEIVER_PORT
export STACK_CHECK_TIMEOUT=90
read -r -a ports <<<"$STACK_REPLICA_PORTS $STACK_PROMETHEUS_PORT $STACK_ALERTMANAGER_PORT $STACK_RECEIVER_PORT"
echo "stack-test: ports ${ports[*]}"

# nothing_left: no process of the last run's target/stack/pids runs (a PID
# reused since would be another program: its command line is compared too).
nothing_left() {
  local pid name left=()
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
      left+=("$name($pid): $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)")
    fi
  done <target/stack/pids
  [ "$(wc -l <target/stack/pids)" -eq 7 ] || { echo "target/stack/pids lists $(wc -l <target/stack/pids) processes, not 7"; return 1; }
  [ "${#left[@]}" -eq 0 ] || { printf 'left running: %s\n' "${left[@]}"; return 1; }
}
ports_free() {
  local port busy=()
  for port in "${ports[@]}"; do
    [ -z "$(ss -Hltn "sport = :$port")" ] || busy+=("$port")
  done
  [ "${#busy[@]}" -eq 0 ] || { echo "still listening: ${busy[*]}"; return 1; }
}

# --- 1. --check -----------------------------------------------------------------------------
status=0
timeout 180 scripts/stack.sh --check >"$out/check.log" 2>&1 || status=$?
if [ "$status" -eq 0 ] && grep -qx 'stack --check: PASS' "$out/check.log"; then
  pass "stack.sh --check: PASS, status 0 ($(grep -c . target/stack/pids) processes started)"
else
  fail "stack.sh --check exited $status:"
  sed 's/^/        /' "$out/check.log"
fi
check "after --check, none of the processes it started is left" nothing_left
check "after --check, every port is free" ports_free

# --- 2. until Ctrl-C ----------------------------------------------------------------------------
# Bash starts a background command with SIGINT ignored, and an ignored signal
# cannot be trapped: put SIGINT back to its default, as a terminal has it.
# python3 execs the script in its own process, so that LAST_PID is the stack's.
start_process "$out/run.log" python3 -c \
  'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
  scripts/stack.sh
stack_pid=$LAST_PID
if wait_until 90 grep -q 'running; Ctrl-C stops everything' "$out/run.log"; then
  pass "a second run on the same ports comes up"
  kill -INT "$stack_pid"
  ended() { ! kill -0 "$stack_pid" 2>/dev/null; }
  if wait_until 30 ended; then
    status=0
    wait "$stack_pid" || status=$?
    forget_pid "$stack_pid"
    check "SIGINT ends it with status 130 within 30 s (it was $status)" test "$status" -eq 130
  else
    fail "SIGINT did not end it within 30 s"
  fi
  check "after SIGINT, none of the processes it started is left" nothing_left
  check "after SIGINT, every port is free" ports_free
else
  fail "a second run did not come up within 90 s:"
  sed 's/^/        /' "$out/run.log"
fi

summary "stack-test"
