#!/usr/bin/env bash
# Alerts, proven end to end. Three replicas of the release binary share one
# --workload-file, as the pods of a Deployment share a mounted ConfigMap. A
# real Prometheus (Debian 13's 2.53.3, use_trixie_tools) scrapes them every
# second and sends its alerts to a real Alertmanager (Debian 13's 0.28.1),
# which notifies a webhook receiver that this script runs
# (scripts/e2e-alerts-tools.py receiver: every POST body lands in
# target/e2e-alerts/notifications.jsonl). A load generator of the script's own
# sends a few requests per second to each replica. The file starts laid out
# as the kubelet mounts a ConfigMap (workload.json -> ..data/workload.json,
# ..data -> ..<version>/), and an invalid version of it is rejected, logged
# and changes nothing. Then the script changes the file and checks what
# reaches the receiver:
#   1. {"error_rate": 1.0} by an atomic swap of the ..data symlink, as the
#      kubelet does after `kubectl edit configmap`: MyappHighErrorRatio arrives
#      firing, with exactly the labels and the annotations (description
#      rendered with the value) that the rules give, while
#      MyappErrorRatioAboveConfigured stays silent: the replicas fail as they
#      were told to. Swapped back: MyappHighErrorRatio arrives resolved.
#   2. The file becomes a plain one (same contents: no change counted), then
#      {"slow_rate": 0.2, "slow_delay_ms": 3000} is written to a temp file
#      renamed over it, as editors and config tools write: MyappHighLatencyP99
#      arrives firing, its p99 where 20% of requests at 3 s put it while the
#      median stays fast; rewritten back, it arrives resolved.
#   3. Every request to replica a asks ?fail=true while its error_rate is 0:
#      MyappErrorRatioAboveConfigured arrives firing for replica a alone (its
#      description saying it is configured to 0%); when the requests stop
#      asking, it arrives resolved.
# Prometheus scrapes as one without native histograms does: OpenMetrics text,
# every scrape (myapp's debug log says so), with exemplar-storage; the trace
# id of a request sent with a traceparent comes back from query_exemplars.
# After every change the myapp_workload_* gauges that Prometheus scraped equal
# what the file says, myapp_workload_changes_total counts each change exactly
# once per replica, and the answers the load generator got show the change in
# force on every replica within 2 s. Alertmanager sends nothing else, and
# each notification reaches the receiver its severity routes it to.
#
# Alertmanager runs deploy/alertmanager/alertmanager.yml, the project's
# routing, mechanically copied (scripts/e2e-alerts-tools.py
# alertmanager-config): its webhooks sent to this script's receiver, which
# records the path (/pager, /tickets: the receiver), and every group_wait,
# group_interval, repeat_interval and resolve_timeout divided by SCALE, as the
# rules' durations are.
#
# The rules are a TEST COPY of deploy/prometheus/rules.yml, made mechanically
# at each run (scripts/e2e-alerts-tools.py shorten-rules): every for: and every
# range in the expressions divided by SCALE (10: 5m -> 30s, for: 5m -> 30s);
# names, labels and annotations untouched (descriptions still say "5m"). The
# real file stays the one source. One factor for every duration keeps their
# ratios, so a rule fires here exactly when it would in production, SCALE
# times sooner.
#
# Prints the time from each change to the firing and to the resolved
# notification, and records it in target/e2e-alerts/times.tsv. Takes about
# 3.5 minutes (212 s on the 2-core machine); every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SCALE=10
RATE=5  # requests per second to each replica
out=$PWD/target/e2e-alerts
tools=(python3 scripts/e2e-alerts-tools.py)
rm -rf "$out"
mkdir -p "$out/control"

if ! use_trixie_tools prometheus promtool prometheus-alertmanager; then
  echo "e2e-alerts: FAIL: Debian 13's prometheus, promtool and prometheus-alertmanager could not be had"
  exit 1
fi
echo "e2e-alerts: $(server_versions prometheus promtool prometheus-alertmanager amtool)"
check "the servers are Debian 13's: Prometheus 2.53.3, Alertmanager 0.28.1" \
  test "$(server_versions prometheus prometheus-alertmanager)" = "prometheus 2.53.3+ds1, prometheus-alertmanager 0.28.1+ds"
need_pyyaml
cargo build --release --locked --quiet

# --- the workload file ------------------------------------------------------------------
# The replicas start from the file (the flags' defaults are 0..2000 ms and an
# error rate of 0.5: the gauges show which won).
wl_dir=$out/workload
wl_file=$wl_dir/workload.json
mkdir -p "$wl_dir"
settings='{"error_rate": 0.0, "max_delay_ms": 20, "min_delay_ms": 5, "slow_delay_ms": 5000, "slow_rate": 0.0}'
initial=$settings
# myapp_workload_changes_total{source="file"}: reading the file at start-up
# counts as one change applied.
applied=1
rejected=0
counts() {
  printf '{"flag/applied": 1, "flag/rejected": 0, "api/applied": 0, "api/rejected": 0, '
  printf '"file/applied": %d, "file/rejected": %d}' "$applied" "$rejected"
}
now() { date +%s.%N; }

# change_by_rename JSON: a temp file beside the file, renamed over it (as
# editors and config tools write). Sets CHANGED_AT to the time just before
# the rename: a request sent before it was answered under the old settings.
change_by_rename() {
  printf '%s\n' "$1" >"$wl_dir/.workload.json.tmp"
  CHANGED_AT=$(now)
  mv -f "$wl_dir/.workload.json.tmp" "$wl_file"
}

# change_by_swap JSON: what the kubelet does to a mounted ConfigMap: the new
# contents in a new directory, the ..data symlink pointed at it by renaming a
# new symlink over it (atomic), the old directory removed. workload.json is a
# symlink to ..data/workload.json and never changes itself. Sets CHANGED_AT
# as change_by_rename does.
version=0
change_by_swap() {
  version=$((version + 1))
  local old
  old=$(readlink "$wl_dir/..data" 2>/dev/null || true)
  mkdir "$wl_dir/..v$version"
  printf '%s\n' "$1" >"$wl_dir/..v$version/workload.json"
  ln -s "..v$version" "$wl_dir/..data_tmp"
  CHANGED_AT=$(now)
  mv -T "$wl_dir/..data_tmp" "$wl_dir/..data"
  if [ -n "$old" ]; then rm -rf "${wl_dir:?}/$old"; fi
}
# The layout of a mounted ConfigMap from the start: a replica that resolved
# the symlinks once would keep reading a directory that the first swap removes.
change_by_swap "$settings"
ln -s ..data/workload.json "$wl_file"

# expect CHANGE_JSON: the settings the replicas should now run (a change
# applies like a PUT: the keys it holds) and one more change applied.
expect() {
  settings=$("${tools[@]}" merge "$settings" "$1")
  applied=$((applied + 1))
}

# --- the test copy of the rules --------------------------------------------------------
shortened=$("${tools[@]}" shorten-rules deploy/prometheus/rules.yml "$out/rules.yml" "$SCALE")
rules_ok() { promtool check rules "$out/rules.yml" >"$out/promtool-rules.txt" 2>&1; }
check "test copy of rules.yml, durations divided by $SCALE ($shortened), promtool accepts it" rules_ok

# --- three replicas --------------------------------------------------------------------------
names=(a b c)
declare -A public instance
instances=()
for name in "${names[@]}"; do
  # The debug line of each scrape says which format it was answered in.
  RUST_LOG=info,myapp::exposition=debug start_myapp "$out/myapp-$name.log" --workload-file "$wl_file"
  public[$name]=$MYAPP_ADDR
  instance[$name]=$MYAPP_METRICS_ADDR
  instances+=("$MYAPP_METRICS_ADDR")
done
echo "e2e-alerts: replicas a=${public[a]} b=${public[b]} c=${public[c]}, workload file $wl_file"

# --- the receiver, Alertmanager, Prometheus -----------------------------------------------------
start_server "$out/receiver.log" "${tools[@]}" receiver "$out/notifications.jsonl"
receiver=$SERVER_ADDR

am_port=$(free_port)
# The project's Alertmanager config, its webhooks sent to this receiver (one
# path per receiver: /pager, /tickets) and its durations divided by SCALE, as
# the rules' are: group_wait 30s -> 3s, group_interval 5m -> 30s.
am_shortened=$("${tools[@]}" alertmanager-config deploy/alertmanager/alertmanager.yml "$out/alertmanager.yml" "$SCALE" "$receiver")
echo "e2e-alerts: test copy of deploy/alertmanager/alertmanager.yml: $am_shortened"
am_config_ok() { amtool check-config "$out/alertmanager.yml" >"$out/amtool.txt" 2>&1; }
check "amtool accepts the test copy of the Alertmanager config" am_config_ok
# No cluster listener: nothing but the loopback web port.
start_process "$out/alertmanager.log" prometheus-alertmanager --config.file="$out/alertmanager.yml" \
  --storage.path="$out/alertmanager-data" --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address=
alertmanager=http://127.0.0.1:$am_port

# The repository's prometheus.yml, every 1 s, with these targets, the test
# copy of the rules and the Alertmanager.
python3 - "$out/prometheus.yml" "$out/rules.yml" "127.0.0.1:$am_port" "${instances[@]}" <<'PY'
import sys
from pathlib import Path

import yaml

path, rules, alertmanager, *targets = sys.argv[1:]
config = yaml.safe_load(Path("deploy/prometheus/prometheus.yml").read_text())
config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
config["rule_files"] = [rules]
job = next(j for j in config["scrape_configs"] if j["job_name"] == "myapp")
job["static_configs"] = [{"targets": targets}]
config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
PY
prom_config_ok() { promtool check config "$out/prometheus.yml" >"$out/promtool-config.txt" 2>&1; }
check "promtool accepts the generated Prometheus config" prom_config_ok
prom_port=$(free_port)
start_process "$out/prometheus.log" prometheus --config.file="$out/prometheus.yml" \
  --storage.tsdb.path="$out/tsdb" --web.listen-address="127.0.0.1:$prom_port" --enable-feature=exemplar-storage
prom=http://127.0.0.1:$prom_port
echo "e2e-alerts: prometheus $prom, alertmanager $alertmanager, receiver http://$receiver"

# --- traffic, and the starting point ------------------------------------------------------------
start_process "$out/load.log" "${tools[@]}" load --rate "$RATE" --duration 400 \
  --control "$out/control" --log "$out/answers.jsonl" a="${public[a]}" b="${public[b]}" c="${public[c]}"
STARTED_AT=$(now)

ready() {
  [ "$(prom_query "$prom" 'count(up{job="myapp"} == 1) == 3 and min(count_over_time(up{job="myapp"}[1m])) >= 2')" ] &&
    curl -sf "$prom/api/v1/alertmanagers" | grep -qF "127.0.0.1:$am_port"
}
if ! wait_until 30 ready; then
  fail "prometheus scrapes the three replicas and knows the Alertmanager within 30 s; see $out/prometheus.log"
  summary "e2e-alerts"
  exit 1
fi
# Traffic flows and fails nowhere.
steady() { [ "$(prom_query "$prom" 'count(job_instance:myapp_processed_ops_errors:ratio_rate5m == 0) == 3')" ]; }
if ! wait_until 20 steady; then
  fail "every replica answers traffic without errors within 20 s"
  summary "e2e-alerts"
  exit 1
fi

gauges_ok() { "${tools[@]}" gauges "$prom" "$settings" "$(counts)" "${instances[@]}"; }
# expect_gauges WHAT: within 6 s (the file is read every 1 s, scraped every 1 s).
expect_gauges() {
  if wait_until 6 gauges_ok; then
    pass "$1: every replica's gauges say $settings; changes_total $(counts)"
  else
    fail "$1: the gauges Prometheus scraped differ:"
    gauges_ok | sed 's/^/        /' || true
  fi
}
expect_gauges "started from the file"

# OpenMetrics text, and its exemplars: one request to replica a with a
# traceparent and no delay lands in the lowest bucket (le=0.005), where the
# load's requests (5 ms at least) never do, so no other exemplar replaces it.
trace_id=$(printf '%08x' $RANDOM $RANDOM $RANDOM $RANDOM)
curl -s -o /dev/null -H "traceparent: 00-$trace_id-00f067aa0ba902b7-01" "http://${public[a]}/work?delay_ms=0"
bucket_exemplar() { [ "$(prom_exemplars "$prom" myapp_request_duration_seconds_bucket "$trace_id")" = myapp_request_duration_seconds_bucket ]; }
check "query_exemplars returns trace $trace_id on myapp_request_duration_seconds_bucket, from OpenMetrics" \
  wait_until 10 bucket_exemplar
check_scrape_format openmetrics "$out" "${names[@]}"

# An invalid file: logged with the reason, counted, nothing else changes.
change_by_swap '{"error_rate": 1.5}'
rejected=$((rejected + 1))
expect_gauges "an invalid file (error_rate 1.5) is rejected and changes nothing"
logged() {
  local name
  for name in "${names[@]}"; do
    grep 'workload change rejected' "$out/myapp-$name.log" | grep -q 'error_rate' || return 1
  done
}
check "every replica logs the rejection with the reason" logged

# A whole window of healthy traffic before the first change, as in
# production: the times to the notifications are then 1/SCALE of the real ones.
window=$((300 / SCALE))
sleep "$(awk -v since="$STARTED_AT" -v w="$window" -v now="$(now)" 'BEGIN { l = since + w - now; print (l > 0 ? l : 0) }')"
check "no notification in the first $window s of healthy traffic" test ! -s "$out/notifications.jsonl"

# --- helpers for the phases -----------------------------------------------------------------------
notes=$out/notifications.jsonl
printf 'alert\tinstance\tchange\tfiring_s\tresolved_s\n' >"$out/times.tsv"
declare -A firing_after

# await ALERT STATUS SINCE LIMIT [--instance I]: waits until the receiver has
# that notification, received after SINCE, at most LIMIT s after SINCE; sets
# RECEIVED_AT. On a timeout: FAIL, what Prometheus and Alertmanager hold, exit.
await() {
  local alert=$1 status=$2 since=$3 limit=$4
  shift 4
  local left
  left=$(awk -v since="$since" -v limit="$limit" -v now="$(now)" 'BEGIN { l = since + limit - now; print (l < 1 ? 1 : int(l + 0.999)) }')
  if wait_until "$left" "${tools[@]}" notified "$notes" "$alert" "$status" --after "$since" "$@"; then
    RECEIVED_AT=$("${tools[@]}" notified "$notes" "$alert" "$status" --after "$since" "$@")
    return 0
  fi
  fail "$alert${*:+ $*} arrived $status within $limit s of the change"
  echo "  prometheus alerts:   $(curl -s "$prom/api/v1/alerts")"
  echo "  alertmanager alerts: $(curl -s "$alertmanager/api/v2/alerts")"
  summary "e2e-alerts"
  exit 1
}

# check_notification DESCRIPTION ALERT STATUS SINCE ARGS...: its labels and
# annotations are those the rules give (scripts/e2e-alerts-tools.py).
check_notification() {
  local description=$1 result
  shift
  if result=$("${tools[@]}" check-notification "$notes" "$@" --rules deploy/prometheus/rules.yml --test-rules "$out/rules.yml" 2>&1); then
    pass "$description ($result)"
  else
    fail "$description:"
    printf '%s\n' "$result" | sed 's/^/        /'
  fi
}

# elapsed FROM TO: seconds, one decimal.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# answers FROM TO ARGS...: the load generator's answers to requests sent in
# [FROM, TO) (scripts/e2e-alerts-tools.py answers).
answers() {
  "${tools[@]}" answers "$out/answers.jsonl" "$@" 2>/dev/null
}
later() { awk -v t="$1" -v d="$2" 'BEGIN { printf "%.3f", t + d }'; }
all=(--replica a --replica b --replica c)

# --- 1. every replica fails: error_rate 1.0 ------------------------------------------------------
echo "e2e-alerts: 1. error_rate 1.0 in the file (a ..data symlink swap)"
change='{"error_rate": 1.0}'
change_by_swap "$change"
errors_at=$CHANGED_AT
expect "$change"
expect_gauges "  error_rate 1.0"
await MyappHighErrorRatio firing "$errors_at" 90 --receiver pager
fired=$RECEIVED_AT
echo "  MyappHighErrorRatio firing $(elapsed "$errors_at" "$fired") s after the change"
# Every request failed for the whole window before it fired: the value is 100%.
check_notification "  MyappHighErrorRatio firing: the rule's labels, summary, description with 100%" \
  MyappHighErrorRatio firing --after "$errors_at" --label job=myapp --value 100%
silent() { ! prom_query "$prom" 'ALERTS{alertname="MyappErrorRatioAboveConfigured"}' >/dev/null 2>&1; }
check "  MyappErrorRatioAboveConfigured not even pending: the replicas fail as configured" silent
check "  answers to requests sent from 2 s after the change were all 500, on every replica" \
  answers "$(later "$errors_at" 2)" "$(now)" "${all[@]}" --status 500
check "  answers before the change were all 200" answers "$STARTED_AT" "$errors_at" "${all[@]}" --status 200

change_by_swap "$initial"
back_at=$CHANGED_AT
expect "$initial"
expect_gauges "  back to the first file"
await MyappHighErrorRatio resolved "$back_at" 60 --receiver pager
resolved=$RECEIVED_AT
echo "  MyappHighErrorRatio resolved $(elapsed "$back_at" "$resolved") s after the change back"
check_notification "  MyappHighErrorRatio resolved: the same labels and summary" \
  MyappHighErrorRatio resolved --after "$back_at" --label job=myapp
check "  answers from 2 s after the change back were all 200" \
  answers "$(later "$back_at" 2)" "$(now)" "${all[@]}" --status 200
printf 'MyappHighErrorRatio\t-\terror_rate 1.0 (..data swap)\t%s\t%s\n' \
  "$(elapsed "$errors_at" "$fired")" "$(elapsed "$back_at" "$resolved")" >>"$out/times.tsv"

# --- 2. a slow tail, through a plain file renamed over ------------------------------------------
echo "e2e-alerts: 2. the file becomes a plain one; slow_rate 0.2 x 3000 ms (a temp file renamed over it)"
# The same contents in a plain file instead of the symlink: nothing to apply.
change_by_rename "$initial"
sleep 2.5
expect_gauges "  same contents in a plain file: no change counted"

change='{"slow_rate": 0.2, "slow_delay_ms": 3000}'
change_by_rename "$change"
slow_at=$CHANGED_AT
expect "$change"
expect_gauges "  slow_rate 0.2, slow_delay_ms 3000"
check "  answers before the slow tail were all fast" \
  answers "$(later "$back_at" 2)" "$slow_at" "${all[@]}" --none-slower 1
await MyappHighLatencyP99 firing "$slow_at" 75 --receiver tickets
fired=$RECEIVED_AT
echo "  MyappHighLatencyP99 firing $(elapsed "$slow_at" "$fired") s after the change"
# Where the p99 must be: the fast requests (max 20 ms) lie below the bucket
# edge above 3 s's lower one (lo), the slow ones in (lo, hi]. With a share s of
# slow requests, histogram_quantile puts the p99 at hi - (hi - lo) * 0.01 / s;
# s is 0.2 give or take chance: allow 0.1 to 0.4. The median stays in the
# bucket of the fast requests.
buckets=$(sed -n 's/.* buckets=\([0-9.,]*\) .*/\1/p' "$out/myapp-a.log")
read -r lo hi fast < <(echo "$buckets" | tr , '\n' | awk '
  $1 < 3 { lo = $1 } $1 >= 3 && hi == "" { hi = $1 } $1 >= 0.02 && fast == "" { fast = $1 }
  END { print lo, hi, fast }')
read -r p99_min p99_max < <(awk -v lo="$lo" -v hi="$hi" 'BEGIN { print hi - (hi - lo) * 0.01 / 0.1, hi - (hi - lo) * 0.01 / 0.4 }')
p99=$("${tools[@]}" value-at-firing "$prom" MyappHighLatencyP99 'job:myapp_request_duration_seconds:p99_rate5m')
p50=$("${tools[@]}" value-at-firing "$prom" MyappHighLatencyP99 'job:myapp_request_duration_seconds:p50_rate5m')
between() { awk -v v="$2" -v lo="$1" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }
check "  p99 when it fired, $p99 s, in [$p99_min, $p99_max] (buckets $lo..$hi, 10 to 40% slow)" \
  between "$p99_min" "$p99" "$p99_max"
check "  p50 when it fired, $p50 s, at most $fast (the bucket of the 5..20 ms requests)" between 0 "$p50" "$fast"
check_notification "  MyappHighLatencyP99 firing: the rule's labels, summary, description with $p99 s" \
  MyappHighLatencyP99 firing --after "$slow_at" --label job=myapp --value "$("${tools[@]}" humanize-duration "$p99")"
check "  from 2 s after the change every replica answered some requests in 3 s or more, the others under 1 s" \
  answers "$(later "$slow_at" 2)" "$(now)" "${all[@]}" --slow 3 --fast-below 1
# For the notes: after the change back from 1.0, the replicas' ratio over the
# window stayed above 0 + 0.1 for 90% of it, so MyappErrorRatioAboveConfigured
# was pending that long, and its for: (as long as the window) kept it quiet.
span=$(awk -v a="$back_at" -v b="$(now)" 'BEGIN { print int(b - a) }')
pending=$(prom_query "$prom" "count_over_time(ALERTS{alertname=\"MyappErrorRatioAboveConfigured\",alertstate=\"pending\"}[${span}s])" |
  awk '{print $NF}' | paste -sd/ || true)
echo "  (MyappErrorRatioAboveConfigured was pending ${pending:-0} s on the replicas after the change back from 1.0, never firing)"

# 3. starts as the slow tail ends: they touch different alerts.
change_by_rename "$initial"
fast_at=$CHANGED_AT
echo fail=true >"$out/control/a"
fail_at=$(now)
expect "$initial"
expect_gauges "  back to the first settings"
echo "e2e-alerts: 3. every request to replica a asks ?fail=true, its error_rate still 0"
await MyappHighLatencyP99 resolved "$fast_at" 75 --receiver tickets
resolved=$RECEIVED_AT
echo "  MyappHighLatencyP99 resolved $(elapsed "$fast_at" "$resolved") s after the change back"
check_notification "  MyappHighLatencyP99 resolved: the same labels and summary" \
  MyappHighLatencyP99 resolved --after "$fast_at" --label job=myapp
check "  no answer to a request sent from 2 s after the change back took 1 s" \
  answers "$(later "$fast_at" 2)" "$(now)" "${all[@]}" --none-slower 1
printf 'MyappHighLatencyP99\t-\tslow_rate 0.2 x 3000 ms (rename)\t%s\t%s\n' \
  "$(elapsed "$slow_at" "$fired")" "$(elapsed "$fast_at" "$resolved")" >>"$out/times.tsv"

await MyappErrorRatioAboveConfigured firing "$fail_at" 75 --instance "${instance[a]}" --receiver tickets
fired=$RECEIVED_AT
echo "  MyappErrorRatioAboveConfigured firing $(elapsed "$fail_at" "$fired") s after replica a's requests began to ask"
check_notification "  MyappErrorRatioAboveConfigured firing for a: the rule's labels, summary, description with 100% and 0%" \
  MyappErrorRatioAboveConfigured firing --after "$fail_at" --instance "${instance[a]}" \
  --label job=myapp --label "instance=${instance[a]}" --value 100% --configured 0%
# The time first: a request sent after it may already be a plain one.
ok_at=$(now)
rm "$out/control/a"
only_a_failed() {
  answers "$(later "$fail_at" 1)" "$ok_at" --replica a --status 500 &&
    answers "$(later "$fail_at" 1)" "$ok_at" --replica b --replica c --status 200
}
check "  replica a answered 500 to every ?fail=true, b and c 200" only_a_failed
await MyappErrorRatioAboveConfigured resolved "$ok_at" 75 --instance "${instance[a]}" --receiver tickets
resolved=$RECEIVED_AT
echo "  MyappErrorRatioAboveConfigured resolved $(elapsed "$ok_at" "$resolved") s after they stopped"
check_notification "  MyappErrorRatioAboveConfigured resolved for a: the same labels and summary" \
  MyappErrorRatioAboveConfigured resolved --after "$ok_at" --instance "${instance[a]}" \
  --label job=myapp --label "instance=${instance[a]}" --configured 0%
printf 'MyappErrorRatioAboveConfigured\ta\t?fail=true to one replica\t%s\t%s\n' \
  "$(elapsed "$fail_at" "$fired")" "$(elapsed "$ok_at" "$resolved")" >>"$out/times.tsv"

# --- nothing else ------------------------------------------------------------------------------------
sent=$(python3 - "$notes" "${instance[a]}" <<'PY'
import json, sys
log, a = sys.argv[1:]
for line in open(log):
    record = json.loads(line)
    for alert in record["payload"]["alerts"]:
        labels = alert["labels"]
        where = "a" if labels.get("instance") == a else labels.get("instance", "-")
        print(labels["alertname"], where, alert["status"], "to", record["path"])
PY
)
sent=$(sort <<<"$sent")
# The critical one to the pager, the warnings to tickets
# (deploy/alertmanager/alertmanager.yml's routes).
expected_sent="MyappErrorRatioAboveConfigured a firing to /tickets
MyappErrorRatioAboveConfigured a resolved to /tickets
MyappHighErrorRatio - firing to /pager
MyappHighErrorRatio - resolved to /pager
MyappHighLatencyP99 - firing to /tickets
MyappHighLatencyP99 - resolved to /tickets"
check "the receiver got these notifications, each once, and no other: $(echo "$sent" | paste -sd, | sed 's/,/, /g')" \
  test "$sent" = "$expected_sent"

echo
echo "e2e-alerts: from each change to the notification (rules at 1/$SCALE of their durations):"
column -t -s $'\t' "$out/times.tsv" | sed 's/^/  /'
echo "e2e-alerts: $SECONDS s in all; files in $out"
summary "e2e with Alertmanager"
