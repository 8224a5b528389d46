//! `myapp load`, the real binary, against real replicas (binaries on loopback):
//! what it says it sent is what the replicas counted.
use std::{
    collections::BTreeSet,
    net::TcpListener,
    process::{Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{
    binary::start_up_error,
    helpers::{binary, scrape, Binary, Snapshot},
};

/// Runs `myapp load --json ARGS` to its end; returns the summary, after
/// checking that it exited 0 and printed one JSON line and nothing on stderr.
async fn load(args: &[&str]) -> Value {
    let mut command = binary();
    command.args(["load", "--json"]).args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    summary_of(output)
}

fn summary_of(output: Output) -> Value {
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // Not a terminal: no status lines.
    assert_eq!(stderr, "");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).expect("the summary is JSON")
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {summary}"))
}

fn keys(object: &Value) -> BTreeSet<&str> {
    object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// What the replicas counted between two scrapes each, by status.
fn gained(before: &[Snapshot], after: &[Snapshot], status: &str) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| after.processed(status) - before.processed(status))
        .sum()
}

async fn scrape_all(http: &reqwest::Client, replicas: &[Binary]) -> Vec<Snapshot> {
    let mut snapshots = Vec::new();
    for replica in replicas {
        snapshots.push(scrape(http, &replica.metrics_url("/metrics")).await);
    }
    snapshots
}

#[tokio::test(flavor = "multi_thread")]
async fn sent_equals_what_the_replicas_counted_status_by_status() {
    let replicas: Vec<Binary> = (0..3)
        .map(|_| Binary::start(&["--max-delay-ms", "0"]))
        .collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/work")).collect();
    let http = reqwest::Client::new();
    let before = scrape_all(&http, &replicas).await;

    let mut args = vec!["--rate", "200", "--duration", "10s"];
    args.extend(urls.iter().map(String::as_str));
    let summary = load(&args).await;

    let after = scrape_all(&http, &replicas).await;
    // 200 per second for 10 s: due at 0, 5 ms, ..., 9.995 s.
    assert_eq!(count(&summary, "sent"), 2000, "{summary}");
    assert_eq!(count(&summary, "dropped"), 0, "{summary}");
    assert_eq!(
        summary["errors"],
        serde_json::json!({"timeout": 0, "connect": 0, "other": 0})
    );
    // Each status the summary counts is what the replicas counted, and no other.
    let statuses = summary["statuses"].as_object().unwrap();
    assert_eq!(keys(&summary["statuses"]), BTreeSet::from(["200", "500"]));
    for (status, sent) in statuses {
        assert_eq!(
            sent.as_u64().unwrap(),
            gained(&before, &after, status),
            "{status}"
        );
    }
    // Round robin: each of the three replicas got a third.
    for (before, after) in before.iter().zip(&after) {
        let got = ["200", "500"]
            .iter()
            .map(|s| after.processed(s) - before.processed(s))
            .sum::<u64>();
        assert!((666..=667).contains(&got), "{got}");
    }
    let rate = summary["achieved_rate"].as_f64().unwrap();
    assert!((rate - 200.0).abs() <= 2.0, "{rate}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_target_shows_as_latency_not_as_a_lower_rate() {
    let replica = Binary::start(&["--max-delay-ms", "0"]);
    let url = replica.url("/work?delay_ms=500");
    let summary = load(&[
        "--rate",
        "100",
        "--duration",
        "3s",
        "--max-in-flight",
        "1000",
        &url,
    ])
    .await;
    // Open loop: all 300 leave on time with about 50 waiting at once; a closed
    // loop of 50 would manage 50 / 0.5 s = 100 too, so the limit is far above.
    assert_eq!(count(&summary, "sent"), 300, "{summary}");
    assert_eq!(count(&summary, "dropped"), 0, "{summary}");
    let rate = summary["achieved_rate"].as_f64().unwrap();
    assert!((rate - 100.0).abs() <= 1.0, "{rate}");
    let p50 = summary["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50 >= 500.0, "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_and_password_in_the_url_are_sent_as_basic_auth() {
    // A bcrypt hash of "pw" made by Python's bcrypt (as in admin_access.rs).
    let web = crate::web_config::TextFile::new(
        "load-users",
        "basic_auth_users: {prometheus: $2b$04$kPK.7DmElstOowpWSYgFkOKfgpLVjQ4p074QPUmzaXDIsmB535cZG}",
    );
    let replica = Binary::start(&[
        "--max-delay-ms",
        "0",
        "--error-rate",
        "0",
        "--web-config-file",
        web.path(),
    ]);
    let port = replica.address.port();
    // `%77` is `w`: the password is percent-decoded, as curl and reqwest do.
    for (credentials, status) in [
        ("prometheus:pw@", "200"),
        ("prometheus:p%77@", "200"),
        ("prometheus:wrong@", "401"),
        ("", "401"),
    ] {
        let url = format!("http://{credentials}127.0.0.1:{port}/work");
        let summary = load(&["--rate", "20", "--duration", "1s", &url]).await;
        assert_eq!(count(&summary, "sent"), 20, "{url}: {summary}");
        assert_eq!(
            summary["statuses"],
            serde_json::json!({ status: 20 }),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_its_timeout_counts_as_a_timeout() {
    let replica = Binary::start(&["--max-delay-ms", "0"]);
    // 500 ms of work against a timeout of 100 ms, and of 2 s.
    for (timeout, timeouts, statuses) in [
        ("100ms", 10, serde_json::json!({})),
        ("2s", 0, serde_json::json!({"200": 10})),
    ] {
        let summary = load(&[
            "--rate",
            "10",
            "--duration",
            "1s",
            "--timeout",
            timeout,
            &replica.url("/work?delay_ms=500&fail=false"),
        ])
        .await;
        assert_eq!(count(&summary, "sent"), 10, "{summary}");
        assert_eq!(
            summary["errors"],
            serde_json::json!({"timeout": timeouts, "connect": 0, "other": 0}),
            "{timeout}"
        );
        assert_eq!(summary["statuses"], statuses, "{timeout}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_max_in_flight_is_dropped_and_counted() {
    let replica = Binary::start(&["--max-delay-ms", "0"]);
    let http = reqwest::Client::new();
    let before = scrape(&http, &replica.metrics_url("/metrics")).await;
    let url = replica.url("/work?delay_ms=500&fail=false");
    let summary = load(&[
        "--rate",
        "100",
        "--duration",
        "2s",
        "--max-in-flight",
        "5",
        &url,
    ])
    .await;
    let after = scrape(&http, &replica.metrics_url("/metrics")).await;

    let (sent, dropped) = (count(&summary, "sent"), count(&summary, "dropped"));
    // 100 per second for 2 s: 200 due, each either sent or dropped.
    assert_eq!(sent + dropped, 200, "{summary}");
    // Five at a time, each 500 ms: at most 5 per 500 ms, 25 in 2.5 s.
    assert!((5..=25).contains(&sent), "{summary}");
    assert_eq!(after.processed("200") - before.processed("200"), sent);
    assert_eq!(summary["statuses"], serde_json::json!({"200": sent}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_summary_has_exactly_the_documented_keys() {
    let replica = Binary::start(&["--max-delay-ms", "0"]);
    let url = replica.url("/work?fail=true");
    // Through the env twins: 40 per second for 250 ms is 10 due.
    let mut command = binary();
    command.args(["load", &url]).envs([
        ("MYAPP_LOAD_JSON", "true"),
        ("MYAPP_LOAD_RATE", "40"),
        ("MYAPP_LOAD_DURATION", "250ms"),
    ]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let summary = summary_of(output);
    assert_eq!(
        keys(&summary),
        BTreeSet::from([
            "sent",
            "statuses",
            "errors",
            "dropped",
            "achieved_rate",
            "latency_ms"
        ])
    );
    assert_eq!(
        keys(&summary["latency_ms"]),
        BTreeSet::from(["p50", "p90", "p99", "max"])
    );
    assert_eq!(
        keys(&summary["errors"]),
        BTreeSet::from(["timeout", "connect", "other"])
    );
    assert_eq!(count(&summary, "sent"), 10);
    assert_eq!(summary["statuses"], serde_json::json!({"500": 10}));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_the_run_and_still_prints_the_summary() {
    let replica = Binary::start(&["--max-delay-ms", "0"]);
    let http = reqwest::Client::new();
    let before = scrape(&http, &replica.metrics_url("/metrics")).await;
    let child = binary()
        .args(["load", "--json", "--rate", "100", &replica.url("/work")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // One thread while it sends: a current-thread runtime, no workers (the
    // targets are IP addresses, so no resolver thread either).
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let threads = proc_status
        .lines()
        .find(|line| line.starts_with("Threads:"));
    assert_eq!(threads, Some("Threads:\t1"), "{proc_status}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let summary = summary_of(output);
    let after = scrape(&http, &replica.metrics_url("/metrics")).await;
    let sent = count(&summary, "sent");
    assert!(sent > 0, "{summary}");
    let counted: u64 = ["200", "500"]
        .iter()
        .map(|s| after.processed(s) - before.processed(s))
        .sum();
    assert_eq!(counted, sent);
}

#[test]
fn each_bad_flag_or_unreachable_target_is_one_line_and_exit_2() {
    // A port nothing listens on: bound, then freed.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = format!("http://{closed}/work");
    let rule = "expected a whole number above 0 and a unit (ms, s, m or h), e.g. 30s";
    // (arguments after `load`, environment, the one line expected)
    type Case<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], String);
    let cases: Vec<Case> = vec![
        (vec!["--rate", "0", "http://h/"], &[], "error: invalid value '0' for '--rate <RATE>': 0 is not in 1..=1000000".into()),
        (vec!["--rate", "1000001", "http://h/"], &[], "error: invalid value '1000001' for '--rate <RATE>': 1000001 is not in 1..=1000000".into()),
        (vec!["http://h/"], &[("MYAPP_LOAD_RATE", "fast")], "error: invalid value 'fast' for '--rate <RATE>': invalid digit found in string".into()),
        (vec!["--duration", "10", "http://h/"], &[], format!("error: invalid value '10' for '--duration <DURATION>': {rule}")),
        (vec!["--duration", "0s", "http://h/"], &[], format!("error: invalid value '0s' for '--duration <DURATION>': {rule}")),
        (vec!["http://h/"], &[("MYAPP_LOAD_DURATION", "5x")], format!("error: invalid value '5x' for '--duration <DURATION>': {rule}")),
        (vec!["--timeout", "0ms", "http://h/"], &[], format!("error: invalid value '0ms' for '--timeout <TIMEOUT>': {rule}")),
        (vec!["--max-in-flight", "0", "http://h/"], &[], "error: invalid value '0' for '--max-in-flight <MAX_IN_FLIGHT>': 0 is not in 1..=1000000".into()),
        (vec!["127.0.0.1:8080/work"], &[], "error: invalid value '127.0.0.1:8080/work' for '<URL>...': relative URL without a base: expected e.g. http://127.0.0.1:8080/work".into()),
        (vec!["ftp://h/"], &[], "error: invalid value 'ftp://h/' for '<URL>...': expected an http:// URL (plain HTTP), e.g. http://127.0.0.1:8080/work".into()),
        (vec!["https://h/"], &[], "error: invalid value 'https://h/' for '<URL>...': expected an http:// URL (plain HTTP), e.g. http://127.0.0.1:8080/work".into()),
        (vec![], &[], "error: the following required arguments were not provided: <URL>...".into()),
        (vec![&unreachable], &[], format!("error: {unreachable}: cannot connect: Connection refused (os error 111)")),
    ];
    for (args, env, expected) in cases {
        let args: Vec<&str> = ["load"].into_iter().chain(args).collect();
        assert_eq!(start_up_error(&args, env), expected, "{args:?} {env:?}");
    }
}
