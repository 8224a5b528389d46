# List the recipes.
default:
    @just --list

# Run the service (release build) on port 8080; pass flags after, e.g. `just run --max-delay-ms 100`.
run *FLAGS:
    cargo run --release -- {{FLAGS}}

# Run every test (what CI runs).
test:
    scripts/test.sh

# Start the release binary, hit it with curl, check /metrics, /docs, /healthz.
smoke-test:
    scripts/smoke-test.sh

# Regenerate the committed OpenAPI spec from the code.
openapi:
    cargo run --quiet -- openapi > openapi/openapi.json

# Three replicas and a real Prometheus 2.53.3 (protobuf, native and classic histograms): exact counts, rules (the SLO rules too), dashboard queries.
e2e:
    scripts/e2e-prometheus.sh

# Created timestamps against Go's client_model, Python's prometheus_client and Prometheus 2.53.3's synthetic zero.
e2e-created:
    scripts/e2e-created.sh

# Three replicas share a workload file; change it and see the alerts reach a webhook through a real Alertmanager (about 3.5 min).
e2e-alerts:
    scripts/e2e-alerts.sh

# Three replicas under steady load, Prometheus, Alertmanager, a receiver printing each alert here; until Ctrl-C. Prints the URLs and the scenario commands (docs/stack.md).
stack:
    scripts/stack.sh

# The shipped scenarios on the stack, 20 times faster, against their expect (about 5 minutes).
e2e-scenarios:
    scripts/e2e-scenarios.sh

# Load /docs in headless chromium and check what Swagger UI renders; screenshot in target/.
docs-test:
    scripts/docs-browser-test.sh

# Check that deploy/ agrees with itself, with the SLO spec and with `myapp --help`.
check-deploy:
    cargo build --release --locked --quiet
    python3 scripts/gen-slo-rules.py --check
    python3 scripts/gen-prometheusrule.py --check
    python3 scripts/check-deploy.py target/release/myapp

# Benchmarks side by side, written to BENCHMARKS.md (about 22 min, with the Rust and Go peers; `BENCH_SECONDS=2 BENCH_ROUNDS=1 just bench` checks the tooling).
bench:
    scripts/bench.sh

# The soak test's long run (3,000,000 requests, a few minutes), its readings written to BENCHMARKS.md; `scripts/soak.sh` alone runs the 300,000 of CI.
soak requests="3000000":
    SOAK_REQUESTS={{requests}} SOAK_OUT=BENCHMARKS.md scripts/soak.sh

# Mutation testing of the Rust code with cargo-mutants (installed when missing): every mutant of src/ must make `cargo test` fail.
# Hours for all of src/ (373 mutants); name files to narrow it, e.g. `just mutants --file src/metrics/middleware.rs`. Results in mutants.out/.
mutants *ARGS:
    command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked --version 27.1.0
    cargo mutants --timeout 300 {{ARGS}}
