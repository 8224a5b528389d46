#!/usr/bin/env bash
# The shipped scenarios, proven end to end on what users run: scripts/stack.sh
# (three replicas on the healthy workload file, `myapp load`, Prometheus with
# the project's rules, Alertmanager, the receiver), and `myapp scenario` with
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
# back to production time too. Bounded: about 5 minutes; every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SCALE=20
# Scrape and evaluation at this scale take 0.75 s each, Alertmanager's
# group_wait 1.5 s; the rest is Prometheus sending to Alertmanager and the
# receiver. (scripts/scenario-e2e.py check adds the longest request's delay.)
SLACK=5
out=$PWD/target/e2e-scenarios
rm -rf "$out"
mkdir -p "$out"
myapp=${CARGO_TARGET_DIR:-target}/release/myapp
need_pyyaml

# Free ports, so that a stack a user runs on the usual ones is left alone.
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
replica_ports=("${ports[@]:0:3}")
export STACK_REPLICA_PORTS="${replica_ports[*]}" STACK_PROMETHEUS_PORT=${ports[3]} \
  STACK_ALERTMANAGER_PORT=${ports[4]} STACK_RECEIVER_PORT=${ports[5]} STACK_TIME_SCALE=$SCALE
prom=http://127.0.0.1:${ports[3]}

scripts/stack.sh >"$out/stack.log" 2>&1 &
stack_pid=$!
stop_stack() {
  kill -INT "$stack_pid" 2>/dev/null || true
  wait "$stack_pid" 2>/dev/null || true
}
trap stop_stack EXIT
running() { grep -q "running; Ctrl-C stops everything" "$out/stack.log"; }
if ! wait_until 600 running; then
  tail -20 "$out/stack.log"
  echo "e2e-scenarios: FAIL: the stack did not start within 600 s (its log: $out/stack.log)"
  exit 1
fi
notifications=$PWD/target/stack/notifications.jsonl

# No alert pending or firing: the healthy baseline, or a scenario's aftermath gone.
quiet() { [ "$(prom_query "$prom" 'absent(ALERTS)')" = 1 ]; }
# Prometheus sees traffic on the three replicas before the first scenario.
serving() {
  [ "$(prom_query "$prom" 'count(sum by (instance) (rate(myapp_processed_ops_total{job="myapp"}[15s])) > 0) == 3')" ]
}
wait_until 60 serving || { echo "e2e-scenarios: FAIL: Prometheus saw no traffic on the three replicas"; exit 1; }

failed=0
for name in error-spike latency-tail sick-replica recovery; do
  file=scenarios/$name.yaml
  python3 scripts/scenario-e2e.py scale-scenario "$file" "$out/$name.yaml" "$SCALE"
  admins=()
  for port in "${replica_ports[@]}"; do admins+=(--admin "http://127.0.0.1:$port"); done
  # sick-replica is for one replica: the first.
  [ "$name" = sick-replica ] && admins=("${admins[@]:0:2}")
  if ! wait_until 120 quiet; then
    echo "e2e-scenarios: FAIL: alerts still active before $name: $(prom_query "$prom" 'ALERTS')"
    exit 1
  fi
  echo "e2e-scenarios: $file, $SCALE times faster"
  t0=$(date +%s.%N)
  if ! "$myapp" scenario "$out/$name.yaml" "${admins[@]}" >"$out/$name.log" 2>&1; then
    cat "$out/$name.log"
    echo "e2e-scenarios: FAIL: myapp scenario $name failed"
    exit 1
  fi
  # The rate windows remember the scenario after its settings are put back:
  # wait until every alert is over before the next one.
  wait_until 120 quiet || { echo "  FAIL  alerts still active after $name: $(prom_query "$prom" 'ALERTS')"; failed=1; }
  python3 scripts/scenario-e2e.py check "$notifications" "$file" "$SCALE" "$t0" "$SLACK" || failed=1
  fired=$(python3 -c '
import sys, yaml
print(" ".join(e["alert"] for e in yaml.safe_load(open(sys.argv[1])).get("expect", []) if "by" in e))' "$file")
  # shellcheck disable=SC2086 # one word per alert
  if wait_until 60 python3 scripts/scenario-e2e.py resolved "$notifications" "$t0" $fired; then
    echo "  ok    $fired notified resolved after the settings were put back"
  else
    echo "  FAIL  $fired not notified resolved within 60 s"
    failed=1
  fi
done

if [ "$failed" = 0 ]; then
  echo "e2e-scenarios: PASS"
else
  echo "e2e-scenarios: FAIL (stack log: $out/stack.log, notifications: $notifications)"
  exit 1
fi
