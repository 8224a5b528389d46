#!/usr/bin/env bash
# Swagger UI in a real browser: starts the release binary, loads /docs in
# headless chromium, lets Swagger UI's JavaScript render the page, and checks
# the rendered DOM (not the spec embedded in the page's script): the four
# operations are listed, and the expanded GET /work and GET /metrics show their
# responses. Swagger UI renders operations collapsed and poem-openapi does not
# expose its docExpansion option, so each is expanded through a deep link
# (#/default/get_work). Keeps a screenshot in target/docs-screenshot.png.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

out=$PWD/target/docs-browser
rm -rf "$out"
mkdir -p "$out"

if ! need_package chromium chromium; then
  echo "docs browser test: FAIL: chromium is missing and we are not root to install it (apt-get install chromium)"
  exit 1
fi
cargo build --release --locked --quiet
start_myapp "$out/myapp.log"
docs="http://$MYAPP_ADDR/docs/"
echo "docs browser test: $docs in $(chromium --version 2>/dev/null)"

# chromium URL ARGS...: loads URL headless in a fresh profile, with 10 s of
# virtual time for the page's JavaScript.
chromium_headless() {
  local url=$1
  shift
  local profile
  profile=$(mktemp -d "$out/profile.XXXXXX")
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --virtual-time-budget=10000 "$@" "$url" 2>>"$out/chromium.log"
}

# rendered FILE ATTRIBUTE: the values of a data-* attribute in a dumped DOM,
# in page order, one line.
rendered() { grep -o "$2=\"[^\"]*\"" "$1" | sed "s/^$2=\"\(.*\)\"\$/\1/" | xargs; }

chromium_headless "${docs}#/default/get_work" --dump-dom >"$out/work.html"
chromium_headless "${docs}#/default/get_metrics" --dump-dom >"$out/metrics.html"
chromium_headless "${docs}#/default/get_work" --hide-scrollbars --window-size=1280,1400 \
  --screenshot="$PWD/target/docs-screenshot.png" >/dev/null

check "Swagger UI rendered the title" grep -q '<h2 class="title">myapp' "$out/work.html"
paths=$(rendered "$out/work.html" data-path)
check "operations listed: $paths" test "$paths" = "/work /healthz /readyz /metrics /admin/workload /admin/workload"
methods=$(grep -o 'opblock-summary-method">[A-Z]*<' "$out/work.html" | sed 's/.*">\(.*\)</\1/' | xargs)
check "their methods: $methods" test "$methods" = "GET GET GET GET GET PUT"
check "GET /work, expanded, shows the responses $(rendered "$out/work.html" data-code)" \
  test "$(rendered "$out/work.html" data-code)" = "200 400 500 503"
check "GET /work, expanded, shows its parameters $(rendered "$out/work.html" data-param-name)" \
  test "$(rendered "$out/work.html" data-param-name)" = "delay_ms fail"
check "GET /metrics, expanded, shows the responses $(rendered "$out/metrics.html" data-code)" \
  test "$(rendered "$out/metrics.html" data-code)" = "200 401 406 500"
check "GET /metrics offers the protobuf media type" \
  grep -q 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited</option>' "$out/metrics.html"
size=$(stat -c %s target/docs-screenshot.png 2>/dev/null || echo 0)
check "screenshot target/docs-screenshot.png ($size bytes)" test "$size" -gt 20000

summary "docs browser test"
