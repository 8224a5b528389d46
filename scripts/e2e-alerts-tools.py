#!/usr/bin/env python3
"""The Python half of scripts/e2e-alerts.sh (its receiver also serves scripts/stack.sh).

    shorten-rules SRC DST FACTOR   the test copy of rules.yml: every `for:` and
                                   every range, subquery and offset in `expr`
                                   divided by FACTOR, nothing else changed
    alertmanager-config SRC DST FACTOR RECEIVER
                                   the test copy of alertmanager.yml: each
                                   webhook's host and port replaced by RECEIVER
                                   (the path, naming the receiver, kept), every
                                   group_wait, group_interval, repeat_interval
                                   and resolve_timeout divided by FACTOR
    receiver [LOG] [--listen ADDR] [--print]
                                   the Alertmanager webhook: appends each POST
                                   to LOG as {"received": unix time, "path":
                                   "/pager", "payload": ...}; any path is
                                   served, one per Alertmanager receiver
                                   (deploy/alertmanager/alertmanager.yml), so
                                   the path says which receiver was notified;
                                   --print also writes one line per alert on
                                   stdout (scripts/stack.sh, deploy/compose/)
    history OUT SECONDS INTERVAL_MS RATE WORKLOAD
                                   OpenMetrics for `promtool tsdb
                                   create-blocks-from openmetrics`: SECONDS up
                                   to now of RATE requests per second served
                                   as the WORKLOAD file says (its error rate,
                                   its uniform delays), a sample every
                                   INTERVAL_MS, as one more instance
                                   ("history") of job myapp (scripts/stack.sh);
                                   --lead S: ending S seconds from now
    load ...                       a bounded load generator, one JSON line per answer
    merge JSON JSON                the settings after a change (a change applies
                                   like a PUT: the keys it holds, nothing else)
    gauges ...                     the myapp_workload_* series Prometheus holds
                                   equal the expected settings and change counts
    notified LOG ALERT STATUS      prints when the first such notification came
                                   (--receiver pager: sent to /pager)
    check-notification ...         its labels and annotations are the rules'
    value-at-firing PROM ALERT Q   Q evaluated when ALERT first fired
    answers LOG ...                what the load generator's answers say
    humanize-duration SECONDS      Prometheus's humanizeDuration, for messages

Every check prints what it found when it fails and exits 1.
"""
import argparse
import json
import math
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

# No proxy, whatever the environment says: everything here is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# --- durations ---------------------------------------------------------------------

UNITS_MS = {"y": 365 * 86400_000, "w": 7 * 86400_000, "d": 86400_000, "h": 3600_000,
            "m": 60_000, "s": 1000, "ms": 1}
DURATION = r"(?:\d+(?:ms|[smhdwy]))+"


def parse_duration(text):
    """Milliseconds in a Prometheus duration such as 1m30s."""
    if not re.fullmatch(DURATION, text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * UNITS_MS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))


def format_duration(ms):
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("y", "w", "d", "h", "m", "s", "ms"):
        count, ms = divmod(ms, UNITS_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def scale_duration(text, scale):
    """scale is a fraction (numerator, denominator); the result must be whole ms."""
    num, den = scale
    ms = parse_duration(text) * num
    if ms % den:
        raise ValueError(f"{text} times {num}/{den} is not a whole number of milliseconds")
    return format_duration(ms // den)


# A range [5m], a subquery [5m:1m] or [5m:], an offset.
RANGE = re.compile(rf"\[\s*({DURATION})\s*(?::\s*({DURATION})?\s*)?\]")
OFFSET = re.compile(rf"(\boffset\s+-?)({DURATION})")


def scale_expr(expr, scale):
    def scale_range(m):
        step = m.group(2)
        if ":" not in m.group(0):
            return f"[{scale_duration(m.group(1), scale)}]"
        return f"[{scale_duration(m.group(1), scale)}:{scale_duration(step, scale) if step else ''}]"

    expr = RANGE.sub(scale_range, expr)
    return OFFSET.sub(lambda m: m.group(1) + scale_duration(m.group(2), scale), expr)


def scale_rules(groups, scale):
    out = json.loads(json.dumps(groups))  # a deep copy
    for group in out:
        if "interval" in group:
            group["interval"] = scale_duration(group["interval"], scale)
        for rule in group["rules"]:
            rule["expr"] = scale_expr(rule["expr"], scale)
            if "for" in rule:
                rule["for"] = scale_duration(rule["for"], scale)
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = scale_duration(rule["keep_firing_for"], scale)
    return out


def cmd_shorten_rules(args):
    import yaml

    source = yaml.safe_load(Path(args.src).read_text())
    factor = args.factor
    short = scale_rules(source["groups"], (1, factor))
    # Only durations changed: scaled back up, the copy is the real file again
    # (both written the same way: 30d comes back as 4w2d).
    if scale_rules(short, (factor, 1)) != scale_rules(source["groups"], (1, 1)):
        sys.exit("shorten-rules: the test copy differs from the real file in more than its durations")
    changed = sorted({f"{a} -> {b}" for a, b in zip(durations_of(source["groups"]), durations_of(short)) if a != b})
    header = (f"# GENERATED by scripts/e2e-alerts-tools.py shorten-rules from {args.src}:\n"
              f"# every for: and every range in expr divided by {factor}; names, labels and\n"
              f"# annotations as they are there. For scripts/e2e-alerts.sh only.\n")
    class Dumper(yaml.SafeDumper):
        pass

    # Multi-line PromQL as a block, as in the real file.
    Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))
    text = yaml.dump({"groups": short}, Dumper=Dumper, sort_keys=False, width=1000)
    Path(args.dst).write_text(header + text)
    print(", ".join(changed))


def durations_of(groups):
    for group in groups:
        for rule in group["rules"]:
            yield from (m.group(1) for m in RANGE.finditer(rule["expr"]))
            if "for" in rule:
                yield rule["for"]


# --- the test copy of the Alertmanager config ---------------------------------------------

AM_DURATIONS = ("group_wait", "group_interval", "repeat_interval", "resolve_timeout")


def scale_alertmanager(node, scale, receiver):
    """A copy of an Alertmanager config (or part of it): its durations scaled,
    its webhooks sent to receiver (HOST:PORT), their paths kept."""
    if isinstance(node, list):
        return [scale_alertmanager(item, scale, receiver) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in AM_DURATIONS:
            value = scale_duration(value, scale)
        elif key == "webhook_configs":
            value = [{**w, "url": re.sub(r"^(https?://)[^/]+", rf"\g<1>{receiver}", w["url"])} for w in value]
        out[key] = scale_alertmanager(value, scale, receiver)
    return out


def cmd_alertmanager_config(args):
    import yaml

    source = yaml.safe_load(Path(args.src).read_text())
    short = scale_alertmanager(source, (1, args.factor), args.receiver)
    changed = sorted({f"{k} {a} -> {b}" for k, a, b in zip_durations(source, short) if a != b})
    header = (f"# GENERATED by scripts/e2e-alerts-tools.py alertmanager-config from {args.src}:\n"
              f"# the webhooks sent to {args.receiver}, every duration divided by {args.factor};\n"
              f"# routes, grouping and inhibitions as they are there. For scripts/e2e-alerts.sh only.\n")
    Path(args.dst).write_text(header + yaml.safe_dump(short, sort_keys=False))
    print(", ".join(changed))


def zip_durations(a, b):
    """(key, a's value, b's value) of every duration key, in both configs alike."""
    if isinstance(a, dict):
        for key in a:
            if key in AM_DURATIONS:
                yield key, a[key], b[key]
            else:
                yield from zip_durations(a[key], b[key])
    elif isinstance(a, list):
        for x, y in zip(a, b):
            yield from zip_durations(x, y)


# --- the webhook receiver ----------------------------------------------------------------

def receiver_name(path):
    """The Alertmanager receiver a webhook path stands for: /pager is pager;
    / (a config with one receiver) is -."""
    return path.split("?", 1)[0].strip("/") or "-"


def notification_lines(payload, received, path="/"):
    """One line per alert of an Alertmanager notification, for a terminal:
    the time, FIRING or RESOLVED, the receiver (the path it was sent to), the
    alert and its instance, the summary."""
    when = time.strftime("%H:%M:%S", time.localtime(received))
    for alert in payload.get("alerts", []) if isinstance(payload, dict) else []:
        labels = alert.get("labels", {})
        where = labels.get("instance") or labels.get("job") or labels.get("sloth_slo") or ""
        yield (f"{when} {alert.get('status', '?').upper():8} {receiver_name(path):8} {labels.get('alertname', '?')}"
               f"{' ' + where if where else ''}"
               f" [{labels.get('severity', '-')}]: {alert.get('annotations', {}).get('summary', '')}")


def cmd_receiver(args):
    log = Path(args.log) if args.log else None
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received = time.time()
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {"unparsed": body.decode(errors="replace")}
            with lock:
                if log:
                    with log.open("a") as f:
                        f.write(json.dumps({"received": received, "path": self.path, "payload": payload}) + "\n")
                if args.print:
                    for line in notification_lines(payload, received, self.path):
                        print(line, flush=True)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *fargs):
            sys.stderr.write("receiver: " + fmt % fargs + "\n")

    host, _, port = args.listen.rpartition(":")
    server = HTTPServer((host, int(port)), Handler)
    print(f"receiver: listening on {host}:{server.server_port}", file=sys.stderr if args.print else sys.stdout,
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


# --- the history the stack starts with ------------------------------------------------------------

# The histogram's buckets: DEFAULT_BUCKETS of src/config.rs.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 5)


def cmd_history(args):
    """Counters and a histogram that grow by exactly what RATE requests per
    second of the workload would add: the SLO rules' long windows (1d, 3d)
    then hold a healthy past, as in production, instead of the few minutes
    since the stack started (a window with less history weighs a scenario's
    errors more, and fires sooner than production would)."""
    workload = json.loads(Path(args.workload).read_text())
    if workload.get("slow_rate", 0):
        sys.exit("history: a workload with a slow tail is not modelled")
    low, high = workload["min_delay_ms"] / 1000, workload["max_delay_ms"] / 1000
    errors = workload["error_rate"]

    def below(le):  # the share of delays drawn uniformly from [low, high] at most le
        if high == low:
            return 1.0 if low <= le else 0.0
        return min(1.0, max(0.0, (le - low) / (high - low)))

    end_ms = int((time.time() + args.lead) * 1000)
    steps = int(args.seconds * 1000 // args.interval_ms)
    times = [(end_ms - (steps - i) * args.interval_ms) for i in range(steps + 1)]
    labels = 'job="myapp",instance="history"'
    lines = ["# TYPE myapp_processed_ops counter"]
    for status, share in (("200", 1 - errors), ("500", errors)):
        for i, t in enumerate(times):
            elapsed = i * args.interval_ms / 1000
            lines.append(f'myapp_processed_ops_total{{{labels},status="{status}"}} '
                         f"{args.rate * share * elapsed:.6f} {t / 1000:.3f}")
    lines.append("# TYPE myapp_request_duration_seconds histogram")
    for le in (*BUCKETS, "+Inf"):
        share = 1.0 if le == "+Inf" else below(le)
        for i, t in enumerate(times):
            elapsed = i * args.interval_ms / 1000
            lines.append(f'myapp_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                         f"{args.rate * share * elapsed:.6f} {t / 1000:.3f}")
    for suffix, per_request in (("count", 1.0), ("sum", (low + high) / 2)):
        for i, t in enumerate(times):
            elapsed = i * args.interval_ms / 1000
            lines.append(f"myapp_request_duration_seconds_{suffix}{{{labels}}} "
                         f"{args.rate * per_request * elapsed:.6f} {t / 1000:.3f}")
    lines.append("# EOF")
    Path(args.out).write_text("\n".join(lines) + "\n")


# --- the load generator -----------------------------------------------------------------------

def cmd_load(args):
    """RATE requests per second to each replica for at most DURATION seconds.

    Each tick reads CONTROL/NAME (if present) for the query string of that
    replica's requests, so the test can switch one replica to ?fail=true.
    Each answer becomes a line {"replica", "query", "start", "seconds", "status"}.
    """
    replicas = [r.split("=", 1) for r in args.replicas]
    deadline = time.monotonic() + args.duration
    log = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(args.max_in_flight)
    control = Path(args.control)

    def one(name, address, query):
        try:
            url = f"http://{address}/work" + (f"?{query}" if query else "")
            start = time.time()
            try:
                with OPENER.open(url, timeout=args.timeout) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as err:
                err.read()
                status = err.code
            except OSError as err:
                status = f"error: {err}"
            line = {"replica": name, "query": query, "start": start,
                    "seconds": time.time() - start, "status": status}
            with lock:
                log.write(json.dumps(line) + "\n")
        finally:
            slots.release()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tick = time.monotonic()
    skipped = 0
    while time.monotonic() < deadline:
        for name, address in replicas:
            try:
                query = (control / name).read_text().strip()
            except FileNotFoundError:
                query = ""
            if slots.acquire(blocking=False):
                threading.Thread(target=one, args=(name, address, query), daemon=True).start()
            else:
                skipped += 1
        tick += 1 / args.rate
        time.sleep(max(0.0, tick - time.monotonic()))
    print(f"load: stopped after {args.duration} s; {skipped} ticks skipped (in flight at the limit)")


# --- settings and their gauges --------------------------------------------------------------

SETTINGS = ("min_delay_ms", "max_delay_ms", "error_rate", "slow_rate", "slow_delay_ms")
# Each setting's gauge and how to get it from the setting (base units: seconds).
GAUGES = {
    "min_delay_ms": ("myapp_workload_min_delay_seconds", lambda v: v / 1000),
    "max_delay_ms": ("myapp_workload_max_delay_seconds", lambda v: v / 1000),
    "error_rate": ("myapp_workload_error_rate", float),
    "slow_rate": ("myapp_workload_slow_rate", float),
    "slow_delay_ms": ("myapp_workload_slow_delay_seconds", lambda v: v / 1000),
}


def cmd_merge(args):
    settings = json.loads(args.settings)
    change = json.loads(args.change)
    unknown = set(change) - set(SETTINGS)
    if unknown:
        sys.exit(f"merge: not settings: {sorted(unknown)}")
    print(json.dumps({**settings, **change}, sort_keys=True))


def query(prom, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = repr(at)
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode(params)
    with OPENER.open(url, timeout=10) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body.get('error')}")
    return body["data"]["result"]


def cmd_gauges(args):
    """Every replica's gauges equal the settings, and its change counter the counts."""
    expected = json.loads(args.settings)
    counts = json.loads(args.counts)  # {"file/applied": 3, ...}: all six
    problems = []
    for key in SETTINGS:
        metric, convert = GAUGES[key]
        want = convert(expected[key])
        got = {r["metric"].get("instance"): float(r["value"][1])
               for r in query(args.prom, f'{metric}{{job="myapp"}}')}
        for instance in args.instances:
            if got.get(instance) != want:
                problems.append(f"{metric}{{instance={instance}}} is {got.get(instance)}, the file says {want}")
        extra = set(got) - set(args.instances)
        if extra:
            problems.append(f"{metric} has series of unknown instances {sorted(extra)}")
    rows = query(args.prom, 'myapp_workload_changes_total{job="myapp"}')
    got = {(r["metric"]["instance"], f'{r["metric"]["source"]}/{r["metric"]["result"]}'): float(r["value"][1])
           for r in rows}
    for instance in args.instances:
        for series, want in counts.items():
            if got.get((instance, series)) != want:
                problems.append(f"myapp_workload_changes_total{{{series}}} of {instance} is "
                                f"{got.get((instance, series))}, expected {want}")
        have = {series for (i, series) in got if i == instance}
        if have != set(counts):
            problems.append(f"{instance} has change series {sorted(have)}, expected {sorted(counts)}")
    for line in problems:
        print(line)
    sys.exit(1 if problems else 0)


# --- notifications ------------------------------------------------------------------------------

def notifications(log):
    """(received, alert, receiver) for every alert of every notification, in order."""
    try:
        lines = Path(log).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        record = json.loads(line)
        for alert in record["payload"].get("alerts", []):
            out.append((record["received"], alert, receiver_name(record.get("path", "/"))))
    return out


def matching(args):
    return [(received, alert) for received, alert, receiver in notifications(args.log)
            if alert["labels"].get("alertname") == args.alert and alert.get("status") == args.status
            and (args.instance is None or alert["labels"].get("instance") == args.instance)
            and (args.receiver is None or receiver == args.receiver)
            and received >= args.after]


def cmd_notified(args):
    found = matching(args)
    if not found:
        sys.exit(1)
    print(f"{found[0][0]:.3f}")


def rfc3339(text):
    """A Go time (nanoseconds, Z or an offset) as a unix time."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(f"not a time: {text!r}")
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


def expected_description(template, labels, value, configured):
    """The rule's description as Prometheus renders it with these values.

    Knows the template actions rules.yml uses; any other action is an error, so
    that a changed annotation makes this test fail until it learns it.
    """
    text = template
    # {{ with <query> | query }}{{ . | first | value | humanizePercentage }}{{ end }}
    text = re.sub(r"\{\{ with printf `myapp_workload_error_rate\{[^`]*\}` \$labels\.job \$labels\.instance"
                  r" \| query \}\}\{\{ \. \| first \| value \| humanizePercentage \}\}\{\{ end \}\}",
                  lambda _: configured if configured is not None else "\0", text)
    for name, label in labels.items():
        text = text.replace(f"{{{{ $labels.{name} }}}}", label)
    text = re.sub(r"\{\{ \$value \| humanize(Percentage|Duration) \}\}", lambda _: value, text)
    left = re.findall(r"\{\{.*?\}\}", text)
    if left or "\0" in text:
        raise SystemExit(f"check-notification cannot render {left or 'the configured rate'}: "
                         f"teach expected_description() in scripts/e2e-alerts-tools.py")
    return text


def cmd_check_notification(args):
    import yaml

    rule = next((r for g in yaml.safe_load(Path(args.rules).read_text())["groups"] for r in g["rules"]
                 if r.get("alert") == args.alert), None)
    if rule is None:
        sys.exit(f"no alert {args.alert} in {args.rules}")
    found = matching(args)
    if not found:
        sys.exit(f"no {args.status} notification of {args.alert}")
    received, alert = found[0]
    problems = []
    # alertname, the rule's own labels, and those of the series (job, instance).
    want_labels = {"alertname": args.alert, **rule.get("labels", {}), **dict(kv.split("=", 1) for kv in args.label)}
    if alert["labels"] != want_labels:
        problems.append(f"labels {alert['labels']}, expected {want_labels}")
    annotations = alert["annotations"]
    if set(annotations) != set(rule.get("annotations", {})):
        problems.append(f"annotations {sorted(annotations)}, the rule gives {sorted(rule['annotations'])}")
    if annotations.get("summary") != rule["annotations"]["summary"]:
        problems.append(f"summary {annotations.get('summary')!r}, the rule says {rule['annotations']['summary']!r}")
    series_labels = {k: v for k, v in want_labels.items() if k in ("job", "instance")}
    if args.value is not None:
        want = expected_description(rule["annotations"]["description"], series_labels, args.value, args.configured)
        if annotations.get("description") != want:
            problems.append(f"description {annotations.get('description')!r},\n        expected {want!r}")
    else:
        # A resolved alert keeps the last value it fired with: any value of the right form.
        pattern = re.escape(expected_description(rule["annotations"]["description"], series_labels,
                                                 "\1", args.configured)).replace("\1", "(.+?)")
        if not re.fullmatch(pattern, annotations.get("description", "")):
            problems.append(f"description {annotations.get('description')!r} does not render the rule's")
    starts, ends = rfc3339(alert["startsAt"]), rfc3339(alert["endsAt"])
    if args.status == "firing":
        # Prometheus sends the time it fired as startsAt: not before the
        # condition had held for the rule's for: since the change.
        held = next(r.get("for", "0s") for g in yaml.safe_load(Path(args.test_rules).read_text())["groups"]
                    for r in g["rules"] if r.get("alert") == args.alert)
        if starts < args.after + parse_duration(held) / 1000:
            problems.append(f"startsAt {alert['startsAt']} is {starts - args.after:.1f} s after the change, "
                            f"before its for: {held} could pass")
        if received < starts:
            problems.append(f"notified before startsAt {alert['startsAt']}")
    else:
        if not starts < ends <= received + 1:
            problems.append(f"startsAt {alert['startsAt']}, endsAt {alert['endsAt']}: not a resolved alert")
    for line in problems:
        print(line)
    if not problems:
        print(f"fired {starts - args.after:.1f} s after the change" if args.status == "firing"
              else f"ended {ends - args.after:.1f} s after the change")
    sys.exit(1 if problems else 0)


def cmd_value_at_firing(args):
    """EXPR at the evaluation where ALERT first fired (the ALERTS series says when)."""
    rows = query(args.prom, f'ALERTS{{alertname="{args.alert}",alertstate="firing"}}[10m]')
    if not rows:
        sys.exit(f"{args.alert} never fired")
    fired = min(float(t) for row in rows for t, _ in row["values"])
    result = query(args.prom, args.expr, at=fired)
    if len(result) != 1:
        sys.exit(f"{args.expr} at {fired} has {len(result)} series")
    print(result[0]["value"][1])


def humanize_duration(v):
    """Prometheus's humanizeDuration (template/template.go)."""
    if math.isnan(v) or math.isinf(v):
        return "%.4g" % v
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        whole = int(v)
        seconds, minutes, hours, days = whole % 60, whole // 60 % 60, whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return "%s%.4gs" % (sign, v)
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return "%.4g%ss" % (v, prefix)


def cmd_humanize_duration(args):
    print(humanize_duration(args.seconds))


# --- the answers the load generator saw ------------------------------------------------------------

def cmd_answers(args):
    """Checks the answers to requests sent in [FROM, TO) by each replica named.

    --status S: every answer was S. --slow SECONDS: some answers took at least
    SECONDS, and none took more than --fast-below without reaching it.
    --none-slower SECONDS: no answer took SECONDS or more.
    """
    answers = [json.loads(line) for line in Path(args.log).read_text().splitlines()]
    problems = []
    for name in args.replica:
        mine = [a for a in answers if a["replica"] == name and args.start <= a["start"] < args.end]
        if not mine:
            problems.append(f"{name}: no answers to requests sent in that time")
            continue
        if args.status is not None:
            other = [a for a in mine if str(a["status"]) != args.status]
            if other:
                problems.append(f"{name}: {len(other)} of {len(mine)} answers were not {args.status}, "
                                f"the first {other[0]}")
        if args.slow is not None:
            slow = [a for a in mine if a["seconds"] >= args.slow]
            between = [a for a in mine if args.fast_below <= a["seconds"] < args.slow]
            if not slow:
                problems.append(f"{name}: none of {len(mine)} answers took {args.slow} s or more")
            if between:
                problems.append(f"{name}: {len(between)} answers took between {args.fast_below} s and "
                                f"{args.slow} s, the first {between[0]}")
        if args.none_slower is not None:
            slow = [a for a in mine if a["seconds"] >= args.none_slower]
            if slow:
                problems.append(f"{name}: {len(slow)} of {len(mine)} answers took {args.none_slower} s "
                                f"or more, the first {slow[0]}")
        print(f"{name}: {len(mine)} answers", file=sys.stderr)
    for line in problems:
        print(line)
    sys.exit(1 if problems else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("shorten-rules")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("factor", type=int)
    p.set_defaults(run=cmd_shorten_rules)

    p = sub.add_parser("alertmanager-config")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("factor", type=int)
    p.add_argument("receiver", help="HOST:PORT of the webhook receiver")
    p.set_defaults(run=cmd_alertmanager_config)

    p = sub.add_parser("receiver")
    p.add_argument("log", nargs="?", help="append each notification here, as a JSON line")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks a free one")
    p.add_argument("--print", action="store_true", help="one line per alert on stdout")
    p.set_defaults(run=cmd_receiver)

    p = sub.add_parser("history")
    p.add_argument("out")
    p.add_argument("seconds", type=float)
    p.add_argument("interval_ms", type=int)
    p.add_argument("rate", type=float)
    p.add_argument("workload")
    p.add_argument("--lead", type=float, default=0, help="end this many seconds from now")
    p.set_defaults(run=cmd_history)

    p = sub.add_parser("load")
    p.add_argument("--rate", type=float, required=True, help="requests per second to each replica")
    p.add_argument("--duration", type=float, required=True, help="stop after this many seconds")
    p.add_argument("--max-in-flight", type=int, default=100)
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--control", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("replicas", nargs="+", help="NAME=HOST:PORT")
    p.set_defaults(run=cmd_load)

    p = sub.add_parser("merge")
    p.add_argument("settings")
    p.add_argument("change")
    p.set_defaults(run=cmd_merge)

    p = sub.add_parser("gauges")
    p.add_argument("prom")
    p.add_argument("settings")
    p.add_argument("counts")
    p.add_argument("instances", nargs="+")
    p.set_defaults(run=cmd_gauges)

    for name, run in (("notified", cmd_notified), ("check-notification", cmd_check_notification)):
        p = sub.add_parser(name)
        p.add_argument("log")
        p.add_argument("alert")
        p.add_argument("status", choices=("firing", "resolved"))
        p.add_argument("--instance")
        p.add_argument("--after", type=float, default=0, help="only notifications received since")
        p.add_argument("--receiver", help="only those sent to this receiver's path (/pager: pager)")
        p.set_defaults(run=run)
    p.add_argument("--rules", required=True)
    p.add_argument("--label", action="append", default=[], help="NAME=VALUE of the series")
    p.add_argument("--value", help="the rendered $value; none: any")
    p.add_argument("--configured", help="the rendered configured error rate")
    p.add_argument("--test-rules", help="the test copy of the rules, for the alert's for:")

    p = sub.add_parser("value-at-firing")
    p.add_argument("prom")
    p.add_argument("alert")
    p.add_argument("expr")
    p.set_defaults(run=cmd_value_at_firing)

    p = sub.add_parser("humanize-duration")
    p.add_argument("seconds", type=float)
    p.set_defaults(run=cmd_humanize_duration)

    p = sub.add_parser("answers")
    p.add_argument("log")
    p.add_argument("start", type=float)
    p.add_argument("end", type=float)
    p.add_argument("--replica", action="append", required=True)
    p.add_argument("--status")
    p.add_argument("--slow", type=float)
    p.add_argument("--fast-below", type=float, default=1.0)
    p.add_argument("--none-slower", type=float)
    p.set_defaults(run=cmd_answers)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
