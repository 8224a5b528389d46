#!/usr/bin/env bash
# The shipped scenarios, proven end to end on what users run: scripts/stack.sh
# (three replicas on the healthy workload file, `myapp load`, Prometheus with
# the project's rules, Alertmanager, the receiver; Debian 13's Prometheus
# 2.53.3 and Alertmanager 0.28.1, put first on PATH by use_trixie_tools), and
# `myapp scenario` with
# each file of scenarios/. For each scenario, the notifications that reach the
# receiver must match its `expect`: each alert with `by` notified firing by
# then, each `fires: false` alert not before the scenario's end; then every
# alert it fired must be notified resolved once the scenario has put the
# settings back, and no alert may still be active before the next scenario.
#
# The stack runs SCALE times faster (STACK_TIME_SCALE): every range and for: of
# the rules, the scrape and evaluation intervals and Alertmanager's waits
# divided by SCALE, and so are the scenario's times (a scaled copy of each
# file, made mechanically; the files of scenarios/ stay the source). One factor
# for every duration keeps their ratios, so an alert fires here when it would
# in production, SCALE times sooner. The requests' own delays are not scaled.
# scripts/scenario-alerts.py pins the exact times against the rules with
# promtool; this test proves the whole path fires what each file says.
#
# Prints, per scenario, the time from its start to each notification, scaled
# back to production time too. Bounded: about 9 minutes for all (the SLO
# scenarios alone about 4); every wait has a deadline.
#
#   scripts/e2e-scenarios.sh [SCENARIO...]   (default: every one, by name: fast-burn ...)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# Each scenario's scale: the threshold alerts' scenarios at 20 (their 5m
# windows are 15 s, 20 scrapes of 0.75 s); fast-burn at 60 (its page needs the
# 1h window: 60 s; the 5m window is 5 s, 20 scrapes of 250 ms); slow-burn and
# within-budget at 600 (the ticket needs the 3d window, 432 s, and 10h17m of
# burn, 62 s), where 15 s / 600 would be a 25 ms scrape: they keep 250 ms
# (STACK_SCRAPE_INTERVAL), which is 2.5 min in production, so the windows they
# need (2h: 12 s, 6h: 36 s) hold dozens of scrapes; the 5m window (500 ms) holds
# two, enough for rate() but not for the threshold alerts' 5m windows, which
# those scenarios do not expect anything of. Every scale starts its own stack
# with a backfilled healthy past of 3d (STACK_HISTORY), scaled.
declare -A SCALE=([error-spike]=20 [latency-tail]=20 [sick-replica]=20 [recovery]=20
                  [fast-burn]=60 [within-budget]=600 [slow-burn]=600)
declare -A SCRAPE=([20]="" [60]="" [600]=250ms)
# Requests per second (STACK_RATE): a faster stack's windows hold fewer
# requests (the 1h window at 60 times faster holds 1,200 at 20/s, where
# production's holds 72,000), and the errors drawn at random then move the
# time a threshold is crossed by seconds: the SLO scenarios send 100/s.
declare -A RATE=([20]=20 [60]=100 [600]=100)
# At 600 times faster the threshold alerts' 5m windows are 500 ms: two
# scrapes of a few requests per replica, whose chance errors fire
# MyappErrorRatioAboveConfigured; their expectations are not judged there.
threshold_alerts=$(python3 -c '
import yaml
print(" ".join(r["alert"] for g in yaml.safe_load(open("deploy/prometheus/rules.yml"))["groups"]
               for r in g["rules"] if "alert" in r))')
# At 20 times faster the threshold scenarios run back to back, so the SLO
# alerts' long windows (1h is 3 minutes there) hold the errors of the
# scenarios before: error-spike's and sick-replica's errors add up to a page
# during recovery, which production, an hour apart, would not see. The SLO
# alerts are judged by the SLO scenarios, each with its backfilled past.
slo_alerts="MyappAvailabilityBudgetBurn MyappLatencyBudgetBurn"
declare -A IGNORED=([20]="$slo_alerts" [60]="" [600]="$threshold_alerts")
# In the order they run; within a stack, a scenario that must fire nothing
# before one that burns (the long windows remember a burn).
ALL=(error-spike latency-tail sick-replica recovery fast-burn within-budget slow-burn)
names=("${@:-${ALL[@]}}")
for name in "${names[@]}"; do
  [ -n "${SCALE[$name]:-}" ] || { echo "usage: scripts/e2e-scenarios.sh [${ALL[*]}]..." >&2; exit 2; }
done
# Scrape and evaluation take 15 s / scale each (0.75 s at 20), or 250 ms;
# Alertmanager's group_wait 30 s / scale; the rest is Prometheus sending to
# Alertmanager and the receiver. (scripts/scenario-e2e.py check adds the
# longest request's delay.)
SLACK=5
out=$PWD/target/e2e-scenarios
rm -rf "$out"
mkdir -p "$out"
myapp=${CARGO_TARGET_DIR:-target}/release/myapp
notifications=$PWD/target/stack/notifications.jsonl
need_pyyaml
if ! use_trixie_tools prometheus promtool prometheus-alertmanager; then
  echo "e2e-scenarios: FAIL: Debian 13's prometheus, promtool and prometheus-alertmanager could not be had"
  exit 1
fi
echo "e2e-scenarios: $(server_versions prometheus promtool prometheus-alertmanager)"

# Free ports, so that a stack a user runs on the usual ones is left alone.
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
replica_ports=("${ports[@]:0:3}")
export STACK_REPLICA_PORTS="${replica_ports[*]}" STACK_PROMETHEUS_PORT=${ports[3]} \
  STACK_ALERTMANAGER_PORT=${ports[4]} STACK_RECEIVER_PORT=${ports[5]}
prom=http://127.0.0.1:${ports[3]}

stack_pid=
stop_stack() {
  [ -n "$stack_pid" ] || return 0
  # TERM: a script started in the background ignores SIGINT.
  kill -TERM "$stack_pid" 2>/dev/null || true
  wait "$stack_pid" 2>/dev/null || true
  stack_pid=
}
trap stop_stack EXIT
running() { grep -q "running; Ctrl-C stops everything" "$out/stack-$scale.log"; }
# Running, or stopped on its way there (its log says why).
running_or_gone() { running || ! kill -0 "$stack_pid" 2>/dev/null; }
# No alert pending or firing: the healthy baseline, or a scenario's aftermath gone.
quiet() { [ "$(prom_query "$prom" 'absent(ALERTS)')" = 1 ]; }
# Prometheus sees traffic on the three replicas (not the backfilled history).
serving() {
  [ "$(prom_query "$prom" 'count(sum by (instance) (rate(myapp_processed_ops_total{job="myapp",instance!="history"}[15s])) > 0) == 3')" ]
}

# The stack at SCALE (and scrape interval), its scenarios in turn, stopped.
run_stack() {
  scale=$1
  shift
  STACK_TIME_SCALE=$scale STACK_SCRAPE_INTERVAL=${SCRAPE[$scale]} STACK_RATE=${RATE[$scale]} scripts/stack.sh >"$out/stack-$scale.log" 2>&1 &
  stack_pid=$!
  if ! wait_until 600 running_or_gone || ! running; then
    tail -20 "$out/stack-$scale.log"
    echo "e2e-scenarios: FAIL: the stack did not start within 600 s (its log: $out/stack-$scale.log)"
    exit 1
  fi
  wait_until 60 serving || { echo "e2e-scenarios: FAIL: Prometheus saw no traffic on the three replicas"; exit 1; }
  local name
  for name in "$@"; do run_scenario "$name"; done
  stop_stack
  # The stack stops every process it started.
  local left
  left=$(awk '{ print $1 }' target/stack/pids | while read -r pid; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done || true)
  if [ -n "$left" ]; then
    echo "  FAIL  processes the stack started are still running: $left"
    failed=1
  else
    echo "  ok    the stack at x$scale stopped every process it started"
  fi
  cp "$notifications" "$out/notifications-$scale.jsonl" 2>/dev/null || true
}

run_scenario() {
  local name=$1 file=scenarios/$1.yaml
  python3 scripts/scenario-e2e.py scale-scenario "$file" "$out/$name.yaml" "$scale"
  admins=()
  for port in "${replica_ports[@]}"; do admins+=(--admin "http://127.0.0.1:$port"); done
  # sick-replica is for one replica: the first.
  [ "$name" = sick-replica ] && admins=("${admins[@]:0:2}")
  if ! wait_until 120 quiet; then
    echo "e2e-scenarios: FAIL: alerts still active before $name: $(prom_query "$prom" 'ALERTS')"
    exit 1
  fi
  echo "e2e-scenarios: $file, $scale times faster (scrapes every ${SCRAPE[$scale]:-$((15000 / scale))ms})"
  t0=$(date +%s.%N)
  if ! "$myapp" scenario "$out/$name.yaml" "${admins[@]}" >"$out/$name.log" 2>&1; then
    cat "$out/$name.log"
    echo "e2e-scenarios: FAIL: myapp scenario $name failed"
    exit 1
  fi
  # The rate windows remember the scenario after its settings are put back:
  # wait until every alert is over before the next one.
  wait_until 120 quiet || { echo "  FAIL  alerts still active after $name: $(prom_query "$prom" 'ALERTS')"; failed=1; }
  # shellcheck disable=SC2086 # one word per alert
  python3 scripts/scenario-e2e.py check "$notifications" "$file" "$scale" "$t0" "$SLACK" ${IGNORED[$scale]} || failed=1
  # ALERT or ALERT:SEVERITY of each expected to fire.
  fired=$(python3 -c '
import sys, yaml
print(" ".join(e["alert"] + (":" + e["severity"] if "severity" in e else "")
               for e in yaml.safe_load(open(sys.argv[1])).get("expect", []) if "by" in e))' "$file")
  [ -n "$fired" ] || return 0
  # shellcheck disable=SC2086 # one word per alert
  if wait_until 60 python3 scripts/scenario-e2e.py resolved "$notifications" "$t0" $fired; then
    end=$(python3 -c '
import sys, yaml
sys.path.insert(0, "scripts")
from importlib import import_module
print(import_module("scenario-e2e").millis(yaml.safe_load(open(sys.argv[1]))["end"]) / 1000 / int(sys.argv[2]))' "$file" "$scale")
    # shellcheck disable=SC2086
    python3 scripts/scenario-e2e.py resolved-after "$notifications" "$t0" $fired | while read -r alert after; do
      echo "  ok    $alert notified resolved $after s after the start, $(python3 -c "print(f'{$after - $end:.1f}')") s after the end (x$scale: $(python3 -c "
import sys; sys.path.insert(0, 'scripts'); from importlib import import_module
print(import_module('scenario-e2e').fmt(($after - $end) * $scale))") after the end)"
    done
  else
    echo "  FAIL  $fired not notified resolved within 60 s"
    failed=1
  fi
}

failed=0
for scale in 20 60 600; do
  group=()
  for name in "${names[@]}"; do [ "${SCALE[$name]}" = "$scale" ] && group+=("$name"); done
  # Run in the order of ALL.
  ordered=()
  for name in "${ALL[@]}"; do [[ " ${group[*]} " == *" $name "* ]] && ordered+=("$name"); done
  [ "${#ordered[@]}" = 0 ] || run_stack "$scale" "${ordered[@]}"
done

if [ "$failed" = 0 ]; then
  echo "e2e-scenarios: PASS"
else
  echo "e2e-scenarios: FAIL (stack logs and notifications: $out/)"
  exit 1
fi
