//! Claims of the README and docs/ about the real binary, each held to what it says.
use std::{
    io::{Read, Write},
    net::TcpStream,
};

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{binary, Binary, TokenFile};

#[tokio::test]
async fn sigint_drains_in_flight_requests_as_sigterm_does() {
    let server = Binary::start(&["--min-delay-ms", "400", "--max-delay-ms", "400"]);
    let http = reqwest::Client::new();
    let requests: Vec<_> = (0..3)
        .map(|_| tokio::spawn(http.get(server.url("/work")).send()))
        .collect();
    crate::helpers::wait_for_in_flight(&http, &server.metrics_url("/metrics"), 3).await;
    server.signal("INT");
    let statuses: Vec<u16> = join_all(requests)
        .await
        .into_iter()
        .map(|response| response.unwrap().unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|status| [200, 500].contains(status)),
        "{statuses:?}"
    );
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert_eq!(
        logs.matches(r#"shutting down: draining in-flight requests signal="SIGINT""#)
            .count(),
        1,
        "{logs}"
    );
    assert!(
        logs.contains("stopped after every in-flight request finished"),
        "{logs}"
    );
}

#[test]
fn the_openapi_subcommand_prints_the_committed_spec() {
    let output = binary().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let committed = std::fs::read_to_string("openapi/openapi.json").unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), committed);
}

#[tokio::test]
async fn with_metrics_listen_the_public_spec_lists_work_only() {
    let server = Binary::start(&["--metrics-listen", "127.0.0.1:0"]);
    let spec: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&String> = spec["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/work"]);
}

#[test]
fn a_request_line_carries_the_clients_address() {
    let server = Binary::start(&["--max-delay-ms", "0"]);
    let mut client = TcpStream::connect(server.address).unwrap();
    let client_address = client.local_addr().unwrap();
    client
        .write_all(b"GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    let status = &answer[9..12];
    server.signal("TERM");
    let (_, logs) = server.wait();
    let (start, end) = (
        format!(
            " INFO request{{method=GET path=/work remote_addr={client_address}}}: \
             myapp::request_log: status={status} trace_id="
        ),
        " duration_ms=".to_string(),
    );
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(&start) && line.contains(&end))
        .collect();
    assert_eq!(lines.len(), 1, "{start}...{end}\n{logs}");
}

#[tokio::test]
async fn every_flag_has_a_working_env_twin() {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let token = TokenFile::new("env-twins", "env-t0ken");
    let workload = std::env::temp_dir().join(format!("myapp-test-{}-env.json", std::process::id()));
    std::fs::write(&workload, r#"{"slow_rate": 0.25}"#).unwrap();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = binary();
    command.envs([
        ("MYAPP_LISTEN", free_port.to_string().as_str()),
        ("MYAPP_METRICS_LISTEN", "127.0.0.1:0"),
        ("MYAPP_METRICS_TOKEN_FILE", token.path.to_str().unwrap()),
        ("MYAPP_MIN_DELAY_MS", "3"),
        ("MYAPP_MAX_DELAY_MS", "3"),
        ("MYAPP_ERROR_RATE", "1"),
        ("MYAPP_SLOW_RATE", "0.5"),
        ("MYAPP_SLOW_DELAY_MS", "4"),
        ("MYAPP_DELAY_CAP_MS", "5"),
        ("MYAPP_WORKLOAD_FILE", workload.to_str().unwrap()),
        ("MYAPP_BUCKETS", "0.25,0.5"),
        ("MYAPP_SHUTDOWN_TIMEOUT_SECS", "4"),
        ("MYAPP_SHUTDOWN_DELAY_SECS", "1"),
        ("MYAPP_HEADER_TIMEOUT_SECS", "6"),
        ("MYAPP_MAX_IN_FLIGHT", "7"),
        ("MYAPP_BODY_TIMEOUT_SECS", "1"),
        ("MYAPP_OPENMETRICS_CREATED_SAMPLES", "true"),
        ("MYAPP_LOG_FORMAT", "json"),
    ]);
    let server = Binary::spawn(command);
    assert_eq!(server.address, free_port, "MYAPP_LISTEN");
    assert_ne!(server.metrics_address, free_port, "MYAPP_METRICS_LISTEN");
    let http = reqwest::Client::new();
    let settings: Value = http
        .get(server.metrics_url("/admin/workload"))
        .bearer_auth("env-t0ken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The file's slow_rate over MYAPP_SLOW_RATE; the rest from the environment.
    assert_eq!(
        settings,
        serde_json::json!({"min_delay_ms": 3, "max_delay_ms": 3, "error_rate": 1.0,
            "slow_rate": 0.25, "slow_delay_ms": 4})
    );
    let unauthorized = http
        .get(server.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401, "MYAPP_METRICS_TOKEN_FILE");
    let delay_above_cap = http
        .get(server.url("/work?delay_ms=6"))
        .send()
        .await
        .unwrap();
    assert_eq!(delay_above_cap.status(), 400, "MYAPP_DELAY_CAP_MS");
    let metrics = http
        .get(server.metrics_url("/metrics"))
        .bearer_auth("env-t0ken")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("myapp_request_duration_seconds_bucket{le=\"0.5\"} 1\n")
            && !metrics.contains("le=\"0.1\""),
        "MYAPP_BUCKETS: {metrics}"
    );
    // A body still missing 1 s (not the default 10 s) after its head: 408.
    let mut late = tokio::net::TcpStream::connect(server.metrics_address)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut late,
        b"PUT /admin/workload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer env-t0ken\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let answer =
        crate::hostile_round_two::read_until_closed(&mut late, std::time::Duration::from_secs(20))
            .await;
    assert!(
        answer.starts_with("HTTP/1.1 408 ")
            && answer.ends_with("the request body did not arrive within 1 s\n"),
        "MYAPP_BODY_TIMEOUT_SECS: {answer}"
    );
    // OpenMetrics answers carry _created samples: the latency histogram's is
    // a time between this test's start and the scrape.
    let openmetrics = http
        .get(server.metrics_url("/metrics"))
        .bearer_auth("env-t0ken")
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scraped = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let created: Vec<f64> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("myapp_request_duration_seconds_created "))
        .map(|value| value.parse().unwrap())
        .collect();
    assert_eq!(
        created.len(),
        1,
        "MYAPP_OPENMETRICS_CREATED_SAMPLES: {openmetrics}"
    );
    assert!(
        (started..=scraped).contains(&created[0]),
        "created {} not within {started}..={scraped}",
        created[0]
    );
    server.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    std::fs::remove_file(&workload).unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    let listening: Value = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "listening")
        .expect("MYAPP_LOG_FORMAT=json: a JSON listening line");
    let fields = &listening["fields"];
    assert_eq!(
        fields["shutdown_timeout_secs"], 4,
        "MYAPP_SHUTDOWN_TIMEOUT_SECS"
    );
    assert_eq!(fields["delay_cap_ms"], 5);
    assert_eq!(fields["buckets"], "0.25,0.5");
    assert_eq!(
        fields["header_timeout_secs"], 6,
        "MYAPP_HEADER_TIMEOUT_SECS"
    );
    assert_eq!(fields["max_in_flight"], 7, "MYAPP_MAX_IN_FLIGHT");
    assert_eq!(fields["body_timeout_secs"], 1, "MYAPP_BODY_TIMEOUT_SECS");
    assert_eq!(
        fields["shutdown_delay_secs"], 1,
        "MYAPP_SHUTDOWN_DELAY_SECS"
    );
}

#[tokio::test]
async fn the_token_reaches_no_log_even_at_trace() {
    let file = TokenFile::new("trace", "tr4ce-t0ken-s3cret");
    let mut command = binary();
    command
        .env("RUST_LOG", "trace")
        .args(["--listen", "127.0.0.1:0", "--metrics-token-file"])
        .arg(&file.path);
    let server = Binary::spawn(command);
    let http = reqwest::Client::new();
    for path in ["/metrics", "/admin/workload"] {
        let response = http
            .get(server.metrics_url(path))
            .bearer_auth("tr4ce-t0ken-s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let refused = http
            .get(server.metrics_url(path))
            .bearer_auth("tr4ce-t0ken-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{path}");
    }
    server.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    // Every level is on: the scrape's DEBUG line is there, in its request's
    // span (nothing in the process logs at TRACE).
    let exposed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(" myapp::exposition"))
        .collect();
    assert_eq!(exposed.len(), 1, "{logs}");
    assert!(
        exposed[0].contains(" DEBUG request{method=GET path=/metrics remote_addr=127.0.0.1:"),
        "{logs}"
    );
    assert!(!logs.contains("tr4ce-t0ken"), "{logs}");
}
