#!/usr/bin/env bash
# A real Prometheus in the loop: Debian 13's 2.53.3 (use_trixie_tools). Starts
# three replicas of the release binary (the third with --metrics-listen and
# --metrics-token-file) and one Prometheus server scraping them every second
# with deploy/prometheus/prometheus.yml and rules.yml, with native histograms
# (--enable-feature=native-histograms, which asks for protobuf) and the
# classic buckets kept beside them (scrape_classic_histograms: true), so that
# the rules and the dashboard read the classic buckets while the native ones
# are there too. Sends a known number of /work requests with curl, then checks
# that Prometheus reports exactly what the client saw, in the classic and the
# native histogram, that the latency median lies in the delay range, that the
# rules evaluate and that every dashboard query returns data; then (the values
# section, scripts/e2e-values.py) that every dashboard query and recorded
# series holds the value computed from what curl saw, the replicas' flags and
# /proc, within the tolerance each line states; then that (with
# exemplar-storage) query_exemplars returns the trace id of a traced request;
# last, loads one replica for a few seconds and holds the dashboard's CPU
# panel against what /proc says the process used. OpenMetrics text scrapes,
# with their exemplars, are proven by scripts/e2e-alerts.sh, whose Prometheus
# scrapes as one without native histograms does. Leaves its files in
# target/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

REQUESTS=${REQUESTS:-300}
MIN_DELAY_MS=10
MAX_DELAY_MS=40
out=$PWD/target/e2e
rm -rf "$out"
mkdir -p "$out"

if ! use_trixie_tools prometheus promtool; then
  echo "e2e: FAIL: Debian 13's prometheus and promtool could not be had"
  exit 1
fi
echo "e2e: $(server_versions prometheus promtool)"
check "the server is Debian 13's Prometheus 2.53.3" test "$(server_versions prometheus)" = "prometheus 2.53.3+ds1"
if ! need_package go golang-go || { [ ! -d /usr/share/gocode/src/github.com/prometheus/common/expfmt ] &&
  ! install_packages golang-github-prometheus-common-dev golang-github-prometheus-client-model-dev; }; then
  echo "e2e: FAIL: Go or Debian's golang-github-prometheus-common-dev is missing and we are not root to install them"
  exit 1
fi
need_pyyaml
cargo build --release --locked --quiet

# --- values: every recorded series and dashboard query against what we know ----------
# scripts/e2e-values.py computes each expected figure without myapp's help: from
# curl's statuses and timings, the replicas' flags, /proc, and the sample times
# Prometheus holds; see its docstring for the tolerances. values_before notes
# /proc and the time once Prometheus scrapes every replica and makes two
# workload changes on replica a (one applied, one rejected); values_check waits
# for the traffic's last scrape, notes /proc again (the snapshot) and checks
# every query at that instant.
values_state=$out/values.json
values_changes=()

values_before() {
  local name specs=()
  for name in "${names[@]}"; do
    specs+=(--replica "$name=${public[$name]},${metrics[$name]},${pid[$name]},${flags[*]} ${workload[$name]}")
  done
  python3 scripts/e2e-values.py before "$values_state" "${specs[@]}"
  # A scrape between the note and the changes, so that the window holds their 0.
  sleep 1.2
  local applied rejected
  applied=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data '{"error_rate": 0.5}' "http://${public[a]}/admin/workload")
  rejected=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data '{"error_rate": 1.5}' "http://${public[a]}/admin/workload")
  check "replica a: PUT /admin/workload of its own error rate is applied ($applied), of 1.5 rejected ($rejected)" \
    test "$applied" = 200 -a "$rejected" = 400
  values_changes=(--change a:api/applied --change a:api/rejected)
}

values_all_counted() {
  [ "$(prom_query "$prom" 'sum(myapp_request_duration_seconds_count)')" = "$REQUESTS" ]
}

values_check() {
  local verdict text
  wait_until 20 values_all_counted || true
  # One more rule evaluation after the last scrape of the traffic, then the
  # snapshot; then time for the scrapes before it to be stored.
  sleep 1.5
  python3 scripts/e2e-values.py snapshot "$values_state" "${values_changes[@]}"
  sleep 1.5
  echo "e2e: values in prometheus:"
  while IFS=$'\t' read -r verdict text; do
    case $verdict in
      ok) pass "  $text" ;;
      FAIL) fail "  $text" ;;
      *) echo "        $text" ;;
    esac
  done < <(python3 scripts/e2e-values.py check "$values_state" --traffic "$out/statuses.txt" \
    --prometheus "$prom" --buckets "$buckets" 2>&1 || echo "FAIL	e2e-values.py check failed")
}

# --- the replicas -------------------------------------------------------------
printf 'e2e-%s\n' "$RANDOM$RANDOM" >"$out/token"
flags=(--min-delay-ms "$MIN_DELAY_MS" --max-delay-ms "$MAX_DELAY_MS")
names=(a b c)
# Each replica's own workload settings, all given as flags, so that the values
# section can hold the myapp_workload_* gauges against them. c's slow requests
# (45 ms) stay in the bucket of the slowest uniform ones.
declare -A workload=(
  [a]="--error-rate 0.5 --slow-rate 0 --slow-delay-ms 5000"
  [b]="--error-rate 0.25 --slow-rate 0 --slow-delay-ms 3000"
  [c]="--error-rate 0.75 --slow-rate 0.02 --slow-delay-ms 45"
)
declare -A public metrics pid
for name in "${names[@]}"; do
  extra=()
  if [ "$name" = c ]; then
    extra=(--metrics-listen 127.0.0.1:0 --metrics-token-file "$out/token")
  fi
  # The debug line of each scrape says which format it was answered in.
  # shellcheck disable=SC2086 # the workload flags are words
  RUST_LOG=info,myapp::exposition=debug start_myapp "$out/myapp-$name.log" "${flags[@]}" ${workload[$name]} "${extra[@]}"
  public[$name]=$MYAPP_ADDR
  pid[$name]=$MYAPP_PID
  metrics[$name]=$MYAPP_METRICS_ADDR
done
echo "e2e: replicas a=${public[a]} b=${public[b]} c=${public[c]} (c: metrics on ${metrics[c]}, behind a token)"

# --- Prometheus ------------------------------------------------------------------
# The repository's prometheus.yml, every 1 s, with these targets, the classic
# buckets kept beside the native ones (2.x's name; 3.x calls it
# always_scrape_classic_histograms). The token replica needs its own scrape
# config (one authorization per config), relabelled into job "myapp", which the
# rules and the dashboard select.
python3 - "$out/prometheus.yml" "${metrics[a]}" "${metrics[b]}" "${metrics[c]}" "$out/token" <<'PY'
import sys
from pathlib import Path

import yaml

path, a, b, c, token = sys.argv[1:]
repo = Path("deploy/prometheus").resolve()
config = yaml.safe_load((repo / "prometheus.yml").read_text())
config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
config["rule_files"] = [str(repo / name) for name in config["rule_files"]]
job = next(j for j in config["scrape_configs"] if j["job_name"] == "myapp")
job["static_configs"] = [{"targets": [a, b]}]
job["scrape_classic_histograms"] = True
config["scrape_configs"].append({
    **job,
    "job_name": "myapp-with-token",
    "static_configs": [{"targets": [c]}],
    "authorization": {"credentials_file": token},
    "relabel_configs": [{"target_label": "job", "replacement": "myapp"}],
})
Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
PY
config_ok() { promtool check config "$out/prometheus.yml" >"$out/promtool-config.txt" 2>&1; }
check "promtool accepts the generated config" config_ok

# The server's feature flags: native histograms (protobuf scrapes) and the
# exemplar storage that query_exemplars reads.
features=native-histograms,exemplar-storage
port=$(free_port)
start_process "$out/prometheus.log" prometheus --config.file="$out/prometheus.yml" \
  --storage.tsdb.path="$out/tsdb" --web.listen-address="127.0.0.1:$port" --enable-feature="$features"
prom=http://127.0.0.1:$port
echo "e2e: prometheus $prom (--enable-feature=$features)"

# Every target up, and scraped at least twice before the traffic, so that
# rate() sees the counters start from their zero.
ready() { [ "$(prom_query "$prom" 'min(count_over_time(up{job="myapp"}[1m])) >= 2 and count(up{job="myapp"} == 1) == 3')" ]; }
if ! wait_until 30 ready; then
  echo "e2e: FAIL: prometheus does not scrape the three replicas; see $out/prometheus.log"
  prom_query "$prom" 'up' || true
  exit 1
fi

values_before

# --- the traffic ------------------------------------------------------------------
# Each line: replica, status, and curl's time_connect and time_starttransfer
# (between them lies the server's whole handling of the request; curl may send
# the request before it notes time_pretransfer, so that one cannot serve).
for i in $(seq 0 $((REQUESTS - 1))); do echo "${public[${names[i % 3]}]}"; done |
  xargs -P 10 -I{} curl -s -o /dev/null -w '{} %{http_code} %{time_connect} %{time_starttransfer}\n' "http://{}/work" >"$out/statuses.txt"
declare -A sent
for name in "${names[@]}"; do
  for status in 200 500; do
    sent[$name/$status]=$(grep -c "^${public[$name]} $status " "$out/statuses.txt" || true)
  done
  echo "e2e: sent to $name: ${sent[$name/200]} x 200, ${sent[$name/500]} x 500"
done
ok=$(grep -c '^[^ ]* 200 ' "$out/statuses.txt" || true)
errors=$(grep -c '^[^ ]* 500 ' "$out/statuses.txt" || true)
check "every request answered 200 or 500 ($ok + $errors = $REQUESTS)" test $((ok + errors)) -eq "$REQUESTS"

# --- what Prometheus says ------------------------------------------------------------
# The histogram median lies between the bucket edges around the delay range.
buckets=$(sed -n 's/.* buckets=\([0-9.,]*\) .*/\1/p' "$out/myapp-a.log")
read -r low high < <(echo "$buckets" | tr , '\n' | awk -v min="$MIN_DELAY_MS" -v max="$MAX_DELAY_MS" '
  BEGIN { low = 0; high = "+Inf" }
  $1 <= min / 1000 { low = $1 }
  $1 >= max / 1000 && high == "+Inf" { high = $1 }
  END { print low, high }')
between() { awk -v v="$2" -v lo="$1" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }
expected_by_status="status=200 $ok
status=500 $errors"

counted() { [ "$(prom_query "$prom" 'sum(myapp_processed_ops_total)')" = "$REQUESTS" ]; }
wait_until 20 counted || true
echo "e2e: prometheus says:"
ups=$(prom_query "$prom" 'up{job="myapp"}' | awk '{print $2}' | sort | uniq -c | xargs)
check "  up is 1 for the three replicas ($ups)" test "$ups" = "3 1"
by_status=$(prom_query "$prom" 'sum by (status) (myapp_processed_ops_total)')
check "  sum by (status) (myapp_processed_ops_total): $(echo "$by_status" | xargs)" \
  test "$by_status" = "$expected_by_status"
for name in "${names[@]}"; do
  got=$(prom_query "$prom" "sum by (status) (myapp_processed_ops_total{instance=\"${metrics[$name]}\"})" | xargs)
  check "  replica $name: $got" test "$got" = "status=200 ${sent[$name/200]} status=500 ${sent[$name/500]}"
done
# The classic histogram: its count, and a median between the bucket edges
# around the delay range. (A query without data fails its check: "" below.)
count=$(prom_query "$prom" 'sum(myapp_request_duration_seconds_count)' || true)
check "  sum(myapp_request_duration_seconds_count) = $count" test "$count" = "$REQUESTS"
p50=$(prom_query "$prom" 'histogram_quantile(0.5, sum by (le) (rate(myapp_request_duration_seconds_bucket[1m])))' || true)
check "  p50 $(printf %.4f "$p50") s in [$low, $high] (delays $MIN_DELAY_MS..$MAX_DELAY_MS ms)" \
  between "$low" "$p50" "$high"
# The native histogram of the same scrapes: its count, and a median from its
# exponential buckets inside the delay range (a bucket of schema 3 is 9% wide).
native_count=$(prom_query "$prom" 'histogram_count(sum(myapp_request_duration_seconds))' || true)
check "  histogram_count(sum(myapp_request_duration_seconds)) = $native_count" test "$native_count" = "$REQUESTS"
native_p50=$(prom_query "$prom" 'histogram_quantile(0.5, sum(rate(myapp_request_duration_seconds[1m])))' || true)
check "  native p50 $(printf %.4f "$native_p50") s in [$MIN_DELAY_MS, $MAX_DELAY_MS] ms" \
  between "$(awk -v m="$MIN_DELAY_MS" 'BEGIN { print m / 1000 }')" "$native_p50" "$(awk -v m="$MAX_DELAY_MS" 'BEGIN { print m / 1000 }')"

# Every rule of rules.yml loaded and healthy, every recorded series present.
rules=$(curl -sf "$prom/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r["health"] != "ok"]
print(len(rules), " ".join(bad) or "-", *[r["name"] for r in rules if r["type"] == "recording"])')
read -r loaded unhealthy recorded <<<"$rules"
check "  $loaded rules loaded, none unhealthy ($unhealthy)" test "$unhealthy" = "-" -a "$loaded" -gt 0
no_data=
for record in $recorded; do
  prom_query "$prom" "$record" >/dev/null || no_data="$no_data $record"
done
check "  every recorded series has data${no_data:+ (none for:$no_data)}" test -z "$no_data"

# Every panel query of the dashboard parses and returns data.
queries=0
failed=
while IFS= read -r query; do
  queries=$((queries + 1))
  prom_query "$prom" "$query" >/dev/null || failed="$failed
    $query"
done < <(python3 scripts/dashboard-queries.py --rate-interval 1m)
check "  $queries dashboard queries return data${failed:+, not:$failed}" test -z "$failed" -a "$queries" -gt 0

values_check

# --- format proof -------------------------------------------------------------------
# Every scrape so far is Prometheus's: each answered in protobuf, gzipped.
check_scrape_format protobuf "$out" "${names[@]}"

# --- Go's decoder -------------------------------------------------------------------------
# Replica a's protobuf answer through expfmt's decoder (Debian's
# golang-github-prometheus-common-dev, GOPATH mode): the native buckets decode
# and add up to the requests a answered.
GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$out/go-expfmt" ./scripts/go-expfmt
curl -s -H 'Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited' \
  "http://${metrics[a]}/metrics" | "$out/go-expfmt" >"$out/go-expfmt.txt" || true
histogram=$(grep '^histogram ' "$out/go-expfmt.txt" || true)
answered_a=$((${sent[a/200]} + ${sent[a/500]}))
check "expfmt decodes replica a's native histogram: $histogram" \
  grep -q "^histogram count=$answered_a .* schema=3 .* native_total=$answered_a\$" "$out/go-expfmt.txt"

# --- exemplars -------------------------------------------------------------------------
# One traced request to replica a, without a delay (in the lowest bucket,
# le=0.005): query_exemplars returns its trace id on the counter, the classic
# bucket and the native histogram.
trace_id=$(printf '%08x' $RANDOM $RANDOM $RANDOM $RANDOM)
curl -s -o /dev/null -H "traceparent: 00-$trace_id-00f067aa0ba902b7-01" "http://${public[a]}/work?delay_ms=0"
selector='{__name__=~"myapp_processed_ops_total|myapp_request_duration_seconds(_bucket)?"}'
traced_on="myapp_processed_ops_total myapp_request_duration_seconds myapp_request_duration_seconds_bucket"
all_found() { [ "$(prom_exemplars "$prom" "$selector" "$trace_id")" = "$traced_on" ]; }
wait_until 20 all_found || true
found=$(prom_exemplars "$prom" "$selector" "$trace_id")
check "query_exemplars returns trace $trace_id on: $found (want: $traced_on)" all_found

# --- the CPU panel against /proc ------------------------------------------------------
# Replica a idles 2 s, works under load for LOAD_SECONDS, idles 2 s; /proc says
# how much CPU it used over that window, and the dashboard's CPU panel
# (rate(process_cpu_seconds_total[...]) with the window as the rate interval)
# must say the same: with CPU seconds rounded down to whole ones, as the
# crate's collector did, it reads 0 or a whole second over the window.
LOAD_SECONDS=6
clk_tck=$(getconf CLK_TCK)
# utime + stime (fields 14 and 15 of /proc/PID/stat), in seconds.
proc_cpu() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$clk_tck" '{ printf "%.2f", ($12 + $13) / hz }'; }
t0=$(date +%s.%N)
c0=$(proc_cpu "${pid[a]}")
sleep 2
seq 100000 | timeout "$LOAD_SECONDS" xargs -P 8 -I{} curl -s -o /dev/null "http://${public[a]}/work" || true
sleep 2
c1=$(proc_cpu "${pid[a]}")
t1=$(date +%s.%N)
window=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", b - a + 0.5 }')
panel=$(python3 scripts/dashboard-queries.py --rate-interval "${window}s" | grep -F 'process_cpu_seconds_total')
rate=$(prom_query "$prom" "$panel" | sed -n "s/^instance=${metrics[a]} //p")
used=$(awk -v r="$rate" -v w="$window" 'BEGIN { printf "%.3f", r * w }')
last=$(prom_query "$prom" "process_cpu_seconds_total{instance=\"${metrics[a]}\"}" | awk '{ print $NF }')
now=$(proc_cpu "${pid[a]}")
check "the CPU panel over ${window}s says $used s used, /proc says $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }') s" \
  awk -v u="$used" -v a="$c0" -v b="$c1" 'BEGIN { d = b - a; e = u - d; if (e < 0) e = -e; exit !(d > 0 && e <= 0.15 * d + 0.03) }'
check "process_cpu_seconds_total is $last, /proc says $now" \
  awk -v l="$last" -v n="$now" 'BEGIN { exit !(l <= n && l >= n - 0.05) }'


check "the token never reached a log" test -z "$(grep -lF "$(cat "$out/token")" "$out"/*.log)"

summary "e2e with Prometheus ($REQUESTS requests)"
