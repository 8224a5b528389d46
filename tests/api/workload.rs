//! The workload driven live: per request, through `/admin/workload`, and
//! through the `--workload-file`.
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{scrape, work, Binary, Snapshot, TestApp, TestServer, TokenFile};

async fn body(response: poem::test::TestResponse) -> Value {
    response.json().await.value().deserialize()
}

async fn put(app: &TestApp, change: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .put("/admin/workload")
        .body_json(&change)
        .send()
        .await;
    let status = response.0.status();
    (status, body(response).await)
}

fn changes(snapshot: &Snapshot, source: &str, result: &str) -> u64 {
    snapshot.labelled(
        "myapp_workload_changes_total",
        &[("source", source), ("result", result)],
    ) as u64
}

#[tokio::test]
async fn delay_ms_and_fail_override_the_draws() {
    let mut config = work(0, 0, 0.0);
    (config.delay_cap_ms, config.slow_delay_ms) = (60, 60);
    let app = TestApp::spawn(config).await;
    let before = app.scrape().await;
    let started = Instant::now();
    let response = app.get("/work?delay_ms=60&fail=true").await;
    let took = started.elapsed();
    response.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body(response).await,
        json!({"delay_ms": 60, "error": "simulated failure"})
    );
    assert!(took >= Duration::from_millis(60), "slept {took:?}");
    let response = app.get("/work?fail=false&delay_ms=0").await;
    response.assert_status_is_ok();
    assert_eq!(body(response).await, json!({"delay_ms": 0}));

    // error_rate 1.0 fails every drawn request; fail=false still succeeds.
    app.client
        .put("/admin/workload")
        .body_json(&json!({"error_rate": 1.0, "min_delay_ms": 7, "max_delay_ms": 7}))
        .send()
        .await
        .assert_status_is_ok();
    let response = app.get("/work?fail=false").await;
    response.assert_status_is_ok();
    assert_eq!(body(response).await, json!({"delay_ms": 7}));
    app.get("/work")
        .await
        .assert_status(StatusCode::INTERNAL_SERVER_ERROR);

    let after = app.scrape().await;
    assert_eq!(after.processed("500") - before.processed("500"), 2);
    assert_eq!(after.processed("200") - before.processed("200"), 2);
    let histogram = after.duration();
    assert_eq!(histogram.count - before.duration().count, 4);
    // 60 + 0 + 7 + 7 ms of sleep, and the 60 ms request in the bucket above 0.05 s.
    let sum = histogram.sum - before.duration().sum;
    assert!((0.074..0.074 + 0.25).contains(&sum), "sum {sum}");
}

#[tokio::test]
async fn a_bad_parameter_answers_400_naming_it_and_counts_as_400() {
    let mut config = work(0, 0, 0.0);
    (config.delay_cap_ms, config.slow_delay_ms) = (50, 50);
    let app = TestApp::spawn(config).await;
    let before = app.scrape().await;
    let delay_rule = "delay_ms must be a whole number of milliseconds, from 0 to --delay-cap-ms";
    let cases = [
        ("delay_ms=-1", "delay_ms", delay_rule),
        ("delay_ms=abc", "delay_ms", delay_rule),
        ("delay_ms=1.5", "delay_ms", delay_rule),
        ("delay_ms=", "delay_ms", delay_rule),
        ("delay_ms=18446744073709551616", "delay_ms", delay_rule),
        (
            "delay_ms=51",
            "delay_ms",
            "delay_ms (51) must not be greater than --delay-cap-ms (50)",
        ),
        ("fail=maybe", "fail", "fail must be true or false"),
        ("fail=1", "fail", "fail must be true or false"),
        ("fail=TRUE&delay_ms=0", "fail", "fail must be true or false"),
    ];
    for (query, parameter, error) in cases {
        let response = app.get(&format!("/work?{query}")).await;
        response.assert_status(StatusCode::BAD_REQUEST);
        response.assert_content_type("application/json; charset=utf-8");
        assert_eq!(
            body(response).await,
            json!({"parameter": parameter, "error": error}),
            "{query}"
        );
    }
    // The cap itself is allowed.
    let response = app.get("/work?delay_ms=50").await;
    response.assert_status_is_ok();
    assert_eq!(body(response).await, json!({"delay_ms": 50}));

    let after = app.scrape().await;
    assert_eq!(
        after.processed("400") - before.processed("400"),
        cases.len() as u64
    );
    assert_eq!(after.processed("200") - before.processed("200"), 1);
    assert_eq!(
        after.duration().count - before.duration().count,
        cases.len() as u64 + 1
    );
}

#[tokio::test]
async fn get_shows_the_settings_and_put_changes_them_whole_or_not_at_all() {
    let app = TestApp::spawn(work(0, 2000, 0.5)).await;
    let before = app.scrape().await;
    let flags = json!({"min_delay_ms": 0, "max_delay_ms": 2000, "error_rate": 0.5,
        "slow_rate": 0.0, "slow_delay_ms": 5000});
    assert_eq!(body(app.get("/admin/workload").await).await, flags);

    let (status, settings) = put(&app, json!({"error_rate": 0.25, "slow_rate": 0.125})).await;
    assert_eq!(status, StatusCode::OK);
    let changed = json!({"min_delay_ms": 0, "max_delay_ms": 2000, "error_rate": 0.25,
        "slow_rate": 0.125, "slow_delay_ms": 5000});
    assert_eq!(settings, changed);
    assert_eq!(body(app.get("/admin/workload").await).await, changed);

    // (change, field, error): each refused whole, the settings unchanged.
    let refused = [
        (json!({"error_rate": 1.5}), Some("error_rate"), "error_rate must be between 0.0 and 1.0, not 1.5"),
        (json!({"error_rate": -0.0001}), Some("error_rate"), "error_rate must be between 0.0 and 1.0, not -0.0001"),
        (json!({"slow_rate": "0.5"}), Some("slow_rate"), "slow_rate must be between 0.0 and 1.0, not \"0.5\""),
        (json!({"min_delay_ms": -1}), Some("min_delay_ms"), "min_delay_ms must be a whole number of milliseconds, not -1"),
        (json!({"max_delay_ms": 1.5}), Some("max_delay_ms"), "max_delay_ms must be a whole number of milliseconds, not 1.5"),
        (json!({"max_delay_ms": null}), Some("max_delay_ms"), "max_delay_ms must be a whole number of milliseconds, not null"),
        (json!({"max_delay_ms": 10001}), Some("max_delay_ms"), "max_delay_ms (10001) must not be greater than --delay-cap-ms (10000)"),
        (json!({"slow_delay_ms": 10001}), Some("slow_delay_ms"), "slow_delay_ms (10001) must not be greater than --delay-cap-ms (10000)"),
        (json!({"min_delay_ms": 2001}), Some("min_delay_ms"), "min_delay_ms (2001) must not be greater than max_delay_ms (2000)"),
        // A valid setting beside an invalid one is not applied either.
        (json!({"error_rate": 0.75, "min_delay_ms": 11, "max_delay_ms": 10}), Some("min_delay_ms"), "min_delay_ms (11) must not be greater than max_delay_ms (10)"),
        (json!({"error_rate": 0.75, "errors": 1}), Some("errors"), "unknown setting errors; the settings are min_delay_ms, max_delay_ms, error_rate, slow_rate, slow_delay_ms"),
        (json!([1]), None, "the settings must be a JSON object"),
        (json!("x"), None, "the settings must be a JSON object"),
    ];
    for (change, field, error) in &refused {
        let (status, answer) = put(&app, change.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}");
        let mut expected = json!({"error": error});
        if let Some(field) = field {
            expected["field"] = json!(field);
        }
        assert_eq!(answer, expected, "{change}");
        assert_eq!(body(app.get("/admin/workload").await).await, changed);
    }
    // The edges are allowed.
    let (status, settings) = put(
        &app,
        json!({"min_delay_ms": 10000, "max_delay_ms": 10000, "slow_delay_ms": 10000,
            "error_rate": 1, "slow_rate": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");

    let after = app.scrape().await;
    assert_eq!(
        changes(&after, "api", "applied") - changes(&before, "api", "applied"),
        2
    );
    assert_eq!(
        changes(&after, "api", "rejected") - changes(&before, "api", "rejected"),
        refused.len() as u64
    );
    for gauge in [
        ("myapp_workload_error_rate", 1.0),
        ("myapp_workload_min_delay_seconds", 10.0),
        ("myapp_workload_max_delay_seconds", 10.0),
        ("myapp_workload_slow_rate", 0.0),
        ("myapp_workload_slow_delay_seconds", 10.0),
    ] {
        assert_eq!(after.value(gauge.0), gauge.1, "{}", gauge.0);
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_answers_400_and_changes_nothing() {
    let app = TestApp::spawn(work(0, 0, 0.5)).await;
    let before = body(app.get("/admin/workload").await).await;
    let response = app
        .client
        .put("/admin/workload")
        .content_type("application/json")
        .body("{error_rate: 1}")
        .send()
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let answer = body(response).await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("parse request payload error: "),
        "{answer}"
    );
    assert_eq!(body(app.get("/admin/workload").await).await, before);
}

#[tokio::test]
async fn an_empty_body_answers_400_and_is_not_counted_as_a_change() {
    let app = TestApp::spawn(work(0, 0, 0.5)).await;
    let before = app.scrape().await;
    let response = app
        .client
        .put("/admin/workload")
        .content_type("application/json")
        .send()
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let answer = body(response).await;
    assert!(answer["error"].as_str().is_some(), "{answer}");
    let after = app.scrape().await;
    for result in ["applied", "rejected"] {
        assert_eq!(
            changes(&after, "api", result),
            changes(&before, "api", result),
            "{result}"
        );
    }
    // A body that is JSON but not an object is a change, and is rejected.
    let (status, _) = put(&app, json!([1])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let counted = app.scrape().await;
    assert_eq!(
        changes(&counted, "api", "rejected"),
        changes(&before, "api", "rejected") + 1
    );
}

#[tokio::test]
async fn a_share_of_minus_zero_is_taken_as_zero() {
    let app = TestApp::spawn(work(0, 0, 0.5)).await;
    let (status, settings) = put(&app, json!({"error_rate": -0.0, "slow_rate": -0.0})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["error_rate"].to_string(), "0.0");
    assert_eq!(settings["slow_rate"].to_string(), "0.0");
    let text = app
        .get("/metrics")
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    for gauge in ["myapp_workload_error_rate", "myapp_workload_slow_rate"] {
        assert!(text.contains(&format!("\n{gauge} 0\n")), "{gauge}: {text}");
    }
}

#[tokio::test]
async fn the_gauges_show_the_settings_in_base_units() {
    let mut config = work(125, 1500, 0.375);
    (config.slow_rate, config.slow_delay_ms) = (0.0625, 8250);
    let app = TestApp::spawn(config).await;
    let scrape = app.scrape().await;
    for (gauge, value) in [
        ("myapp_workload_error_rate", 0.375),
        ("myapp_workload_min_delay_seconds", 0.125),
        ("myapp_workload_max_delay_seconds", 1.5),
        ("myapp_workload_slow_rate", 0.0625),
        ("myapp_workload_slow_delay_seconds", 8.25),
    ] {
        assert_eq!(scrape.value(gauge), value, "{gauge}");
    }
}

#[tokio::test]
async fn the_slow_rate_gives_a_tail_of_slow_delays() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    put(&app, json!({"slow_rate": 1.0, "slow_delay_ms": 3})).await;
    for _ in 0..5 {
        assert_eq!(body(app.get("/work").await).await, json!({"delay_ms": 3}));
    }
    put(&app, json!({"slow_rate": 0.25, "slow_delay_ms": 1})).await;
    let mut slow = 0;
    for _ in 0..800 {
        match body(app.get("/work").await).await["delay_ms"].as_u64() {
            Some(1) => slow += 1,
            Some(0) => {}
            other => panic!("delay {other:?} is neither 0 nor the slow 1"),
        }
    }
    // Binomial(800, 0.25): mean 200, sd 12.2; outside 125..=275 with
    // probability 1.3e-9 (the exact tails). A share of 0.05 or 0.5 (or none,
    // or every request) falls inside with a probability below 1e-9.
    assert!((125..=275).contains(&slow), "{slow} slow of 800");
}

#[tokio::test]
async fn admin_requires_the_metrics_token_when_set() {
    let file = TokenFile::new("admin", "adm1n-t0ken");
    let app = TestApp::spawn_with_token(work(0, 0, 0.5), Some(file.token.clone())).await;
    for (authorization, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer wrong"), StatusCode::UNAUTHORIZED),
        (Some("Bearer adm1n-t0ken"), StatusCode::OK),
    ] {
        let (mut get, mut put) = (
            app.client.get("/admin/workload"),
            app.client.put("/admin/workload"),
        );
        if let Some(value) = authorization {
            (get, put) = (
                get.header("Authorization", value),
                put.header("Authorization", value),
            );
        }
        get.send().await.assert_status(expected);
        let put = put.body_json(&json!({"error_rate": 0.75})).send().await;
        put.assert_status(expected);
        if expected == StatusCode::UNAUTHORIZED {
            put.assert_header("www-authenticate", "Bearer");
        }
    }
    let settings = app
        .client
        .get("/admin/workload")
        .header("Authorization", "Bearer adm1n-t0ken")
        .send()
        .await;
    assert_eq!(body(settings).await["error_rate"], 0.75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_change_applies_to_the_next_requests_and_not_to_those_waiting() {
    let server = TestServer::spawn(work(400, 400, 0.0), 5).await;
    let waiting: Vec<_> = (0..3)
        .map(|_| tokio::spawn(server.http.get(server.url("/work")).send()))
        .collect();
    server.wait_for_in_flight(3).await;
    let changed = server
        .http
        .put(server.url("/admin/workload"))
        .json(&json!({"min_delay_ms": 0, "max_delay_ms": 0, "error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    // The next request follows the change at once, while the three still wait.
    let next = server.http.get(server.url("/work")).send().await.unwrap();
    assert_eq!(next.status(), 500);
    assert_eq!(
        next.json::<Value>().await.unwrap(),
        json!({"delay_ms": 0, "error": "simulated failure"})
    );
    assert_eq!(server.scrape().await.in_flight(), 3);
    for response in waiting {
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"delay_ms": 400})
        );
    }
}

/// A workload file laid out as the kubelet mounts a ConfigMap: the file is a
/// symlink through `..data`, itself a symlink to a timestamped directory that
/// each update replaces by an atomic rename.
struct ConfigMapDir {
    dir: std::path::PathBuf,
    version: u32,
}

impl ConfigMapDir {
    fn new(name: &str, contents: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("myapp-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("..data/workload.json", dir.join("workload.json")).unwrap();
        let mut mount = Self { dir, version: 0 };
        mount.update(contents);
        mount
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.join("workload.json")
    }

    /// Writes a new version and swaps `..data` to it, as the kubelet does.
    fn update(&mut self, contents: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join("workload.json"), contents).unwrap();
        std::os::unix::fs::symlink(&version, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        if self.version > 1 {
            std::fs::remove_dir_all(self.dir.join(format!("..v{}", self.version - 1))).unwrap();
        }
    }
}

impl Drop for ConfigMapDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The error rate in force, from `/admin/workload`.
async fn error_rate(binary: &Binary) -> f64 {
    let settings: Value = reqwest::get(binary.metrics_url("/admin/workload"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    settings["error_rate"].as_f64().unwrap()
}

/// Polls `/admin/workload` until `error_rate` is `expected`; returns how
/// long that took (panics after 3 s).
async fn wait_for_error_rate(binary: &Binary, expected: f64) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if error_rate(binary).await == expected {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("error_rate never became {expected}");
}

#[tokio::test]
async fn the_workload_file_applies_at_start_and_on_every_change_within_2_s() {
    let mut mount = ConfigMapDir::new("configmap", r#"{"error_rate": 1.0, "max_delay_ms": 0}"#);
    let path = mount.path();
    let binary = Binary::start(&[
        "--workload-file",
        path.to_str().unwrap(),
        "--error-rate",
        "0",
    ]);
    let http = reqwest::Client::new();
    let work = http.get(binary.url("/work")).send().await.unwrap();
    assert_eq!(
        work.status(),
        500,
        "the file's error_rate 1.0 beats the flag's 0"
    );

    // The kubelet's symlink swap.
    mount.update(r#"{"error_rate": 0.25}"#);
    let took = wait_for_error_rate(&binary, 0.25).await;
    assert!(took <= Duration::from_secs(2), "applied after {took:?}");

    // The latest change wins: a PUT over the file, then the file over the PUT.
    let put = http
        .put(binary.metrics_url("/admin/workload"))
        .json(&json!({"error_rate": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    // The file, unchanged, is not applied again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(error_rate(&binary).await, 0.5);
    mount.update(r#"{"error_rate": 0.75}"#);
    let took = wait_for_error_rate(&binary, 0.75).await;
    assert!(took <= Duration::from_secs(2), "applied after {took:?}");

    // An invalid file is logged and ignored; so is a missing one.
    // (Each waits out two polls of the file.)
    for broken in [r#"{"error_rate": 7}"#, r#"{"error_rate": 7"#] {
        mount.update(broken);
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(error_rate(&binary).await, 0.75, "after {broken}");
    }
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(error_rate(&binary).await, 0.75, "after the file went away");
    let metrics = scrape(&http, &binary.metrics_url("/metrics")).await;
    binary.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| binary.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    for (source, result, count) in [
        ("flag", "applied", 1),
        ("file", "applied", 3),
        ("api", "applied", 1),
        ("file", "rejected", 2),
        ("api", "rejected", 0),
        ("flag", "rejected", 0),
    ] {
        assert_eq!(
            changes(&metrics, source, result),
            count,
            "{source} {result}"
        );
    }
    let shown = path.display();
    let settings = |error_rate: &str, max_delay_ms: u64| {
        format!(
            r#"{{"error_rate":{error_rate},"max_delay_ms":{max_delay_ms},"min_delay_ms":0,"slow_delay_ms":5000,"slow_rate":0.0}}"#
        )
    };
    let changed = "workload changed; the latest change wins, whichever its source";
    let rejected = "workload change rejected; the settings in force stay";
    for expected in [
        format!(
            r#"{changed} source="file" by={shown} old={} new={}"#,
            settings("0.0", 2000),
            settings("1.0", 0)
        ),
        format!(
            r#"{changed} source="file" by={shown} old={} new={}"#,
            settings("1.0", 0),
            settings("0.25", 0)
        ),
        format!(
            r#"{changed} source="file" by={shown} old={} new={}"#,
            settings("0.5", 0),
            settings("0.75", 0)
        ),
        format!(
            r#"{rejected} source="file" by={shown} error=error_rate must be between 0.0 and 1.0, not 7"#
        ),
        format!(
            r#"{rejected} source="file" by={shown} error=not JSON: EOF while parsing an object at line 1 column 16"#
        ),
        format!(
            r#"cannot read the workload file; the settings in force stay path={shown} error=No such file or directory (os error 2)"#
        ),
    ] {
        assert_eq!(logs.matches(&expected).count(), 1, "{expected}\n{logs}");
    }
    let api = logs
        .lines()
        .find(|line| line.contains(r#"source="api""#))
        .expect("the PUT is logged");
    assert!(
        api.contains(&format!(r#"{changed} source="api" by=127.0.0.1:"#))
            && api.ends_with(&format!(
                " old={} new={}",
                settings("0.25", 0),
                settings("0.5", 0)
            )),
        "{api}"
    );
}

/// The bytes of an answer, as a client sees them (not reparsed: the order of
/// the keys shows).
async fn bytes(response: poem::test::TestResponse) -> String {
    response.0.into_body().into_string().await.unwrap()
}

#[tokio::test]
async fn error_bodies_list_their_keys_in_alphabetical_order() {
    // poem-openapi writes an `Object` through serde_json's map, which keeps its
    // keys sorted: the order of the struct's fields does not show.
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let response = app.get("/work?delay_ms=abc").await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        bytes(response).await,
        r#"{"error":"delay_ms must be a whole number of milliseconds, from 0 to --delay-cap-ms","parameter":"delay_ms"}"#
    );
    let response = app.get("/work?delay_ms=10001").await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        bytes(response).await,
        r#"{"error":"delay_ms (10001) must not be greater than --delay-cap-ms (10000)","parameter":"delay_ms"}"#
    );
    let response = app.get("/work?fail=true").await;
    response.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        bytes(response).await,
        r#"{"delay_ms":0,"error":"simulated failure"}"#
    );

    let put = |body: &'static str| {
        app.client
            .put("/admin/workload")
            .content_type("application/json")
            .body(body)
            .send()
    };
    let response = put(r#"{"error_rate": 2}"#).await;
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        bytes(response).await,
        r#"{"error":"error_rate must be between 0.0 and 1.0, not 2","field":"error_rate"}"#
    );
    let response = app.get("/admin/workload").await;
    response.assert_status_is_ok();
    assert_eq!(
        bytes(response).await,
        r#"{"error_rate":0.0,"max_delay_ms":0,"min_delay_ms":0,"slow_delay_ms":5000,"slow_rate":0.0}"#
    );
}

/// Makes a FIFO at `path` (mkfifo(1)).
fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// `{"error_rate": rate}` padded with spaces to `bytes` bytes.
fn padded_change(bytes: usize, rate: f64) -> String {
    let change = format!(r#"{{"error_rate": {rate}}}"#);
    format!("{change}{}", " ".repeat(bytes - change.len()))
}

/// A fresh directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("myapp-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_workload_file_that_is_not_a_regular_file_of_at_most_64_kib_stops_start_up_with_one_line() {
    let dir = TempDir::new("workload-kinds");
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    let big = dir.0.join("big.json");
    std::fs::write(&big, padded_change(64 * 1024 + 1, 0.25)).unwrap();
    let regular = "the workload file must be a regular file of at most 65536 bytes";
    for (path, expected) in [
        (
            fifo.to_str().unwrap(),
            format!("not a regular file but a FIFO; {regular}"),
        ),
        (
            "/dev/zero",
            format!("not a regular file but a character device; {regular}"),
        ),
        (
            dir.0.to_str().unwrap(),
            format!("not a regular file but a directory; {regular}"),
        ),
        (
            big.to_str().unwrap(),
            "65537 bytes, more than the 65536 a workload file may hold".to_string(),
        ),
    ] {
        assert_eq!(
            crate::binary::start_up_error(&["--workload-file", path], &[]),
            format!("error: --workload-file {path}: cannot read: {expected}")
        );
    }
}

#[tokio::test]
async fn a_workload_file_of_64_kib_is_read_whole() {
    let dir = TempDir::new("workload-64k");
    let path = dir.0.join("workload.json");
    std::fs::write(&path, padded_change(64 * 1024, 0.25)).unwrap();
    let binary = Binary::start(&["--workload-file", path.to_str().unwrap()]);
    assert_eq!(error_rate(&binary).await, 0.25);
}

/// Waits until the captured logs hold `needle` `times` times (panics after 10 s).
async fn wait_for_log(logs: &myapp::telemetry::Captured, needle: &str, times: usize) {
    for _ in 0..500 {
        if logs.text().matches(needle).count() == times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "never logged {needle:?} {times} times; logs:\n{}",
        logs.text()
    );
}

/// Polls the server's `/admin/workload` until `error_rate` is `expected`
/// (panics after 10 s).
async fn wait_for_served_error_rate(server: &TestServer, expected: f64) {
    for _ in 0..500 {
        let settings: Value = server.settings().await;
        if settings["error_rate"] == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("error_rate never became {expected}");
}

/// Counts the watcher's polls of a file as the kernel reports them: each poll
/// opens the file once, and inotify reports every open of a file in the
/// watched directory (the test itself never opens the file by this name).
struct Opens {
    inotify: nix::sys::inotify::Inotify,
    name: std::ffi::OsString,
}

impl Opens {
    /// Counts the opens of `path` from now on.
    fn of(path: &std::path::Path) -> Self {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        inotify
            .add_watch(path.parent().unwrap(), AddWatchFlags::IN_OPEN)
            .unwrap();
        Self {
            inotify,
            name: path.file_name().unwrap().to_owned(),
        }
    }

    /// Waits until the file has been opened `n` times since the count began
    /// (panics after 10 s).
    async fn wait_for(&self, n: usize) {
        let mut opens = 0;
        for _ in 0..500 {
            match self.inotify.read_events() {
                Ok(events) => {
                    opens += events
                        .iter()
                        .filter(|event| event.name.as_ref() == Some(&self.name))
                        .count();
                }
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(err) => panic!("reading inotify: {err}"),
            }
            if opens >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{:?} opened {opens} times, never {n}", self.name);
    }
}

/// Waits for `warning` about the file at `path`, then for two more polls of
/// it to end (three more opens: the third begins after the second ended), and
/// checks that the warning was still logged only once.
async fn refused_once_over_two_more_polls(
    logs: &myapp::telemetry::Captured,
    path: &std::path::Path,
    warning: &str,
) {
    wait_for_log(logs, warning, 1).await;
    Opens::of(path).wait_for(3).await;
    assert_eq!(logs.text().matches(warning).count(), 1, "{}", logs.text());
}

// One thread: the captured logs are this thread's.
#[tokio::test]
async fn a_fifo_or_an_oversize_file_swapped_in_at_run_time_is_refused_once_and_later_changes_apply()
{
    let dir = TempDir::new("workload-swaps");
    let path = dir.0.join("workload.json");
    std::fs::write(&path, r#"{"error_rate": 0.125}"#).unwrap();
    // Each new version is made beside the file, then renamed over it.
    let swap_in = |make: &dyn Fn(&std::path::Path)| {
        let next = dir.0.join("next");
        make(&next);
        std::fs::rename(&next, &path).unwrap();
    };
    let mut config = work(0, 0, 0.0);
    config.workload_file = Some(path.clone());
    let server = TestServer::start(config).await;
    let (logs, _default) = myapp::telemetry::capture_logs(tracing::Level::INFO);
    wait_for_served_error_rate(&server, 0.125).await;

    let (fifo, oversize) = (
        "error=not a regular file but a FIFO;",
        "error=1048576 bytes, more than the 65536 a workload file may hold",
    );
    swap_in(&mkfifo);
    refused_once_over_two_more_polls(&logs, &path, fifo).await;
    swap_in(&|next| std::fs::write(next, r#"{"error_rate": 0.375}"#).unwrap());
    wait_for_served_error_rate(&server, 0.375).await;
    swap_in(&|next| std::fs::write(next, padded_change(1024 * 1024, 0.5)).unwrap());
    refused_once_over_two_more_polls(&logs, &path, oversize).await;
    swap_in(&|next| std::fs::write(next, r#"{"error_rate": 0.625}"#).unwrap());
    wait_for_served_error_rate(&server, 0.625).await;

    // A FIFO again, read (and logged: the good file came between), then
    // shutdown: the watcher ends, not blocked on it.
    swap_in(&mkfifo);
    wait_for_log(&logs, fifo, 2).await;
    server.shutdown.begin();
    let report = tokio::time::timeout(Duration::from_secs(10), server.run)
        .await
        .expect("the run ends once shutdown begins")
        .unwrap();
    assert_eq!(report.cut_off, 0);
    // One line for each refusal, though the file is read every second.
    let logs = logs.text();
    let refusals = logs
        .lines()
        .filter(|line| line.contains("cannot read the workload file; the settings in force stay"));
    let reasons: Vec<bool> = refusals.map(|line| line.contains(fifo)).collect();
    assert_eq!(
        reasons,
        [true, false, true],
        "FIFO, oversize, FIFO:\n{logs}"
    );
    assert_eq!(logs.matches(oversize).count(), 1, "{logs}");
}
