#!/usr/bin/env python3
"""Holds myapp's created timestamps against parsers we did not write: the
protobuf answer decoded by Go's client_model (scripts/go-created, built from
Debian 13's packages) and the OpenMetrics answer parsed by Python's
prometheus_client, whose parser reads each `_created` sample into the
family's samples.

Usage: created-check.py http://HOST:PORT/metrics PID GO_CREATED on|off

PID is the service's process; GO_CREATED the built scripts/go-created. With
`on` the service runs with --openmetrics-created-samples, with `off` without.

Checks, on a service that nothing else is talking to:
- protobuf: every counter and histogram series has a created time, between
  the process's start (from /proc/PID/stat and /proc/stat, as proc(5) gives
  it) and the scrape; process_cpu_seconds_total's is the process's start;
- a series that appears after a scrape (a 400 answer of /work: no such
  series exists before) is stamped between the start of that scrape and the
  request that made it, and the series before keep their times;
- on: OpenMetrics has one `_created` sample for each of them, equal to the
  protobuf one (to the microsecond: the text writes float seconds) and none
  for anything else; off: OpenMetrics has no `_created` sample;
- the 0.0.4 text has none either way.
Prints one line per check and exits 1 on a failure.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

PROTOBUF = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
TEXT = "text/plain;version=0.0.4"

failed = 0


def check(description, ok):
    global failed
    print(("  ok    " if ok else "  FAIL  ") + description)
    failed += not ok


def get(url, accept):
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def protobuf_created(url, go_created):
    """{(name, sorted labels): created seconds or None}, decoded by Go."""
    decoded = subprocess.run([go_created], input=get(url, PROTOBUF), capture_output=True, check=True)
    created = {}
    for line in decoded.stdout.decode().splitlines():
        series = json.loads(line)
        key = (series["name"], tuple(sorted(series["labels"].items())))
        seconds = series["seconds"]
        created[key] = None if seconds is None else seconds + series["nanos"] / 1e9
    return created


def openmetrics_created(url):
    """{(series name, sorted labels): `_created` value}, read by prometheus_client."""
    created = {}
    for family in parse_openmetrics(get(url, OPENMETRICS).decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                # The series the time belongs to: the counter's `_total`
                # sample, or the histogram's name.
                name = sample.name[: -len("_created")] + ("_total" if family.type == "counter" else "")
                created[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return created


def counter_and_histogram_series(url):
    """{(series name, sorted labels)} of every counter and histogram in the
    0.0.4 text, read by prometheus_client: a counter's `_total` samples, a
    histogram's name with the labels of its `_count` sample."""
    series = set()
    for family in parse_text(get(url, TEXT).decode()):
        for sample in family.samples:
            if family.type == "counter" and sample.name.endswith("_total"):
                series.add((sample.name, tuple(sorted(sample.labels.items()))))
            elif family.type == "histogram" and sample.name.endswith("_count"):
                series.add((family.name, tuple(sorted(sample.labels.items()))))
    return series


def process_start(pid):
    """Seconds since the epoch: btime of /proc/stat + starttime (field 22 of
    /proc/PID/stat) in clock ticks."""
    with open("/proc/stat") as stat:
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    with open(f"/proc/{pid}/stat") as stat:
        after_name = stat.read().rsplit(")", 1)[1].split()
    return boot + int(after_name[22 - 3]) / os.sysconf("SC_CLK_TCK")


def main():
    url, pid, go_created, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    start = process_start(pid)
    base = url.rsplit("/", 1)[0]

    before_first = time.time()
    first = protobuf_created(url, go_created)
    after_first = time.time()
    print(f"process start {start:.6f}; first protobuf scrape {before_first:.6f}..{after_first:.6f}")
    for key, created in sorted(first.items()):
        print(f"    {key[0]}{dict(key[1]) or ''} created {created}")
    expected = counter_and_histogram_series(url)
    check(f"protobuf: every counter and histogram series of the text answer ({len(expected)}, read by "
          f"prometheus_client) has a created time, and nothing else ({len(first)})",
          set(first) == expected and None not in first.values())
    check("protobuf: each lies between the process's start and the scrape",
          all(start <= created <= after_first for created in first.values() if created is not None))
    cpu = first.get(("process_cpu_seconds_total", ()))
    check(f"protobuf: process_cpu_seconds_total's is the process's start ({cpu} = {start})",
          cpu is not None and abs(cpu - start) < 1e-6)
    ops_400 = ("myapp_processed_ops_total", (("status", "400"),))
    check("no series of status 400 yet", ops_400 not in first)

    try:
        urllib.request.urlopen(base + "/work?delay_ms=abc", timeout=10)
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
    after_request = time.time()
    second = protobuf_created(url, go_created)
    created_400 = second.get(ops_400)
    check(f"a bad delay_ms is answered 400 ({status}) and counted in a new series, created {created_400}, "
          f"between the start of the scrape before it ({before_first:.6f}) and its answer ({after_request:.6f})",
          status == 400 and created_400 is not None and before_first <= created_400 <= after_request)
    check("the series seen before keep their created times",
          {key: second[key] for key in first} == first)

    om = openmetrics_created(url)
    stamped = {key: value for key, value in second.items() if value is not None}
    if mode == "on":
        check(f"OpenMetrics (prometheus_client): a _created sample for each series with a created time "
              f"({len(om)} of {len(stamped)}), and for nothing else", set(om) == set(stamped))
        check("OpenMetrics (prometheus_client): each equals the protobuf one (within 1 µs)",
              all(abs(om[key] - stamped[key]) < 1e-6 for key in om.keys() & stamped.keys()))
    else:
        check(f"OpenMetrics without --openmetrics-created-samples: no _created sample ({len(om)})", not om)
    text = get(url, TEXT).decode()
    check("the 0.0.4 text has no _created line", "_created" not in text)
    return failed


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
