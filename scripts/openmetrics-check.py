#!/usr/bin/env python3
"""Holds myapp's OpenMetrics answer against its text answer, both parsed by
Python's prometheus_client (its strict OpenMetrics parser, which refuses a
body without `# EOF`, a bad `# UNIT`, a counter family named with `_total`,
...), not by code of ours.

Usage: openmetrics-check.py http://HOST:PORT/metrics [TRACE_ID]

With TRACE_ID (of the last /work request, sent in its traceparent), also
checks that the parser finds it as the exemplar of one bucket of the latency
histogram and of one series of the request counter.

Scrapes the text format, then OpenMetrics with Prometheus 3's default Accept,
on a service that nothing else is talking to. Every sample must be in both
with the same value, except those that the scrape in between moves: the
scrape counter (one more), the process's CPU, memory and descriptors, and
the runtime's task count. Prints one line per check and exits 1 on a failure.
"""
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
TEXT = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"

failed = 0


def check(description, ok):
    global failed
    print(("  ok    " if ok else "  FAIL  ") + description)
    failed += not ok


def get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


exemplars = []


def samples(families, keep_exemplars=False):
    """{(name, sorted labels): value} and {family name: (type, unit)}."""
    values, kinds = {}, {}
    for family in families:
        kinds[family.name] = (family.type, family.unit)
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            # Values are floats in both formats (the text parser gives an int
            # for "18446744073709552000", which is not 2^64 exactly).
            # A bucket's bound is a number: le="1" in the text is le="1.0" in
            # OpenMetrics.
            labels = {k: float(v) if k == "le" else v for k, v in sample.labels.items()}
            values[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
            if keep_exemplars and sample.exemplar:
                exemplars.append((sample.name, sample.exemplar))
    return values, kinds


def main(url, trace_id=None):
    text_type, text_body = get(url)
    om_type, om_body = get(url, PROMETHEUS_3)
    check(f"text Content-Type: {text_type}", text_type == TEXT)
    check(f"OpenMetrics Content-Type: {om_type}", om_type == OPENMETRICS)
    check("OpenMetrics ends with # EOF", om_body.endswith("# EOF\n"))
    try:
        om, om_kinds = samples(parse_openmetrics(om_body), keep_exemplars=True)
    except ValueError as err:
        check(f"the strict OpenMetrics parser accepts the body ({err})", False)
        return
    check("the strict OpenMetrics parser accepts the body", True)
    text, text_kinds = samples(parse_text(text_body))
    check("no exemplar in the text answer", " # {" not in text_body)
    if trace_id:
        traced = sorted(name for name, e in exemplars if e.labels == {"trace_id": trace_id})
        check(f"trace {trace_id} is the exemplar of {traced}", traced == [
            "myapp_processed_ops_total", "myapp_request_duration_seconds_bucket"])

    only = sorted(set(om) ^ set(text))
    check(f"the same {len(text)} samples in both{f' (not in both: {only})' if only else ''}", not only)
    check("the same families with the same types",
          {name: kind for name, (kind, _) in om_kinds.items()}
          == {name: kind for name, (kind, _) in text_kinds.items()})
    units = {name: unit for name, (_, unit) in om_kinds.items() if unit}
    expected_units = {name: name.rsplit("_", 1)[1] for name in om_kinds
                      if name.endswith(("_seconds", "_bytes"))}
    check(f"a UNIT on each family named after one: {sorted(units.items())}",
          units == expected_units and "myapp_request_duration_seconds" in units)

    def moved(key, before, after):
        name, labels = key
        if name == "promhttp_metric_handler_requests_total" and dict(labels)["code"] == "200":
            return after == before + 1
        if name == "process_cpu_seconds_total":
            return before <= after < before + 1
        if name in ("process_resident_memory_bytes", "process_virtual_memory_bytes"):
            return abs(after - before) <= 0.1 * before
        if name in ("process_open_fds", "tokio_alive_tasks"):
            return abs(after - before) <= 2
        return None

    exact = differing = 0
    for key in sorted(set(om) & set(text)):
        rule = moved(key, text[key], om[key])
        if rule is None:
            exact += 1
            if om[key] != text[key]:
                differing += 1
                check(f"{key}: text {text[key]} = OpenMetrics {om[key]}", False)
        else:
            check(f"{key[0]}{dict(key[1]) or ''}: text {text[key]}, OpenMetrics {om[key]}, "
                  "as the scrape in between moves it", rule)
    check(f"{exact - differing} of {exact} other samples have the same value in both, "
          f"{sum(1 for (name, _) in text if name.startswith('myapp_'))} of them myapp_*",
          differing == 0 and exact > 0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
    sys.exit(1 if failed else 0)
