#!/usr/bin/env bash
# Every test of the project: formatting, lints, unit and integration tests, the
# smoke test against the release binary, promtool's lint of a real scrape, the
# Prometheus rules and the SLO rules (generated from slo/myapp.yaml), their unit
# tests and the mutants those tests must catch, the scenarios' expected alerts,
# the PromQL grammar of every shipped expression, the deployment files, the
# paths the docs name, the end-to-end test with a real Prometheus, the created
# timestamps against Go's and Python's parsers and Prometheus 2.53.3's
# created-timestamp-zero-ingestion, VictoriaMetrics (vmagent, a Prometheus
# agent, vmalert), the alerts end to end through a real Alertmanager, the
# rehearsal stack (scripts/stack.sh) starting and stopping cleanly, TLS and
# basic auth of the metrics port against curl and Prometheus, the soak test,
# and Swagger UI in a real browser.
# Installs what it needs when run as root (as CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

step "cargo test (the workspace: myapp and prometheus-exposition)"
# tests/api/admin_access.rs changes the workload from a network namespace of
# its own: ip (iproute2) and curl, and root (the test fails without them).
need_package ip iproute2 || true
need_package curl curl || true
cargo test --workspace --locked

step "smoke test"
scripts/smoke-test.sh

step "promtool check metrics on the smoke test's scrape"
if need_package promtool prometheus; then
  problems=$(promtool check metrics <target/smoke/metrics.txt 2>&1) || true
  if [ -n "$problems" ]; then
    echo "promtool found problems:"
    echo "$problems"
    exit 1
  fi
  echo "promtool: no problems"
else
  echo "!!! SKIPPED: promtool is missing and we are not root to install it (apt-get install prometheus)"
fi

step "promtool check rules, promtool test rules"
if need_package promtool prometheus; then
  promtool check rules deploy/prometheus/rules.yml deploy/prometheus/slo-rules.yml
  promtool test rules deploy/prometheus/rules.test.yml \
    deploy/prometheus/slo-rules.test.yml deploy/prometheus/slo-rules-long.test.yml
else
  echo "!!! SKIPPED: promtool is missing and we are not root to install it (apt-get install prometheus)"
fi

step "rule tests catch every small change to the rules (scripts/rules-mutants.py)"
if need_package promtool prometheus; then
  need_pyyaml
  python3 scripts/rules-mutants.py
else
  echo "!!! SKIPPED: promtool is missing and we are not root to install it (apt-get install prometheus)"
fi

step "each scenario fires the alerts it expects, by its time (scripts/scenario-alerts.py)"
if need_package promtool prometheus; then
  need_pyyaml
  python3 scripts/scenario-alerts.py
else
  echo "!!! SKIPPED: promtool is missing and we are not root to install it (apt-get install prometheus)"
fi

step "every shipped PromQL expression parses with Prometheus 3's grammar (scripts/promql-grammar.py)"
if need_package node nodejs && need_package npm npm; then
  need_pyyaml
  npm ci --prefix scripts/promql-grammar --no-audit --no-fund
  python3 scripts/promql-grammar.py --self-test
  python3 scripts/promql-grammar.py
elif [ "$(id -u)" -eq 0 ]; then
  echo "could not install nodejs and npm (apt-get install nodejs npm)"
  exit 1
else
  echo "!!! SKIPPED: node or npm is missing and we are not root to install them (apt-get install nodejs npm)"
fi

step "deployment files, the dashboard's queries (promtool), the Alertmanager routes (amtool)"
need_pyyaml
python3 scripts/gen-slo-rules.py --check
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
# check-deploy.py fails, saying which, when promtool or amtool is missing.
install_packages "${missing[@]}" || true
python3 scripts/gen-prometheusrule.py --check
python3 scripts/check-deploy.py target/release/myapp

step "deploy/compose, statically: mounted files, promtool, amtool, Grafana provisioning (scripts/check-compose.py)"
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
if install_packages "${missing[@]}"; then
  python3 scripts/check-compose.py target/release/myapp
else
  echo "!!! SKIPPED: ${missing[*]} missing and we are not root to install (apt-get install ${missing[*]})"
fi

step "every path the README and docs/ name exists (scripts/doc-paths.py)"
python3 scripts/doc-paths.py

step "end to end with Prometheus"
scripts/e2e-prometheus.sh

step "created timestamps: Go's client_model, prometheus_client, Prometheus 2.53.3 with created-timestamp-zero-ingestion"
scripts/e2e-created.sh

step "end to end with VictoriaMetrics: vmagent and a Prometheus agent remote-write, vmalert runs the rules"
scripts/e2e-victoriametrics.sh

step "alerts end to end: the workload file, Prometheus, Alertmanager, a webhook"
scripts/e2e-alerts.sh

step "the rehearsal stack: scripts/stack.sh --check, then Ctrl-C leaves nothing running"
timeout 240 scripts/stack-test.sh

step "each shipped scenario on the stack: the alerts its expect names fire (SLO alerts to their receiver), the others do not, all resolve"
timeout 1200 scripts/e2e-scenarios.sh

step "--web-config-file: TLS, client certificates, basic auth, with curl and Prometheus"
scripts/e2e-web-config.sh

step "soak: 300,000 requests, no leak"
scripts/soak.sh

step "Swagger UI in a browser"
scripts/docs-browser-test.sh

step "justfile parses"
if ! command -v just >/dev/null; then
  echo "installing just (pip install rust-just)"
  pip install --quiet rust-just
fi
just --list

echo
echo "scripts/test.sh: PASS"
