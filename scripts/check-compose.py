#!/usr/bin/env python3
"""Check deploy/compose/compose.yaml statically: no container engine runs here.

    scripts/check-compose.py [PATH/TO/myapp] [--compose FILE]

- the file parses, holds the services it promises (three replicas, load,
  prometheus, alertmanager, receiver, grafana), and every build context has
  its Dockerfile;
- every file or directory it bind-mounts exists (paths relative to the file);
- the Prometheus image is 3.x, and its config, laid out as the container sees
  it (each mount copied to its target path in a scratch directory), passes
  `promtool check config` (Debian's promtool 2.42; the config avoids the keys
  3.x renamed, scrape_classic_histograms above all, so it loads in both); it
  scrapes job myapp on each replica service's port, sends alerts to the
  alertmanager service, and keeps deploy/prometheus/prometheus.yml's settings;
- the Alertmanager config, laid out the same way, passes `amtool
  check-config`, its webhooks reach the receiver service's port (one path per
  receiver), and the rest is deploy/alertmanager/alertmanager.yml (the
  project's routing, which scripts/stack.sh runs too);
- Grafana's provisioning files have apiVersion 1, a Prometheus data source
  with name, type, access and a url reaching the prometheus service, and a
  file provider whose options.path is where the dashboard JSON is mounted;
- the load service runs `myapp load` against the replica services' /work, and
  with PATH/TO/myapp, the replicas' flags are flags of `myapp --help` and the
  load's of `myapp load --help` (skipped, saying so, while the binary has no
  load subcommand).

Each failed check prints one line; the exit status is 1 if any failed.
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

try:
    import yaml
except ImportError:
    sys.exit("check-compose: needs PyYAML (pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy/compose/compose.yaml"
REPO_PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
REPO_ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"  # the routing; scripts/stack.sh's too
REPLICAS = ("myapp-1", "myapp-2", "myapp-3")
SERVICES = (*REPLICAS, "load", "prometheus", "alertmanager", "receiver", "grafana")
# Keys that Prometheus 3 renamed or removed: a config using them loads in one
# version only.
NOT_IN_BOTH = ("scrape_classic_histograms", "always_scrape_classic_histograms")

failures = []
passed = 0


def check(ok, message):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(f"FAIL {COMPOSE.relative_to(ROOT) if COMPOSE.is_relative_to(ROOT) else COMPOSE}: {message}")
    return ok


def mounts(service):
    """(source Path, target) of each bind mount, short or long syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if source.startswith((".", "/")):  # a named volume has neither
            yield (COMPOSE.parent / source).resolve(), target


def flag(args, name):
    """The value of --name=value or --name value in args."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def as_container_sees_it(service, scratch):
    """Copies each mount of service under scratch at its target path."""
    for source, target in mounts(service):
        dest = scratch / PurePosixPath(target).relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy(source, dest)


def mounted_file(service, path):
    """The source of the mount that puts a file at path in the container."""
    for source, target in mounts(service):
        if target == path:
            return source
        if path.startswith(target.rstrip("/") + "/"):
            return source / path[len(target.rstrip("/")) + 1:]
    return None


def keys_of(node):
    """Every mapping key anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys_of(item)


def run_tool(command):
    if shutil.which(command[0]) is None:
        return None, f"{command[0]} is not installed"
    run = subprocess.run(command, capture_output=True, text=True)
    return run.returncode, " ".join((run.stdout + run.stderr).split())


def check_prometheus(services, scratch):
    prom = services["prometheus"]
    check(re.fullmatch(r"prom/prometheus:v3\.\d+\.\d+", prom.get("image", "")) is not None,
          f"prometheus image {prom.get('image')!r} is not prom/prometheus:v3.x.y")
    config_path = flag(prom.get("command", []), "--config.file")
    if not check(config_path is not None, "prometheus has no --config.file"):
        return
    source = mounted_file(prom, config_path)
    if not check(source is not None and source.is_file(), f"prometheus: nothing mounted at {config_path}"):
        return
    text = source.read_text()
    config = yaml.safe_load(text)
    for key in NOT_IN_BOTH:
        check(key not in keys_of(config), f"{source.name} uses {key}, which only one of Prometheus 2 and 3 knows")
    as_container_sees_it(prom, scratch / "prometheus")
    status, output = run_tool(["promtool", "check", "config", str(scratch / "prometheus" / config_path.lstrip("/"))])
    check(status == 0, f"promtool check config {source.name}: {output}")
    for rules in config.get("rule_files", []):
        where = str(PurePosixPath(config_path).parent / rules)
        check(mounted_file(prom, where) is not None and mounted_file(prom, where).is_file(),
              f"rule file {rules} ({where} in the container) is not mounted")
    jobs = {j.get("job_name"): j for j in config.get("scrape_configs", [])}
    targets = sorted(t for c in jobs.get("myapp", {}).get("static_configs", []) for t in c.get("targets", []))
    check(targets == sorted(f"{r}:8080" for r in REPLICAS),
          f"job myapp scrapes {targets}, not the replica services at port 8080")
    managers = [t for a in config.get("alerting", {}).get("alertmanagers", [])
                for c in a.get("static_configs", []) for t in c.get("targets", [])]
    check(managers == ["alertmanager:9093"], f"alerts go to {managers}, not the alertmanager service at 9093")
    # The rest is the repository's config.
    repo = yaml.safe_load(REPO_PROMETHEUS.read_text())
    check(config.get("global") == repo.get("global"), f"global differs from {REPO_PROMETHEUS.relative_to(ROOT)}'s")
    check(config.get("rule_files") == repo.get("rule_files"), f"rule_files differ from {REPO_PROMETHEUS.relative_to(ROOT)}'s")
    repo_job = {k: v for k, v in (repo.get("scrape_configs") or [{}])[0].items() if k != "static_configs"}
    ours = {k: v for k, v in jobs.get("myapp", {}).items() if k != "static_configs"}
    check(ours == repo_job, f"job myapp {ours} differs from {REPO_PROMETHEUS.relative_to(ROOT)}'s {repo_job}")


def check_alertmanager(services, scratch):
    am = services["alertmanager"]
    config_path = flag(am.get("command", []), "--config.file")
    if not check(config_path is not None, "alertmanager has no --config.file"):
        return
    source = mounted_file(am, config_path)
    if not check(source is not None and source.is_file(), f"alertmanager: nothing mounted at {config_path}"):
        return
    as_container_sees_it(am, scratch / "alertmanager")
    status, output = run_tool(["amtool", "check-config", str(scratch / "alertmanager" / config_path.lstrip("/"))])
    check(status == 0, f"amtool check-config {source.name}: {output}")
    config = yaml.safe_load(source.read_text())
    urls = [w.get("url") for r in config.get("receivers", []) for w in r.get("webhook_configs", [])]
    receiver = services["receiver"].get("command", [])
    listen = flag(receiver, "--listen") or ""
    here = f"http://receiver:{listen.rpartition(':')[2]}/"
    check(bool(urls) and all(u.startswith(here) for u in urls),
          f"webhooks {urls} do not all reach the receiver service, which listens on {listen!r} ({here})")
    # The rest is the project's Alertmanager config: the same routes and
    # receivers, each webhook at the same path of the compose receiver.
    repo = yaml.safe_load(REPO_ALERTMANAGER.read_text())
    for webhook in (w for r in repo.get("receivers", []) for w in r.get("webhook_configs", [])):
        webhook["url"] = re.sub(r"^https?://[^/]+/", here, webhook["url"])
    check(config == repo, f"{source.name} differs from {REPO_ALERTMANAGER.relative_to(ROOT)} in more than the webhooks' host")


def check_grafana(services):
    grafana = services["grafana"]
    sources = [s for s, t in mounts(grafana) if t.startswith("/etc/grafana/provisioning/datasources/")]
    providers = [s for s, t in mounts(grafana) if t.startswith("/etc/grafana/provisioning/dashboards/")]
    check(len(sources) == 1 and len(providers) == 1,
          f"grafana mounts {len(sources)} data source and {len(providers)} dashboard provisioning files, not one each")
    for path in sources:
        if not path.is_file():
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        check(doc.get("apiVersion") == 1, f"{path.name}: apiVersion is {doc.get('apiVersion')!r}, not 1")
        items = doc.get("datasources") or []
        check(len(items) == 1, f"{path.name}: {len(items)} datasources, not one")
        for ds in items:
            missing = [k for k in ("name", "type", "access", "url") if not ds.get(k)]
            check(not missing, f"{path.name}: data source lacks {missing}")
            check(ds.get("type") == "prometheus", f"{path.name}: type {ds.get('type')!r}, not prometheus")
            check(ds.get("access") in ("proxy", "direct"), f"{path.name}: access {ds.get('access')!r}")
            check(ds.get("url") == "http://prometheus:9090", f"{path.name}: url {ds.get('url')!r} is not the prometheus service")
    for path in providers:
        if not path.is_file():
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        check(doc.get("apiVersion") == 1, f"{path.name}: apiVersion is {doc.get('apiVersion')!r}, not 1")
        items = doc.get("providers") or []
        check(len(items) == 1, f"{path.name}: {len(items)} providers, not one")
        for provider in items:
            check(bool(provider.get("name")), f"{path.name}: a provider has no name")
            check(provider.get("type", "file") == "file", f"{path.name}: provider type {provider.get('type')!r}")
            where = (provider.get("options") or {}).get("path", "")
            dashboards = [s for s, t in mounts(grafana) if t.startswith(where.rstrip("/") + "/") and t.endswith(".json")]
            check(bool(where) and bool(dashboards),
                  f"{path.name}: options.path {where!r} holds no mounted dashboard JSON")


def check_myapp(services, binary):
    replica_args = []
    for name in REPLICAS:
        service = services[name]
        check(service.get("image") == "myapp:latest" and "build" in service,
              f"{name} is not built from the Dockerfile as myapp:latest")
        args = [str(a) for a in service.get("command", [])]
        replica_args += args
        workload = flag(args, "--workload-file")
        source = mounted_file(service, workload) if workload else None
        check(source is not None and source.is_file(), f"{name}: --workload-file {workload} is not a mounted file")
        ports = service.get("ports", [])
        check(any(str(p).endswith(":8080") for p in ports), f"{name}: port 8080 is not published")
        check(all(str(p).startswith("127.0.0.1:") for p in ports),
              f"{name}: {ports}: publish on 127.0.0.1 only, /admin/workload has no token here")
    load = [str(a) for a in services["load"].get("command", [])]
    check(services["load"].get("image") == "myapp:latest", "load does not run the myapp image")
    check(load[:1] == ["load"] and flag(load, "--rate") is not None, f"load runs {load}, not `myapp load --rate R`")
    urls = [a for a in load if a.startswith("http")]
    check(urls == [f"http://{r}:8080/work" for r in REPLICAS], f"load sends to {urls}, not each replica's /work")
    if binary is None:
        return
    run = subprocess.run([binary, "--help"], capture_output=True, text=True)
    known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", run.stdout))
    for arg in replica_args:
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            check(name in known, f"replica arg {name} is not a flag of `{binary} --help`")
    run = subprocess.run([binary, "load", "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"!!! SKIPPED: `{binary} load --help` failed: this build has no load subcommand, "
              f"so the load service's flags are not checked")
        return
    known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", run.stdout))
    for arg in load:
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            check(name in known, f"load arg {name} is not a flag of `{binary} load --help`")


def main():
    global COMPOSE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", nargs="?")
    parser.add_argument("--compose", type=Path, default=COMPOSE, help="another compose file, to test this check")
    args = parser.parse_args()
    COMPOSE = args.compose.resolve()
    try:
        compose = yaml.safe_load(COMPOSE.read_text())
    except (OSError, yaml.YAMLError) as err:
        check(False, f"does not parse: {' '.join(str(err).split())}")
        return
    services = compose.get("services") or {}
    missing = [s for s in SERVICES if s not in services]
    if not check(not missing, f"lacks the services {missing}"):
        return
    for name, service in services.items():
        for source, target in mounts(service):
            check(source.exists(), f"{name} mounts {source} at {target}, which does not exist")
        build = service.get("build")
        if build:
            context = (COMPOSE.parent / (build if isinstance(build, str) else build.get("context", "."))).resolve()
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            check((context / dockerfile).is_file(), f"{name} builds {context / dockerfile}, which does not exist")
    with tempfile.TemporaryDirectory() as scratch:
        check_prometheus(services, Path(scratch))
        check_alertmanager(services, Path(scratch))
    check_grafana(services)
    check_myapp(services, args.binary)


if __name__ == "__main__":
    main()
    for line in failures:
        print(line)
    print(f"check-compose: {passed} checks passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
