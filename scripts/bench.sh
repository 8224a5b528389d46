#!/usr/bin/env bash
# Side-by-side benchmarks of myapp, in one run (issue 5):
#   1. /work throughput at zero delay: myapp, myapp without its metrics
#      middleware (bench-only build), a bare hyper server (the stack's limit),
#      and the seed's design in Go (benches/go-seed);
#   2. peak RSS and p99 latency with 8,000 connections waiting on the default
#      0 to 2 s /work: myapp and Go;
#   3. /metrics latency while /work is saturated: myapp and Go;
#   4. criterion microbenchmarks: the middleware's recording path, one scrape.
# (3 runs right after 1, on the same warm servers.)
# The servers take turns (A B A B ...) for several rounds and the medians are
# reported, so that the machine's drift cancels out. Prints the figures, the
# targets and whether each is met, and writes them to BENCHMARKS.md.
#
# Knobs (environment):
#   BENCH_SECONDS=10      length of each wrk run of sections 1 and 3
#   BENCH_ROUNDS=5        rounds of each section
#   BENCH_WAITING=8000    connections of section 2
#   BENCH_WAITING_SECONDS length of each run of section 2 (BENCH_SECONDS, at least 5)
#   BENCH_CONNECTIONS=64  connections of sections 1 and 3
#   BENCH_OUT=BENCHMARKS.md
# A short run to check the tooling: BENCH_SECONDS=2 BENCH_ROUNDS=1 scripts/bench.sh
# The default run takes about 10 minutes once the binaries are built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

FULL_SECONDS=10
FULL_ROUNDS=5
RUN_SECONDS=${BENCH_SECONDS:-$FULL_SECONDS}
ROUNDS=${BENCH_ROUNDS:-$FULL_ROUNDS}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WAITING=${BENCH_WAITING:-8000}
WAITING_SECONDS=${BENCH_WAITING_SECONDS:-$((RUN_SECONDS > 5 ? RUN_SECONDS : 5))}
OUT=${BENCH_OUT:-BENCHMARKS.md}
if [ "$RUN_SECONDS" -lt "$FULL_SECONDS" ] || [ "$ROUNDS" -lt "$FULL_ROUNDS" ]; then
  KIND="short validation run (BENCH_SECONDS=$RUN_SECONDS BENCH_ROUNDS=$ROUNDS): checks the tooling; the figures are noisy and not the final ones"
else
  KIND="full run (BENCH_SECONDS=$RUN_SECONDS BENCH_ROUNDS=$ROUNDS)"
fi

BIN=target/bench
LOGS=$BIN/logs
PERCENTILES=scripts/wrk-percentiles.lua
GO_PROMETHEUS=/usr/share/gocode/src/github.com/prometheus/client_golang/prometheus/promhttp
ZERO_DELAY=(--min-delay-ms 0 --max-delay-ms 0 --error-rate 0)
# Section 1's contenders, in the order they take turns.
SERVERS=(myapp uninstrumented bare go)
declare -A LABEL=(
  [myapp]="myapp"
  [uninstrumented]="myapp, no metrics middleware"
  [bare]="bare hyper"
  [go]="Go seed design"
)

# The servers run on CPU 0 and wrk on CPU 1, so that the load generator never takes the CPU
# of the server it measures; floating, they shared both and the per-round ratios of two
# equal builds ranged from 0.78 to 1.16. Each server sees one CPU: tokio starts one worker,
# Go sets GOMAXPROCS to 1.
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 0)
  WRK=(taskset -c 1 wrk)
  PINNING="The servers run on CPU 0 and wrk on CPU 1 (\`taskset\`): each server has one CPU to itself."
else
  SERVER_CPU=()
  WRK=(wrk)
  PINNING="One CPU: wrk and the servers share it."
fi

step() { printf '\n== %s\n' "$*"; }

# --- numbers -----------------------------------------------------------------

# median: the median of the numbers on stdin (one per line or space-separated).
median() {
  tr ' ' '\n' | grep -v '^$' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "NaN"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio_median "A1 A2 ..." "B1 B2 ...": the median of the per-round ratios A/B.
ratio_median() {
  paste -d ' ' <(tr ' ' '\n' <<<"$1" | grep -v '^$') <(tr ' ' '\n' <<<"$2" | grep -v '^$') |
    awk '$2 > 0 { print $1 / $2 }' | median
}

# fmt DECIMALS NUMBER
fmt() { awk -v d="$1" -v n="$2" 'BEGIN { if (n == "NaN" || n == "") print "n/a"; else printf "%.*f\n", d, n }'; }

# met VALUE OP GOAL: "yes" or "no" (OP is <= or >=).
met() {
  awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {
    if (v == "NaN" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= g + 0) : (v + 0 <= g + 0)
    print ok ? "yes" : "**no**"
  }'
}

# --- wrk -----------------------------------------------------------------------

wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }
wrk_socket_errors() { awk '/Socket errors:/ { gsub(",", ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"; }
wrk_non_2xx() { awk '/Non-2xx or 3xx responses:/ { n = $5 } END { print n + 0 }' "$1"; }
# wrk_latency_ms FILE PERCENTILE: from the lines scripts/wrk-percentiles.lua
# adds, in ms.
wrk_latency_ms() {
  awk -v p="$2" '$1 == "percentile_us" && $2 == p { printf "%.3f\n", $3 / 1000 }' "$1"
}

# listen_overflows: connections the kernel dropped because an accept queue was
# full, machine-wide, since boot (nstat from iproute2; read-only).
listen_overflows() { nstat -saz TcpExtListenOverflows | awk '$1 == "TcpExtListenOverflows" { print $2 }'; }

# vm_kib PID FIELD: VmHWM, VmRSS ... of a process, in KiB.
vm_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# --- servers -------------------------------------------------------------------

# start NAME ARGS...: starts server NAME with ARGS (after --listen 127.0.0.1:0).
start() {
  local name=$1
  shift
  case $name in
    myapp) start_server "$LOGS/$name.log" "${SERVER_CPU[@]}" env RUST_LOG=warn "$BIN/myapp" --listen 127.0.0.1:0 "$@" ;;
    uninstrumented) start_server "$LOGS/$name.log" "${SERVER_CPU[@]}" env RUST_LOG=warn "$BIN/myapp-uninstrumented" --listen 127.0.0.1:0 "$@" ;;
    bare) start_server "$LOGS/$name.log" "${SERVER_CPU[@]}" "$BIN/bare-hyper" --listen 127.0.0.1:0 ;;
    go) start_server "$LOGS/$name.log" "${SERVER_CPU[@]}" "$BIN/go-seed" --listen 127.0.0.1:0 "$@" ;;
  esac
}

# --- prerequisites ---------------------------------------------------------------

step "prerequisites"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v go >/dev/null || missing+=(golang-go)
[ -d "$GO_PROMETHEUS" ] || missing+=(golang-github-prometheus-client-golang-dev)
command -v jq >/dev/null || missing+=(jq)
{ command -v ss && command -v nstat; } >/dev/null || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ] && ! install_packages "${missing[@]}"; then
  echo "missing: ${missing[*]}; run as root to install them, or apt-get install -y ${missing[*]}" >&2
  exit 1
fi
# Section 2 needs a file descriptor per connection, in wrk and in the server.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((WAITING + 500)) ]; then
  WAITING=$(($(ulimit -n) - 500))
  echo "ulimit -n is $(ulimit -n): section 2 uses $WAITING connections"
fi
echo "wrk, go, client_golang, jq, ss, nstat: present; ulimit -n $(ulimit -n)"

step "build (release)"
mkdir -p "$BIN" "$LOGS"
# Built one after the other and copied aside, so that each binary is exactly
# what `cargo build --release` makes of its features, and later cargo runs
# cannot change them mid-benchmark.
cargo build --release --locked --quiet --features bench-uninstrumented --bin myapp
cp target/release/myapp "$BIN/myapp-uninstrumented"
cargo build --release --locked --quiet --bin myapp
cp target/release/myapp "$BIN/myapp"
cargo build --release --locked --quiet --example bare_hyper
cp target/release/examples/bare_hyper "$BIN/bare-hyper"
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS='' go build -o "$BIN/go-seed" ./benches/go-seed
echo "built $BIN/myapp, $BIN/myapp-uninstrumented, $BIN/bare-hyper, $BIN/go-seed"

DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d ' ' -f 1-3 /proc/loadavg)
started_at=$(date +%s)

# --- 1. throughput -----------------------------------------------------------------

step "1. /work throughput, zero delay, $CONNECTIONS connections, ${RUN_SECONDS}s x $ROUNDS rounds"
declare -A ADDR=() RPS=() ERRORS=()
for name in "${SERVERS[@]}"; do
  start "$name" "${ZERO_DELAY[@]}"
  ADDR[$name]=$SERVER_ADDR
  # Same bytes and Content-Type from every contender, or the race is unfair.
  curl -s -D "$LOGS/$name.headers" -o "$LOGS/$name.body" "http://$SERVER_ADDR/work"
  if [ "$(cat "$LOGS/$name.body")" != '{"delay_ms":0}' ] ||
    ! grep -qi '^content-type: application/json; charset=utf-8' "$LOGS/$name.headers"; then
    echo "${LABEL[$name]} does not answer /work as myapp does:" >&2
    cat "$LOGS/$name.headers" "$LOGS/$name.body" >&2
    exit 1
  fi
  # Warm-up: connections, allocator, Go's GC pacing.
  run_waited "${WRK[@]}" -t 1 -c "$CONNECTIONS" -d "$((RUN_SECONDS < 2 ? RUN_SECONDS : 2))s" "http://$SERVER_ADDR/work" >/dev/null
done
for round in $(seq "$ROUNDS"); do
  for name in "${SERVERS[@]}"; do
    out=$LOGS/throughput-$name-$round.txt
    run_waited "${WRK[@]}" -t 1 -c "$CONNECTIONS" -d "${RUN_SECONDS}s" "http://${ADDR[$name]}/work" >"$out"
    RPS[$name]+=" $(wrk_rps "$out")"
    ERRORS[$name]=$((${ERRORS[$name]:-0} + $(wrk_socket_errors "$out") + $(wrk_non_2xx "$out")))
    printf '  round %d  %-30s %10s req/s\n' "$round" "${LABEL[$name]}" "$(wrk_rps "$out")"
  done
done

# --- 3. /metrics under saturation (same servers, still warm) -------------------------

step "3. /metrics latency while /work is saturated, ${RUN_SECONDS}s x $ROUNDS rounds"
declare -A SCRAPE_P50=() SCRAPE_P99=() SCRAPE_RPS=()
for round in $(seq "$ROUNDS"); do
  for name in myapp go; do
    load=$LOGS/saturation-$name-$round.txt
    out=$LOGS/scrape-$name-$round.txt
    "${WRK[@]}" -t 1 -c "$CONNECTIONS" -d "$((RUN_SECONDS + 1))s" "http://${ADDR[$name]}/work" >"$load" &
    PIDS+=("$!")
    load_pid=$!
    sleep 0.5
    run_waited "${WRK[@]}" -t 1 -c 1 -d "${RUN_SECONDS}s" --latency -s "$PERCENTILES" "http://${ADDR[$name]}/metrics" >"$out"
    wait "$load_pid"
    forget_pid "$load_pid"
    SCRAPE_P50[$name]+=" $(wrk_latency_ms "$out" 50)"
    SCRAPE_P99[$name]+=" $(wrk_latency_ms "$out" 99)"
    SCRAPE_RPS[$name]+=" $(wrk_rps "$out")"
    printf '  round %d  %-30s /metrics p50 %8s ms  p99 %8s ms  (/work at %s req/s meanwhile)\n' \
      "$round" "${LABEL[$name]}" "$(wrk_latency_ms "$out" 50)" "$(wrk_latency_ms "$out" 99)" "$(wrk_rps "$load")"
  done
done
stop_all

# --- 2. thousands waiting ---------------------------------------------------------------

step "2. $WAITING connections waiting on the default 0 to 2 s /work, ${WAITING_SECONDS}s x $ROUNDS rounds"
declare -A PEAK_RSS=() IDLE_RSS=() WAIT_P99=() WAIT_P50=() WAIT_RPS=() WAIT_ERRORS=() OVERFLOWS=()
for round in $(seq "$ROUNDS"); do
  for name in myapp go; do
    # A fresh process each round: VmHWM is the peak since it started.
    start "$name"
    pid=$SERVER_PID
    IDLE_RSS[$name]+=" $(vm_kib "$pid" VmRSS)"
    out=$LOGS/waiting-$name-$round.txt
    overflows_before=$(listen_overflows)
    run_waited "${WRK[@]}" -t 1 -c "$WAITING" -d "${WAITING_SECONDS}s" --timeout 10s --latency -s "$PERCENTILES" "http://$SERVER_ADDR/work" >"$out"
    overflows=$(($(listen_overflows) - overflows_before))
    PEAK_RSS[$name]+=" $(vm_kib "$pid" VmHWM)"
    stop_pid "$pid"
    WAIT_P50[$name]+=" $(wrk_latency_ms "$out" 50)"
    WAIT_P99[$name]+=" $(wrk_latency_ms "$out" 99)"
    WAIT_RPS[$name]+=" $(wrk_rps "$out")"
    WAIT_ERRORS[$name]=$((${WAIT_ERRORS[$name]:-0} + $(wrk_socket_errors "$out")))
    OVERFLOWS[$name]=$((${OVERFLOWS[$name]:-0} + overflows))
    printf '  round %d  %-30s peak RSS %8s KiB  p99 %9s ms  %8s req/s  socket errors %s  listen overflows %s\n' \
      "$round" "${LABEL[$name]}" "$(awk '{ print $NF }' <<<"${PEAK_RSS[$name]}")" \
      "$(wrk_latency_ms "$out" 99)" "$(wrk_rps "$out")" "$(wrk_socket_errors "$out")" "$overflows"
  done
done

# --- 4. criterion --------------------------------------------------------------------------

step "4. criterion microbenchmarks"
measure=$((RUN_SECONDS < 5 ? RUN_SECONDS : 5))
warm_up=$((measure < 5 ? 1 : 3))
CRITERION_ARGS=(--warm-up-time "$warm_up" --measurement-time "$measure" --noplot)
if ! cargo bench --locked --quiet --bench request_metrics --bench scrape -- "${CRITERION_ARGS[@]}" \
  >"$LOGS/criterion.txt" 2>&1; then
  cat "$LOGS/criterion.txt" >&2
  echo "cargo bench failed" >&2
  exit 1
fi
grep -E '^[a-z_]+/|time:' "$LOGS/criterion.txt"
# criterion_ns GROUP/ID: the median estimate, in ns.
criterion_ns() { jq '.median.point_estimate' "target/criterion/$1/new/estimates.json"; }
NS_BARE=$(criterion_ns request_metrics/bare_endpoint)
NS_WITH=$(criterion_ns request_metrics/with_request_metrics)
NS_OPS=$(criterion_ns request_metrics/metric_ops)
NS_SCRAPE=$(criterion_ns scrape/gather_and_encode)
NS_ENCODE=$(criterion_ns scrape/encode_only)
NS_MIDDLEWARE=$(awk -v a="$NS_WITH" -v b="$NS_BARE" 'BEGIN { print a - b }')

LOAD_AFTER=$(cut -d ' ' -f 1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started_at))

# --- report -------------------------------------------------------------------------------

med() { median <<<"$1"; }
kib_to_mib() { awk -v k="$1" 'BEGIN { if (k == "NaN") print "NaN"; else print k / 1024 }'; }
list() { tr ' ' '\n' <<<"$1" | grep -v '^$' | tr '\n' ' '; }

R_INSTR=$(ratio_median "${RPS[myapp]}" "${RPS[uninstrumented]}")
R_GO=$(ratio_median "${RPS[myapp]}" "${RPS[go]}")
R_BARE=$(ratio_median "${RPS[myapp]}" "${RPS[bare]}")
R_RSS=$(ratio_median "${PEAK_RSS[myapp]}" "${PEAK_RSS[go]}")
R_P99=$(ratio_median "${WAIT_P99[myapp]}" "${WAIT_P99[go]}")
P99_SCRAPE=$(med "${SCRAPE_P99[myapp]}")

targets_table() {
  cat <<EOF
| target | goal | measured | met |
| --- | --- | --- | --- |
| /work throughput, instrumented / uninstrumented | >= 0.98 | $(fmt 3 "$R_INSTR") | $(met "$R_INSTR" '>=' 0.98) |
| /work throughput, myapp / Go seed | >= 1.5 | $(fmt 2 "$R_GO") | $(met "$R_GO" '>=' 1.5) |
| /work throughput, myapp / bare hyper | >= 0.85 | $(fmt 3 "$R_BARE") | $(met "$R_BARE" '>=' 0.85) |
| peak RSS with $WAITING waiting, myapp / Go seed | <= 0.5 | $(fmt 3 "$R_RSS") | $(met "$R_RSS" '<=' 0.5) |
| p99 with $WAITING waiting, myapp / Go seed | <= 1.0 | $(fmt 4 "$R_P99") | $(met "$R_P99" '<=' 1.0) |
| middleware recording, ns per request | <= 100 | $(fmt 1 "$NS_MIDDLEWARE") | $(met "$NS_MIDDLEWARE" '<=' 100) |
| /metrics p99 while /work is saturated, ms | <= 10 | $(fmt 2 "$P99_SCRAPE") | $(met "$P99_SCRAPE" '<=' 10) |
EOF
}

figures_table() {
  cat <<EOF
| figure | myapp | myapp, no metrics middleware | bare hyper | Go seed design |
| --- | --- | --- | --- | --- |
| /work throughput, zero delay, $CONNECTIONS connections, req/s | $(fmt 0 "$(med "${RPS[myapp]}")") | $(fmt 0 "$(med "${RPS[uninstrumented]}")") | $(fmt 0 "$(med "${RPS[bare]}")") | $(fmt 0 "$(med "${RPS[go]}")") |
| errors in those runs (socket errors + non-2xx), all rounds | ${ERRORS[myapp]} | ${ERRORS[uninstrumented]} | ${ERRORS[bare]} | ${ERRORS[go]} |
| peak RSS (VmHWM) with $WAITING waiting, MiB | $(fmt 1 "$(kib_to_mib "$(med "${PEAK_RSS[myapp]}")")") | | | $(fmt 1 "$(kib_to_mib "$(med "${PEAK_RSS[go]}")")") |
| RSS at start, idle, MiB | $(fmt 1 "$(kib_to_mib "$(med "${IDLE_RSS[myapp]}")")") | | | $(fmt 1 "$(kib_to_mib "$(med "${IDLE_RSS[go]}")")") |
| latency with $WAITING waiting, p50 / p99, ms | $(fmt 0 "$(med "${WAIT_P50[myapp]}")") / $(fmt 0 "$(med "${WAIT_P99[myapp]}")") | | | $(fmt 0 "$(med "${WAIT_P50[go]}")") / $(fmt 0 "$(med "${WAIT_P99[go]}")") |
| req/s with $WAITING waiting; socket errors, all rounds | $(fmt 0 "$(med "${WAIT_RPS[myapp]}")"); ${WAIT_ERRORS[myapp]} | | | $(fmt 0 "$(med "${WAIT_RPS[go]}")"); ${WAIT_ERRORS[go]} |
| accept queue overflows meanwhile (TcpExtListenOverflows), all rounds | ${OVERFLOWS[myapp]} | | | ${OVERFLOWS[go]} |
| /metrics while /work is saturated, p50 / p99, ms | $(fmt 2 "$(med "${SCRAPE_P50[myapp]}")") / $(fmt 2 "$(med "${SCRAPE_P99[myapp]}")") | | | $(fmt 2 "$(med "${SCRAPE_P50[go]}")") / $(fmt 2 "$(med "${SCRAPE_P99[go]}")") |
| /metrics scrapes per second meanwhile (1 connection) | $(fmt 0 "$(med "${SCRAPE_RPS[myapp]}")") | | | $(fmt 0 "$(med "${SCRAPE_RPS[go]}")") |
EOF
}

criterion_table() {
  cat <<EOF
| benchmark (criterion, median) | ns |
| --- | --- |
| request_metrics/bare_endpoint: a trivial endpoint through \`get_response\` | $(fmt 1 "$NS_BARE") |
| request_metrics/with_request_metrics: the same, wrapped in \`RequestMetrics\` | $(fmt 1 "$NS_WITH") |
| the middleware's cost per request (the difference) | $(fmt 1 "$NS_MIDDLEWARE") |
| request_metrics/metric_ops: only the metric operations it does | $(fmt 1 "$NS_OPS") |
| scrape/gather_and_encode: one scrape of the default registry | $(fmt 0 "$NS_SCRAPE") |
| scrape/encode_only: its text encoding alone | $(fmt 0 "$NS_ENCODE") |
EOF
}

rounds_table() {
  local name
  echo "| per round | values |"
  echo "| --- | --- |"
  for name in "${SERVERS[@]}"; do
    echo "| /work req/s, ${LABEL[$name]} | $(list "${RPS[$name]}")|"
  done
  for name in myapp go; do
    echo "| peak RSS KiB with $WAITING waiting, ${LABEL[$name]} | $(list "${PEAK_RSS[$name]}")|"
    echo "| p99 ms with $WAITING waiting, ${LABEL[$name]} | $(list "${WAIT_P99[$name]}")|"
    echo "| /metrics p99 ms under saturation, ${LABEL[$name]} | $(list "${SCRAPE_P99[$name]}")|"
  done
}

MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
CPU=$(awk -F ': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report=$BIN/BENCHMARKS.md.new
cat >"$report" <<EOF
# Benchmarks

**$KIND.** Written by \`scripts/bench.sh\` on $DATE, in ${elapsed}s.

The servers take turns, A B A B ..., for $ROUNDS round(s), each on its own loopback port;
the figures are medians over the rounds, and each ratio is the median of the per-round
ratios, so that the machine's drift cancels out. $PINNING

## Machine

- $(nproc) CPUs: $CPU; memory $MEM; Linux $(uname -r)
- load average (1, 5, 15 min): $LOAD_BEFORE before, $LOAD_AFTER after
- $(rustc -V); $(go version); $( (wrk -v 2>&1 || true) | head -n 1 | cut -d ' ' -f 1-2)

## Targets

$(targets_table)

## Figures

$(figures_table)

$(criterion_table)

<details><summary>Every round</summary>

$(rounds_table)

</details>

## Commands

\`\`\`sh
# build (release); the bench-only feature leaves the metrics middleware out of /work
cargo build --release --locked --features bench-uninstrumented --bin myapp   # copied to $BIN/myapp-uninstrumented
cargo build --release --locked --bin myapp                                   # copied to $BIN/myapp
cargo build --release --locked --example bare_hyper                          # copied to $BIN/bare-hyper
GO111MODULE=off GOPATH=/usr/share/gocode go build -o $BIN/go-seed ./benches/go-seed

# servers (each on 127.0.0.1:0; the port is read with ss)
RUST_LOG=warn ${SERVER_CPU[*]} $BIN/myapp ${ZERO_DELAY[*]}
RUST_LOG=warn ${SERVER_CPU[*]} $BIN/myapp-uninstrumented ${ZERO_DELAY[*]}
${SERVER_CPU[*]} $BIN/bare-hyper
${SERVER_CPU[*]} $BIN/go-seed ${ZERO_DELAY[*]}

# 1. throughput, after a warm-up run, each server in turn, $ROUNDS round(s)
${WRK[*]} -t 1 -c $CONNECTIONS -d ${RUN_SECONDS}s http://ADDR/work
# 3. /metrics under saturation, myapp and Go in turn, $ROUNDS round(s)
${WRK[*]} -t 1 -c $CONNECTIONS -d $((RUN_SECONDS + 1))s http://ADDR/work &
${WRK[*]} -t 1 -c 1 -d ${RUN_SECONDS}s --latency -s $PERCENTILES http://ADDR/metrics      # 0.5 s later
# 2. $WAITING waiting: a fresh server with default flags (0 to 2 s, error rate 0.5) per round,
#    VmHWM from /proc/PID/status after the run; ulimit -n $(ulimit -n)
${WRK[*]} -t 1 -c $WAITING -d ${WAITING_SECONDS}s --timeout 10s --latency -s $PERCENTILES http://ADDR/work
# 4. criterion
cargo bench --locked --bench request_metrics --bench scrape -- ${CRITERION_ARGS[*]}
\`\`\`

wrk's outputs and the servers' logs are in \`$LOGS/\`. How to run each piece and profile, and what
the profiles showed: [benches/README.md](benches/README.md).
EOF
# The Soak section is scripts/soak.sh's: keep it.
if [ -f "$OUT" ]; then
  sed -n '/^<!-- soak:/,/^<!-- \/soak -->/p' "$OUT" | sed '1s/^/\n/' >>"$report"
fi
mv "$report" "$OUT"

step "results ($KIND)"
targets_table
echo
figures_table
echo
criterion_table
echo
echo "written to $OUT; wrk outputs in $LOGS/; took ${elapsed}s"
