//! The real binary: start-up errors, logs, signals.
use std::{
    collections::HashMap,
    net::TcpListener,
    process::Stdio,
    time::{Duration, Instant},
};

use futures_util::future::join_all;

use crate::helpers::{
    assert_histogram_grew, binary, scrape, wait_for_in_flight, Binary, TokenFile,
};

/// How long a start-up error may take: a binary still running after it has
/// started instead (or hangs), and the test fails rather than waiting forever.
const START_UP_BOUND: Duration = Duration::from_secs(30);

/// Runs the binary with `args` and `env`, expecting a start-up error.
pub fn start_up_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = binary()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + START_UP_BOUND;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "args {args:?} env {env:?}: still running after {START_UP_BOUND:?} instead of \
                 stopping with a start-up error; killed"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "args {args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for {args:?}: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty());
    stderr.trim_end().to_string()
}

#[test]
fn each_bad_setting_stops_start_up_with_one_line_naming_it() {
    // (arguments, environment, the start of the one line expected)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (&["--error-rate", "1.5"], &[], "error: invalid value '1.5' for '--error-rate <ERROR_RATE>': must be between 0.0 and 1.0"),
        (&["--error-rate", "abc"], &[], "error: invalid value 'abc' for '--error-rate <ERROR_RATE>': not a number"),
        (&[], &[("MYAPP_ERROR_RATE", "abc")], "error: invalid value 'abc' for '--error-rate <ERROR_RATE>': not a number"),
        (&["--min-delay-ms", "3000"], &[], "error: --min-delay-ms (3000) must not be greater than --max-delay-ms (2000)"),
        (&["--max-delay-ms", "-1"], &[], "error: invalid value '-1' for '--max-delay-ms <MAX_DELAY_MS>': invalid digit found in string"),
        (&["--error-rate", "-0.5"], &[], "error: invalid value '-0.5' for '--error-rate <ERROR_RATE>': must be between 0.0 and 1.0"),
        (&["--shutdown-timeout-secs", "1.5"], &[], "error: invalid value '1.5' for '--shutdown-timeout-secs <SHUTDOWN_TIMEOUT_SECS>': invalid digit found in string"),
        (&["--max-delay-ms", "soon"], &[], "error: invalid value 'soon' for '--max-delay-ms <MAX_DELAY_MS>': invalid digit found in string"),
        (&["--buckets", "0.5,0.1"], &[], "error: invalid value '0.5,0.1' for '--buckets <BUCKETS>': must be strictly increasing, but 0.5 is followed by 0.1"),
        (&["--buckets", "0.1,,1"], &[], "error: invalid value '0.1,,1' for '--buckets <BUCKETS>': '' is not a positive number of seconds"),
        (&["--listen", "8080"], &[], "error: invalid value '8080' for '--listen <LISTEN>': invalid socket address syntax"),
        (&["--log-format", "xml"], &[], "error: invalid value 'xml' for '--log-format <LOG_FORMAT>'"),
        (&[], &[("RUST_LOG", "myapp=loud")], "error: RUST_LOG: error parsing level filter"),
        (&["--metrics-listen", "8081"], &[], "error: invalid value '8081' for '--metrics-listen <METRICS_LISTEN>': invalid socket address syntax"),
        (&[], &[("MYAPP_METRICS_LISTEN", "localhost")], "error: invalid value 'localhost' for '--metrics-listen <METRICS_LISTEN>': invalid socket address syntax"),
        (&["--metrics-token-file", "/nonexistent/token"], &[], "error: --metrics-token-file /nonexistent/token: cannot read: No such file or directory (os error 2)"),
        (&[], &[("MYAPP_METRICS_TOKEN_FILE", "/nonexistent/token")], "error: --metrics-token-file /nonexistent/token: cannot read: No such file or directory (os error 2)"),
        (&["--metrics-token-file", "/"], &[], "error: --metrics-token-file /: cannot read: Is a directory (os error 21)"),
        (&["--metrics-token-file", "/dev/null"], &[], "error: --metrics-token-file /dev/null: the file is empty"),
        (&["--slow-rate", "1.01"], &[], "error: invalid value '1.01' for '--slow-rate <SLOW_RATE>': must be between 0.0 and 1.0"),
        (&[], &[("MYAPP_SLOW_RATE", "-0.01")], "error: invalid value '-0.01' for '--slow-rate <SLOW_RATE>': must be between 0.0 and 1.0"),
        (&["--slow-delay-ms", "10001"], &[], "error: --slow-delay-ms (10001) must not be greater than --delay-cap-ms (10000)"),
        (&[], &[("MYAPP_SLOW_DELAY_MS", "501"), ("MYAPP_DELAY_CAP_MS", "500"), ("MYAPP_MAX_DELAY_MS", "500")], "error: --slow-delay-ms (501) must not be greater than --delay-cap-ms (500)"),
        (&["--max-delay-ms", "10001"], &[], "error: --max-delay-ms (10001) must not be greater than --delay-cap-ms (10000)"),
        (&["--delay-cap-ms", "1999"], &[], "error: --max-delay-ms (2000) must not be greater than --delay-cap-ms (1999)"),
        (&["--delay-cap-ms", "1s"], &[], "error: invalid value '1s' for '--delay-cap-ms <DELAY_CAP_MS>': invalid digit found in string"),
        (&["--workload-file", "/nonexistent/workload.json"], &[], "error: --workload-file /nonexistent/workload.json: cannot read: No such file or directory (os error 2)"),
        (&[], &[("MYAPP_WORKLOAD_FILE", "/nonexistent/w.json")], "error: --workload-file /nonexistent/w.json: cannot read: No such file or directory (os error 2)"),
        (&["--workload-file", "/dev/null"], &[], "error: --workload-file /dev/null: cannot read: not a regular file but a character device; the workload file must be a regular file of at most 65536 bytes"),
        (&["--shutdown-delay-secs", "-1"], &[], "error: invalid value '-1' for '--shutdown-delay-secs <SHUTDOWN_DELAY_SECS>': invalid digit found in string"),
        (&[], &[("MYAPP_SHUTDOWN_DELAY_SECS", "1.5")], "error: invalid value '1.5' for '--shutdown-delay-secs <SHUTDOWN_DELAY_SECS>': invalid digit found in string"),
        (&["--body-timeout-secs", "0"], &[], "error: invalid value '0' for '--body-timeout-secs <BODY_TIMEOUT_SECS>': 0 is not in 1..18446744073709551615"),
        (&[], &[("MYAPP_BODY_TIMEOUT_SECS", "0")], "error: invalid value '0' for '--body-timeout-secs <BODY_TIMEOUT_SECS>': 0 is not in 1..18446744073709551615"),
        (&[], &[("MYAPP_OPENMETRICS_CREATED_SAMPLES", "yes")], "error: invalid value 'yes' for '--openmetrics-created-samples': expected true or false"),
    ];
    for (args, env, expected) in cases {
        let line = start_up_error(args, env);
        assert!(
            line.starts_with(expected),
            "args {args:?} env {env:?}:\n  got  {line}\n  want {expected}"
        );
    }
}

#[test]
fn an_address_in_use_stops_start_up_with_one_line_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let line = start_up_error(&["--listen", &address], &[]);
    assert_eq!(
        line,
        format!("error: --listen {address}: cannot bind: Address already in use (os error 98)")
    );
}

#[test]
fn a_metrics_address_in_use_stops_start_up_with_one_line_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let line = start_up_error(
        &["--listen", "127.0.0.1:0", "--metrics-listen", &address],
        &[],
    );
    assert_eq!(
        line,
        format!(
            "error: --metrics-listen {address}: cannot bind: Address already in use (os error 98)"
        )
    );
}

#[test]
fn help_shows_every_flag_with_its_env_and_default() {
    let output = binary().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--listen <LISTEN>",
        "[env: MYAPP_LISTEN=]",
        "[default: 0.0.0.0:8080]",
        "[env: MYAPP_MIN_DELAY_MS=]",
        "[env: MYAPP_MAX_DELAY_MS=]",
        "[default: 2000]",
        "[env: MYAPP_ERROR_RATE=]",
        "[default: 0.5]",
        "[env: MYAPP_BUCKETS=]",
        "[env: MYAPP_SHUTDOWN_TIMEOUT_SECS=]",
        "11 with the defaults",
        "--slow-rate <SLOW_RATE>",
        "[env: MYAPP_SLOW_RATE=]",
        "[default: 0]",
        "--slow-delay-ms <SLOW_DELAY_MS>",
        "[env: MYAPP_SLOW_DELAY_MS=]",
        "[default: 5000]",
        "--delay-cap-ms <DELAY_CAP_MS>",
        "[env: MYAPP_DELAY_CAP_MS=]",
        "[default: 10000]",
        "--workload-file <WORKLOAD_FILE>",
        "[env: MYAPP_WORKLOAD_FILE=]",
        "[env: MYAPP_LOG_FORMAT=]",
        "[default: text]",
        "--metrics-listen <METRICS_LISTEN>",
        "[env: MYAPP_METRICS_LISTEN=]",
        "--metrics-token-file <METRICS_TOKEN_FILE>",
        "[env: MYAPP_METRICS_TOKEN_FILE=]",
        "--shutdown-delay-secs <SHUTDOWN_DELAY_SECS>",
        "[env: MYAPP_SHUTDOWN_DELAY_SECS=]",
        "--web-config-file <WEB_CONFIG_FILE>",
        "[env: MYAPP_WEB_CONFIG_FILE=]",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
}

#[tokio::test]
async fn the_binary_counts_what_its_clients_saw() {
    let server = Binary::start(&["--max-delay-ms", "20"]);
    let http = reqwest::Client::new();
    let before = scrape(&http, &server.url("/metrics")).await;
    let requests = (0..200).map(|_| http.get(server.url("/work")).send());
    let mut seen: HashMap<u16, u64> = HashMap::new();
    for response in join_all(requests).await {
        *seen.entry(response.unwrap().status().as_u16()).or_default() += 1;
    }
    let after = scrape(&http, &server.url("/metrics")).await;
    assert_eq!(seen.values().sum::<u64>(), 200);
    for status in ["200", "500"] {
        let grew = after.processed(status) - before.processed(status);
        assert_eq!(grew, seen[&status.parse().unwrap()], "status {status}");
    }
    assert_histogram_grew(&before, &after, 200, 0, 20);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let server = Binary::start(&[
        "--min-delay-ms",
        "400",
        "--max-delay-ms",
        "400",
        "--error-rate",
        "0",
    ]);
    let http = reqwest::Client::new();
    let requests: Vec<_> = (0..20)
        .map(|_| tokio::spawn(http.get(server.url("/work")).send()))
        .collect();
    // Let the 20 requests reach the handler before the signal.
    wait_for_in_flight(&http, &server.url("/metrics"), 20).await;
    server.signal("TERM");
    for request in requests {
        let response = request
            .await
            .unwrap()
            .expect("a response despite the shutdown");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), r#"{"delay_ms":400}"#);
    }
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("shutting down: draining in-flight requests signal=\"SIGTERM\""),
        "{logs}"
    );
    assert!(
        logs.contains("stopped after every in-flight request finished"),
        "{logs}"
    );
}

#[tokio::test]
async fn the_shutdown_timeout_ends_the_drain_and_logs_the_requests_cut_off() {
    let server = Binary::start(&[
        "--min-delay-ms",
        "30000",
        "--max-delay-ms",
        "30000",
        "--delay-cap-ms",
        "30000",
        "--shutdown-timeout-secs",
        "1",
    ]);
    let http = reqwest::Client::new();
    let requests: Vec<_> = (0..3)
        .map(|_| tokio::spawn(http.get(server.url("/work")).send()))
        .collect();
    wait_for_in_flight(&http, &server.url("/metrics"), 3).await;
    server.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        logs.contains("stopped before every in-flight request finished cut_off=3"),
        "{logs}"
    );
    for request in requests {
        assert!(request.await.unwrap().is_err());
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = Binary::start(&["--log-format", "json"]);
    server.signal("TERM");
    let (status, logs) = server.wait();
    assert_eq!(status.code(), Some(0));
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines[0]["fields"]["message"], "listening");
    let workload: serde_json::Value =
        serde_json::from_str(lines[0]["fields"]["workload"].as_str().unwrap()).unwrap();
    assert_eq!(
        workload,
        serde_json::json!({"min_delay_ms": 0, "max_delay_ms": 2000, "error_rate": 0.5,
            "slow_rate": 0.0, "slow_delay_ms": 5000})
    );
    assert_eq!(lines[0]["fields"]["delay_cap_ms"], 10_000);
    assert_eq!(
        lines.last().unwrap()["fields"]["message"],
        "stopped after every in-flight request finished"
    );
}

#[test]
fn a_json_request_line_has_the_span_fields_once_and_the_answer_in_its_fields() {
    use std::io::{Read, Write};
    let server = Binary::start(&["--log-format", "json"]);
    let mut client = std::net::TcpStream::connect(server.address).unwrap();
    let client_address = client.local_addr().unwrap().to_string();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sent = Instant::now();
    client
        .write_all(
            format!(
                "GET /work?delay_ms=0&fail=true HTTP/1.1\r\nHost: x\r\n\
                 traceparent: 00-{trace_id}-00f067aa0ba902b7-01\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    let waited_ms = sent.elapsed().as_secs_f64() * 1e3;
    assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
    server.signal("TERM");
    let (_, logs) = server.wait();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|line: &serde_json::Value| line["target"] == "myapp::request_log")
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0].as_object().unwrap();
    let keys: Vec<&str> = line.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["fields", "level", "span", "target", "timestamp"],
        "{logs}"
    );
    assert_eq!(line["level"], "INFO");
    assert_eq!(
        line["span"],
        serde_json::json!({"method": "GET", "path": "/work?delay_ms=0&fail=true",
            "remote_addr": client_address, "name": "request"})
    );
    let fields = line["fields"].as_object().unwrap();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["duration_ms", "status", "trace_id"], "{logs}");
    assert_eq!(fields["status"], 500);
    assert_eq!(fields["trace_id"], trace_id);
    // Within the time the client waited for its answer.
    let duration_ms = fields["duration_ms"].as_f64().unwrap();
    assert!(
        (0.0..=waited_ms).contains(&duration_ms),
        "{waited_ms}: {logs}"
    );
}

#[tokio::test]
async fn with_metrics_listen_metrics_and_probes_move_to_the_second_port() {
    let server = Binary::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--max-delay-ms",
        "0",
        "--error-rate",
        "0",
    ]);
    assert_ne!(server.metrics_address, server.address);
    let http = reqwest::Client::new();
    let status = |url: String| {
        let request = http.get(url).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    let before = scrape(&http, &server.metrics_url("/metrics")).await;
    assert_eq!(status(server.url("/work")).await, 200);
    for path in ["/metrics", "/healthz", "/readyz", "/admin/workload"] {
        assert_eq!(status(server.url(path)).await, 404, "public {path}");
        assert_eq!(
            status(server.metrics_url(path)).await,
            200,
            "metrics {path}"
        );
    }
    for path in ["/work", "/docs", "/openapi.json"] {
        assert_eq!(
            status(server.metrics_url(path)).await,
            404,
            "metrics {path}"
        );
    }
    assert_eq!(status(server.url("/docs")).await, 200);
    let after = scrape(&http, &server.metrics_url("/metrics")).await;
    let answered = ["200", "500"].map(|s| after.processed(s) - before.processed(s));
    assert_eq!(answered.iter().sum::<u64>(), 1, "the one /work request");
    // Both ports drain and close on SIGTERM.
    server.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
}

#[tokio::test]
async fn the_token_is_required_on_metrics_and_never_logged() {
    let file = TokenFile::new("binary", "t0ken-never-logged");
    let server = Binary::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-token-file",
        file.path.to_str().unwrap(),
    ]);
    let http = reqwest::Client::new();
    let url = server.metrics_url("/metrics");
    let answer = |token: Option<&str>| {
        let mut request = http.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|value| value.to_str().unwrap().to_string());
            (response.status().as_u16(), challenge)
        }
    };
    assert_eq!(answer(None).await, (401, Some("Bearer".to_string())));
    assert_eq!(
        answer(Some("wrong")).await,
        (401, Some("Bearer".to_string()))
    );
    assert_eq!(answer(Some("t0ken-never-logged")).await, (200, None));
    let healthz = http
        .get(server.metrics_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    server.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains(" metrics_token=\"set\" "), "{logs}");
    assert!(!logs.contains("t0ken-never-logged"), "{logs}");
}

#[tokio::test]
async fn a_second_sigterm_ends_the_drain_at_once_and_logs_the_requests_cut_off() {
    let server = Binary::start(&[
        "--min-delay-ms",
        "30000",
        "--max-delay-ms",
        "30000",
        "--delay-cap-ms",
        "30000",
        "--shutdown-timeout-secs",
        "60",
    ]);
    let http = reqwest::Client::new();
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(http.get(server.url("/work")).send()))
        .collect();
    wait_for_in_flight(&http, &server.url("/metrics"), 4).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("TERM");
    let wait = tokio::task::spawn_blocking(|| server.wait());
    let (status, logs) = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the second SIGTERM ends it long before the 60 s timeout")
        .unwrap();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("second signal: stopping now"), "{logs}");
    assert!(
        logs.contains("stopped before every in-flight request finished cut_off=4"),
        "{logs}"
    );
    for request in requests {
        assert!(request.await.unwrap().is_err());
    }
}

#[test]
fn openapi_prints_the_spec_and_ends_quietly_when_its_reader_has_gone() {
    let output = binary().arg("openapi").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        myapp::startup::openapi_json() + "\n"
    );

    // As `myapp openapi | head -1` once head has exited. The read end is closed
    // before the binary starts, so its write fails with EPIPE every time:
    // reading a line first would not do, as the whole spec (17 KiB) fits in the
    // pipe's buffer and is written before the reader goes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = binary().arg("openapi").stdout(writer).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
}

#[test]
fn openapi_reports_any_other_write_error_in_one_line_and_exits_1() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = binary().arg("openapi").stdout(full).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "error: cannot write the OpenAPI spec: No space left on device (os error 28)\n"
    );
}

#[test]
fn help_says_that_admin_workload_moves_with_metrics_and_needs_its_token() {
    let output = binary().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    // Whatever the line breaks of the help.
    let help = String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for sentence in [
        "--metrics-listen <METRICS_LISTEN> Address to serve /metrics, /healthz, /readyz and \
         /admin/workload on, instead of on --listen, which then answers 404 for them. \
         /admin/workload moves with /metrics to this port and is guarded by \
         --metrics-token-file as /metrics is",
        "--metrics-token-file <METRICS_TOKEN_FILE> File holding the bearer token \
         (`Authorization: Bearer <token>`) that /metrics and /admin/workload then require, \
         on whichever port serves them (--metrics-listen, or else --listen); /healthz and \
         /readyz stay open. Read at start-up [default: none: /metrics and /admin/workload \
         are open]",
    ] {
        assert!(
            help.contains(sentence),
            "--help lacks {sentence:?}:\n{help}"
        );
    }
}

#[test]
fn a_colon_and_port_listens_on_every_ipv4_address() {
    let unspecified = std::net::Ipv4Addr::UNSPECIFIED;
    for (args, env) in [
        (["--listen", ":0"], ("MYAPP_METRICS_LISTEN", ":0")),
        (["--metrics-listen", ":0"], ("MYAPP_LISTEN", ":0")),
    ] {
        let mut command = binary();
        command.args(args).env(env.0, env.1);
        let server = Binary::spawn(command);
        for address in [server.address, server.metrics_address] {
            assert_eq!(address.ip(), unspecified, "{args:?} {env:?}");
            assert_ne!(address.port(), 0, "{args:?} {env:?}");
        }
        assert_ne!(server.address, server.metrics_address);
        server.signal("TERM");
        let (status, logs) = server.wait();
        assert_eq!(status.code(), Some(0), "{logs}");
    }
}

#[test]
fn a_bad_listen_address_stops_start_up_with_one_line_naming_the_option() {
    let port_rule = "expected :PORT with a port from 0 to 65535, e.g. :8080";
    let syntax_rule = "invalid socket address syntax: expected IP:PORT or :PORT, \
                       e.g. 0.0.0.0:8080 or :8080";
    for (flag, env, value) in [
        ("--listen", "MYAPP_LISTEN", "<LISTEN>"),
        (
            "--metrics-listen",
            "MYAPP_METRICS_LISTEN",
            "<METRICS_LISTEN>",
        ),
    ] {
        for (bad, rule) in [
            (":", port_rule),
            (":99999", port_rule),
            (":65536", port_rule),
            (":abc", port_rule),
            ("host:", syntax_rule),
        ] {
            let expected = format!("error: invalid value '{bad}' for '{flag} {value}': {rule}");
            assert_eq!(start_up_error(&[flag, bad], &[]), expected);
            assert_eq!(start_up_error(&[], &[(env, bad)]), expected);
        }
    }
}

#[test]
fn a_bad_log_format_stops_start_up_with_one_line_listing_the_allowed_values() {
    let expected =
        "error: invalid value 'xml' for '--log-format <LOG_FORMAT>': expected text or json";
    assert_eq!(start_up_error(&["--log-format", "xml"], &[]), expected);
    assert_eq!(
        start_up_error(&[], &[("MYAPP_LOG_FORMAT", "xml")]),
        expected
    );
    // Both values are accepted.
    for format in ["text", "json"] {
        let server = Binary::start(&["--log-format", format]);
        server.signal("TERM");
        assert_eq!(server.wait().0.code(), Some(0), "{format}");
    }
}
