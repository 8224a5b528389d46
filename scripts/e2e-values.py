#!/usr/bin/env python3
"""The values half of scripts/e2e-prometheus.sh: every recorded series and
every dashboard query against a figure computed without myapp's help.

    e2e-values.py before   STATE --replica NAME=PUBLIC,METRICS,PID,FLAGS ...
    e2e-values.py snapshot STATE
    e2e-values.py check    STATE --traffic FILE --prometheus URL --buckets 0.005,0.01,...

`before` (after Prometheus scrapes every replica, before any traffic) and
`snapshot` (once the traffic's last scrape is in) read /proc for each replica
and note the time. `check` prints one line per check, "ok<TAB>what" or
"FAIL<TAB>what", for the shell to count.

Where the expected figures come from:
- counts and statuses from curl's own lines (FILE: "public status
  time_connect time_starttransfer");
- latencies: each observation lies between the delay the workload drew for
  the request (uniform between the replica's flags, or its slow delay; a
  timer never fires early) and curl's time_starttransfer - time_connect, which
  holds the server's whole handling of the request; the drawn delays are
  known as a distribution, so bounds from them allow 4 standard deviations
  of sampling error; through the classic buckets (--buckets) or the native
  ones (schema 3: bounds at powers of 2^(1/8));
- the workload gauges from the flags the replicas were started with;
- CPU, memory, descriptors and connections from /proc/PID;
- tokio_workers from the replica's CPU affinity (what nproc prints), the
  runtime's default;
- rate() and increase() as Prometheus extrapolates them (promql/functions.go,
  extrapolatedRate), from the timestamps of the raw samples that Prometheus
  holds in the window: the counts come from curl, only the sample times come
  from Prometheus. A window that starts before the traffic holds a first
  sample of 0, so the increase is not extrapolated backwards.
"""
import argparse
import itertools
import json
import math
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

FLAG_NAMES = {
    "--min-delay-ms": "min_delay_ms",
    "--max-delay-ms": "max_delay_ms",
    "--error-rate": "error_rate",
    "--slow-rate": "slow_rate",
    "--slow-delay-ms": "slow_delay_ms",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Relative tolerance of a figure Prometheus computes with float64 from exact inputs.
EXACT = 1e-9


# --- /proc ---------------------------------------------------------------------------
def proc_cpu_ticks(pid):
    """utime + stime of /proc/PID/stat, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_rss_bytes(pid):
    """rss of /proc/PID/stat, in bytes: what the collector reads, as Go's
    procfs does. (VmRSS of /proc/PID/status, the exact sum of the kernel's
    per-CPU counters, differed from it by up to 392 KiB in 300 runs.)"""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[21]) * PAGE


def proc_fds(pid):
    """The descriptors of PID and how many are established TCP connections
    (their socket inodes in /proc/net/tcp{,6} with state 01)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    established = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "01":
                established.add(cols[9])
    sockets = [t[len("socket:["):-1] for t in targets if t.startswith("socket:[")]
    return len(targets), sum(1 for inode in sockets if inode in established)


def read_proc(pid):
    # The fewest of five listings 20 ms apart: a scrape meanwhile holds one
    # more descriptor (the directory its collector lists) for a moment.
    listings = []
    for _ in range(5):
        listings.append(proc_fds(pid))
        time.sleep(0.02)
    fds, connections = min(listings)
    return {"cpu_ticks": proc_cpu_ticks(pid), "rss": proc_rss_bytes(pid), "fds": fds,
            "connections": connections, "cpus": len(os.sched_getaffinity(pid))}


# --- Prometheus ----------------------------------------------------------------------
def query(url, promql, at):
    """Instant query at AT (milliseconds since the epoch): a list of
    (labels, value) or, for a range selector, of (labels, [(t, v), ...])
    with t in milliseconds."""
    params = urllib.parse.urlencode({"query": promql, "time": f"{at / 1000:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"{promql}: {body.get('error')}")
    data = body["data"]
    if data["resultType"] == "matrix":
        # Times as whole milliseconds, as Prometheus holds them: a float of
        # seconds since the epoch has only about 0.2 us of resolution.
        return [(r["metric"], [(round(float(t) * 1000), float(v)) for t, v in r["values"]]) for r in data["result"]]
    if data["resultType"] == "scalar":
        return [({}, float(data["result"][1]))]
    return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def extrapolation(samples, at, window, first_value, delta):
    """The factor by which Prometheus's rate()/increase() over [WINDOW]
    seconds at AT (ms) scales DELTA (the increase between the first and the
    last sample), as extrapolatedRate in promql/functions.go computes it."""
    (t_first, _), (t_last, _) = samples[0], samples[-1]
    to_start = (t_first - (at - window * 1000)) / 1000
    to_end = (at - t_last) / 1000
    sampled = (t_last - t_first) / 1000
    average = sampled / (len(samples) - 1)
    if delta > 0 and first_value >= 0:
        to_start = min(to_start, sampled * first_value / delta)
    threshold = average * 1.1
    extended = sampled
    extended += to_start if to_start < threshold else average / 2
    extended += to_end if to_end < threshold else average / 2
    return extended / sampled


def bucket_quantile(q, buckets):
    """histogram_quantile over [(upper bound, cumulative count)], as
    bucketQuantile in promql/quantile.go."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, count) in enumerate(buckets[:-1] + [(math.inf, math.inf)]) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * rank / count


def close(got, want, rel=EXACT):
    return abs(got - want) <= rel * max(abs(want), 1e-12)


def fmt(x):
    return "%.9g" % x


# --- the checks ----------------------------------------------------------------------
class Checker:
    LATENCY = ("through the bucket layout, each request between its drawn delay (the replica's uniform "
               "draw, 4 sd) and curl's connect-to-first-byte time")

    def __init__(self, args, state):
        self.args = args
        self.state = state
        self.url = args.prometheus
        self.replicas = state["replicas"]
        self.by_metrics = {r["metrics"]: name for name, r in self.replicas.items()}
        # Prometheus evaluates at whole milliseconds.
        self.at = round(state["snapshot"]["time"] * 1000)
        # The rate window: from the `before` note (so it holds the zero
        # samples before the traffic) to the snapshot, in whole seconds.
        self.window = math.ceil(self.at / 1000 - state["before"]["time"]) + 1
        self.failed = 0
        self.buckets = [float(b) for b in args.buckets.split(",")] + [math.inf]
        self.load_traffic()

    def report(self, ok, text):
        print(("ok" if ok else "FAIL") + "\t" + text, flush=True)
        self.failed += not ok

    def load_traffic(self):
        by_public = {r["public"]: name for name, r in self.replicas.items()}
        self.sent = {name: {} for name in self.replicas}     # name -> status -> count
        self.client = {name: [] for name in self.replicas}   # name -> [seconds]
        for line in Path(self.args.traffic).read_text().splitlines():
            public, status, connected, starttransfer = line.split()
            name = by_public[public]
            self.sent[name][status] = self.sent[name].get(status, 0) + 1
            self.client[name].append(float(starttransfer) - float(connected))

    def total(self, name, statuses=None):
        return sum(n for s, n in self.sent[name].items() if statuses is None or s in statuses)

    def errors(self, name):
        return sum(n for s, n in self.sent[name].items() if s.startswith("5"))

    # Extrapolation factors per replica for a window at a time, from the raw
    # samples of one of its counters (all series of a scrape share its times).
    def factors(self, at, window, selector='myapp_processed_ops_total{status="200"}', drop_after=None):
        """{name: [factor, ...]}: one factor, or two when a scrape landed
        within DROP_AFTER seconds before AT (a rule evaluated at AT may have
        run before that scrape was stored, or after)."""
        out = {}
        for metric, samples in query(self.url, f"{selector}[{window}s]", at):
            name = self.by_metrics[metric["instance"]]
            choices = [samples]
            if drop_after is not None and at - samples[-1][0] < drop_after * 1000 and len(samples) > 2:
                choices.append(samples[:-1])
            # The first value and the increase only matter to Prometheus's
            # zero limit: a first sample of 0 is not extrapolated backwards.
            out[name] = [extrapolation(s, at, window, s[0][1], s[-1][1] - s[0][1]) for s in choices]
        missing = set(self.replicas) - set(out)
        if missing:
            raise RuntimeError(f"no samples of {selector} for {sorted(missing)}")
        return out

    def combos(self, factors):
        names = sorted(factors)
        for choice in itertools.product(*(factors[n] for n in names)):
            yield dict(zip(names, choice))

    # What is known of each observation d of a request: it is no shorter
    # than the delay the workload drew for it (a timer never fires early),
    # and no longer than curl's time from connect to the first byte of the
    # answer (c), which holds the whole handling. Nothing bounds c - d on a
    # busy machine, so the bounds below use the client only from above and
    # the drawn delays (the started settings, 4 standard deviations of
    # sampling) only from below.
    def drawn_cdf(self, name, seconds):
        """Share of NAME's requests whose drawn delay is at most SECONDS."""
        s = self.replicas[name]["settings"]
        lo, hi = s["min_delay_ms"], s["max_delay_ms"]
        ms = seconds * 1000
        uniform = min(max(math.floor(ms + 1e-9) - lo + 1, 0), hi - lo + 1) / (hi - lo + 1)
        slow = 1.0 if s["slow_delay_ms"] <= ms + 1e-9 else 0.0
        return (1 - s["slow_rate"]) * uniform + s["slow_rate"] * slow

    def bucket_counts(self, name, bounds):
        """[(le, fewest, most)] requests of NAME each bucket of BOUNDS (upper
        bounds, +Inf last) can hold."""
        times, n = self.client[name], self.total(name)
        out = []
        for le in bounds:
            fewest = sum(1 for t in times if t <= le)
            if le == math.inf:
                most = n
            else:
                p = self.drawn_cdf(name, le)
                most = min(n, math.floor(n * p + 4 * math.sqrt(n * p * (1 - p)) + 1e-9))
            out.append((le, fewest, max(most, fewest)))
        return out

    def weighted_buckets(self, f, names=None, bounds=None):
        names = names or sorted(self.replicas)
        bounds = bounds or self.buckets
        low = {le: 0.0 for le in bounds}
        high = {le: 0.0 for le in bounds}
        for name in names:
            for le, fewest, most in self.bucket_counts(name, bounds):
                low[le] += f[name] * fewest
                high[le] += f[name] * most
        return low, high

    def quantile_band(self, q, factors, names=None, bounds=None):
        """[lowest, highest] p-q the bucket layout (the classic buckets, or
        BOUNDS) allows: every request as short as its drawn delay, or as
        long as curl saw it."""
        values = []
        for f in self.combos(factors):
            low, high = self.weighted_buckets(f, names, bounds)
            values.append(bucket_quantile(q, list(high.items())))  # more mass low: lowest
            values.append(bucket_quantile(q, list(low.items())))
        return min(values), max(values)

    def mean_floor(self, name):
        """The least mean observation NAME's drawn delays allow: their mean
        less 4 standard errors."""
        s = self.replicas[name]["settings"]
        lo, hi, k = s["min_delay_ms"], s["max_delay_ms"], s["max_delay_ms"] - s["min_delay_ms"] + 1
        r = s["slow_rate"]
        mean_u, var_u = (lo + hi) / 2, (k * k - 1) / 12
        mean = (1 - r) * mean_u + r * s["slow_delay_ms"]
        var = (1 - r) * (var_u + mean_u ** 2) + r * s["slow_delay_ms"] ** 2 - mean ** 2
        return (mean - 4 * math.sqrt(var / self.total(name))) / 1000

    # --- expected values of the dashboard's queries ------------------------------------
    def expect_rate_by_status(self, factors, window, increase=False):
        statuses = sorted({s for sent in self.sent.values() for s in sent})
        return [{("status", s): sum(f[n] * self.sent[n].get(s, 0) for n in self.replicas)
                 / (1 if increase else window) for s in statuses} for f in self.combos(factors)]

    def run_dashboard(self):
        w = self.window
        at = self.at
        f = self.factors(at, w)
        queries = os.popen(f"python3 scripts/dashboard-queries.py --rate-interval {w}s --range {w}s").read().splitlines()
        print(f"info\twindow {w}s ending at the snapshot, {at / 1000:.3f}; extrapolation factors "
              + ", ".join(f"{n} {fmt(f[n][0])}" for n in sorted(f)))
        handled = 0
        for promql in queries:
            handler = self.dashboard_handler(promql)
            if handler is None:
                self.report(False, f"no expected value known for the dashboard query {promql}")
                continue
            handled += 1
            try:
                handler(promql, query(self.url, promql, at), f)
            except Exception as err:  # a query that fails is a failed check
                self.report(False, f"{promql}: {err}")
        return handled

    def dashboard_handler(self, promql):
        rules = [
            ("sum by (status) (rate(myapp_processed_ops_total", self.d_rate_by_status),
            ('sum(rate(myapp_processed_ops_total{job="myapp",status=~"5.."}', self.d_error_ratio),
            ("sum by (le) (increase(myapp_request_duration_seconds_bucket", self.d_heatmap),
            ("histogram_quantile(0.5, sum by (le) (", self.d_quantile),
            ("histogram_quantile(0.9, sum by (le) (", self.d_quantile),
            ("histogram_quantile(0.99, sum by (le) (", self.d_quantile),
            ("histogram_quantile(0.5, sum(rate(myapp_request_duration_seconds{", self.d_native_quantile),
            ("histogram_quantile(0.99, sum(rate(myapp_request_duration_seconds{", self.d_native_quantile),
            ("sum by (instance) (myapp_requests_in_flight", self.d_in_flight),
            ("sum by (instance) (rate(process_cpu_seconds_total", self.d_cpu),
            ("sum by (instance) (process_resident_memory_bytes", self.d_rss),
            ("sum by (code) (rate(promhttp_metric_handler_requests_total", self.d_scrapes),
            ("sum(tokio_workers", self.d_workers),
            ("sum(tokio_alive_tasks", self.d_tasks),
            ("sum(tokio_global_queue_depth", self.d_queue),
            ('sum by (instance) (rate(myapp_processed_ops_total{job="myapp",status=~"5.."}', self.d_error_ratio_by_instance),
            ("max by (instance) (myapp_workload_error_rate", self.d_setting("error_rate", 1)),
            ("histogram_quantile(0.5, sum by (instance, le)", self.d_quantile_by_instance),
            ("histogram_quantile(0.99, sum by (instance, le)", self.d_quantile_by_instance),
            ("max by (instance) (myapp_workload_min_delay_seconds", self.d_setting("min_delay_ms", 1000)),
            ("max by (instance) (myapp_workload_max_delay_seconds", self.d_setting("max_delay_ms", 1000)),
            ("max by (instance) (myapp_workload_slow_delay_seconds", self.d_setting("slow_delay_ms", 1000)),
            ("sum by (source, result) (increase(myapp_workload_changes_total", self.d_changes),
        ]
        for prefix, handler in rules:
            if promql.startswith(prefix):
                return handler
        return None

    def by_label(self, result, label):
        return {m.get(label, ""): v for m, v in result}

    def compare(self, what, got, candidates, tolerance_text, rel=EXACT):
        """GOT {key: value} against any of CANDIDATES (each {key: value})."""
        ok = any(set(got) == set(c) and all(close(got[k], c[k], rel) for k in c) for c in candidates)
        show = lambda d: " ".join(f"{k}={v!r}" if not ok else f"{k}={fmt(v)}" for k, v in sorted(d.items()))
        self.report(ok, f"{what}: {show(got)}, expected {show(candidates[0])}"
                    + (f" (or {len(candidates) - 1} other rule timing{'s' if len(candidates) > 2 else ''})" if len(candidates) > 1 else "")
                    + f" [{tolerance_text}]")

    def d_rate_by_status(self, promql, result, f):
        got = {s: v for s, v in self.by_label(result, "status").items()}
        want = [{k[1]: v for k, v in c.items()} for c in self.expect_rate_by_status(f, self.window)]
        self.compare("request rate by status (curl's counts / window)", got, want, "exact, 1e-9 relative")

    def ratio(self, f, names=None):
        names = names or sorted(self.replicas)
        return (sum(f[n] * self.errors(n) for n in names)
                / sum(f[n] * self.total(n) for n in names))

    def d_error_ratio(self, promql, result, f):
        got = {"ratio": result[0][1]}
        want = [{"ratio": self.ratio(c)} for c in self.combos(f)]
        errors = sum(self.errors(n) for n in self.replicas)
        total = sum(self.total(n) for n in self.replicas)
        self.compare(f"5xx ratio (curl: {errors}/{total} = {fmt(errors / total)}, per-replica weights)",
                     got, want, "exact, 1e-9 relative")

    def d_heatmap(self, promql, result, f):
        got = {float(le): v for le, v in self.by_label(result, "le").items()}
        bad = []
        for c in self.combos(f):
            low, high = self.weighted_buckets(c)
            bad = [le for le in self.buckets
                   if not (low[le] * (1 - EXACT) - 1e-9 <= got.get(le, math.nan) <= high[le] * (1 + EXACT) + 1e-9)]
            if not bad and set(got) == set(self.buckets):
                break
        low, high = self.weighted_buckets(next(self.combos(f)))
        cells = " ".join(f"{le:g}:{got.get(le, math.nan):.1f}" + (f"[{low[le]:.1f},{high[le]:.1f}]" if high[le] != low[le] else "")
                         for le in self.buckets if got.get(le, 0) or high[le])
        self.report(not bad and set(got) == set(self.buckets),
                    f"heatmap increase per bucket {cells} [{self.LATENCY}; +Inf exact]")

    def d_quantile(self, promql, result, f):
        q = float(promql.split("(", 2)[1].split(",")[0])
        got = result[0][1]
        lo, hi = self.quantile_band(q, f)
        self.report(lo - 1e-9 <= got <= hi + 1e-9,
                    f"p{q * 100:g} {got * 1000:.3f} ms in [{lo * 1000:.3f}, {hi * 1000:.3f}] ms [{self.LATENCY}]")

    # The native histogram's upper bounds: schema 3 (2^(1/8), the largest
    # growth within myapp's bucket factor 1.1, as client_golang picks it),
    # from 1 ms to 8 s.
    NATIVE = [2 ** (i / 8) for i in range(-80, 25)] + [math.inf]

    def d_native_quantile(self, promql, result, f):
        q = float(promql.split("(", 2)[1].split(",")[0])
        got = result[0][1]
        lo, hi = self.quantile_band(q, f, bounds=self.NATIVE)
        # Widened to the edges of the native buckets that hold lo and hi:
        # however Prometheus interpolates inside a bucket, it stays there.
        lo_edge = max(b for b in self.NATIVE if b < lo)
        hi_edge = min(b for b in self.NATIVE if b >= hi)
        self.report(lo_edge * (1 - EXACT) <= got <= hi_edge * (1 + EXACT),
                    f"native p{q * 100:g} {got * 1000:.3f} ms in [{lo_edge * 1000:.3f}, {hi_edge * 1000:.3f}] ms "
                    "[through the native buckets (schema 3, 9% wide), each request between its drawn delay "
                    "(4 sd) and curl's connect-to-first-byte time; to the edges of the buckets]")

    def d_quantile_by_instance(self, promql, result, f):
        q = float(promql.split("(", 2)[1].split(",")[0])
        got = self.by_label(result, "instance")
        parts, ok = [], set(got) == {r["metrics"] for r in self.replicas.values()}
        for name in sorted(self.replicas):
            value = got.get(self.replicas[name]["metrics"], math.nan)
            lo, hi = self.quantile_band(q, {name: [1.0]}, [name])
            ok &= lo - 1e-9 <= value <= hi + 1e-9
            parts.append(f"{name} {value * 1000:.2f} in [{lo * 1000:.2f}, {hi * 1000:.2f}]")
        self.report(ok, f"p{q * 100:g} by replica (ms): {', '.join(parts)} [{self.LATENCY}]")

    def snap(self, name):
        return self.state["snapshot"]["proc"][name]

    def per_instance(self, what, result, want, tolerance_text, within):
        got = self.by_label(result, "instance")
        parts, ok = [], set(got) == {r["metrics"] for r in self.replicas.values()}
        for name in sorted(self.replicas):
            value = got.get(self.replicas[name]["metrics"], math.nan)
            ok &= within(name, value, want[name])
            parts.append(f"{name} {fmt(value)} (expected {fmt(want[name])})")
        self.report(ok, f"{what}: {', '.join(parts)} [{tolerance_text}]")

    def d_in_flight(self, promql, result, f):
        self.per_instance("requests in flight at rest", result, {n: 0 for n in self.replicas},
                          "exact: nothing is sent now", lambda n, v, w: v == w)

    def d_cpu(self, promql, result, f):
        cpu_f = self.factors(self.at, self.window, "process_cpu_seconds_total")
        want, allowed = {}, {}
        for name in self.replicas:
            used = (self.snap(name)["cpu_ticks"] - self.state["before"]["proc"][name]["cpu_ticks"]) / CLK_TCK
            want[name] = used * cpu_f[name][0] / self.window
            # Two ticks of /proc's resolution and 10 ms of idle CPU between a
            # /proc read and the nearest scrape, scaled like the rate.
            allowed[name] = 0.03 * cpu_f[name][0] / self.window
        self.per_instance(f"CPU rate over {self.window}s against /proc utime+stime deltas", result, want,
                          "+-0.03 CPU s over the window", lambda n, v, w: abs(v - w) <= allowed[n])

    def d_rss(self, promql, result, f):
        want = {n: self.snap(n)["rss"] for n in self.replicas}
        self.per_instance("resident memory against /proc/PID/stat rss", result, want,
                          "+-2% (allocations between the scrape and the /proc read)",
                          lambda n, v, w: abs(v - w) <= 0.02 * w)

    def d_scrapes(self, promql, result, f):
        # Prometheus is the only client of /metrics in the window: one scrape
        # of each replica per increment of its counter.
        got = self.by_label(result, "code")
        w = self.window
        want = 0.0
        for name, r in self.replicas.items():
            mine = query(self.url, f'promhttp_metric_handler_requests_total{{code="200",instance="{r["metrics"]}"}}[{w}s]',
                         self.at)[0][1]
            # Only the sample times (and, for the zero limit, the first value
            # and the increase) come from the counter.
            factor = extrapolation(mine, self.at, w, mine[0][1], mine[-1][1] - mine[0][1])
            want += (len(mine) - 1) * factor / w
        ok = close(got.get("200", math.nan), want) and all(v == 0 for c, v in got.items() if c != "200")
        self.report(ok, f"scrapes by code: {' '.join(f'{c}={fmt(v)}' for c, v in sorted(got.items()))}, expected 200={fmt(want)} "
                    "(one per scrape Prometheus stored in the window), others 0 [exact, 1e-9 relative]")

    def d_workers(self, promql, result, f):
        want = sum(self.snap(n)["cpus"] for n in self.replicas)
        self.report(result[0][1] == want, f"tokio workers {fmt(result[0][1])} = 3 replicas x nproc "
                    f"({self.snap('a')['cpus']}) = {want} [exact: the runtime's default]")

    def d_tasks(self, promql, result, f):
        # At rest a replica's tasks are its signal handler and one per open
        # connection (Prometheus keeps its scrape connections alive).
        conns = {n: self.snap(n)["connections"] for n in self.replicas}
        want = sum(1 + c for c in conns.values())
        self.report(result[0][1] == want, f"tokio alive tasks {fmt(result[0][1])} = 3 signal tasks + "
                    f"{sum(conns.values())} established connections in /proc/net/tcp {conns} [exact]")

    def d_queue(self, promql, result, f):
        self.report(result[0][1] == 0, f"tokio global queue depth at rest {fmt(result[0][1])} [exact 0: nothing is sent now]")

    def d_error_ratio_by_instance(self, promql, result, f):
        want = {n: self.errors(n) / self.total(n) for n in self.replicas}
        self.per_instance("observed 5xx ratio by replica (curl's counts)", result, want,
                          "exact, 1e-9 relative", lambda n, v, w: close(v, w))

    def d_setting(self, key, scale):
        def handler(promql, result, f):
            want = {n: r["settings"][key] / scale for n, r in self.replicas.items()}
            self.per_instance(f"configured {key} (the replica's flag)", result, want, "exact",
                              lambda n, v, w: close(v, w))
        return handler

    def d_changes(self, promql, result, f):
        got = {(m["source"], m["result"]): v for m, v in result}
        fc = self.factors(self.at, self.window, 'myapp_workload_changes_total{source="api",result="applied"}')
        want = {(s, r): 0.0 for s in ("flag", "api", "file") for r in ("applied", "rejected")}
        for name, r in self.replicas.items():
            for (source, outcome), n in r["changes"].items():
                want[(source, outcome)] += n * fc[name][0]
        ok = set(got) == set(want) and all(close(got[k], want[k]) for k in want)
        show = lambda d: " ".join(f"{s}/{r}={fmt(v) if ok else repr(v)}" for (s, r), v in sorted(d.items()))
        self.report(ok, f"workload changes over the window: {show(got)}, expected {show(want)} "
                    "[exact: the PUTs the test made; flag/applied happened before the window]")

    # --- recorded series ----------------------------------------------------------------
    def run_recorded(self):
        rules = json.load(urllib.request.urlopen(f"{self.url}/api/v1/rules", timeout=10))
        recorded = [r["name"] for g in rules["data"]["groups"] for r in g["rules"] if r["type"] == "recording"]
        handled = 0
        for name in recorded:
            handler = self.recorded_handler(name)
            if handler is None:
                self.report(False, f"no expected value known for the recorded series {name}")
                continue
            handled += 1
            samples = query(self.url, f"{name}[5s]", self.at)
            if not samples:
                self.report(False, f"{name}: no samples")
                continue
            t_eval = max(s[-1][0] for _, s in samples)
            got = [(m, v) for m, s in samples for t, v in s if t == t_eval]
            window = self.rule_window(name)
            f = self.factors(t_eval, window, drop_after=0.25)
            try:
                handler(name, got, f, window)
            except Exception as err:
                self.report(False, f"{name}: {err}")
        return handled, len(recorded)

    def rule_window(self, name):
        """The range, in seconds, a recorded series' name says it rates over."""
        if name.startswith("slo:sli_error:ratio_rate"):
            suffix = name.rsplit("rate", 1)[1]
            return int(suffix[:-1]) * {"m": 60, "h": 3600, "d": 86400}[suffix[-1]]
        return 300 if name.endswith("5m") else 60

    def recorded_handler(self, name):
        if name.startswith("slo:") or name == "sloth_slo_info":
            return self.r_slo
        return {
            "job_status:myapp_processed_ops:rate1m": self.r_by_status,
            "job_status:myapp_processed_ops:rate5m": self.r_by_status,
            "job:myapp_processed_ops:rate1m": self.r_total,
            "job:myapp_processed_ops:rate5m": self.r_total,
            "job:myapp_processed_ops_errors:ratio_rate1m": self.r_ratio,
            "job:myapp_processed_ops_errors:ratio_rate5m": self.r_ratio,
            "job_instance:myapp_processed_ops_errors:ratio_rate5m": self.r_ratio_by_instance,
            "job_le:myapp_request_duration_seconds_bucket:rate5m": self.r_buckets,
            "job:myapp_request_duration_seconds:p50_rate5m": self.r_quantile(0.5),
            "job:myapp_request_duration_seconds:p90_rate5m": self.r_quantile(0.9),
            "job:myapp_request_duration_seconds:p99_rate5m": self.r_quantile(0.99),
        }.get(name)

    # The SLO rules (deploy/prometheus/slo-rules.yml), per SLO of the spec.
    SLO_LE = 2.5  # the latency SLO's threshold, le="2.5" in slo/myapp.yaml

    def r_slo(self, name, got, f, window):
        import yaml
        spec = {s["name"]: s for s in yaml.safe_load(Path("slo/myapp.yaml").read_text())["slos"]}
        # Each SLO's rules are groups of their own, evaluated at their own
        # offsets: take each SLO's last evaluation, not the latest of all.
        have = {}
        for metric, samples in query(self.url, f"{name}[5s]", self.at):
            have[metric["sloth_slo"]] = (metric, samples[-1][0], samples[-1][1])
        if set(have) != set(spec):
            self.report(False, f"{name}: SLOs {sorted(have)}, expected {sorted(spec)}")
            return

        for slo, (metric, t_eval, value) in sorted(have.items()):
            def recorded(series):
                # What that SLO's other rule held when this one was evaluated.
                return query(self.url, f'{series}{{sloth_slo="{slo}"}}', t_eval)[0][1]

            f = self.factors(t_eval, window, drop_after=0.25)
            budget = 1 - spec[slo]["objective"] / 100
            if name == "slo:sli_error:ratio_rate30d":
                samples = query(self.url, f'slo:sli_error:ratio_rate5m{{sloth_slo="{slo}"}}[30d]', t_eval)[0][1]
                want, how = [sum(v for _, v in samples) / len(samples)], "the mean of its recorded 5m ratios"
            elif name.startswith("slo:sli_error:ratio_rate") and slo == "availability":
                good = [s for s in {s for sent in self.sent.values() for s in sent} if not s.startswith("4")]
                want = [sum(c[n] * self.errors(n) for n in self.replicas)
                        / sum(c[n] * self.total(n, good) for n in self.replicas) for c in self.combos(f)]
                how = "curl's 5xx / curl's answers but 4xx, per-replica weights"
            elif name.startswith("slo:sli_error:ratio_rate") and slo == "latency":
                slowest = max(max(times) for times in self.client.values())
                if slowest >= self.SLO_LE:
                    self.report(False, f"{name}: curl saw a request of {slowest:.3f} s; the test needs all under {self.SLO_LE} s")
                    continue
                want, how = [0.0], f"curl saw every request answered within {slowest:.3f} s"
            elif name == "slo:objective:ratio":
                want, how = [spec[slo]["objective"] / 100], "the spec's objective"
            elif name == "slo:error_budget:ratio":
                want, how = [budget], "1 - the spec's objective"
            elif name == "slo:time_period:days":
                want, how = [30], "Sloth's default period"
            elif name == "slo:current_burn_rate:ratio":
                want, how = [recorded("slo:sli_error:ratio_rate5m") / budget], "the 5m ratio / the budget"
            elif name == "slo:period_burn_rate:ratio":
                want, how = [recorded("slo:sli_error:ratio_rate30d") / budget], "the 30d ratio / the budget"
            elif name == "slo:period_error_budget_remaining:ratio":
                want, how = [1 - recorded("slo:period_burn_rate:ratio")], "1 - the period burn rate"
            elif name == "sloth_slo_info":
                ok = metric.get("sloth_objective") == f"{spec[slo]['objective']:g}"
                want, how = [1.0 if ok else math.nan], f"1, with sloth_objective {metric.get('sloth_objective')}"
            else:
                self.report(False, f"no expected value known for the recorded series {name}")
                continue
            if all(math.isnan(w) for w in want) and math.isnan(value):
                # A 5m ratio of 0/0 (no traffic yet) is NaN, and so is any
                # mean over it: Sloth's period ratio is NaN for 30 days after.
                self.report(True, f"{name}{{sloth_slo={slo}}} NaN ({how}: a 5m window without traffic)")
                continue
            self.compare(f"{name}{{sloth_slo={slo}}} ({how})", {"": value}, [{"": w} for w in want],
                         "exact, 1e-9 relative")

    def r_by_status(self, name, got, f, window):
        have = {m["status"]: v for m, v in got}
        want = [{k[1]: v for k, v in c.items()} for c in self.expect_rate_by_status(f, window)]
        self.compare(name, have, want, "exact, 1e-9 relative")

    def r_total(self, name, got, f, window):
        want = [{"": sum(c[n] * self.total(n) for n in self.replicas) / window} for c in self.combos(f)]
        self.compare(name, {"": got[0][1]}, want, "exact, 1e-9 relative")

    def r_ratio(self, name, got, f, window):
        want = [{"": self.ratio(c)} for c in self.combos(f)]
        self.compare(name, {"": got[0][1]}, want, "exact, 1e-9 relative")

    def r_ratio_by_instance(self, name, got, f, window):
        have = {self.by_metrics[m["instance"]]: v for m, v in got}
        want = {n: self.errors(n) / self.total(n) for n in self.replicas}
        self.compare(name, have, [want], "exact, 1e-9 relative")

    def r_buckets(self, name, got, f, window):
        have = {float(m["le"]): v for m, v in got}
        ok = False
        for c in self.combos(f):
            low, high = self.weighted_buckets(c)
            if set(have) == set(self.buckets) and all(
                    low[le] / window * (1 - EXACT) - 1e-12 <= have[le] <= high[le] / window * (1 + EXACT) + 1e-12
                    for le in self.buckets):
                ok = True
                break
        low, high = self.weighted_buckets(next(self.combos(f)))
        cells = " ".join(f"{le:g}:{have.get(le, math.nan):.4f}" for le in self.buckets if high[le])
        self.report(ok, f"{name} per bucket {cells} /s [{self.LATENCY}; +Inf exact]")

    def r_quantile(self, q):
        def handler(name, got, f, window):
            value = got[0][1]
            lo, hi = self.quantile_band(q, f)
            self.report(lo - 1e-9 <= value <= hi + 1e-9, f"{name} {value * 1000:.3f} ms in "
                        f"[{lo * 1000:.3f}, {hi * 1000:.3f}] ms [{self.LATENCY}]")
        return handler

    # --- raw series no query shows --------------------------------------------------------
    def run_raw(self):
        at = self.at
        for metric, key, scale in [("myapp_workload_slow_rate", "slow_rate", 1),
                                   ("myapp_workload_error_rate", "error_rate", 1)]:
            got = self.by_label(query(self.url, metric, at), "instance")
            want = {r["metrics"]: r["settings"][key] / scale for r in self.replicas.values()}
            self.report(set(got) == set(want) and all(close(got[k], want[k]) for k in want),
                        f"{metric} by replica {' '.join(f'{self.by_metrics[k]}={fmt(v)}' for k, v in sorted(got.items()))} [exact: the flags]")
        got = {(self.by_metrics[m["instance"]], m["source"], m["result"]): v
               for m, v in query(self.url, "myapp_workload_changes_total", at)}
        want = {}
        for name, r in self.replicas.items():
            for s in ("flag", "api", "file"):
                for o in ("applied", "rejected"):
                    want[(name, s, o)] = (s == "flag" and o == "applied") + r["changes"].get((s, o), 0)
        nonzero = " ".join(f"{n}:{s}/{o}={fmt(v)}" for (n, s, o), v in sorted(got.items()) if v)
        self.report(got == want, f"myapp_workload_changes_total: {nonzero}, every other 0 "
                    "[exact: one flag/applied at start-up, plus the test's PUTs]")
        # At rest /proc/PID/fd lists the listeners, the runtime's and the
        # scrape connection; a scrape sees one more, the directory its
        # collector lists.
        fds = query(self.url, "process_open_fds[4s]", at)
        parts, ok = [], len(fds) == len(self.replicas)
        for metric, samples in sorted(fds, key=lambda r: r[0]["instance"]):
            name = self.by_metrics[metric["instance"]]
            listed = self.snap(name)["fds"]
            values = [v for _, v in samples]
            ok &= all(v == listed + 1 for v in values)
            parts.append(f"{name} {'/'.join(fmt(v) for v in values)} (/proc/PID/fd lists {listed})")
        self.report(ok, f"process_open_fds, last 4 s: {', '.join(parts)} [exact: /proc/PID/fd + 1 at each scrape]")
        # Mean latency, of the classic histogram and of the native one: see drawn_cdf.
        for what, sum_of, count_of in [
                ("classic _sum/_count", "myapp_request_duration_seconds_sum", "myapp_request_duration_seconds_count"),
                ("native histogram_sum/histogram_count", "histogram_sum(myapp_request_duration_seconds)",
                 "histogram_count(myapp_request_duration_seconds)")]:
            sums = self.by_label(query(self.url, sum_of, at), "instance")
            counts = self.by_label(query(self.url, count_of, at), "instance")
            parts, ok = [], True
            for name, r in sorted(self.replicas.items()):
                n = self.total(name)
                client = sum(self.client[name]) / n
                count = counts.get(r["metrics"], math.nan)
                mean = sums.get(r["metrics"], math.nan) / count
                floor = self.mean_floor(name)
                ok &= count == n and floor <= mean <= client
                parts.append(f"{name} {mean * 1000:.3f} ms over {fmt(count)} in [{floor * 1000:.3f}, {client * 1000:.3f}]")
            self.report(ok, f"mean latency {what}: {', '.join(parts)} [count exact (curl); mean between "
                        "the drawn delays' mean less 4 standard errors and curl's mean connect-to-first-byte time]")
        cpu = self.by_label(query(self.url, "process_cpu_seconds_total", at), "instance")
        parts, ok = [], True
        for name, r in sorted(self.replicas.items()):
            value, ticks = cpu.get(r["metrics"], math.nan), self.snap(name)["cpu_ticks"]
            ok &= ticks / CLK_TCK - 0.02 <= value <= ticks / CLK_TCK
            parts.append(f"{name} {fmt(value)} (/proc {ticks / CLK_TCK:g})")
        self.report(ok, f"process_cpu_seconds_total: {', '.join(parts)} [/proc at the snapshot, at most 2 ticks (0.02 s) more]")


def parse_flags(text):
    words = text.split()
    settings = {}
    for flag, value in zip(words[::2], words[1::2]):
        key = FLAG_NAMES[flag]
        settings[key] = float(value) if "rate" in key else int(value)
    missing = set(FLAG_NAMES.values()) - set(settings)
    if missing:
        sys.exit(f"every replica needs all five workload flags; missing {sorted(missing)}")
    return settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["before", "snapshot", "check"])
    parser.add_argument("state", type=Path)
    parser.add_argument("--replica", action="append", default=[],
                        help="NAME=PUBLIC,METRICS,PID,FLAGS (FLAGS: the five workload flags, spaces between)")
    parser.add_argument("--change", action="append", default=[], help="NAME:SOURCE/RESULT, a change the test made")
    parser.add_argument("--traffic")
    parser.add_argument("--prometheus", help="the Prometheus server's URL")
    parser.add_argument("--buckets")
    args = parser.parse_args()

    if args.phase == "before":
        replicas = {}
        for spec in args.replica:
            name, rest = spec.split("=", 1)
            public, metrics, pid, flags = rest.split(",", 3)
            replicas[name] = {"public": public, "metrics": metrics, "pid": int(pid),
                              "settings": parse_flags(flags), "changes": {}}
        state = {"replicas": replicas,
                 "before": {"time": time.time(), "proc": {n: read_proc(r["pid"]) for n, r in replicas.items()}}}
        args.state.write_text(json.dumps(state))
        return
    state = json.loads(args.state.read_text())
    if args.phase == "snapshot":
        for spec in args.change:
            name, change = spec.split(":", 1)
            state["replicas"][name]["changes"][change] = state["replicas"][name]["changes"].get(change, 0) + 1
        state["snapshot"] = {"time": time.time(),
                             "proc": {n: read_proc(r["pid"]) for n, r in state["replicas"].items()}}
        args.state.write_text(json.dumps(state))
        return
    for r in state["replicas"].values():
        r["changes"] = {tuple(k.split("/")): v for k, v in r["changes"].items()}
    checker = Checker(args, state)
    queries = checker.run_dashboard()
    recorded, total = checker.run_recorded()
    checker.run_raw()
    print(f"info\t{queries} dashboard queries and {recorded} of {total} recorded series held against expected values")


if __name__ == "__main__":
    main()
