#!/usr/bin/env python3
"""Print every PromQL query of a Grafana dashboard, one per line.

Grafana's own interval variables are replaced by fixed durations so that each
line can be sent as-is to a real Prometheus (the e2e test does that):

    scripts/dashboard-queries.py [--rate-interval 1m] [--interval 15s]
                                 [--range 5m] [DASHBOARD.json]

The dashboard's filter variables (`namespace`, `instance`: a `label=~"$label"`
matcher in each query) are at "All" by default: their matchers are left out,
which selects what `=~".*"` would (series without the label included), so the
lines stay those of a dashboard without them. `--var instance=127.0.0.1:8081`
puts a value in instead.

Any other `$variable` left in a query is an error: Prometheus would reject it,
and the e2e test would not know what to put there.

The queries of the SLO panels (those selecting `sloth_service="myapp"`: the
series of the Sloth rules, deploy/prometheus/slo-rules.yml) are listed apart,
with `--slo`, and only there: the e2e tests hold every line of the default
output against values they compute, and they do not load the SLO rules. The
default output says on stderr how many it left out.
"""
import argparse
import json
import re
import sys
from pathlib import Path

DEFAULT_DASHBOARD = Path(__file__).resolve().parent.parent / "deploy/grafana/myapp-dashboard.json"

# $name or ${name}; Grafana also has ${name:format}, which no query here needs.
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def panels(items):
    """Every panel, including those folded inside rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", nargs="?", type=Path, default=DEFAULT_DASHBOARD)
    parser.add_argument("--rate-interval", default="1m", help="value of $__rate_interval")
    parser.add_argument("--interval", default="15s", help="value of $__interval")
    parser.add_argument("--range", default="5m", help="value of $__range")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a value for a filter variable; the others are at All")
    parser.add_argument("--slo", action="store_true",
                        help="the queries of the SLO panels (sloth_service=\"myapp\") instead of the others")
    args = parser.parse_args()
    values = {
        "__rate_interval": args.rate_interval,
        "__interval": args.interval,
        "__range": args.range,
    }

    dashboard = json.loads(args.dashboard.read_text())
    given = dict(v.split("=", 1) for v in args.var)
    # Filter variables: queried, "All" matching everything.
    filters = [v["name"] for v in dashboard.get("templating", {}).get("list", [])
               if v.get("type") == "query" and v.get("includeAll") and v.get("allValue") == ".*"]
    unknown_vars = set(given) - set(filters)
    if unknown_vars:
        sys.exit(f"{args.dashboard}: no filter variable {sorted(unknown_vars)}; it has {filters}")
    values.update(given)
    at_all = [re.compile(rf',?\s*{name}=~"\${name}"') for name in filters if name not in given]
    unknown = []

    def substitute(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            unknown.append(name)
            return match.group(0)
        return values[name]

    count = 0
    left_out = 0
    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            if is_slo_query(expr) != args.slo:
                left_out += 1
                continue
            for matcher in at_all:
                expr = matcher.sub("", expr)
            # A selector that began with a dropped matcher: {,job="myapp"}.
            expr = expr.replace("{,", "{")
            # One query per output line, whatever its layout in the JSON.
            line = " ".join(VARIABLE.sub(substitute, expr).split())
            if unknown:
                sys.exit(f"{args.dashboard}: panel {panel.get('title')!r} uses "
                         f"${unknown[0]}, which this script cannot substitute")
            print(line)
            count += 1
    if count == 0:
        sys.exit(f"{args.dashboard}: no {'SLO ' if args.slo else ''}queries found")
    if left_out and not args.slo:
        print(f"dashboard-queries: {left_out} queries of the SLO panels left out (they read the series of "
              f"deploy/prometheus/slo-rules.yml); --slo lists them", file=sys.stderr)


def is_slo_query(expr):
    """Whether a query reads the SLO series (Sloth's: sloth_service="myapp")."""
    return 'sloth_service="myapp"' in expr


if __name__ == "__main__":
    main()
