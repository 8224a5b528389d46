#!/usr/bin/env python3
"""Parse every shipped PromQL expression with Prometheus 3's own grammar.

    npm ci --prefix scripts/promql-grammar   # once: the pinned parser
    python3 scripts/promql-grammar.py [FILE ...]
    python3 scripts/promql-grammar.py --self-test

The parser is the one of Prometheus's web UI, @prometheus-io/lezer-promql
0.305.3 (Prometheus 3.5, the long-term-support line), pinned with its
dependencies in scripts/promql-grammar/package-lock.json and run by
scripts/promql-grammar/parse.mjs. It checks grammar, not types: an unknown
function, a missing bracket or a stray `$` is an error; `promtool check rules`
(run by scripts/test.sh) checks the rule files' types.

The expressions, by default from every file that ships PromQL:
- rule files (deploy/prometheus/rules.yml, slo-rules.yml): each rule's expr;
- the Prometheus Operator's PrometheusRule (deploy/k8s/prometheusrule.yaml);
- the Grafana dashboard (deploy/grafana/myapp-dashboard.json): each target's
  expr, and the selector inside each variable query's label_values(...).
  Grafana's interval variables ($__rate_interval, $__interval, $__range, also
  as ${...}) become 5m, a duration as Grafana sends one; every other variable
  stays as written: inside a matcher's quotes ("$namespace") it is text,
  anywhere else the parser rejects it.

Each expression that does not parse is named with its file, its rule (group
and record or alert, with the SLO for the Sloth rules) or its panel and target,
and the line:column of the first error node, as parsed. Exits 1 when any does
not parse or when a file holds no expression.

--self-test runs the check on made-up files, one good and one broken
expression each, and compares its output with the lines it must print.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PARSER = ROOT / "scripts/promql-grammar"
SHIPPED = ["deploy/prometheus/rules.yml", "deploy/prometheus/slo-rules.yml",
           "deploy/k8s/prometheusrule.yaml", "deploy/grafana/myapp-dashboard.json"]
GRAFANA_INTERVAL = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def rule_expressions(groups):
    for group in groups:
        for rule in group.get("rules", []):
            name = f"record {rule['record']}" if "record" in rule else f"alert {rule['alert']}"
            slo = rule.get("labels", {}).get("sloth_slo")
            yield f"group {group['name']}, {name}" + (f" (SLO {slo})" if slo else ""), rule["expr"]


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_expressions(dashboard):
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and query:
            inner = LABEL_VALUES.match(query)
            yield f"variable {variable['name']}", inner.group(1) if inner else query
    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield (f"panel {panel.get('title')!r} target {target.get('refId')}",
                       GRAFANA_INTERVAL.sub("5m", target["expr"]))


def expressions(path):
    text = path.read_text()
    if path.suffix == ".json":
        return list(dashboard_expressions(json.loads(text)))
    found = []
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "PrometheusRule":
            found += rule_expressions(doc["spec"]["groups"])
        elif doc and "groups" in doc:
            found += rule_expressions(doc["groups"])
    return found


def line_column(expr, utf16_offset):
    """1-based line and column of a UTF-16 offset (what JavaScript counts)."""
    units = 0
    for index, char in enumerate(expr):
        if units >= utf16_offset:
            break
        units += len(char.encode("utf-16-le")) // 2
    else:
        index = len(expr)
    before = expr[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def check(paths):
    """Prints a line per expression that does not parse; returns how many failed."""
    found = []
    failures = 0
    for path in paths:
        exprs = expressions(path)
        if not exprs:
            print(f"{path}: no PromQL expression found")
            failures += 1
        found += [(path, where, expr) for where, expr in exprs]
    if not (PARSER / "node_modules/@prometheus-io/lezer-promql").is_dir():
        sys.exit(f"promql-grammar: the parser is not installed: npm ci --prefix {PARSER.relative_to(ROOT)}")
    run = subprocess.run(["node", str(PARSER / "parse.mjs")], input=json.dumps([e for _, _, e in found]),
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        sys.exit(f"promql-grammar: node {PARSER / 'parse.mjs'} failed: {run.stderr.strip()}")
    for (path, where, expr), errors in zip(found, json.loads(run.stdout), strict=True):
        if errors:
            line, column = line_column(expr, errors[0][0])
            print(f"{path}: {where}: syntax error at {line}:{column} of: {' '.join(expr.split())}")
            failures += 1
    by_file = {}
    for path, _, _ in found:
        by_file[path] = by_file.get(path, 0) + 1
    print("promql-grammar: " + ", ".join(f"{n} in {p}" for p, n in by_file.items())
          + f": {len(found)} expressions, {failures} failures")
    return failures


def self_test():
    good_rules = "groups:\n  - name: g\n    rules:\n      - record: r:ok\n        expr: sum by (job) (rate(x[5m]))\n"
    broken_rules = good_rules + ("      - alert: Broken\n        expr: |-\n          sum(rate(x[5m]))\n"
                                 "          / sum(rate(y[5m])\n")
    dashboard = {"templating": {"list": [{"name": "instance", "type": "query",
                                          "query": {"query": 'label_values(up{job="a"}, instance)'}}]},
                 "panels": [{"title": "Row", "panels": [
                     {"title": "Rate", "targets": [
                         {"refId": "A", "expr": 'sum(rate(x{instance=~"$instance"}[$__rate_interval]))'},
                         {"refId": "B", "expr": 'sum(rate(x[$__rate_interval])) by ($group)'}]}]}]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "good.yml").write_text(good_rules)
        (tmp / "broken.yml").write_text(broken_rules)
        (tmp / "dashboard.json").write_text(json.dumps(dashboard))
        (tmp / "empty.yml").write_text("groups: []\n")
        cases = [
            (["good.yml"], 0, ["promql-grammar: 1 in good.yml: 1 expressions, 0 failures"]),
            (["broken.yml", "dashboard.json", "empty.yml"], 1, [
                "empty.yml: no PromQL expression found",
                "broken.yml: group g, alert Broken: syntax error at 2:18 of: sum(rate(x[5m])) / sum(rate(y[5m])",
                "dashboard.json: panel 'Rate' target B: syntax error at 1:22 of: sum(rate(x[5m])) by ($group)",
                "promql-grammar: 2 in broken.yml, 3 in dashboard.json: 5 expressions, 3 failures"]),
        ]
        failed = 0
        for args, status, lines in cases:
            run = subprocess.run([sys.executable, __file__, *args], cwd=tmp, capture_output=True, text=True)
            got = run.stdout.splitlines()
            ok = run.returncode == status and got == lines
            print(f"  {'ok' if ok else 'FAIL'}  {' '.join(args)}: exit {run.returncode}"
                  + ("" if ok else f", expected {status}; got {got}, expected {lines}; stderr {run.stderr.strip()}"))
            failed += not ok
    print(f"promql-grammar --self-test: {'PASS' if not failed else 'FAIL'}")
    return failed


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(1 if self_test() else 0)
    if not sys.argv[1:]:
        os.chdir(ROOT)
    paths = [Path(p) for p in sys.argv[1:] or SHIPPED]
    sys.exit(1 if check(paths) else 0)


if __name__ == "__main__":
    main()
