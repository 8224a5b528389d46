#!/usr/bin/env python3
"""Checks each scenario's `expect` against deploy/prometheus/rules.yml with promtool.

    python3 scripts/scenario-alerts.py [scenarios/NAME.yaml ...]

For each scenario (every file of scenarios/ by default): three replicas, as
deploy/k8s and scripts/stack.sh run, each answering 10 requests/s. Ten minutes
of the healthy baseline the stack starts from (deploy/stack/workload.json: 20
to 200 ms, error_rate 0.01), then the scenario's steps on every replica
(on the first only with `replicas: one`) until its `end`. Every 15 s scrape,
the counters and the latency buckets grow by exactly what the settings in force
say (expected values, no randomness). promtool then evaluates a copy of
rules.yml, its expressions and `for:` unchanged but without annotations (they
render the values), and checks that each alert with `by` is firing at that
time, and that each `fires: false` alert is firing at no evaluation from the
start to the end. Prints each scenario's result, then PASS or FAIL; leaves its
files in target/scenario-alerts/.

A scenario that expects anything of the SLO alerts (deploy/prometheus/slo-rules.yml:
fast-burn, slow-burn, within-budget) is skipped, saying so: their windows reach
3d, so the baseline would have to be 3 days of 15 s samples (17,280 a series)
and promtool would evaluate every rule at each of them, minutes per file. The
SLO rules' own tests (deploy/prometheus/slo-rules.test.yml) pin each threshold
and window, and scripts/e2e-scenarios.sh runs these files on a real
Prometheus with a backfilled 3d past.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "scenario-alerts"
SCRAPE = 15  # seconds, as deploy/prometheus/prometheus.yml
BASELINE = 600  # seconds of the healthy workload before the scenario
REPLICAS = ["r0:8081", "r1:8081", "r2:8081"]
PER_SCRAPE = 10 * SCRAPE  # requests per replica per scrape
# The healthy workload that scripts/stack.sh starts the replicas from.
DEFAULTS = json.loads((ROOT / "deploy" / "stack" / "workload.json").read_text())
# src/config.rs's DEFAULT_BUCKETS.
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 5]
UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}


def seconds(duration):
    """A scenario duration ("1m30s", "300ms") in seconds."""
    parts = re.findall(r"(\d+)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * UNITS[u] for n, u in parts)


def share_within(settings, le):
    """The share of requests that take at most `le` seconds. A request takes
    its delay plus a little, so a delay exactly at a bucket's edge counts above it."""
    low, high = settings["min_delay_ms"] / 1000, settings["max_delay_ms"] / 1000
    if high == low:
        uniform = 1.0 if le > low else 0.0
    else:
        uniform = min(max((le - low) / (high - low), 0.0), 1.0)
    slow = settings["slow_rate"]
    return (1 - slow) * uniform + slow * (1.0 if le > settings["slow_delay_ms"] / 1000 else 0.0)


def timeline(scenario, replica):
    """The settings of `replica` at each scrape, from the baseline's start to the end."""
    targeted = scenario.get("replicas", "every") == "every" or replica == 0
    steps = [(BASELINE + seconds(s["at"]), s["set"]) for s in scenario["steps"]] if targeted else []
    end = BASELINE + seconds(scenario["end"])
    settings, result = dict(DEFAULTS), []
    for k in range(end // SCRAPE + 1):
        while steps and steps[0][0] <= k * SCRAPE:
            settings.update(steps.pop(0)[1])
        result.append(dict(settings))
    return result


def series(scenario):
    """promtool's input_series: counters and buckets that grow by the settings
    in force during each scrape interval, the error rate gauges, `up`."""
    found = []
    for index, instance in enumerate(REPLICAS):
        states = timeline(scenario, index)
        labels = f'job="myapp",instance="{instance}"'
        counters = {f'myapp_processed_ops_total{{{labels},status="{status}"}}': share
                    for status, share in [("200", lambda s: 1 - s["error_rate"]),
                                          ("500", lambda s: s["error_rate"])]}
        for le in BUCKETS:
            counters[f'myapp_request_duration_seconds_bucket{{{labels},le="{le}"}}'] = (
                lambda s, le=le: share_within(s, le))
        counters[f'myapp_request_duration_seconds_bucket{{{labels},le="+Inf"}}'] = lambda s: 1.0
        for name, share in counters.items():
            total, values = 0.0, [0.0]
            for state in states[:-1]:
                total += PER_SCRAPE * share(state)
                values.append(total)
            found.append({"series": name, "values": " ".join(str(round(v, 6)) for v in values)})
        found.append({"series": f"myapp_workload_error_rate{{{labels}}}",
                      "values": " ".join(str(s["error_rate"]) for s in states)})
        found.append({"series": f"up{{{labels}}}", "values": " ".join("1" for _ in states)})
    return found


def alert_rules(rules):
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def tests(scenario, alerts):
    """An alert_rule_test at each `by`, and at every evaluation for `fires: false`."""
    found = []
    end = seconds(scenario["end"])
    for expect in scenario.get("expect", []):
        rule = alerts[expect["alert"]]
        if expect.get("fires", True):
            # An alert of a recorded job-wide rule has one series per job;
            # the others one per replica the scenario reaches.
            if "job:" in rule["expr"] and "job_instance:" not in rule["expr"]:
                instances = [None]
            elif scenario.get("replicas", "every") == "one":
                instances = REPLICAS[:1]
            else:
                instances = REPLICAS
            expected = []
            for instance in instances:
                labels = {"job": "myapp", **rule.get("labels", {})}
                if instance:
                    labels["instance"] = instance
                expected.append({"exp_labels": labels})
            found.append({"eval_time": f"{BASELINE + seconds(expect['by'])}s",
                          "alertname": expect["alert"], "exp_alerts": expected})
        else:
            for t in range(0, int(end) + 1, SCRAPE):
                found.append({"eval_time": f"{BASELINE + t}s", "alertname": expect["alert"],
                              "exp_alerts": []})
    return found


def check(path, rules):
    scenario = yaml.safe_load(path.read_text())
    alerts = alert_rules(rules)
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": f"{SCRAPE}s",
        "group_eval_order": [g["name"] for g in rules["groups"]],
        "tests": [{"name": path.name, "interval": f"{SCRAPE}s",
                   "input_series": series(scenario), "alert_rule_test": tests(scenario, alerts)}],
    }
    test_file = OUT / f"{path.stem}.test.yml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False, width=1 << 20))
    result = subprocess.run(["promtool", "test", "rules", test_file.name], cwd=OUT,
                            capture_output=True, text=True)
    expects = ", ".join(f"{e['alert']} by {e['by']}" if e.get("fires", True)
                        else f"not {e['alert']}" for e in scenario.get("expect", []))
    if result.returncode == 0:
        print(f"  ok    {path.name}: {expects}")
        return True
    print(f"  FAIL  {path.name}: {expects}\n{result.stdout}{result.stderr}")
    return False


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (OUT / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / "scenarios").glob("*.yaml"))
    alerts = alert_rules(rules)
    results = []
    for path in paths:
        others = sorted({e["alert"] for e in yaml.safe_load(path.read_text()).get("expect", [])} - set(alerts))
        if others:
            print(f"  skip  {path.name}: expects {', '.join(others)} of slo-rules.yml, whose 3d windows need "
                  f"3 days of baseline: too slow for promtool here; scripts/e2e-scenarios.sh checks it")
            continue
        results.append(check(path, rules))
    passed = sum(results)
    print(f"scenario-alerts: {'PASS' if all(results) else 'FAIL'} ({passed} of {len(results)} scenarios; {len(paths) - len(results)} skipped)")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
