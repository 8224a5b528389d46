#!/usr/bin/env python3
"""Check that the files under deploy/ agree with each other and with the service.

    scripts/check-deploy.py [PATH/TO/myapp]

Nothing here talks to a cluster or a Prometheus: it reads the files and, when
given the binary, its --help. Each failed check prints one line naming the
file and the mismatch; the exit status is 1 if any check failed.
"""
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("check-deploy: needs PyYAML (pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS_YML = DEPLOY / "prometheus/prometheus.yml"
RULES_YML = DEPLOY / "prometheus/rules.yml"
DASHBOARD = DEPLOY / "grafana/myapp-dashboard.json"
DOCKERFILE = ROOT / "Dockerfile"

# The service's contract, as documented for deployment.
JOB = "myapp"
HTTP_PORT = 8080
HEALTH_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
NONROOT_UID = 65532  # distroless's "nonroot", the Dockerfile's USER
SERVICE_METRICS = {
    "myapp_processed_ops_total",
    "myapp_request_duration_seconds_bucket",
    "myapp_request_duration_seconds_sum",
    "myapp_request_duration_seconds_count",
    "myapp_requests_in_flight",
    "myapp_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
    "promhttp_metric_handler_requests_total",
    "promhttp_metric_handler_requests_in_flight",
    "tokio_workers",
    "tokio_alive_tasks",
    "tokio_global_queue_depth",
    "up",  # made by Prometheus for every target
}


def rel(path):
    return Path(path).resolve().relative_to(ROOT)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, path, message):
        """Count one check; `message` says what is wrong when it fails."""
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {rel(path)}: {message}")
        return ok


def dig(obj, *keys, default=None):
    for key in keys:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


def port_of(address):
    """8081 from "0.0.0.0:8081" or "[::]:8081"."""
    try:
        return int(str(address).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def duration_seconds(text):
    """Seconds in a Prometheus duration such as "15s", "5m" or "1h30m"."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(int(n) * units[u] for n, u in parts)


def flag_values(args, env):
    """{flag: value} from container args (--f=v or --f v), falling back to
    MYAPP_* env vars as clap does (the command line wins)."""
    values = {}
    for name, value in env.items():
        if name.startswith("MYAPP_"):
            values["--" + name[len("MYAPP_"):].lower().replace("_", "-")] = value
    i = 0
    while i < len(args):
        arg = str(args[i])
        if arg.startswith("--"):
            if "=" in arg:
                name, value = arg.split("=", 1)
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                name, value = arg, str(args[i + 1])
                i += 1
            else:
                name, value = arg, ""
            values[name] = value
        i += 1
    return values


# PromQL words that are neither functions (followed by "(") nor metric names.
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
                   "and", "or", "unless", "bool", "offset", "Inf", "NaN", "inf", "nan"}


def metric_names(expr):
    """The metric names that a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings, e.g. regexes
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    # Label lists; dropping them leaves "sum (" so that sum reads as a function.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match.group(0) in PROMQL_KEYWORDS:
            continue  # a function or aggregation
        names.add(match.group(0))
    return names


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    c = Checks()

    # Every YAML file parses; keep the documents for the checks below.
    docs = {}
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        try:
            docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            c.check(True, path, "")
        except yaml.YAMLError as err:
            c.check(False, path, f"is not valid YAML: {' '.join(str(err).split())}")

    def k8s_object(kind):
        found = [(p, d) for p, ds in docs.items() if p.parent == K8S for d in ds
                 if isinstance(d, dict) and d.get("kind") == kind]
        c.check(len(found) == 1, K8S, f"expected exactly one {kind}, found {len(found)}")
        return found[0] if len(found) == 1 else (K8S / "?", {})

    dep_path, deployment = k8s_object("Deployment")
    svc_path, service = k8s_object("Service")
    sm_path, monitor = k8s_object("ServiceMonitor")
    pr_path, prometheus_rule = k8s_object("PrometheusRule")
    kust_path, kustomization = k8s_object("Kustomization")
    rules = (docs.get(RULES_YML) or [{}])[0]
    prom_config = (docs.get(PROMETHEUS_YML) or [{}])[0]
    c.check(isinstance(rules, dict), RULES_YML, "is not a mapping with groups")
    c.check(isinstance(prom_config, dict), PROMETHEUS_YML, "is not a mapping")
    if c.failed:
        # Everything below compares these files; without them it is only noise.
        print(f"check-deploy: {c.passed} checks passed, {c.failed} failed (stopped early)")
        sys.exit(1)

    # --- Deployment and the service's flags ----------------------------------
    pod_labels = dig(deployment, "spec", "template", "metadata", "labels", default={})
    dep_selector = dig(deployment, "spec", "selector", "matchLabels", default={})
    c.check(dep_selector and dep_selector.items() <= pod_labels.items(), dep_path,
            f"spec.selector.matchLabels {dep_selector} does not match the pod labels {pod_labels}")

    containers = dig(deployment, "spec", "template", "spec", "containers", default=[])
    c.check(len(containers) == 1, dep_path, f"expected one container, found {len(containers)}")
    container = containers[0] if containers else {}
    args = [str(a) for a in container.get("args", [])]
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    flags = flag_values(args, env)
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}

    def container_port(port):
        """The containerPort number that a name or number refers to, or None."""
        if isinstance(port, int):
            return port if port in ports.values() else None
        return ports.get(port)

    c.check(ports.get("http") == HTTP_PORT, dep_path,
            f"containerPort 'http' is {ports.get('http')}, the service listens on {HTTP_PORT}")
    listen_port = port_of(flags.get("--listen", f"0.0.0.0:{HTTP_PORT}"))
    c.check(ports.get("http") == listen_port, dep_path,
            f"containerPort 'http' is {ports.get('http')} but --listen uses port {listen_port}")
    metrics_listen = flags.get("--metrics-listen")
    c.check(metrics_listen is not None, dep_path,
            "no --metrics-listen: /metrics, /healthz and /readyz would be public on port 8080")
    metrics_port = port_of(metrics_listen) if metrics_listen else HTTP_PORT
    c.check(ports.get("metrics") == metrics_port, dep_path,
            f"containerPort 'metrics' is {ports.get('metrics')} but --metrics-listen uses port {metrics_port}")

    for probe, path in HEALTH_PATHS.items():
        get = dig(container, probe, "httpGet", default={})
        c.check(get.get("path") == path, dep_path,
                f"{probe} path is {get.get('path')!r}, the service answers it on {path}")
        number = container_port(get.get("port"))
        c.check(number is not None, dep_path,
                f"{probe} port {get.get('port')!r} is not a containerPort of the container")
        # With --metrics-listen the health endpoints are served only there.
        c.check(number == metrics_port, dep_path,
                f"{probe} port {get.get('port')!r} is {number}, but {path} is served on {metrics_port}")

    # The service's default shutdown timeout follows --max-delay-ms
    # (src/config.rs: whole seconds rounded up, plus 1; 3 with the defaults).
    try:
        if "--shutdown-timeout-secs" in flags:
            shutdown = int(flags["--shutdown-timeout-secs"])
        else:
            shutdown = math.ceil(int(flags.get("--max-delay-ms", 2000)) / 1000) + 1
    except ValueError:
        shutdown = None
    c.check(shutdown is not None, dep_path, "--shutdown-timeout-secs or --max-delay-ms is not a number")
    grace = dig(deployment, "spec", "template", "spec", "terminationGracePeriodSeconds", default=30)
    c.check(shutdown is not None and grace > shutdown, dep_path,
            f"terminationGracePeriodSeconds {grace} is not above the shutdown timeout of {shutdown}s: "
            "in-flight requests would be killed")

    pod_sc = dig(deployment, "spec", "template", "spec", "securityContext", default={})
    sc = {**pod_sc, **container.get("securityContext", {})}
    c.check(sc.get("runAsNonRoot") is True, dep_path, "runAsNonRoot is not true")
    c.check(sc.get("runAsUser") == NONROOT_UID, dep_path,
            f"runAsUser is {sc.get('runAsUser')}, the image's nonroot user is {NONROOT_UID}")
    c.check(sc.get("readOnlyRootFilesystem") is True, dep_path, "readOnlyRootFilesystem is not true")
    c.check(sc.get("allowPrivilegeEscalation") is False, dep_path, "allowPrivilegeEscalation is not false")
    c.check("ALL" in dig(sc, "capabilities", "drop", default=[]), dep_path, "capabilities do not drop ALL")
    for kind in ("requests", "limits"):
        res = dig(container, "resources", kind, default={})
        c.check({"cpu", "memory"} <= res.keys(), dep_path, f"resources.{kind} lacks cpu or memory")

    if binary is None:
        print("*" * 72)
        print("SKIPPED: no myapp binary given, so the container's flags and MYAPP_*")
        print("variables were NOT checked against `myapp --help`.")
        print("Run: scripts/check-deploy.py target/release/myapp")
        print("*" * 72)
    else:
        try:
            run = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
            helptext = run.stdout if run.returncode == 0 else None
            problem = f"exited {run.returncode}: {run.stderr.strip()[:200]}"
        except (OSError, subprocess.TimeoutExpired) as err:
            helptext, problem = None, str(err)
        if c.check(helptext is not None, dep_path, f"cannot read `{binary} --help`: {problem}"):
            known_flags = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", helptext))
            known_env = set(re.findall(r"\benv: (MYAPP_\w+)", helptext))
            for arg in args:
                if arg.startswith("--"):
                    flag = arg.split("=", 1)[0]
                    c.check(flag in known_flags, dep_path,
                            f"container arg {flag} is not a flag of `{binary} --help`")
            for name in env:
                if name.startswith("MYAPP_"):
                    c.check(name in known_env, dep_path,
                            f"env {name} is not a variable of `{binary} --help`")

    # A /metrics behind a bearer token needs a scraper that sends one.
    if "--metrics-token-file" in flags:
        for endpoint in dig(monitor, "spec", "endpoints", default=[]):
            c.check(any(k in endpoint for k in ("authorization", "bearerTokenSecret", "bearerTokenFile")),
                    sm_path, "the container sets --metrics-token-file but the endpoint sends no token")

    # --- Service ---------------------------------------------------------------
    svc_selector = dig(service, "spec", "selector", default={})
    c.check(svc_selector and svc_selector.items() <= pod_labels.items(), svc_path,
            f"selector {svc_selector} does not match the pod labels {pod_labels} of {rel(dep_path)}")
    svc_ports = {p.get("name"): p for p in dig(service, "spec", "ports", default=[])}
    for name, port in svc_ports.items():
        target = port.get("targetPort", port.get("port"))
        c.check(container_port(target) is not None, svc_path,
                f"port {name!r} targets {target!r}, which is not a containerPort in {rel(dep_path)}")

    # --- ServiceMonitor ----------------------------------------------------------
    svc_labels = dig(service, "metadata", "labels", default={})
    sm_selector = dig(monitor, "spec", "selector", "matchLabels", default={})
    c.check(sm_selector and sm_selector.items() <= svc_labels.items(), sm_path,
            f"selector {sm_selector} does not match the labels {svc_labels} of {rel(svc_path)}")
    endpoints = dig(monitor, "spec", "endpoints", default=[])
    c.check(len(endpoints) > 0, sm_path, "has no endpoints")
    for endpoint in endpoints:
        name = endpoint.get("port")
        c.check(name in svc_ports, sm_path,
                f"endpoint port {name!r} is not a port name of {rel(svc_path)} ({sorted(svc_ports)})")
        target = dig(svc_ports, name, "targetPort")
        c.check(container_port(target) == metrics_port, sm_path,
                f"endpoint port {name!r} reaches container port {container_port(target)}, "
                f"but /metrics is served on {metrics_port}")
        c.check(endpoint.get("path", "/metrics") == "/metrics", sm_path,
                f"endpoint path is {endpoint.get('path')!r}, the service serves /metrics")
    # The Operator names the job after the Service, or after its label named by jobLabel.
    job_label = dig(monitor, "spec", "jobLabel")
    k8s_job = svc_labels.get(job_label) if job_label else dig(service, "metadata", "name")
    c.check(k8s_job == JOB, sm_path, f"Prometheus would name the job {k8s_job!r}, the rules select job={JOB!r}")

    # --- Prometheus config and rules ---------------------------------------------
    jobs = {j.get("job_name"): j for j in prom_config.get("scrape_configs", [])}
    c.check(JOB in jobs, PROMETHEUS_YML, f"no scrape job {JOB!r} (jobs: {sorted(jobs)})")
    c.check(dig(jobs, JOB, "metrics_path", default="/metrics") == "/metrics", PROMETHEUS_YML,
            f"job {JOB!r} scrapes {dig(jobs, JOB, 'metrics_path')!r}, the service serves /metrics")
    rule_files = prom_config.get("rule_files", [])
    c.check(len(rule_files) > 0, PROMETHEUS_YML, "lists no rule_files")
    for pattern in rule_files:
        c.check(any(PROMETHEUS_YML.parent.glob(pattern)), PROMETHEUS_YML,
                f"rule file {pattern!r} does not exist next to it")

    groups = rules.get("groups", [])
    c.check(len(groups) > 0, RULES_YML, "has no rule groups")
    c.check(dig(prometheus_rule, "spec", "groups") == groups, pr_path,
            f"spec.groups differ from the groups of {rel(RULES_YML)}: run scripts/gen-prometheusrule.py")

    # rate() needs at least two samples in its window, and four gives slack for
    # a missed scrape; so every window must be at least 4 scrape intervals.
    scrape_intervals = [duration_seconds(x) for x in (
        dig(prom_config, "global", "scrape_interval", default="1m"),
        dig(jobs, JOB, "scrape_interval"),
        *(e.get("interval") for e in endpoints)) if x is not None]
    scrape = max((s for s in scrape_intervals if s), default=60)
    recorded = {r["record"] for g in groups for r in g.get("rules", []) if "record" in r}
    exprs = [(RULES_YML, r.get("record") or r.get("alert"), str(r.get("expr", "")))
             for g in groups for r in g.get("rules", [])]
    for path, name, expr in exprs:
        for window in re.findall(r"\[([^\]:]+)\]", expr):
            seconds = duration_seconds(window)
            c.check(seconds is not None and seconds >= 4 * scrape, path,
                    f"{name}: window [{window}] is shorter than 4 scrape intervals of {scrape}s")

    # --- Grafana dashboard ---------------------------------------------------------
    try:
        dashboard = json.loads(DASHBOARD.read_text())
        c.check(True, DASHBOARD, "")
    except (OSError, ValueError) as err:
        c.check(False, DASHBOARD, f"is not valid JSON: {err}")
        dashboard = {}
    variables = {v.get("name"): v for v in dig(dashboard, "templating", "list", default=[])}
    c.check(dig(variables, "datasource", "type") == "datasource"
            and dig(variables, "datasource", "query") == "prometheus", DASHBOARD,
            "no template variable 'datasource' of type datasource for prometheus")

    def all_panels(items):
        for panel in items:
            yield panel
            yield from all_panels(panel.get("panels", []))

    panel_exprs = []
    for panel in all_panels(dashboard.get("panels", [])):
        if panel.get("type") == "row":
            continue
        title = panel.get("title")
        # A hard-coded uid breaks the dashboard in every Grafana but one.
        for where, ds in [("panel", panel.get("datasource"))] + [
                (f"target {t.get('refId')}", t.get("datasource")) for t in panel.get("targets", [])]:
            c.check(dig(ds, "uid") == "${datasource}", DASHBOARD,
                    f"panel {title!r} {where} uses datasource {ds!r}, not ${{datasource}}")
        for target in panel.get("targets", []):
            panel_exprs.append((DASHBOARD, f"panel {title!r}", target.get("expr", "")))

    # Metric names: the service's, Prometheus's `up`, or recorded by rules.yml.
    # Job selectors: the job every scrape config above produces.
    for path, name, expr in exprs + panel_exprs:
        unknown = metric_names(expr) - SERVICE_METRICS - recorded
        c.check(not unknown, path, f"{name}: unknown metric {sorted(unknown)} in {expr!r}")
        for job in re.findall(r'\bjob\s*=~?\s*"([^"]*)"', expr):
            c.check(job == JOB, path, f"{name}: selects job={job!r}, the scrape job is {JOB!r}")

    # Prometheus's own parser, when there is one, on what no other tool checks.
    promtool = shutil.which("promtool")
    if promtool is None:
        print("SKIPPED: promtool not found, dashboard queries were not parsed")
    else:
        queries = [re.sub(r"\$\{?(__rate_interval|__interval|__range)\}?", "1m", e) for _, _, e in panel_exprs]
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as tmp:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
                {"record": f"dashboard:query:{i}", "expr": q} for i, q in enumerate(queries)]}]}, tmp)
            tmp.flush()
            run = subprocess.run([promtool, "check", "rules", tmp.name], capture_output=True, text=True)
        errors = " ".join((run.stdout + run.stderr).split()) if run.returncode else ""
        c.check(run.returncode == 0, DASHBOARD, f"promtool rejects a query: {errors}")

    # --- Kustomization and Dockerfile ----------------------------------------------
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in K8S.glob("*.y*ml")} - {kust_path.name}
    c.check(not present - listed, kust_path, f"does not list {sorted(present - listed)}")
    c.check(not listed - present, kust_path, f"lists missing files {sorted(listed - present)}")

    try:
        dockerfile = DOCKERFILE.read_text()
    except OSError:
        dockerfile = ""
    exposed = {int(p) for line in re.findall(r"(?m)^EXPOSE\s+(.*)$", dockerfile)
               for p in re.findall(r"\d+", line)}
    c.check(set(ports.values()) <= exposed, DOCKERFILE,
            f"EXPOSE {sorted(exposed)} lacks container ports {sorted(set(ports.values()) - exposed)}")

    if c.failed:
        print(f"check-deploy: {c.passed} checks passed, {c.failed} failed")
        sys.exit(1)
    print(f"check-deploy: {c.passed} checks passed")


if __name__ == "__main__":
    main()
