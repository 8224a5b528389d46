#!/usr/bin/env bash
# Created (start) timestamps, checked by code we did not write. Builds
# scripts/go-created (Go's client_model from Debian 13, which has the
# created_timestamp field) and, on a replica with --openmetrics-created-samples
# and one without, runs scripts/created-check.py (the protobuf times against
# /proc and the scrape times, the OpenMetrics `_created` samples as Python's
# prometheus_client reads them). Then a Prometheus 2.53.3 (Debian 13's) with
# --enable-feature=created-timestamp-zero-ingestion (and native-histograms, to
# store the native buckets of that answer) scrapes the protobuf answer of a
# third replica every second while the script sends 3 /work requests: the raw
# samples of the request counter must start with the synthetic 0 at the
# created time the protobuf answer gave, then hold the counts sent; so must
# those of the series that a 400 answer makes during the run. Leaves its files
# in target/e2e-created/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

out=$PWD/target/e2e-created
rm -rf "$out"
mkdir -p "$out"

if ! use_trixie_tools prometheus golang-1.24-go golang-1.24-src \
  golang-github-prometheus-client-model-dev golang-google-protobuf-dev; then
  echo "e2e-created: FAIL: could not unpack Debian 13's prometheus, Go 1.24 and client_model"
  exit 1
fi
need_prometheus_client
cargo build --release --locked --quiet
GO111MODULE=off GOPATH=$TRIXIE_TOOLS/usr/share/gocode GOTOOLCHAIN=local \
  "$TRIXIE_TOOLS/usr/lib/go-1.24/bin/go" build -o "$out/go-created" ./scripts/go-created

# --- the parsers: protobuf (Go), OpenMetrics (Python), with the flag and without -----
start_myapp "$out/on.log" --min-delay-ms 0 --max-delay-ms 0 --error-rate 0 --openmetrics-created-samples
on=$MYAPP_ADDR on_pid=$MYAPP_PID
start_myapp "$out/off.log" --min-delay-ms 0 --max-delay-ms 0 --error-rate 0
off=$MYAPP_ADDR off_pid=$MYAPP_PID
echo "with --openmetrics-created-samples (http://$on):"
check "created-check.py on: protobuf, OpenMetrics _created, text" \
  python3 scripts/created-check.py "http://$on/metrics" "$on_pid" "$out/go-created" on
echo "without (http://$off):"
check "created-check.py off: protobuf, no OpenMetrics _created, text" \
  python3 scripts/created-check.py "http://$off/metrics" "$off_pid" "$out/go-created" off
stop_pid "$on_pid"
stop_pid "$off_pid"

# --- Prometheus records the synthetic zero at the created time -----------------------
# A replica of its own: no request has reached it yet.
start_myapp "$out/scraped.log" --min-delay-ms 0 --max-delay-ms 0 --error-rate 0
scraped=$MYAPP_ADDR
# The created time of a series of the request counter, from the protobuf answer
# (Go's decoder), in milliseconds as Prometheus takes it (truncated).
protobuf=(-H 'Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited')
created_ms() {
  curl -sf "${protobuf[@]}" "http://$scraped/metrics" | "$out/go-created" | python3 -c '
import json, sys
for line in sys.stdin:
    series = json.loads(line)
    if series["name"] == "myapp_processed_ops_total" and series["labels"] == {"status": sys.argv[1]}:
        print(series["seconds"] * 1000 + series["nanos"] // 1_000_000)
' "$1"
}
# raw STATUS: the first raw sample of that series (ms, value) and its values in
# order, each once.
raw() {
  curl -sfG "$prom/api/v1/query" --data-urlencode "query=myapp_processed_ops_total{status=\"$1\"}[1h]" \
    >"$out/raw-$1.json"
  python3 -c '
import json, sys
samples = json.load(open(sys.argv[1]))["data"]["result"][0]["values"]
distinct = [v for i, (_, v) in enumerate(samples) if i == 0 or samples[i - 1][1] != v]
print(round(samples[0][0] * 1000), samples[0][1], ",".join(distinct))
' "$out/raw-$1.json"
}
created_200=$(created_ms 200)
echo "myapp_processed_ops_total{status=\"200\"} created at $created_200 ms (protobuf)"
cat >"$out/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  # What the feature needs: the protobuf format, which carries created times.
  scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]
scrape_configs:
  - job_name: myapp
    static_configs:
      - targets: ["$scraped"]
EOF
start_server "$out/prometheus.log" prometheus --config.file="$out/prometheus.yml" \
  --storage.tsdb.path="$out/data" --web.listen-address=127.0.0.1:0 \
  --enable-feature=created-timestamp-zero-ingestion,native-histograms
prom=http://$SERVER_ADDR
echo "$(prometheus --version 2>&1 | head -1) on $prom"

counted() { [ "$(prom_query "$prom" "sum(myapp_processed_ops_total{status=\"${2:-200}\"})")" = "$1" ]; }
check "Prometheus scrapes myapp (the counter of 200s reads 0)" wait_until 30 counted 0
# One request at a time, each counted by Prometheus before the next: a scrape
# cannot fall inside a batch, so the stored values are exactly 0, 1, 2, 3.
for n in 1 2 3; do
  curl -sf -o /dev/null "http://$scraped/work"
  check "after request $n it reads $n" wait_until 30 counted "$n"
done
read -r first_ms first_value values < <(raw 200)
echo "status 200: first raw sample $first_value at $first_ms ms; the values in order: $values"
check "the first raw sample is 0 at the created time of the protobuf answer ($first_value at $first_ms = $created_200)" \
  test "$first_value" = 0 -a "$first_ms" = "$created_200"
check "then the counts sent, one by one: 0, 1, 2, 3 ($values)" test "$values" = "0,1,2,3"

# A series made while Prometheus scrapes (a 400): its zero too, before its count.
curl -s -o /dev/null "http://$scraped/work?delay_ms=abc"
check "after a 400 its new series reads 1" wait_until 30 counted 1 400
created_400=$(created_ms 400)
read -r first_ms first_value values < <(raw 400)
echo "status 400: created at $created_400 ms (protobuf); first raw sample $first_value at $first_ms ms; values $values"
check "the new series' first raw sample is 0 at its created time ($first_value at $first_ms = $created_400), then 1 ($values)" \
  test "$first_value" = 0 -a "$first_ms" = "$created_400" -a "$values" = "0,1"

summary "e2e-created"
