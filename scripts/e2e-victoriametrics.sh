#!/usr/bin/env bash
# A second engine: VictoriaMetrics (Debian 13's victoria-metrics 1.112: the
# single-node store, vmagent, vmalert) and Prometheus 2.53.3 in agent mode, on
# three replicas of the release binary. Two collectors scrape the replicas every
# second and remote-write into one store, each under its own `collector` label:
# vmagent with deploy/victoriametrics/vmagent.yml and vmagent.flags, Prometheus
# with deploy/prometheus/agent.yml (the shipped files; the test substitutes the
# addresses and the 1 s intervals). vmalert evaluates rules.yml and
# slo-rules.yml with deploy/victoriametrics/vmalert.flags. The test sends a
# planned number of /work requests per replica and status (?fail=), then
# checks that:
# - for each collector, the store's counts (the last samples, and increase()
#   over a window holding the whole run) equal what was sent, by status and by
#   replica, for myapp_processed_ops_total and the histogram's _count;
# - vmalert loaded every rule of both files, each healthy; every recording
#   rule wrote series, and the per-replica error ratio it recorded equals the
#   share of fail=true requests sent to that replica;
# - every series the agent scraped (each replica's /metrics, read with Python
#   prometheus_client's OpenMetrics parser, plus Prometheus's up and scrape_*
#   series) is in the store, nothing else is, and the values agree.
# Leaves its files in target/e2e-victoriametrics/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

out=$PWD/target/e2e-victoriametrics
rm -rf "$out"
mkdir -p "$out"

if ! use_trixie_tools victoria-metrics prometheus; then
  echo "e2e-victoriametrics: FAIL: cannot get Debian 13's victoria-metrics and prometheus"
  exit 1
fi
need_pyyaml
need_prometheus_client
cargo build --release --locked --quiet

# --- the store -----------------------------------------------------------------
# Queries leave out the newest -search.latencyOffset (30 s by default; vmalert's
# -rule.evalDelay below must match it), which the store may not hold whole yet.
# 5 s here, for collectors that send every second. (At 0 s, a rule's two sides
# read different samples: a 5xx counter's new sample without the total's gave
# Sloth's error ratio +Inf, which its 30d average then kept.)
# -search.disableCache: every query reads the stored samples afresh.
start_server "$out/victoria-metrics.log" victoria-metrics -storageDataPath="$out/vm-data" \
  -httpListenAddr=127.0.0.1:0 -search.latencyOffset=5s -search.disableCache
vm_addr=$SERVER_ADDR
vm=http://$vm_addr
echo "e2e-victoriametrics: victoria-metrics on $vm"

# --- the replicas -----------------------------------------------------------------
# The statuses are the test's: fail=true answers 500, fail=false 200; no delay.
names=(a b c)
declare -A addr ok_plan fail_plan
ok_plan=([a]=30 [b]=20 [c]=10)
fail_plan=([a]=10 [b]=20 [c]=30)
for name in "${names[@]}"; do
  start_myapp "$out/myapp-$name.log"
  addr[$name]=$MYAPP_ADDR
done
echo "e2e-victoriametrics: replicas a=${addr[a]} b=${addr[b]} c=${addr[c]}"

# --- the collectors ------------------------------------------------------------------
# config SHIPPED OUT [REMOTE_WRITE_URL]: the shipped scrape config with the
# replicas as targets and every interval 1 s (and the agent's remote_write URL).
config() {
  python3 - "$@" "${addr[a]}" "${addr[b]}" "${addr[c]}" <<'PY'
import sys
from pathlib import Path

import yaml

shipped, out, *rest = sys.argv[1:]
targets = rest[-3:]
config = yaml.safe_load(Path(shipped).read_text())
config["global"].update(scrape_interval="1s", scrape_timeout="1s")
config["scrape_configs"][0]["static_configs"] = [{"targets": targets}]
if len(rest) == 4:
    config["remote_write"][0]["url"] = rest[0]
Path(out).write_text(yaml.safe_dump(config, sort_keys=False))
PY
}

config deploy/victoriametrics/vmagent.yml "$out/vmagent.yml"
mapfile -t vmagent_flags < <(grep -v '^#' deploy/victoriametrics/vmagent.flags |
  sed "s|^-promscrape.config=.*|-promscrape.config=$out/vmagent.yml|; s|localhost:8428|$vm_addr|")
start_server "$out/vmagent.log" vmagent "${vmagent_flags[@]}" -httpListenAddr=127.0.0.1:0 \
  -remoteWrite.tmpDataPath="$out/vmagent-data"
vmagent_pid=$SERVER_PID

agent_config_ok() { promtool check config --agent "$1" >>"$out/promtool.txt" 2>&1; }
check "promtool check config --agent accepts deploy/prometheus/agent.yml" agent_config_ok deploy/prometheus/agent.yml
config deploy/prometheus/agent.yml "$out/agent.yml" "$vm/api/v1/write"
check "promtool check config --agent accepts the test's copy" agent_config_ok "$out/agent.yml"
agent_port=$(free_port)
start_process "$out/prometheus-agent.log" prometheus --enable-feature=agent --config.file="$out/agent.yml" \
  --storage.agent.path="$out/agent-data" --web.listen-address="127.0.0.1:$agent_port"
agent_pid=$LAST_PID

# --- vmalert ------------------------------------------------------------------------
# The shipped flags with the store's address, every 1 s, and no Alertmanager
# (-notifier.blackhole for -notifier.url). Both collectors write the same
# replicas into this one store, which a deployment would not do: the rules
# would add up both copies, and MyappErrorRatioAboveConfigured's on(job,
# instance) match would find two myapp_workload_error_rate series per replica
# and fail. So vmalert's queries leave the agent's copy out: the store's
# extra_filters[]={collector!="prometheus-agent"} on every one. What vmalert
# records carries no collector label, as on a Prometheus with these rules.
mapfile -t vmalert_flags < <(grep -v '^#' deploy/victoriametrics/vmalert.flags |
  sed "s|^-datasource.url=.*|&?extra_filters%5B%5D=%7Bcollector!%3D%22prometheus-agent%22%7D|; s|localhost:8428|$vm_addr|; s|^-notifier.url=.*|-notifier.blackhole|")
start_server "$out/vmalert.log" vmalert "${vmalert_flags[@]}" -evaluationInterval=1s -rule.evalDelay=5s \
  -httpListenAddr=127.0.0.1:0
vmalert=http://$SERVER_ADDR
vmalert_pid=$SERVER_PID

# Both collectors send each replica's counters at least twice before the
# traffic, so that the store holds their zero.
ready() {
  local collector
  for collector in vmagent prometheus-agent; do
    [ "$(prom_query "$vm" "min(count_over_time(up{collector=\"$collector\"}[1m])) >= 2 and count(up{collector=\"$collector\"} == 1) == 3")" ] || return 1
  done
}
if ! wait_until 30 ready; then
  echo "e2e-victoriametrics: FAIL: the store does not hold both collectors' scrapes of the three replicas; see $out/*.log"
  prom_query "$vm" 'up' || true
  exit 1
fi
start=$(date +%s)

# --- the traffic ----------------------------------------------------------------------
# shellcheck disable=SC2016 # the sh -c script expands its own arguments
for name in "${names[@]}"; do
  for _ in $(seq "${ok_plan[$name]}"); do echo "${addr[$name]} false"; done
  for _ in $(seq "${fail_plan[$name]}"); do echo "${addr[$name]} true"; done
done | xargs -P 10 -L 1 sh -c 'curl -s -o /dev/null -w "$0 %{http_code}\n" "http://$0/work?fail=$1&delay_ms=0"' \
  >"$out/statuses.txt"
declare -A sent
for name in "${names[@]}"; do
  for status in 200 500; do
    sent[$name/$status]=$(grep -c "^${addr[$name]} $status\$" "$out/statuses.txt" || true)
  done
  check "replica $name answered ${sent[$name/200]} x 200, ${sent[$name/500]} x 500 (planned ${ok_plan[$name]}, ${fail_plan[$name]})" \
    test "${sent[$name/200]}" = "${ok_plan[$name]}" -a "${sent[$name/500]}" = "${fail_plan[$name]}"
done
total_ok=$((ok_plan[a] + ok_plan[b] + ok_plan[c]))
total_fail=$((fail_plan[a] + fail_plan[b] + fail_plan[c]))
total=$((total_ok + total_fail))
check "every request answered ($(wc -l <"$out/statuses.txt") of $total)" test "$(wc -l <"$out/statuses.txt")" = "$total"

# --- the counts in the store --------------------------------------------------------------
# VictoriaMetrics' increase() does not extrapolate, as Prometheus's does: over
# a window that holds the whole run (the store began with this test, the
# collectors stored every counter's 0 before the traffic), it is the last
# sample minus that 0, a whole number. Prometheus's would extrapolate toward
# the window's end and give a fraction. Both the last samples and that
# increase() must equal the requests sent.
window=$(($(date +%s) - start + 120))s
# myapp_processed_ops_total counts by status; the histogram has no status
# label: its _count holds every request.
declare -A expected
expected[myapp_processed_ops_total]="status=200 $total_ok
status=500 $total_fail"
expected[myapp_processed_ops_total/replica]=$(for name in "${names[@]}"; do
  printf 'instance=%s,status=200 %s\ninstance=%s,status=500 %s\n' \
    "${addr[$name]}" "${sent[$name/200]}" "${addr[$name]}" "${sent[$name/500]}"
done | sort)
expected[myapp_request_duration_seconds_count]=$total
expected[myapp_request_duration_seconds_count/replica]=$(for name in "${names[@]}"; do
  echo "instance=${addr[$name]} $((sent[$name/200] + sent[$name/500]))"
done | sort)
declare -A by=([myapp_processed_ops_total]="status" [myapp_request_duration_seconds_count]="")
for collector in vmagent prometheus-agent; do
  selector="{job=\"myapp\",collector=\"$collector\"}"
  counted() { [ "$(prom_query "$vm" "sum(myapp_request_duration_seconds_count$selector)")" = "$total" ]; }
  wait_until 20 counted || true
  echo "e2e-victoriametrics: the store says, for collector=$collector:"
  for metric in myapp_processed_ops_total myapp_request_duration_seconds_count; do
    sum="sum${by[$metric]:+ by (${by[$metric]})}"
    for query in "$sum ($metric$selector)" "$sum (increase(${metric}${selector}[$window]))"; do
      got=$(prom_query "$vm" "$query" || true)
      check "  $query: $(echo "$got" | xargs)" test "$got" = "${expected[$metric]}"
    done
    query="sum by (instance${by[$metric]:+, ${by[$metric]}}) (increase(${metric}${selector}[$window]))"
    got=$(prom_query "$vm" "$query" || true)
    check "  $query: $(echo "$got" | awk '{print $2}' | xargs)" test "$got" = "${expected[$metric/replica]}"
  done
done

# --- every series of the agent --------------------------------------------------------------
# Each replica's /metrics read twice, 2.5 s apart (at least two scrapes in
# between), in OpenMetrics as the agent asks for it. The series (name and
# labels, plus job, instance and the agent's collector label, plus
# Prometheus's up and scrape_* for each target) must be exactly the agent's in
# the store; each sample whose value did not change between the two reads
# must have that value in the store at the second read; up is 1 and
# scrape_samples_scraped is the number of samples in the page.
read_metrics() {
  local name
  for name in "${names[@]}"; do
    curl -sf -H 'Accept: application/openmetrics-text;version=1.0.0' "http://${addr[$name]}/metrics" >"$out/metrics-$name-$1.txt"
  done
}
read_metrics 1
sleep 2.5
read_metrics 2
at=$(date +%s.%N)
# Past the store's latency offset.
sleep 7
echo "e2e-victoriametrics: the agent's series:"
while IFS=$'\t' read -r verdict text; do
  case $verdict in
    ok) pass "  $text" ;;
    *) fail "  $text" ;;
  esac
done < <(python3 - "$vm" "$at" "$start" "$out" "${addr[a]}" "${addr[b]}" "${addr[c]}" <<'PY' 2>&1 || echo "FAIL	the series check failed"
import json
import sys
import urllib.parse
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

vm, at, start, out, *targets = sys.argv[1:]
names = "abc"
extra = {"job": "myapp", "collector": "prometheus-agent"}
SCRAPE_SERIES = ["up", "scrape_duration_seconds", "scrape_samples_scraped",
                 "scrape_samples_post_metric_relabeling", "scrape_series_added"]


def key(labels):
    return tuple(sorted(labels.items()))


def samples(path, instance):
    found = {}
    for family in text_string_to_metric_families(open(path).read()):
        for s in family.samples:
            found[key({**s.labels, "__name__": s.name, "instance": instance, **extra})] = s.value
    return found


def get(path, **params):
    url = vm + path + "?" + urllib.parse.urlencode(params)
    return json.load(urllib.request.urlopen(url, timeout=10))["data"]


expected, stable, page_samples = set(), {}, {}
for name, instance in zip(names, targets):
    first = samples("%s/metrics-%s-1.txt" % (out, name), instance)
    second = samples("%s/metrics-%s-2.txt" % (out, name), instance)
    expected |= set(second)
    stable.update({k: v for k, v in second.items() if first.get(k) == v})
    page_samples[instance] = len(second)
    expected |= {key({"__name__": n, "instance": instance, **extra}) for n in SCRAPE_SERIES}

selector = '{collector="prometheus-agent"}'
stored = {key(s) for s in get("/api/v1/series", **{"match[]": selector, "start": start})}
missing, unexpected = expected - stored, stored - expected
show = lambda keys: " ".join("{%s}" % ",".join("%s=%s" % kv for kv in k) for k in sorted(keys)[:3])
print("%s\t%d series scraped (%d per replica and its up, scrape_*), %d in the store: %d missing %s, %d not scraped %s"
      % ("ok" if not missing and not unexpected else "FAIL", len(expected), len(expected) // 3, len(stored),
         len(missing), show(missing), len(unexpected), show(unexpected)))

values = {key(r["metric"]): float(r["value"][1]) for r in get("/api/v1/query", query=selector, time=at)["result"]}
# Left out: the gauges of what is open at the instant (file descriptors,
# scrapes in flight, tasks), which differ between our read and a scrape that meets
# the other collector's. The store keeps 12 significant digits: 0.0002702870000000001 comes back as
# 0.000270287. Whole numbers (every count) stay exact.
INSTANT = {"process_open_fds", "promhttp_metric_handler_requests_in_flight", "tokio_alive_tasks",
           "tokio_global_queue_depth"}
stable = {k: v for k, v in stable.items() if dict(k)["__name__"] not in INSTANT}
wrong = [k for k, v in stable.items() if k not in values or abs(values[k] - v) > 1e-11 * abs(v)]
print("%s\t%d samples unchanged between the two reads, each with that value (to 12 digits) in the store%s"
      % ("ok" if stable and not wrong else "FAIL", len(stable),
         "" if not wrong else ": not %s (store %s)" % (show(wrong[:1]), values.get(wrong[0]))))

for instance in targets:
    labels = {"instance": instance, **extra}
    up = values.get(key({"__name__": "up", **labels}))
    scraped = values.get(key({"__name__": "scrape_samples_scraped", **labels}))
    print("%s\t%s: up %s, scrape_samples_scraped %s, samples in its page %d"
          % ("ok" if up == 1 and scraped == page_samples[instance] else "FAIL", instance, up, scraped,
             page_samples[instance]))
PY
)

# --- vmalert -------------------------------------------------------------------------------
# Every recording rule of both files (read from them) wrote series: its name
# with the labels it adds (Sloth's rules share names, one per SLO). One becomes
# a rule's input some 10 s after it is written (the 5 s evaluation delay, then
# the store indexing the new series), so slo-rules.yml's chains (ratio_rate5m,
# ratio_rate30d, period_burn_rate, period_error_budget_remaining) take half a
# minute after the traffic.
read -r shipped_rules recorded < <(python3 -c '
import json, sys, yaml
rules = [r for f in sys.argv[1:] for g in yaml.safe_load(open(f))["groups"] for r in g["rules"]]
print(len(rules), *sorted({r["record"] + "{%s}" % ",".join("%s=%s" % (k, json.dumps(v)) for k, v in sorted(r.get("labels", {}).items()))
                           for r in rules if "record" in r}))' \
  deploy/prometheus/rules.yml deploy/prometheus/slo-rules.yml)
all_recorded() {
  absent=
  for record in $recorded; do
    prom_query "$vm" "$record" >/dev/null 2>&1 || absent="$absent $record"
  done
  [ -z "$absent" ]
}
wait_until 60 all_recorded || true
echo "e2e-victoriametrics: vmalert:"
check "  each of the $(wc -w <<<"$recorded") recording rules wrote series to the store${absent:+ (none from:$absent)}" test -z "$absent"
# Then every rule loaded, each evaluated over all that, none unhealthy.
curl -sf "$vmalert/api/v1/rules" >"$out/vmalert-rules.json" || true
read -r loaded unhealthy < <(python3 -c '
import json, sys
rules = [r for g in json.load(open(sys.argv[1]))["data"]["groups"] for r in g["rules"]]
bad = {r["name"] for r in rules if r["health"] != "ok" or r.get("lastError") or r["lastEvaluation"].startswith("0001")}
print(len(rules), ",".join(sorted(bad)) or "-")' "$out/vmalert-rules.json")
check "  $loaded rules loaded of the files' $shipped_rules, every one evaluated and healthy (unhealthy: $unhealthy; see $out/vmalert-rules.json)" \
  test "$loaded" = "$shipped_rules" -a "$unhealthy" = "-"
# The per-replica ratio of rates is the ratio of the increases (one scrape
# holds a replica's 200 and 500 samples): fail / (ok + fail) as sent.
expected_ratios=$(for name in "${names[@]}"; do
  awk -v i="${addr[$name]}" -v f="${sent[$name/500]}" -v o="${sent[$name/200]}" 'BEGIN { printf "%s %.6f\n", i, f / (f + o) }'
done | sort)
ratios() {
  prom_query "$vm" 'job_instance:myapp_processed_ops_errors:ratio_rate5m' |
    sed -n 's/.*instance=\([^,]*\).* \(.*\)/\1 \2/p' | awk '{ printf "%s %.6f\n", $1, $2 }'
}
ratios_match() { [ "$(ratios)" = "$expected_ratios" ]; }
wait_until 10 ratios_match || true
check "  job_instance:myapp_processed_ops_errors:ratio_rate5m per replica: $(ratios | awk '{print $2}' | xargs) (sent: $(awk '{print $2}' <<<"$expected_ratios" | xargs))" \
  ratios_match

# The writers first, so that none waits to flush to a store that is gone.
stop_pid "$agent_pid"
stop_pid "$vmagent_pid"
stop_pid "$vmalert_pid"
check "no log holds an error or a warning" test -z "$(grep -lP "\t(warn|error|fatal|panic)\t" "$out"/vm*.log "$out"/victoria-metrics.log || true)"

summary "e2e with VictoriaMetrics ($total requests)"
