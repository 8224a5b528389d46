#!/usr/bin/env bash
# Builds and starts the release binary with its default delays (0 to 2 s, half
# of the answers 500), hits /work with curl, and checks what /metrics, /docs,
# /openapi.json and /healthz say, holds the OpenMetrics answer against the
# text one with Python's prometheus_client (installed when missing), then runs
# the curl recipes of docs/workload.md as written. Leaves the last scrape in
# target/smoke/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

REQUESTS=${REQUESTS:-40}
out=target/smoke
mkdir -p "$out"

need_prometheus_client
cargo build --release --locked --quiet
start_myapp "$out/myapp.log"
base="http://$MYAPP_ADDR"
echo "smoke test: myapp on $base, $REQUESTS requests to /work, 10 at a time"

seq "$REQUESTS" | xargs -P 10 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$base/work" >"$out/statuses.txt"
ok=$(grep -c '^200$' "$out/statuses.txt" || true)
errors=$(grep -c '^500$' "$out/statuses.txt" || true)
check "every /work request answered 200 or 500 ($ok + $errors = $REQUESTS)" test $((ok + errors)) -eq "$REQUESTS"

curl -s -D "$out/headers.txt" "$base/metrics" >"$out/metrics.txt"
has_line() { grep -qxF "$1" "$out/metrics.txt"; }
check "Content-Type is the text format's" grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$out/headers.txt"
check "HELP line of the counter" has_line '# HELP myapp_processed_ops_total The total number of processed events'
check "TYPE line of the counter" has_line '# TYPE myapp_processed_ops_total counter'
check "counter of 200s is $ok" has_line "myapp_processed_ops_total{status=\"200\"} $ok"
check "counter of 500s is $errors" has_line "myapp_processed_ops_total{status=\"500\"} $errors"
check "histogram counted $REQUESTS" has_line "myapp_request_duration_seconds_count $REQUESTS"
check "histogram +Inf bucket is $REQUESTS" has_line "myapp_request_duration_seconds_bucket{le=\"+Inf\"} $REQUESTS"
check "histogram has the 0.5 s bucket" grep -q '^myapp_request_duration_seconds_bucket{le="0.5"} ' "$out/metrics.txt"
check "nothing in flight" has_line 'myapp_requests_in_flight 0'

# One more request, traced: its trace id becomes the newest exemplar of its
# bucket and of its counter series.
trace_id=$(printf '%08x' $RANDOM $RANDOM $RANDOM $RANDOM)
traced=$(curl -s -o /dev/null -D - -H "traceparent: 00-$trace_id-00f067aa0ba902b7-01" "$base/work" |
  tr -d '\r' | sed -n 's/^traceparent: //p')
check "the traced request's answer carries its trace ($traced)" test "${traced:3:32}" = "$trace_id"
check "its log line carries trace_id=$trace_id" grep -q " INFO request{method=GET path=/work remote_addr=[0-9.:]*}: myapp::request_log: status=[0-9]* trace_id=$trace_id " "$out/myapp.log"

echo "OpenMetrics, parsed by prometheus_client's strict parser, against the text format:"
openmetrics_ok() { python3 scripts/openmetrics-check.py "$base/metrics" "$trace_id" | tee "$out/openmetrics-check.txt"; }
check "the OpenMetrics answer holds the values of the text answer" openmetrics_ok

check "/docs serves Swagger UI" grep -q SwaggerUIBundle <(curl -s "$base/docs")
check "/openapi.json documents GET /work" grep -q '"/work"' <(curl -s "$base/openapi.json")
check "/healthz answers 200" test "$(http_status "$base/healthz")" = 200
check "/readyz answers 200" test "$(http_status "$base/readyz")" = 200
check "the curl recipes of docs/workload.md print what it shows" \
  python3 scripts/workload-recipes.py "$MYAPP_ADDR"

kill -TERM "$MYAPP_PID"
status=0
wait "$MYAPP_PID" || status=$?
PIDS=()
check "SIGTERM stops the server with exit code 0" test "$status" -eq 0

summary "smoke test"
