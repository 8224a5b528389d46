# Shared helpers for the scripts: sourced, not run.
# Every process started with start_myapp is stopped on exit, whatever happens.

PIDS=()
PASSED=0
FAILED=0

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap stop_all EXIT
# A signal (Ctrl-C, a closed output pipe) becomes an exit, so the trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM HUP
trap 'exit 141' PIPE

pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '  FAIL  %s\n' "$*"; }

# check DESCRIPTION COMMAND...: runs COMMAND, records a pass or a fail.
check() {
  local description=$1
  shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}

# summary NAME: prints the PASS/FAIL line and returns non-zero on any failure.
summary() {
  if [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; then
    printf '%s: PASS (%d checks)\n' "$1" "$PASSED"
  else
    printf '%s: FAIL (%d failed, %d passed)\n' "$1" "$FAILED" "$PASSED"
    return 1
  fi
}

# need_package COMMAND PACKAGE: installs the Debian PACKAGE when COMMAND is
# missing and we are root; otherwise returns 1 so the caller can say it skipped.
need_package() {
  command -v "$1" >/dev/null && return 0
  if [ "$(id -u)" -ne 0 ]; then
    return 1
  fi
  echo "installing $2 (for $1)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# need_pyyaml: installs PyYAML with pip when python3 lacks it.
need_pyyaml() {
  python3 -c 'import yaml' 2>/dev/null && return 0
  echo "installing PyYAML (pip install pyyaml)"
  pip install --quiet pyyaml
}

# need_prometheus_client: installs Python's prometheus_client (whose strict
# OpenMetrics parser scripts/openmetrics-check.py uses) with pip when python3
# lacks it.
need_prometheus_client() {
  python3 -c 'import prometheus_client' 2>/dev/null && return 0
  echo "installing prometheus_client (pip install prometheus-client)"
  pip install --quiet prometheus-client
}

# start_myapp LOGFILE ARGS...: starts the release binary on a free loopback
# port and sets MYAPP_PID, MYAPP_ADDR and MYAPP_METRICS_ADDR (where /metrics is
# served: MYAPP_ADDR, or the --metrics-listen one) from its "listening" log
# line. RUST_LOG is passed on (default info).
start_myapp() {
  local log=$1
  shift
  RUST_LOG=${RUST_LOG:-info} target/release/myapp --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  MYAPP_PID=$!
  PIDS+=("$MYAPP_PID")
  MYAPP_ADDR=
  local _
  for _ in $(seq 100); do
    # The log may not exist yet: the background shell creates it.
    MYAPP_ADDR=$(sed -n 's/.* listening address=\([0-9.:]*\) .*/\1/p' "$log" 2>/dev/null || true)
    MYAPP_METRICS_ADDR=$(sed -n 's/.* listening .* metrics_address=\([0-9.:]*\) .*/\1/p' "$log" 2>/dev/null || true)
    [ -n "$MYAPP_ADDR" ] && return 0
    kill -0 "$MYAPP_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "myapp did not start; its log:" >&2
  cat "$log" >&2
  return 1
}

# start_process LOGFILE COMMAND...: starts COMMAND in the background, stopped
# on exit like the others; sets LAST_PID.
start_process() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# free_port: prints a loopback TCP port that is free now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds;
# returns 1 if it has not after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# prom_query PROMETHEUS_URL QUERY: runs an instant query through the HTTP API
# and prints one line per series, "label=value,... VALUE" (labels sorted, the
# line is just VALUE without labels). Fails on an error or an empty result.
prom_query() {
  curl -sfG --max-time 10 "$1/api/v1/query" --data-urlencode "query=$2" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
if answer.get("status") != "success":
    sys.exit("query failed: %s" % answer.get("error"))
data = answer["data"]
rows = data["result"] if data["resultType"] in ("vector", "matrix") else [{"metric": {}, "value": data["result"]}]
if not rows:
    sys.exit("no data")
for row in sorted(rows, key=lambda r: sorted(r["metric"].items())):
    labels = ",".join("%s=%s" % kv for kv in sorted(row["metric"].items()))
    print((labels + " " if labels else "") + row["value"][1])
'
}

# http_status URL: prints the HTTP status of a GET.
http_status() {
  curl -s -o /dev/null -w '%{http_code}' "$1"
}

# Let Ctrl-C and SIGTERM end the script through the EXIT trap too, so that
# nothing it started keeps running.
trap 'exit 130' INT
trap 'exit 143' TERM

# install_packages PACKAGE...: installs the Debian packages (apt-get update
# first) when we are root; otherwise returns 1 so the caller can say what is
# missing.
install_packages() {
  [ "$#" -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || return 1
  echo "installing $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# start_server LOGFILE COMMAND ARGS...: starts a server that listens on one TCP
# port (ask it for port 0) and sets SERVER_PID and SERVER_ADDR. The address is
# read from the socket table, so this works whatever the server logs.
start_server() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  SERVER_ADDR=
  local _
  for _ in $(seq 100); do
    SERVER_ADDR=$(ss -Hltnp | awk -v pid="pid=$SERVER_PID," 'index($0, pid) { print $4; exit }')
    [ -n "$SERVER_ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$* did not start listening; its log:" >&2
  cat "$log" >&2
  return 1
}

# forget_pid PID: takes an ended (waited for) process off the list to stop.
forget_pid() {
  local kept=() other
  for other in "${PIDS[@]}"; do
    [ "$other" = "$1" ] || kept+=("$other")
  done
  PIDS=("${kept[@]}")
}

# stop_pid PID: stops one process this script started, waits for it, and
# forgets it.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# run_waited COMMAND ARGS...: runs COMMAND in the background and waits for it,
# returning its status. For commands that catch SIGINT themselves, as wrk
# does: bash would take their clean exit for the end of Ctrl-C and carry on,
# while an interrupted `wait` runs the INT trap at once.
run_waited() {
  "$@" &
  local pid=$! status=0
  PIDS+=("$pid")
  wait "$pid" || status=$?
  forget_pid "$pid"
  return "$status"
}

# use_trixie_tools PACKAGE...: puts Debian 13 ("trixie") packages, newer than
# Debian 12's, first on PATH without touching the system's apt sources: a
# private sources list and package lists under tools/trixie/apt, the packages
# downloaded (apt-get download) and unpacked (dpkg-deb -x) into tools/trixie.
# Unpacks each package once; returns 1, saying why, when one cannot be had.
# Used for Prometheus 2.53.3 (prometheus, promtool) and Alertmanager 0.28.1
# (prometheus-alertmanager).
TRIXIE_TOOLS=${TRIXIE_TOOLS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tools/trixie}
use_trixie_tools() {
  local apt=$TRIXIE_TOOLS/apt package missing=()
  for package in "$@"; do
    [ -e "$TRIXIE_TOOLS/.unpacked-$package" ] || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "downloading from Debian 13 (trixie) into $TRIXIE_TOOLS: ${missing[*]}"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
    echo 'deb http://deb.debian.org/debian trixie main' >"$apt/sources.list"
    local options=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
      -o APT::Sandbox::User="$(id -un)")
    if ! apt-get "${options[@]}" -qq update ||
      ! (cd "$apt/debs" && apt-get "${options[@]}" -qq download "${missing[@]}"); then
      echo "could not download ${missing[*]} from Debian 13 (trixie)" >&2
      return 1
    fi
    for package in "${missing[@]}"; do
      dpkg-deb -x "$(ls "$apt/debs/${package}"_*.deb)" "$TRIXIE_TOOLS" || {
        echo "could not unpack $package from Debian 13 (trixie)" >&2
        return 1
      }
      touch "$TRIXIE_TOOLS/.unpacked-$package"
    done
    rm -rf "$apt/debs"
  fi
  case ":$PATH:" in
    *":$TRIXIE_TOOLS/usr/bin:"*) ;;
    *) export PATH="$TRIXIE_TOOLS/usr/bin:$PATH" ;;
  esac
}

# server_versions COMMAND...: "COMMAND VERSION" of each, comma-separated on one
# line, from its --version (Alertmanager's goes to stderr), for the logs: which
# Prometheus and Alertmanager a run used.
server_versions() {
  local command line=
  for command in "$@"; do
    line+="${line:+, }$command $("$command" --version 2>&1 | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
  done
  echo "$line"
}

# prom_exemplars PROMETHEUS_URL SELECTOR TRACE_ID: the metric names, sorted and
# space-separated, whose exemplars of the last 10 minutes (query_exemplars)
# carry TRACE_ID.
prom_exemplars() {
  curl -sfG --max-time 10 "$1/api/v1/query_exemplars" --data-urlencode "query=$2" \
    --data-urlencode "start=$(($(date +%s) - 600))" --data-urlencode "end=$(($(date +%s) + 60))" |
    python3 -c '
import json, sys
trace_id = sys.argv[1]
names = {series["seriesLabels"]["__name__"] for series in json.load(sys.stdin)["data"]
         for e in series["exemplars"] if e["labels"].get("trace_id") == trace_id}
print(" ".join(sorted(names)))' "$3"
}

# check_scrape_format FORMAT DIR NAME...: one check per replica NAME that every
# scrape its log DIR/myapp-NAME.log records (RUST_LOG=myapp::exposition=debug
# logs one line each) was answered in FORMAT (protobuf, openmetrics), gzipped.
check_scrape_format() {
  local format=$1 dir=$2 name scrapes answered
  shift 2
  for name in "$@"; do
    scrapes=$(grep -c 'metrics exposed' "$dir/myapp-$name.log" || true)
    answered=$(grep -c "metrics exposed format=\"$format\" gzip=true" "$dir/myapp-$name.log" || true)
    check "replica $name answered every scrape in $format, gzipped ($answered of $scrapes)" \
      test "$answered" -gt 0 -a "$answered" -eq "$scrapes"
  done
}
