#!/usr/bin/env bash
# --web-config-file against a real Prometheus (Debian 13's 2.53.3,
# use_trixie_tools) and curl, with a CA and
# certificates made here by openssl. Two replicas of the release binary:
#   a: TLS with client certificates required (RequireAndVerifyClientCert) and
#      basic auth (a bcrypt hash made by Python's bcrypt);
#   b: TLS from min_version TLS13, no client certificates, and the bearer
#      token of --metrics-token-file.
# Prometheus scrapes a with tls_config and basic_auth, b with tls_config and
# the token, and a again with a wrong password. Checks: up is 1, 1 and 0 (401);
# curl: the right password 200, a wrong one or none 401, the probes open,
# plain HTTP answered 400 as Go answers it, no client certificate, an
# untrusted one and a v1 one refused (the reason logged at WARN), TLS 1.2 to b
# refused; the certificate rotated on disk is served to the next connection
# (its serial, by openssl s_client); a certificate expired, or expiring in 6
# days, warned about at start-up, one expiring in 8 days not; `myapp
# scenario` over https to b by name (--ca-file, --token-file) applies and
# restores, and stops on an untrusted CA; no password, hash, token or key in
# any log. Leaves its files in target/e2e-web-config/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

out=$PWD/target/e2e-web-config
rm -rf "$out"
mkdir -p "$out"

if ! need_package openssl openssl; then
  echo "e2e-web-config: FAIL: openssl is missing and we are not root to install it"
  exit 1
fi
if ! use_trixie_tools prometheus; then
  echo "e2e-web-config: FAIL: Debian 13's prometheus could not be had"
  exit 1
fi
echo "e2e-web-config: $(server_versions prometheus)"
python3 -c 'import bcrypt' 2>/dev/null || pip install --quiet bcrypt
cargo build --release --locked --quiet

# --- a CA, the server's and Prometheus's certificates, and an untrusted CA ---
cd "$out"
openssl_quiet() { openssl "$@" 2>>"$out/openssl.log"; }
make_ca() { # NAME
  openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=$1"
}
make_cert() { # NAME CA EXTENSIONS [DAYS]: without EXTENSIONS, an X.509 v1 certificate
  openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$1"
  local extensions=()
  if [ -n "$3" ]; then
    printf '%s\n' "$3" >"$1.ext"
    extensions=(-extfile "$1.ext")
  fi
  openssl_quiet x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
    -out "$1.crt" -days "${4:-2}" "${extensions[@]}"
}
server_ext=$'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
make_ca ca
make_ca untrusted-ca
make_cert server ca "$server_ext"
make_cert rotated ca "$server_ext"
make_cert prometheus ca 'extendedKeyUsage=clientAuth'
make_cert intruder untrusted-ca 'extendedKeyUsage=clientAuth'
make_cert v1-client ca ''
make_cert expires-in-6-days ca "$server_ext" 6
make_cert expires-in-8-days ca "$server_ext" 8
# Expired: `openssl ca` takes dates where `x509 -req` takes only days.
touch index.txt
echo 01 >ca.serial
printf '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=ca.serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' >ca.cnf
cp server.key expired.key
openssl_quiet ca -config ca.cnf -batch -notext -cert ca.crt -keyfile ca.key -in server.csr \
  -extfile server.ext -out expired.crt -startdate 20200101000000Z -enddate 20200102000000Z

password="pw-$RANDOM$RANDOM-never-logged"
printf '%s' "$password" >password
printf 'wrong-%s' "$password" >wrong-password
token="token-$RANDOM$RANDOM-never-logged"
printf '%s\n' "$token" >token
hash=$(python3 -c 'import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(10)).decode())' "$password")

cat >web-a.yml <<YAML
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
basic_auth_users:
  prometheus: $hash
YAML
cat >web-b.yml <<YAML
tls_server_config:
  cert_file: $out/server.crt
  key_file: $out/server.key
  min_version: TLS13
YAML

cd - >/dev/null
# web-a.yml names its files relative to its directory.
RUST_LOG=debug start_myapp "$out/myapp-a.log" --metrics-listen 127.0.0.1:0 --web-config-file "$out/web-a.yml" --max-delay-ms 10 --error-rate 0
a=$MYAPP_METRICS_ADDR
a_public=$MYAPP_ADDR
RUST_LOG=debug start_myapp "$out/myapp-b.log" --metrics-listen 127.0.0.1:0 --web-config-file "$out/web-b.yml" --metrics-token-file "$out/token" --max-delay-ms 10
b=$MYAPP_METRICS_ADDR
echo "e2e-web-config: a on $a (public $a_public), b on $b"

# --- curl ------------------------------------------------------------------------
# status ARGS...: the HTTP status curl saw, 000 when there was no HTTP answer.
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
trust=(--cacert "$out/ca.crt")
client=(--cert "$out/prometheus.crt" --key "$out/prometheus.key")
expect() { # WANT ARGS...
  local want=$1 got
  shift
  got=$(status "$@")
  [ "$got" = "$want" ] || { echo "    got $got, expected $want: curl $*"; return 1; }
}
check "a: client certificate and password: 200" expect 200 "${trust[@]}" "${client[@]}" -u "prometheus:$password" "https://$a/metrics"
check "a: wrong password: 401" expect 401 "${trust[@]}" "${client[@]}" -u "prometheus:wrong" "https://$a/metrics"
check "a: unknown user: 401" expect 401 "${trust[@]}" "${client[@]}" -u "nobody:$password" "https://$a/metrics"
check "a: no credentials: 401" expect 401 "${trust[@]}" "${client[@]}" "https://$a/metrics"
challenge() { curl -s -D - -o /dev/null "${trust[@]}" "${client[@]}" "https://$a/metrics" | tr -d '\r' | grep -qx 'www-authenticate: Basic'; }
check "a: 401 says WWW-Authenticate: Basic" challenge
probes() { [ "$(curl -s "${trust[@]}" "${client[@]}" "https://$a/healthz" "https://$a/readyz")" = okready ]; }
check "a: /healthz and /readyz without credentials: 200" probes
plain_http() { [ "$(curl -s -w ' %{http_code}' --max-time 5 "http://$a/metrics")" = "Client sent an HTTP request to an HTTPS server.
 400" ]; }
check "a: plain HTTP answered 400 as Go answers it" plain_http
check "a: no client certificate refused" expect 000 "${trust[@]}" -u "prometheus:$password" "https://$a/metrics"
check "a: a certificate of another CA refused" expect 000 "${trust[@]}" --cert "$out/intruder.crt" --key "$out/intruder.key" -u "prometheus:$password" "https://$a/metrics"
check "a: a v1 client certificate refused" expect 000 "${trust[@]}" --cert "$out/v1-client.crt" --key "$out/v1-client.key" -u "prometheus:$password" "https://$a/metrics"
logged_warn() { grep -q " WARN .*TLS handshake failed: client certificate refused error=$1" "$out/myapp-a.log"; }
check "a: an untrusted client certificate refused, its reason logged at WARN" logged_warn '.*UnknownIssuer'
check "a: a v1 client certificate refused, its reason logged at WARN" logged_warn '.*UnsupportedCertVersion'
check "a: a server certificate its CA signed is trusted, others are not" expect 000 --cacert "$out/untrusted-ca.crt" "${client[@]}" -u "prometheus:$password" "https://$a/metrics"
check "a: the public port stays plain HTTP" expect 200 "http://$a_public/work?x" 
check "b: TLS 1.3 with the token: 200" expect 200 "${trust[@]}" -H "Authorization: Bearer $token" "https://$b/metrics"
check "b: TLS 1.2 refused (min_version TLS13)" expect 000 "${trust[@]}" --tls-max 1.2 -H "Authorization: Bearer $token" "https://$b/metrics"
check "b: no token: 401" expect 401 "${trust[@]}" "https://$b/metrics"

# --- rotation, and expiry at start-up ------------------------------------------------
serial_of() { openssl x509 -noout -serial -in "$1"; }
served_serial() { openssl s_client -connect "$b" -CAfile "$out/ca.crt" </dev/null 2>/dev/null | openssl x509 -noout -serial; }
check "b: serves server.crt" eval '[ "$(served_serial)" = "$(serial_of "$out/server.crt")" ]'
# As a rotation writes them: each file renamed into place, the key first (a
# connection between the two renames gets the previous pair, logged).
cp "$out/server.crt" "$out/server-before.crt"
cp "$out/rotated.key" "$out/next.key" && mv "$out/next.key" "$out/server.key"
cp "$out/rotated.crt" "$out/next.crt" && mv "$out/next.crt" "$out/server.crt"
check "b: the rotated certificate is served to the next connection, without a restart" \
  eval '[ "$(served_serial)" = "$(serial_of "$out/rotated.crt")" ] && [ "$(serial_of "$out/rotated.crt")" != "$(serial_of "$out/server-before.crt")" ]'
check "b: the rotation is logged" grep -q " INFO .*server certificate read again" "$out/myapp-b.log"
expiry_warning() { # CERT: the warning myapp logs at start-up with CERT, or nothing
  printf 'tls_server_config:\n  cert_file: %s.crt\n  key_file: %s.key\n' "$1" "$1" >"$out/web-$1.yml"
  # Not started: a line that matches no expectation (a silence would pass "no warning").
  start_myapp "$out/myapp-$1.log" --metrics-listen 127.0.0.1:0 --web-config-file "$out/web-$1.yml" ||
    { echo "myapp did not start with $1.crt"; return; }
  # Called in $(…): stopped here, where it is a child.
  kill -TERM "$MYAPP_PID"
  wait "$MYAPP_PID" || true
  sed -n 's/.* WARN myapp::server::certificate: \(the server certificate .*\) cert_file=.*/\1/p' "$out/myapp-$1.log"
}
enddate() { date -u -d "$(openssl x509 -noout -enddate -in "$out/$1.crt" | cut -d= -f2)" '+%Y-%m-%d %H:%M:%S UTC'; }
check "a certificate expiring in 6 days: warned at start-up" \
  eval '[ "$(expiry_warning expires-in-6-days)" = "the server certificate expires at $(enddate expires-in-6-days), within 7 days" ]'
check "a certificate expiring in 8 days: no warning" eval '[ -z "$(expiry_warning expires-in-8-days)" ]'
check "an expired certificate: warned at start-up" \
  eval '[ "$(expiry_warning expired)" = "the server certificate expired at 2020-01-02 00:00:00 UTC" ]'

# --- myapp scenario over https -----------------------------------------------------
# b by its name: localhost must reach it with localhost as TLS's server name (the
# certificate's DNS name), and the token.
printf 'description: e2e\nsteps:\n  - {at: 0s, set: {error_rate: 0.9}}\nend: 500ms\n' >"$out/scenario.yaml"
b_by_name=https://localhost:${b##*:}
b_settings() { curl -s "${trust[@]}" -H "Authorization: Bearer $token" "https://$b/admin/workload"; }
b_before=$(b_settings)
scenario_run() { # CA LOG: myapp scenario against b, trusting CA; true when it exits 0
  target/release/myapp scenario "$out/scenario.yaml" --admin "$b_by_name" \
    --token-file "$out/token" --ca-file "$1" >"$out/$2" 2>&1
}
scenario_ok() {
  scenario_run "$out/ca.crt" scenario.log &&
    [ "$(tail -n 2 "$out/scenario.log")" = "at 0s on 1 replica: set {\"error_rate\":0.9}
at 500ms on 1 replica: end, settings from before restored" ] &&
    [ "$(b_settings)" = "$b_before" ]
}
check "scenario: https to b by name with --ca-file and the token, then restored" scenario_ok
scenario_untrusted() {
  ! scenario_run "$out/untrusted-ca.crt" scenario-untrusted.log &&
    grep -q "^error: $b_by_name: .*UnknownIssuer.*; nothing changed\$" "$out/scenario-untrusted.log" &&
    [ "$(b_settings)" = "$b_before" ]
}
check "scenario: a certificate its --ca-file did not sign stops it before any change" scenario_untrusted

# --- Prometheus ------------------------------------------------------------------
cat >"$out/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: tls-basic-auth
    scheme: https
    tls_config: {ca_file: $out/ca.crt, cert_file: $out/prometheus.crt, key_file: $out/prometheus.key}
    basic_auth: {username: prometheus, password_file: $out/password}
    static_configs: [{targets: ["$a"]}]
  - job_name: tls-wrong-password
    scheme: https
    tls_config: {ca_file: $out/ca.crt, cert_file: $out/prometheus.crt, key_file: $out/prometheus.key}
    basic_auth: {username: prometheus, password_file: $out/wrong-password}
    static_configs: [{targets: ["$a"]}]
  - job_name: tls-token
    scheme: https
    tls_config: {ca_file: $out/ca.crt}
    authorization: {credentials_file: $out/token}
    static_configs: [{targets: ["$b"]}]
YAML
port=$(free_port)
start_process "$out/prometheus.log" prometheus --config.file="$out/prometheus.yml" \
  --storage.tsdb.path="$out/tsdb" --web.listen-address="127.0.0.1:$port"
prom=http://127.0.0.1:$port
up_is() { [ "$(prom_query "$prom" "up{job=\"$1\"}")" = "__name__=up,instance=$2,job=$1 $3" ]; }
check "Prometheus scrapes a with tls_config and basic_auth: up 1" wait_until 30 up_is tls-basic-auth "$a" 1
check "Prometheus scrapes b with tls_config and the token: up 1" wait_until 30 up_is tls-token "$b" 1
check "Prometheus with a wrong password: up 0" wait_until 30 up_is tls-wrong-password "$a" 0
last_error() {
  curl -s "$prom/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
print(next(t["lastError"] for t in targets if t["labels"]["job"] == "tls-wrong-password"))'
}
is_401() { [ "$(last_error)" = "server returned HTTP status 401 Unauthorized" ]; }
check "its scrape error is the 401" is_401
scraped() { [ "$(prom_query "$prom" "promhttp_metric_handler_requests_total{job=\"tls-basic-auth\",code=\"200\"} > 0")" != "" ]; }
check "the scraped series arrive" wait_until 10 scraped

# --- no secret in any log ---------------------------------------------------------
stop_all
key_lines() { grep -v -- '-----' "$1"; }
no_secret() {
  local log secret
  for log in myapp-a.log myapp-b.log prometheus.log scenario.log scenario-untrusted.log; do
    for secret in "$password" "$token" "$hash" $(key_lines "$out/server.key") $(key_lines "$out/prometheus.key"); do
      if grep -qF -- "$secret" "$out/$log"; then
        echo "    $log holds a secret"
        return 1
      fi
    done
  done
}
check "no password, hash, token or private key in any log" no_secret
summary e2e-web-config
