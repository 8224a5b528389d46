#!/usr/bin/env bash
# A whole monitoring stack on this machine, to rehearse an incident:
#   - three replicas of the release binary (cargo build --release first; cargo
#     rebuilds only what changed), sharing one --workload-file that starts
#     healthy (a copy of deploy/stack/workload.json in target/stack/);
#   - `myapp load` sending STACK_RATE requests per second to their /work, in turn;
#   - Prometheus with the repository's prometheus.yml (the targets are the
#     three replicas), rules.yml and slo-rules.yml, sending its alerts to
#   - Alertmanager with the project's routing (deploy/alertmanager/alertmanager.yml,
#     the receiver's port substituted), which notifies
#   - a webhook receiver (scripts/e2e-alerts-tools.py receiver --print) that
#     prints one line per alert on this terminal, firing and resolved, with
#     the receiver it was routed to (pager or tickets: one path each).
# It prints every URL and the commands that run a scenario against the
# replicas, then runs until Ctrl-C, which stops everything it started.
#
#   scripts/stack.sh           until Ctrl-C
#   scripts/stack.sh --check   starts everything, waits until Prometheus
#                              scrapes the three replicas and sees traffic on
#                              each, and test alerts reach the receiver
#                              routed and inhibited as the config says;
#                              prints PASS, stops everything, exits 0 (1 and
#                              the reason otherwise). For scripts/stack-test.sh.
#
# Ports (loopback only), each changeable by its variable:
#   STACK_REPLICA_PORTS      "8081 8082 8083"  the replicas' /work, /metrics, /admin/workload
#   STACK_PROMETHEUS_PORT    9090
#   STACK_ALERTMANAGER_PORT  9093
#   STACK_RECEIVER_PORT      9095
# and STACK_RATE (20, requests per second over all replicas), STACK_CHECK_TIMEOUT
# (120 s, --check only), STACK_TIME_SCALE (1: for scripts/e2e-scenarios.sh, N
# runs the stack N times faster: every range and for: of the rules, the scrape
# and evaluation intervals and Alertmanager's waits divided by N),
# STACK_SCRAPE_INTERVAL (empty: 15 s divided by STACK_TIME_SCALE; a Prometheus
# duration such as 500ms sets the scrape and evaluation intervals instead, for
# a scale whose divided interval would be too short to be realistic).
# STACK_HISTORY (3d: Prometheus starts with that much past of the healthy
# workload at STACK_RATE, divided by STACK_TIME_SCALE, so the SLO windows are
# full as in production; 0: none).
# State and logs: target/stack/, emptied at each start.
# Runs the prometheus, promtool and prometheus-alertmanager on PATH, and says
# which versions; installs Debian's when they are missing and we are root.
# (Its tests put Debian 13's first on PATH: use_trixie_tools, scripts/lib.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

check_mode=false
case "${1:-}" in
  "") ;;
  --check) check_mode=true ;;
  *) echo "usage: scripts/stack.sh [--check]" >&2; exit 2 ;;
esac

read -r -a replica_ports <<<"${STACK_REPLICA_PORTS:-8081 8082 8083}"
prom_port=${STACK_PROMETHEUS_PORT:-9090}
am_port=${STACK_ALERTMANAGER_PORT:-9093}
receiver_port=${STACK_RECEIVER_PORT:-9095}
rate=${STACK_RATE:-20}
check_timeout=${STACK_CHECK_TIMEOUT:-120}
scale=${STACK_TIME_SCALE:-1}
scrape_interval=${STACK_SCRAPE_INTERVAL:-}
history=${STACK_HISTORY:-3d}
out=$PWD/target/stack
myapp=${CARGO_TARGET_DIR:-target}/release/myapp
tools=(python3 scripts/e2e-alerts-tools.py)

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: FAIL: %s\n' "$*"; exit 1; }

# --- what it needs ----------------------------------------------------------------------------
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
if ! install_packages "${missing[@]}"; then
  die "missing ${missing[*]} and we are not root to install (apt-get install ${missing[*]})"
fi
say "$(server_versions prometheus promtool prometheus-alertmanager)"
need_pyyaml
say "cargo build --release"
cargo build --release --locked --quiet
"$myapp" load --help >/dev/null 2>&1 ||
  die "$myapp has no \`load\` subcommand: this branch needs the one that adds \`myapp load\`"

# Every port free before anything starts: a port in use would leave a
# half-started stack, or a stack still running from another terminal.
port_in_use() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
for port in "${replica_ports[@]}" "$prom_port" "$am_port" "$receiver_port"; do
  if port_in_use "$port"; then
    die "port $port is in use (another stack?); choose others with STACK_REPLICA_PORTS, STACK_PROMETHEUS_PORT, STACK_ALERTMANAGER_PORT, STACK_RECEIVER_PORT"
  fi
done
rm -rf "$out"
mkdir -p "$out"
# Every process this run starts, "PID NAME" a line: scripts/stack-test.sh
# checks that none is left.
: >"$out/pids"
started() { echo "$1 $2" >>"$out/pids"; }

# --- the replicas ------------------------------------------------------------------------------
cp deploy/stack/workload.json "$out/workload.json"
replicas=()
for port in "${replica_ports[@]}"; do
  start_process "$out/myapp-$port.log" "$myapp" --listen "127.0.0.1:$port" --workload-file "$out/workload.json"
  started "$LAST_PID" "replica-$port"
  replicas+=("127.0.0.1:$port")
done

# Every replica answers, and the load runs before Prometheus starts: its first
# scrape already sees traffic, where the backfilled history ends.
up_within() {  # NAME URL LOG: waits 30 s for URL to answer 2xx
  wait_until 30 curl -sf -o /dev/null "$2" || die "$1 did not answer $2 within 30 s; see $3"
}
for port in "${replica_ports[@]}"; do
  up_within "replica $port" "http://127.0.0.1:$port/healthz" "$out/myapp-$port.log"
done

# --- the load ---------------------------------------------------------------------------------------
urls=()
for address in "${replicas[@]}"; do urls+=("http://$address/work"); done
start_process "$out/load.log" "$myapp" load --rate "$rate" "${urls[@]}"
started "$LAST_PID" load

# --- the receiver, Alertmanager, Prometheus ----------------------------------------------------------
# The receiver prints on this terminal; its own log (the requests) goes to a file.
"${tools[@]}" receiver "$out/notifications.jsonl" --listen "127.0.0.1:$receiver_port" --print \
  2>"$out/receiver.log" &
PIDS+=("$!")
started "$!" receiver

# The project's routing as it is, with this receiver's port in each webhook.
sed "s|http://127.0.0.1:9095/|http://127.0.0.1:$receiver_port/|" deploy/alertmanager/alertmanager.yml >"$out/alertmanager.yml"
# The rule files prometheus.yml names (rules.yml, slo-rules.yml), each
# shortened by the same factor when the stack runs faster.
rules=()
for name in rules.yml slo-rules.yml; do
  if [ "$scale" = 1 ]; then
    rules+=("$PWD/deploy/prometheus/$name")
  else
    "${tools[@]}" shorten-rules "deploy/prometheus/$name" "$out/$name" "$scale" >/dev/null
    rules+=("$out/$name")
  fi
done
if [ "$scale" != 1 ]; then
  "${tools[@]}" alertmanager-config deploy/alertmanager/alertmanager.yml "$out/alertmanager.yml" \
    "$scale" "127.0.0.1:$receiver_port" >/dev/null
fi
# No cluster listener: nothing but the loopback web port.
start_process "$out/alertmanager.log" prometheus-alertmanager --config.file="$out/alertmanager.yml" \
  --storage.path="$out/alertmanager-data" --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address=
started "$LAST_PID" alertmanager

# The repository's prometheus.yml, with these targets, the real rules and the Alertmanager.
python3 - "$out/prometheus.yml" "$scale" "$scrape_interval" "127.0.0.1:$am_port" "${replicas[@]}" "--" "${rules[@]}" <<'PY'
import sys
from pathlib import Path

import yaml

args = sys.argv[1:]
path, scale, scrape_interval, alertmanager, *targets = args[:args.index("--")]
rules = args[args.index("--") + 1:]
config = yaml.safe_load(Path("deploy/prometheus/prometheus.yml").read_text())
# Its rule files (rules.yml, slo-rules.yml), by absolute path, or their scaled copies.
config["rule_files"] = rules
if scale != "1" or scrape_interval:
    interval = scrape_interval or f"{15000 // int(scale)}ms"
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
job = next(j for j in config["scrape_configs"] if j["job_name"] == "myapp")
job["static_configs"] = [{"targets": targets}]
config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
header = "# GENERATED by scripts/stack.sh from deploy/prometheus/prometheus.yml: the stack's targets.\n"
Path(path).write_text(header + yaml.safe_dump(config, sort_keys=False))
PY
promtool check config "$out/prometheus.yml" >"$out/promtool.txt" 2>&1 ||
  die "promtool rejects $out/prometheus.yml: $(cat "$out/promtool.txt")"
# A healthy past: STACK_HISTORY (scaled) of STACK_RATE requests per second on
# the workload file, backfilled, so that the SLO rules' long windows (up to 3d)
# start full, as in production, and a scenario burns the budget as fast there.
if [ "$history" != 0 ]; then
  read -r history_s interval_ms < <(python3 - "$history" "$scale" "$out/prometheus.yml" <<'PY'
import re, sys, yaml
units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
ms = lambda text: sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhd])", text))
interval = yaml.safe_load(open(sys.argv[3]))["global"]["scrape_interval"]
print(ms(sys.argv[1]) / 1000 / int(sys.argv[2]), ms(interval))
PY
  )
  # A sample every 4 scrapes: enough for the windows it fills (a scenario's
  # short windows hold its own scrapes), and quick to write. It ends 10 s from now, when Prometheus has started and the load is running:
  # Prometheus takes no sample before a block's end, so the stack's own series
  # begin where the history stops, without a gap (a gap without requests
  # would leave the long windows that much shorter, and fire them sooner).
  "${tools[@]}" history "$out/history.om" "$history_s" "$((interval_ms * 4))" "$rate" "$out/workload.json" --lead 10
  promtool tsdb create-blocks-from openmetrics --quiet "$out/history.om" "$out/prometheus-data" \
    >"$out/history.log" 2>&1 || die "promtool could not backfill the history: $(tail -3 "$out/history.log")"
  rm "$out/history.om"
fi
start_process "$out/prometheus.log" prometheus --config.file="$out/prometheus.yml" \
  --storage.tsdb.path="$out/prometheus-data" --web.listen-address="127.0.0.1:$prom_port"
started "$LAST_PID" prometheus
prom=http://127.0.0.1:$prom_port
alertmanager=http://127.0.0.1:$am_port

# --- every server answers --------------------------------------------------------------------------
# The receiver answers only POST; any answer means it listens.
wait_until 30 curl -s -o /dev/null "http://127.0.0.1:$receiver_port/" ||
  die "the receiver did not listen on $receiver_port within 30 s; see $out/receiver.log"
up_within Alertmanager "$alertmanager/-/ready" "$out/alertmanager.log"
up_within Prometheus "$prom/-/ready" "$out/prometheus.log"

# --- what to open, what to run ----------------------------------------------------------------------
admins=()
for address in "${replicas[@]}"; do admins+=(--admin "http://$address"); done
cat <<EOF

  Prometheus     $prom         (alerts: $prom/alerts)
  Alertmanager   $alertmanager
  receiver       http://127.0.0.1:$receiver_port/pager, /tickets   (prints each notification here, with its receiver)
$(for address in "${replicas[@]}"; do
  printf '  replica        http://%s/metrics   http://%s/docs\n' "$address" "$address"
done)
  load           $rate requests/s over the three replicas' /work ($out/load.log)
  workload file  $out/workload.json (every replica re-reads it each second)

  Rehearse an incident (another terminal, from $PWD):
    $myapp scenario scenarios/error-spike.yaml ${admins[*]}
    $myapp scenario scenarios/latency-tail.yaml ${admins[*]}
    $myapp scenario scenarios/sick-replica.yaml ${admins[*]:0:2}   (one replica)
    $myapp scenario scenarios/recovery.yaml ${admins[*]}
    $myapp scenario scenarios/fast-burn.yaml ${admins[*]}       (the SLO page, after 49m)
    $myapp scenario scenarios/slow-burn.yaml ${admins[*]}       (the SLO ticket, after 10h17m)
    $myapp scenario scenarios/within-budget.yaml ${admins[*]}   (nothing)
  (--dry-run prints the changes without making them.) Logs: $out/

EOF

# --- until Ctrl-C, or the check ---------------------------------------------------------------------
# Every process still runs: a crash is reported, not silently ignored.
all_alive() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { DEAD=$pid; return 1; }
  done
}
dead_one() {
  echo "stack: $(awk -v pid="$DEAD" '$1 == pid { print $2 }' "$out/pids") (pid $DEAD) has stopped; its log is in $out/"
}

if ! $check_mode; then
  say "running; Ctrl-C stops everything"
  while all_alive; do sleep 1; done
  dead_one
  exit 1
fi

# Prometheus scrapes all three replicas and sees traffic on each (two
# scrapes with requests between them: up to twice the 15 s scrape interval).
scraped() { [ "$(prom_query "$prom" 'count(up{job="myapp"} == 1) == 3')" ]; }
traffic() {
  [ "$(prom_query "$prom" 'count(sum by (instance) (rate(myapp_processed_ops_total{job="myapp"}[1m])) > 0) == 3')" ]
}
# Every group of the rule files the config names.
expected_groups=$(python3 -c '
import sys, yaml
print(" ".join(sorted(g["name"] for f in sys.argv[1:] for g in yaml.safe_load(open(f))["groups"])))
' deploy/prometheus/rules.yml deploy/prometheus/slo-rules.yml)
rules_loaded() {
  [ "$(curl -sf "$prom/api/v1/rules" | python3 -c '
import json, sys
print(" ".join(sorted(g["name"] for g in json.load(sys.stdin)["data"]["groups"])))')" = "$expected_groups" ]
}
knows_alertmanager() { curl -sf "$prom/api/v1/alertmanagers" | grep -qF "127.0.0.1:$am_port"; }
healthy() { all_alive && scraped && traffic && rules_loaded && knows_alertmanager; }
if ! wait_until "$check_timeout" healthy; then
  all_alive || dead_one
  scraped || echo "stack: up{job=\"myapp\"}: $(prom_query "$prom" 'up{job="myapp"}' | tr '\n' ' ')"
  traffic || echo "stack: rate by instance: $(prom_query "$prom" 'sum by (instance) (rate(myapp_processed_ops_total{job="myapp"}[1m]))' | tr '\n' ' ')"
  rules_loaded || echo "stack: the rule groups of deploy/prometheus/rules.yml and slo-rules.yml are not loaded"
  knows_alertmanager || echo "stack: Prometheus does not know Alertmanager 127.0.0.1:$am_port"
  die "Prometheus did not see all three replicas scraped and serving traffic within $check_timeout s"
fi
say "Prometheus scrapes the three replicas and sees traffic on each: $(prom_query "$prom" \
  'sum by (instance) (rate(myapp_processed_ops_total{job="myapp"}[1m]))' | tr '\n' ' ')"

# Alertmanager reaches the receiver at both paths, routed and inhibited as
# deploy/alertmanager/alertmanager.yml says: three test alerts, notified after
# its group_wait (30 s): a page and a ticket of the same SLO (the ticket is
# inhibited) and a warning (to tickets).
summary='"annotations": {"summary": "scripts/stack.sh --check"}'
curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' "$alertmanager/api/v2/alerts" -d "[
  {\"labels\": {\"alertname\": \"StackCheckBurn\", \"severity\": \"page\", \"sloth_service\": \"myapp\", \"sloth_slo\": \"check\"}, $summary},
  {\"labels\": {\"alertname\": \"StackCheckBurn\", \"severity\": \"ticket\", \"sloth_service\": \"myapp\", \"sloth_slo\": \"check\"}, $summary},
  {\"labels\": {\"alertname\": \"StackCheckWarning\", \"severity\": \"warning\"}, $summary}]" ||
  die "Alertmanager refused the test alerts"
# "ALERTNAME SEVERITY PATH" of each alert the receiver got.
got() {
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    for alert in record["payload"]["alerts"]:
        print(alert["labels"]["alertname"], alert["labels"]["severity"], record["path"])' "$out/notifications.jsonl" 2>/dev/null | sort
}
both() { [ "$(got | wc -l)" -ge 2 ]; }
wait_until 60 both || die "the test alerts did not reach the receiver within 60 s (got: $(got | paste -sd,)); see $out/alertmanager.log"
sleep 2  # the inhibited ticket would have come with them
expected="StackCheckBurn page /pager
StackCheckWarning warning /tickets"
[ "$(got)" = "$expected" ] ||
  die "the receiver got [$(got | paste -sd,)], expected [$(paste -sd, <<<"$expected")]: the page to /pager, its ticket inhibited, the warning to /tickets"
say "test alerts went through Alertmanager to the receiver: the page to /pager, the warning to /tickets, the ticket inhibited by the page"
echo "stack --check: PASS"
