#!/usr/bin/env bash
# Side-by-side benchmarks of myapp, in one run (issues 5 and 14):
#   1. /work at zero delay: requests per second, and requests per CPU-second of
#      the server (from its own CPU time in /proc, so that wrk and whatever else
#      shares the machine do not count): myapp with its default request log,
#      with RUST_LOG=warn, and without its metrics middleware (bench-only
#      build); a bare hyper server (the stack's limit); the seed's design in Go
#      (benches/go-seed), on axum with axum-prometheus and on actix-web with
#      actix-web-prom (benches/peers/); each peer also without its metrics, so
#      that the CPU each stack's instrumentation costs per request shows;
#   2. peak RSS and p99 latency with 8,000 connections waiting on the default
#      0 to 2 s /work: myapp and the instrumented peers;
#   3. /metrics latency while /work is saturated: myapp and Go;
#   4. criterion microbenchmarks: the middleware's recording path, one scrape;
#   5. load generators against one zero-delay myapp: `myapp load`, hey and wrk
#      (paced with scripts/wrk-paced.lua: closed loop) at 1,000 and 5,000 req/s,
#      CPU per request sent and achieved rate; then coordinated omission shown:
#      the server stopped (SIGSTOP) for 1 s in a 10 s run at 1,000 req/s, each
#      tool's p99 beside the true p99 of that schedule.
#   6. user-space instructions per zero-delay /work request (callgrind): myapp
#      with its default request log and with RUST_LOG=warn, bare hyper and the
#      Rust peers; steady where CPU time is not, so the instruction targets
#      are checked on them.
# (3 runs right after 1, on the same warm servers.)
# The servers take turns (A B A B ...) for several rounds and the medians are
# reported, so that the machine's drift cancels out. Prints the figures, the
# targets and whether each is met, and writes them to BENCHMARKS.md.
#
# Knobs (environment):
#   BENCH_SECONDS=10      length of each wrk run of sections 1 and 3, and of each client run of 5
#   BENCH_ROUNDS=5        rounds of each section
#   BENCH_WAITING=8000    connections of section 2
#   BENCH_WAITING_SECONDS length of each run of section 2 (BENCH_SECONDS, at least 5)
#   BENCH_CONNECTIONS=64  connections of sections 1 and 3
#   BENCH_OUT=BENCHMARKS.md
# A short run to check the tooling: BENCH_SECONDS=2 BENCH_ROUNDS=1 scripts/bench.sh
# The default run takes about 22 minutes once the binaries are built (it prints
# its estimate); building everything from a clean clone takes about 12 more.
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
SERVERS=(myapp myapp-warn uninstrumented bare go go-bare axum axum-bare actix actix-bare)
# Section 2's: myapp and the instrumented peers, with their default flags.
WAITERS=(myapp go axum actix)
declare -A LABEL=(
  [myapp]="myapp"
  [myapp-warn]="myapp, RUST_LOG=warn"
  [uninstrumented]="myapp, no metrics middleware"
  [bare]="bare hyper"
  [go]="Go seed design"
  [go-bare]="Go, -no-metrics"
  [axum]="axum-prometheus"
  [axum-bare]="axum, no metrics"
  [actix]="actix-web-prom"
  [actix-bare]="actix-web, no metrics"
)
# How each starts, before `--listen 127.0.0.1:0` and the delay flags (bare
# hyper takes no delay flags). myapp logs a line per request by default, to
# the log file (about 145 bytes a request: some hundreds of MB in a full run):
# RUST_LOG is removed so that this holds whatever the caller's.
declare -A COMMAND=(
  [myapp]="env -u RUST_LOG $BIN/myapp"
  [myapp-warn]="env RUST_LOG=warn $BIN/myapp"
  [uninstrumented]="env -u RUST_LOG $BIN/myapp-uninstrumented"
  [bare]="$BIN/bare-hyper"
  [go]="$BIN/go-seed"
  [go-bare]="$BIN/go-seed --no-metrics"
  [axum]="$BIN/axum-prom"
  [axum-bare]="$BIN/axum-prom --no-metrics"
  [actix]="$BIN/actix-prom"
  [actix-bare]="$BIN/actix-prom --no-metrics"
)
# Each instrumented server and its uninstrumented twin: the difference in CPU
# per request is what the instrumentation costs that stack.
declare -A TWIN=([myapp]=uninstrumented [go]=go-bare [axum]=axum-bare [actix]=actix-bare)
PEERS=(go axum actix)
# Section 5's clients, in the order they take turns, at each rate (req/s).
CLIENTS=(load hey wrk)
LOAD_RATES=(1000 5000)
declare -A CLIENT_LABEL=([load]="myapp load" [hey]="hey" [wrk]="wrk, paced (closed loop)")
# hey's and wrk's connections, each paced at RATE / CLIENT_CONNECTIONS requests a second.
CLIENT_CONNECTIONS=50
# Coordinated omission: the server stopped for STALL_SECONDS in the middle of a
# STALL_RUN_SECONDS run at STALL_RATE.
STALL_RATE=1000
STALL_RUN_SECONDS=10
STALL_SECONDS=1
PACED=scripts/wrk-paced.lua
# Section 6's: what runs under callgrind (Go's runtime does not run under valgrind).
COUNTED=(myapp myapp-warn bare axum actix)

# The servers run on CPU 0 and wrk on CPU 1, so that the load generator never takes the CPU
# of the server it measures; floating, they shared both and the per-round ratios of two
# equal builds ranged from 0.78 to 1.16. Each server sees one CPU: tokio starts one worker,
# actix-web one worker (beside its accept thread), Go sets GOMAXPROCS to 1.
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 0)
  WRK=(taskset -c 1 wrk)
  CLIENT_CPU=(taskset -c 1)
  PINNING="The servers run on CPU 0 and wrk on CPU 1 (\`taskset\`): each server has one CPU to itself."
else
  SERVER_CPU=()
  WRK=(wrk)
  CLIENT_CPU=()
  PINNING="One CPU: wrk and the servers share it."
fi

step() { printf '\n== %s\n' "$*"; }

# --- numbers -----------------------------------------------------------------

# median: the median of the numbers on stdin (one per line or space-separated).
median() {
  tr ' ' '\n' | grep -v '^$' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "NaN"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# paired_median OP "A1 A2 ..." "B1 B2 ...": the median of the per-round A / B
# (OP /) or A - B (OP -).
paired_median() {
  paste -d ' ' <(tr ' ' '\n' <<<"$2" | grep -v '^$') <(tr ' ' '\n' <<<"$3" | grep -v '^$') |
    awk -v op="$1" 'op == "-" { print $1 - $2 } op == "/" && $2 > 0 { print $1 / $2 }' | median
}

# fmt DECIMALS NUMBER
fmt() { awk -v d="$1" -v n="$2" 'BEGIN { if (n == "NaN" || n == "") print "n/a"; else printf "%.*f\n", d, n }'; }

# met VALUE OP GOAL: "yes" or "no" (OP is <, <=, > or >=).
met() {
  awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {
    if (v == "NaN" || v == "" || g == "NaN" || g == "") { print "n/a"; exit }
    v += 0; g += 0
    ok = (op == ">=") ? v >= g : (op == ">") ? v > g : (op == "<") ? v < g : v <= g
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

# cpu_ticks PID: the CPU time of a process so far, user and system, all its
# threads, in clock ticks: fields 14 and 15 of /proc/PID/stat (counted after
# the command name, which may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
TICKS_PER_SECOND=$(getconf CLK_TCK)

# --- servers -------------------------------------------------------------------

# start NAME ARGS...: starts server NAME with ARGS (after --listen 127.0.0.1:0;
# bare hyper takes none), on the servers' CPU.
start() {
  local name=$1
  shift
  [ "$name" != bare ] || set --
  # shellcheck disable=SC2086 # COMMAND holds words
  start_server "$LOGS/$name.log" "${SERVER_CPU[@]}" ${COMMAND[$name]} --listen 127.0.0.1:0 "$@"
}

# --- prerequisites ---------------------------------------------------------------

step "prerequisites"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v go >/dev/null || missing+=(golang-go)
[ -d "$GO_PROMETHEUS" ] || missing+=(golang-github-prometheus-client-golang-dev)
command -v jq >/dev/null || missing+=(jq)
command -v hey >/dev/null || missing+=(hey)
[ -x /usr/bin/time ] || missing+=(time)
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
echo "wrk, valgrind, go, client_golang, jq, hey, time, ss, nstat: present; ulimit -n $(ulimit -n)"

warm_up_seconds=$((RUN_SECONDS < 2 ? RUN_SECONDS : 2))
# Each run of section 2 also waits for its 2 s answers and the server's exit: about 3 s more.
# Each callgrind run of section 6 also starts under valgrind and writes its profile: about 10 s more.
estimate=$((${#SERVERS[@]} * (warm_up_seconds + ROUNDS * RUN_SECONDS) + 2 * ROUNDS * (RUN_SECONDS + 2) +
  ${#WAITERS[@]} * ROUNDS * (WAITING_SECONDS + 3) +
  ${#LOAD_RATES[@]} * ${#CLIENTS[@]} * ROUNDS * (RUN_SECONDS + 1) + ${#CLIENTS[@]} * (STALL_RUN_SECONDS + 2) +
  ${#COUNTED[@]} * (RUN_SECONDS + 10) + 60))
echo "the runs take about $((estimate / 60)) min $((estimate % 60)) s, once built (from a clean clone, building takes about 12 min)"

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
# The Rust peers are crates of their own (benches/peers/), which myapp's build never compiles.
for peer in axum-prom actix-prom; do
  cargo build --release --locked --quiet --manifest-path "benches/peers/$peer/Cargo.toml" --target-dir target/peers
  cp "target/peers/release/$peer" "$BIN/$peer"
done
echo "built $BIN/myapp, $BIN/myapp-uninstrumented, $BIN/bare-hyper, $BIN/go-seed, $BIN/axum-prom, $BIN/actix-prom"

DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d ' ' -f 1-3 /proc/loadavg)
started_at=$(date +%s)

# --- 1. throughput -----------------------------------------------------------------

step "1. /work throughput, zero delay, $CONNECTIONS connections, ${RUN_SECONDS}s x $ROUNDS rounds"
declare -A ADDR=() PID=() RPS=() RPCPU=() CPU_US=() CPU_USE=() ERRORS=()
for name in "${SERVERS[@]}"; do
  start "$name" "${ZERO_DELAY[@]}"
  ADDR[$name]=$SERVER_ADDR
  PID[$name]=$SERVER_PID
  # Same bytes and Content-Type from every contender, or the race is unfair.
  curl -s -D "$LOGS/$name.headers" -o "$LOGS/$name.body" "http://$SERVER_ADDR/work"
  if [ "$(cat "$LOGS/$name.body")" != '{"delay_ms":0}' ] ||
    ! grep -qi '^content-type: application/json; charset=utf-8' "$LOGS/$name.headers"; then
    echo "${LABEL[$name]} does not answer /work as myapp does:" >&2
    cat "$LOGS/$name.headers" "$LOGS/$name.body" >&2
    exit 1
  fi
  # Warm-up: connections, allocator, Go's GC pacing.
  run_waited "${WRK[@]}" -t 1 -c "$CONNECTIONS" -d "${warm_up_seconds}s" "http://$SERVER_ADDR/work" >/dev/null
done
for round in $(seq "$ROUNDS"); do
  for name in "${SERVERS[@]}"; do
    out=$LOGS/throughput-$name-$round.txt
    ticks_before=$(cpu_ticks "${PID[$name]}")
    run_waited "${WRK[@]}" -t 1 -c "$CONNECTIONS" -d "${RUN_SECONDS}s" "http://${ADDR[$name]}/work" >"$out"
    ticks=$(($(cpu_ticks "${PID[$name]}") - ticks_before))
    requests=$(wrk_requests "$out")
    per_cpu_second=$(awk -v n="$requests" -v t="$ticks" -v hz="$TICKS_PER_SECOND" 'BEGIN { print (t > 0) ? n * hz / t : "NaN" }')
    cpu_us=$(awk -v n="$requests" -v t="$ticks" -v hz="$TICKS_PER_SECOND" 'BEGIN { print (n > 0) ? t / hz * 1e6 / n : "NaN" }')
    RPS[$name]+=" $(wrk_rps "$out")"
    RPCPU[$name]+=" $per_cpu_second"
    CPU_US[$name]+=" $cpu_us"
    CPU_USE[$name]+=" $(awk -v t="$ticks" -v hz="$TICKS_PER_SECOND" -v s="$RUN_SECONDS" 'BEGIN { print 100 * t / hz / s }')"
    ERRORS[$name]=$((${ERRORS[$name]:-0} + $(wrk_socket_errors "$out") + $(wrk_non_2xx "$out")))
    printf '  round %d  %-30s %10s req/s  %8.0f req/CPU-s  %6.2f CPU us/req  (%s ticks)\n' \
      "$round" "${LABEL[$name]}" "$(wrk_rps "$out")" "$per_cpu_second" "$cpu_us" "$ticks"
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
  for name in "${WAITERS[@]}"; do
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

# --- 5. load generators --------------------------------------------------------------------

# client_command CLIENT RATE SECONDS URL: sets CLIENT_COMMAND to CLIENT at RATE req/s for
# SECONDS, on the clients' CPU, its CPU time (user, system) written to the file TIME_FILE names.
client_command() {
  local client=$1 rate=$2 seconds=$3 url=$4
  CLIENT_COMMAND=("${CLIENT_CPU[@]}" /usr/bin/time -f '%U %S' -o "$TIME_FILE")
  case $client in
    # Room for every request due in a stall of the server: none is dropped.
    load) CLIENT_COMMAND+=("$BIN/myapp" load --json --max-in-flight 10000 --rate "$rate" --duration "${seconds}s" "$url") ;;
    hey) CLIENT_COMMAND+=(hey -z "${seconds}s" -c "$CLIENT_CONNECTIONS" -q "$((rate / CLIENT_CONNECTIONS))" "$url") ;;
    wrk) CLIENT_COMMAND+=(env "WRK_DELAY_MS=$((CLIENT_CONNECTIONS * 1000 / rate))" wrk -t 1 -c "$CLIENT_CONNECTIONS"
      -d "${seconds}s" -s "$PACED" "$url") ;;
  esac
}

# client_sent CLIENT OUT: the requests CLIENT sent: myapp load's `sent`; hey's
# answers by status plus its errors; the requests wrk completed.
client_sent() {
  case $1 in
    load) jq '.sent' "$2" ;;
    hey) awk '/^Error distribution:/ { errors = 1 }
      $1 ~ /^\[[0-9]+\]$/ { if (errors) { gsub(/[][]/, "", $1); n += $1 } else n += $2 }
      END { print n + 0 }' "$2" ;;
    wrk) wrk_requests "$2" ;;
  esac
}

# client_rate CLIENT OUT: the rate CLIENT says it achieved, req/s.
client_rate() {
  case $1 in
    load) jq '.achieved_rate' "$2" ;;
    hey) awk '/Requests\/sec:/ { print $2 }' "$2" ;;
    wrk) wrk_rps "$2" ;;
  esac
}

# client_p99_ms CLIENT OUT: the p99 latency CLIENT reports, ms.
client_p99_ms() {
  case $1 in
    load) jq '.latency_ms.p99' "$2" ;;
    hey) awk '$1 == "99%" && $2 == "in" { print $3 * 1000 }' "$2" ;;
    wrk) wrk_latency_ms "$2" 99 ;;
  esac
}

# schedule_p99_ms RATE SECONDS STALL_START STALL: the p99 latency, ms, of RATE req/s
# for SECONDS against a server that answers at once but stops from STALL_START
# for STALL seconds: request i is due at i / RATE; one due in the stall waits
# until it ends. The nearest-rank percentile of those RATE * SECONDS latencies.
schedule_p99_ms() {
  awk -v r="$1" -v d="$2" -v t0="$3" -v s="$4" 'BEGIN {
    for (i = 0; i < r * d; i++) { t = i / r; print (t >= t0 && t < t0 + s) ? (t0 + s - t) * 1000 : 0 }
  }' | sort -g | awk -v n="$(($1 * $2))" 'NR == int(n * 99 / 100 + 0.999999) { print; exit }'
}

step "5. load generators against one zero-delay myapp, ${RUN_SECONDS}s x $ROUNDS rounds at ${LOAD_RATES[*]} req/s"
declare -A CLIENT_CPU_US=() CLIENT_RATE=() CLIENT_SENT=() STALL_P99=() STALL_SENT=()
start myapp "${ZERO_DELAY[@]}"
stalled_pid=$SERVER_PID
url=http://$SERVER_ADDR/work
for round in $(seq "$ROUNDS"); do
  for rate in "${LOAD_RATES[@]}"; do
    for client in "${CLIENTS[@]}"; do
      out=$LOGS/client-$client-$rate-$round.txt
      TIME_FILE=$out.time
      client_command "$client" "$rate" "$RUN_SECONDS" "$url"
      run_waited "${CLIENT_COMMAND[@]}" >"$out" 2>&1
      sent=$(client_sent "$client" "$out")
      achieved=$(client_rate "$client" "$out")
      cpu_us=$(awk -v n="$sent" '{ print (n > 0) ? ($1 + $2) * 1e6 / n : "NaN" }' "$TIME_FILE")
      CLIENT_CPU_US[$client-$rate]+=" $cpu_us"
      CLIENT_RATE[$client-$rate]+=" $achieved"
      CLIENT_SENT[$client-$rate]+=" $sent"
      printf '  round %d  %-26s target %5d/s  achieved %10.1f/s  sent %7d  %7.2f CPU us/request\n' \
        "$round" "${CLIENT_LABEL[$client]}" "$rate" "$achieved" "$sent" "$cpu_us"
    done
  done
done
# Coordinated omission shown: the same server stopped in the middle of each run.
STALL_START=$(awk -v d="$STALL_RUN_SECONDS" -v s="$STALL_SECONDS" 'BEGIN { print (d - s) / 2 }')
SCHEDULE_P99=$(schedule_p99_ms "$STALL_RATE" "$STALL_RUN_SECONDS" "$STALL_START" "$STALL_SECONDS")
echo "  the server stopped for ${STALL_SECONDS}s from ${STALL_START}s into each ${STALL_RUN_SECONDS}s run at $STALL_RATE req/s: true p99 $SCHEDULE_P99 ms"
for client in "${CLIENTS[@]}"; do
  out=$LOGS/stall-$client.txt
  TIME_FILE=$out.time
  client_command "$client" "$STALL_RATE" "$STALL_RUN_SECONDS" "$url"
  "${CLIENT_COMMAND[@]}" >"$out" 2>&1 &
  stall_client=$!
  PIDS+=("$stall_client")
  sleep "$STALL_START"
  # A stopped server cannot take the SIGTERM of the exit trap: it is continued first.
  trap 'kill -CONT "$stalled_pid" 2>/dev/null; stop_all' EXIT
  kill -STOP "$stalled_pid"
  sleep "$STALL_SECONDS"
  kill -CONT "$stalled_pid"
  trap stop_all EXIT
  wait "$stall_client"
  forget_pid "$stall_client"
  STALL_P99[$client]=$(client_p99_ms "$client" "$out")
  STALL_SENT[$client]=$(client_sent "$client" "$out")
  printf '  %-26s p99 %9s ms  sent %6d\n' "${CLIENT_LABEL[$client]}" "${STALL_P99[$client]}" "${STALL_SENT[$client]}"
done
stop_pid "$stalled_pid"

# --- 6. instructions per request ------------------------------------------------------------

step "6. instructions per zero-delay /work request (callgrind), ${RUN_SECONDS}s each"
# Counting starts after a warm-up run (--instr-atstart=no, then callgrind_control), so
# start-up is left out; the count is every thread's user-space instructions, divided by the
# requests wrk made (8 connections: valgrind runs the guest's threads one at a time).
declare -A INSTRUCTIONS=()
for name in "${COUNTED[@]}"; do
  profile=$LOGS/callgrind-$name.out
  callgrind=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$profile")
  # valgrind goes after env's settings, so that it runs the server, not env.
  # shellcheck disable=SC2206 # COMMAND holds words
  case $name in
    myapp) command=(env -u RUST_LOG "${callgrind[@]}" "$BIN/myapp") ;;
    myapp-warn) command=(env RUST_LOG=warn "${callgrind[@]}" "$BIN/myapp") ;;
    *) command=("${callgrind[@]}" ${COMMAND[$name]}) ;;
  esac
  flags=("${ZERO_DELAY[@]}")
  [ "$name" != bare ] || flags=()
  start_server "$LOGS/callgrind-$name.log" "${SERVER_CPU[@]}" "${command[@]}" --listen 127.0.0.1:0 "${flags[@]}"
  # Warmed up first, as in section 1: the count is of a server in its steady state.
  run_waited "${WRK[@]}" -t 1 -c 8 -d 1s "http://$SERVER_ADDR/work" >/dev/null
  callgrind_control --instr=on "$SERVER_PID" >/dev/null 2>&1
  out=$LOGS/callgrind-$name.txt
  run_waited "${WRK[@]}" -t 1 -c 8 -d "${RUN_SECONDS}s" "http://$SERVER_ADDR/work" >"$out"
  callgrind_control --instr=off "$SERVER_PID" >/dev/null 2>&1
  stop_pid "$SERVER_PID"
  total=$(callgrind_annotate "$profile" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  # No count (callgrind never switched on, no profile) is no figure, never 0 instructions.
  INSTRUCTIONS[$name]=$(awk -v t="${total:-0}" -v n="$(wrk_requests "$out")" 'BEGIN { print (n > 0 && t > 0) ? t / n : "NaN" }')
  printf '  %-30s %8s instructions per request (%s requests)\n' "${LABEL[$name]}" "$(fmt 0 "${INSTRUCTIONS[$name]}")" "$(wrk_requests "$out")"
done

LOAD_AFTER=$(cut -d ' ' -f 1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started_at))

# --- report -------------------------------------------------------------------------------

med() { median <<<"$1"; }
kib_to_mib() { awk -v k="$1" 'BEGIN { if (k == "NaN") print "NaN"; else print k / 1024 }'; }
list() { tr ' ' '\n' <<<"$1" | grep -v '^$' | tr '\n' ' '; }

# What the instrumentation costs each stack: its CPU microseconds per request
# less its twin's, the median of the per-round differences.
declare -A COST=()
for name in "${!TWIN[@]}"; do
  COST[$name]=$(paired_median - "${CPU_US[$name]}" "${CPU_US[${TWIN[$name]}]}")
done
P99_SCRAPE=$(med "${SCRAPE_P99[myapp]}")

# target_row TARGET OP GOAL MEASURED DECIMALS [GOAL_SHOWN]
target_row() {
  echo "| $1 | $2 ${6:-$3} | $(fmt "$5" "$4") | $(met "$4" "$2" "$3") |"
}

targets_table() {
  local peer
  echo "| target | goal | measured | met |"
  echo "| --- | --- | --- | --- |"
  target_row "/work requests per CPU-second, myapp / ${LABEL[go]}" '>=' 1.5 \
    "$(paired_median / "${RPCPU[myapp]}" "${RPCPU[go]}")" 2
  target_row "/work requests per CPU-second, myapp / ${LABEL[bare]}" '>=' 0.85 \
    "$(paired_median / "${RPCPU[myapp]}" "${RPCPU[bare]}")" 3
  target_row "/work requests per CPU-second, myapp / ${LABEL[axum]}" '>=' 1 \
    "$(paired_median / "${RPCPU[myapp]}" "${RPCPU[axum]}")" 3
  target_row "/work requests per CPU-second, myapp / ${LABEL[actix]}" '>' 1 \
    "$(paired_median / "${RPCPU[myapp]}" "${RPCPU[actix]}")" 3
  target_row "/work requests per CPU-second, ${LABEL[myapp-warn]} / ${LABEL[actix]}" '>=' 1 \
    "$(paired_median / "${RPCPU[myapp-warn]}" "${RPCPU[actix]}")" 3
  target_row "instructions per zero-delay /work request, myapp (callgrind)" '<=' 28000 "${INSTRUCTIONS[myapp]}" 0
  target_row "instructions per zero-delay /work request, ${LABEL[myapp-warn]} (callgrind)" '<=' 20000 "${INSTRUCTIONS[myapp-warn]}" 0
  for peer in "${PEERS[@]}"; do
    target_row "instrumentation cost, CPU µs per request, myapp against ${LABEL[$peer]}" '<' \
      "${COST[$peer]}" "${COST[myapp]}" 2 "$(fmt 2 "${COST[$peer]}")"
  done
  for peer in "${PEERS[@]}"; do
    target_row "peak RSS with $WAITING waiting, myapp / ${LABEL[$peer]}" '<' 1 \
      "$(paired_median / "${PEAK_RSS[myapp]}" "${PEAK_RSS[$peer]}")" 3
  done
  for peer in "${PEERS[@]}"; do
    target_row "p99 with $WAITING waiting, myapp / ${LABEL[$peer]}" '<=' 1 \
      "$(paired_median / "${WAIT_P99[myapp]}" "${WAIT_P99[$peer]}")" 4
  done
  target_row "middleware recording, ns per request (criterion)" '<=' 100 "$NS_MIDDLEWARE" 1
  target_row "/metrics p99 while /work is saturated, ms" '<=' 10 "$P99_SCRAPE" 2
  for rate in "${LOAD_RATES[@]}"; do
    target_row "load generator CPU per request sent at $rate req/s, myapp load / hey" '<=' 0.5 \
      "$(paired_median / "${CLIENT_CPU_US[load-$rate]}" "${CLIENT_CPU_US[hey-$rate]}")" 2
  done
  target_row "myapp load's achieved rate at 5,000 req/s, % off the target" '<=' 1 "$(rate_off_percent load 5000)" 2
}

# rate_off_percent CLIENT RATE: the median over the rounds of how far CLIENT's achieved
# rate was from RATE, in % either way.
rate_off_percent() {
  tr ' ' '\n' <<<"${CLIENT_RATE[$1-$2]}" | awk -v t="$2" 'NF { d = ($1 / t - 1) * 100; print (d < 0) ? -d : d }' | median
}

# A cell of the figures table for one server (empty where the section did not run it).
cell_rps() { fmt 0 "$(med "${RPS[$1]}")"; }
cell_per_cpu_second() { fmt 0 "$(med "${RPCPU[$1]}")"; }
cell_cpu_us() { fmt 2 "$(med "${CPU_US[$1]}")"; }
cell_cpu_use() { fmt 0 "$(med "${CPU_USE[$1]}")"; }
cell_cost() { if [ -n "${COST[$1]:-}" ]; then fmt 2 "${COST[$1]}"; fi; }
cell_errors() { echo "${ERRORS[$1]}"; }
cell_peak_rss() { if [ -n "${PEAK_RSS[$1]:-}" ]; then fmt 1 "$(kib_to_mib "$(med "${PEAK_RSS[$1]}")")"; fi; }
cell_idle_rss() { if [ -n "${IDLE_RSS[$1]:-}" ]; then fmt 1 "$(kib_to_mib "$(med "${IDLE_RSS[$1]}")")"; fi; }
cell_wait_latency() {
  if [ -n "${WAIT_P99[$1]:-}" ]; then
    echo "$(fmt 0 "$(med "${WAIT_P50[$1]}")") / $(fmt 0 "$(med "${WAIT_P99[$1]}")")"
  fi
}
cell_wait_rps() { if [ -n "${WAIT_RPS[$1]:-}" ]; then echo "$(fmt 0 "$(med "${WAIT_RPS[$1]}")"); ${WAIT_ERRORS[$1]}"; fi; }
cell_overflows() { echo "${OVERFLOWS[$1]:-}"; }
cell_instructions() { if [ -n "${INSTRUCTIONS[$1]:-}" ]; then fmt 0 "${INSTRUCTIONS[$1]}"; fi; }
cell_scrape_latency() {
  if [ -n "${SCRAPE_P99[$1]:-}" ]; then
    echo "$(fmt 2 "$(med "${SCRAPE_P50[$1]}")") / $(fmt 2 "$(med "${SCRAPE_P99[$1]}")")"
  fi
}
cell_scrape_rps() { if [ -n "${SCRAPE_RPS[$1]:-}" ]; then fmt 0 "$(med "${SCRAPE_RPS[$1]}")"; fi; }

# figure_row FIGURE CELL: a row of the figures table, CELL NAME printing each server's cell.
figure_row() {
  local name row="| $1 |"
  for name in "${SERVERS[@]}"; do
    row+=" $("$2" "$name") |"
  done
  echo "$row"
}

figures_table() {
  local name header="| figure |" rule="| --- |"
  for name in "${SERVERS[@]}"; do
    header+=" ${LABEL[$name]} |"
    rule+=" --- |"
  done
  echo "$header"
  echo "$rule"
  figure_row "/work, zero delay, $CONNECTIONS connections: req/s" cell_rps
  figure_row "requests per server CPU-second" cell_per_cpu_second
  figure_row "server CPU µs per request" cell_cpu_us
  figure_row "user-space instructions per request (callgrind, one run)" cell_instructions
  figure_row "server CPU use meanwhile, % of one CPU (below 100: wrk was the limit, or CPU 0 was shared)" cell_cpu_use
  figure_row "instrumentation cost: CPU µs per request more than without metrics" cell_cost
  figure_row "errors in those runs (socket errors + non-2xx), all rounds" cell_errors
  figure_row "peak RSS (VmHWM) with $WAITING waiting, MiB" cell_peak_rss
  figure_row "RSS at start, idle, MiB" cell_idle_rss
  figure_row "latency with $WAITING waiting, p50 / p99, ms" cell_wait_latency
  figure_row "req/s with $WAITING waiting; socket errors, all rounds" cell_wait_rps
  figure_row "accept queue overflows meanwhile (TcpExtListenOverflows), all rounds" cell_overflows
  figure_row "/metrics while /work is saturated, p50 / p99, ms" cell_scrape_latency
  figure_row "/metrics scrapes per second meanwhile (1 connection)" cell_scrape_rps
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

clients_table() {
  local rate client
  echo "| client | target, req/s | achieved, req/s | CPU µs per request sent | requests sent |"
  echo "| --- | --- | --- | --- | --- |"
  for rate in "${LOAD_RATES[@]}"; do
    for client in "${CLIENTS[@]}"; do
      echo "| ${CLIENT_LABEL[$client]} | $rate | $(fmt 1 "$(med "${CLIENT_RATE[$client-$rate]}")") |" \
        "$(fmt 1 "$(med "${CLIENT_CPU_US[$client-$rate]}")") | $(fmt 0 "$(med "${CLIENT_SENT[$client-$rate]}")") |"
    done
  done
}

stall_table() {
  local client
  echo "| server stopped ${STALL_SECONDS} s from ${STALL_START} s into ${STALL_RUN_SECONDS} s at $STALL_RATE req/s | p99, ms | requests sent |"
  echo "| --- | --- | --- |"
  echo "| true p99 of the schedule (computed, service time 0) | $(fmt 1 "$SCHEDULE_P99") | $((STALL_RATE * STALL_RUN_SECONDS)) due |"
  for client in "${CLIENTS[@]}"; do
    echo "| ${CLIENT_LABEL[$client]} reports | $(fmt 1 "${STALL_P99[$client]}") | ${STALL_SENT[$client]} |"
  done
}

rounds_table() {
  local name rate client
  echo "| per round | values |"
  echo "| --- | --- |"
  for name in "${SERVERS[@]}"; do
    echo "| /work req/s, ${LABEL[$name]} | $(list "${RPS[$name]}")|"
    echo "| /work CPU µs per request, ${LABEL[$name]} | $(list "${CPU_US[$name]}")|"
  done
  for name in "${WAITERS[@]}"; do
    echo "| peak RSS KiB with $WAITING waiting, ${LABEL[$name]} | $(list "${PEAK_RSS[$name]}")|"
    echo "| p99 ms with $WAITING waiting, ${LABEL[$name]} | $(list "${WAIT_P99[$name]}")|"
  done
  for name in myapp go; do
    echo "| /metrics p99 ms under saturation, ${LABEL[$name]} | $(list "${SCRAPE_P99[$name]}")|"
  done
  for rate in "${LOAD_RATES[@]}"; do
    for client in "${CLIENTS[@]}"; do
      echo "| client CPU µs per request at $rate req/s, ${CLIENT_LABEL[$client]} | $(list "${CLIENT_CPU_US[$client-$rate]}")|"
      echo "| achieved req/s at $rate req/s, ${CLIENT_LABEL[$client]} | $(list "${CLIENT_RATE[$client-$rate]}")|"
    done
  done
}

# server_commands: how each server of section 1 was started.
server_commands() {
  local name
  for name in "${SERVERS[@]}"; do
    if [ "$name" = bare ]; then
      echo "${SERVER_CPU[*]} ${COMMAND[$name]}"
    else
      echo "${SERVER_CPU[*]} ${COMMAND[$name]} ${ZERO_DELAY[*]}"
    fi
  done
}

MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
CPU=$(awk -F ': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report=$BIN/BENCHMARKS.md.new
cat >"$report" <<EOF
# Benchmarks

**$KIND.** Written by \`scripts/bench.sh\` on $DATE, in ${elapsed}s.

The servers take turns, A B A B ..., for $ROUNDS round(s), each on its own loopback port;
the figures are medians over the rounds, and each ratio or difference is the median of the
per-round ones, so that the machine's drift cancels out. $PINNING
Requests per CPU-second divide the requests wrk counted by the CPU time (user and system)
the server's process spent meanwhile, from \`/proc/PID/stat\` before and after each run:
wrk's CPU and anything else on the machine do not count in it. A server that has to share
its CPU still spends more on each request (fewer requests per wake-up, colder caches): the
"server CPU use" row shows whether each had its CPU to itself. The peers implement the
seed's design (benches/go-seed, benches/peers/), with jemalloc as myapp; "no metrics" is
the same binary without its metrics layer and \`/metrics\`.

## Machine

- $(nproc) CPUs: $CPU; memory $MEM; Linux $(uname -r)
- load average (1, 5, 15 min): $LOAD_BEFORE before, $LOAD_AFTER after
- $(rustc -V); $(go version); $( (wrk -v 2>&1 || true) | head -n 1 | cut -d ' ' -f 1-2)

## Targets

$(targets_table)

## Figures

$(figures_table)

$(criterion_table)

### Load generators

Each client on CPU 1 against one zero-delay myapp on CPU 0; CPU µs per request sent is the
client's user and system time (\`/usr/bin/time\`) divided by the requests it sent: \`sent\`
for myapp load, the answers and errors for hey, the requests wrk completed. myapp load is
open loop (each request leaves when due); hey (\`-c $CLIENT_CONNECTIONS -q RATE/$CLIENT_CONNECTIONS\`) and wrk
(each connection waits $CLIENT_CONNECTIONS/RATE s after each answer, scripts/wrk-paced.lua) are closed
loop: a request waits for the one before it on its connection.

$(clients_table)

Coordinated omission shown: the same server stopped (SIGSTOP, then SIGCONT) in the middle of
one run of each client. A request due in the stall waits until it ends, so the schedule's
true p99 is computed from the rate, the run and the stall alone. A closed-loop client sends
nothing while its connections wait, so it measures only the few requests it had in flight:
hey reports those as they were; wrk 4 afterwards adds synthetic samples to its histogram
(\`stats_correct\`, one per expected interval of a connection) where a latency exceeded that
interval, so its percentiles are estimates of requests it never sent.

$(stall_table)

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
cargo build --release --locked --manifest-path benches/peers/axum-prom/Cargo.toml --target-dir target/peers    # copied to $BIN/
cargo build --release --locked --manifest-path benches/peers/actix-prom/Cargo.toml --target-dir target/peers   # copied to $BIN/

# servers (each with --listen 127.0.0.1:0; the port is read with ss); myapp's log goes to $LOGS/
$(server_commands)

# 1. throughput, after a warm-up run, each server in turn, $ROUNDS round(s); the server's
#    CPU time (utime + stime of /proc/PID/stat, in ticks of $TICKS_PER_SECOND Hz) read before and after
${WRK[*]} -t 1 -c $CONNECTIONS -d ${RUN_SECONDS}s http://ADDR/work
# 3. /metrics under saturation, myapp and Go in turn, $ROUNDS round(s)
${WRK[*]} -t 1 -c $CONNECTIONS -d $((RUN_SECONDS + 1))s http://ADDR/work &
${WRK[*]} -t 1 -c 1 -d ${RUN_SECONDS}s --latency -s $PERCENTILES http://ADDR/metrics      # 0.5 s later
# 2. $WAITING waiting: a fresh server with default flags (0 to 2 s, error rate 0.5) per round,
#    ${WAITERS[*]}; VmHWM from /proc/PID/status after the run; ulimit -n $(ulimit -n)
${WRK[*]} -t 1 -c $WAITING -d ${WAITING_SECONDS}s --timeout 10s --latency -s $PERCENTILES http://ADDR/work
# 4. criterion
cargo bench --locked --bench request_metrics --bench scrape -- ${CRITERION_ARGS[*]}
# 5. load generators, against one myapp with the zero-delay flags, each in turn, $ROUNDS round(s) per rate
${CLIENT_CPU[*]} /usr/bin/time -f '%U %S' $BIN/myapp load --json --max-in-flight 10000 --rate RATE --duration ${RUN_SECONDS}s http://ADDR/work
${CLIENT_CPU[*]} /usr/bin/time -f '%U %S' hey -z ${RUN_SECONDS}s -c $CLIENT_CONNECTIONS -q RATE/$CLIENT_CONNECTIONS http://ADDR/work
${CLIENT_CPU[*]} /usr/bin/time -f '%U %S' env WRK_DELAY_MS=$CLIENT_CONNECTIONS*1000/RATE wrk -t 1 -c $CLIENT_CONNECTIONS -d ${RUN_SECONDS}s -s $PACED http://ADDR/work
#    then each once at $STALL_RATE req/s for ${STALL_RUN_SECONDS}s: kill -STOP the server ${STALL_START}s in, kill -CONT ${STALL_SECONDS}s later
# 6. callgrind, each of ${COUNTED[*]} in turn, started as above under
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$LOGS/callgrind-NAME.out
${WRK[*]} -t 1 -c 8 -d 1s http://ADDR/work   # warm-up, once it listens
callgrind_control --instr=on PID
${WRK[*]} -t 1 -c 8 -d ${RUN_SECONDS}s http://ADDR/work
callgrind_control --instr=off PID; kill PID; callgrind_annotate $LOGS/callgrind-NAME.out   # PROGRAM TOTALS / requests
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
clients_table
echo
stall_table
echo
echo "written to $OUT; wrk outputs in $LOGS/; took ${elapsed}s"
