//! `myapp scenario`: the file's rules, the shipped scenarios, and runs of the
//! real binary against replicas that are real binaries too.
use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use myapp::scenario::file::{Offset, Scenario};
use poem::http::StatusCode;
use serde_json::{json, Value};

use crate::{
    binary::start_up_error,
    helpers::{binary, work, Binary, TestApp, TokenFile},
};

/// The cap of the replicas the file is checked against.
const CAP: u64 = 10_000;

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, CAP)
}

/// A scenario with these steps (YAML flow mappings) and `end`.
fn steps(steps: &[&str], end: &str) -> String {
    let steps: String = steps.iter().map(|step| format!("  - {step}\n")).collect();
    format!("description: test\nsteps:\n{steps}end: {end}\n")
}

#[test]
fn durations_are_whole_units_largest_first() {
    let ms = |text: &str| text.parse::<Offset>().map(|offset| offset.0.as_millis());
    assert_eq!(ms("0s"), Ok(0));
    assert_eq!(ms("300ms"), Ok(300));
    assert_eq!(ms("90s"), Ok(90_000));
    assert_eq!(ms("1m30s"), Ok(90_000));
    assert_eq!(ms("1h2m3s4ms"), Ok(3_723_004));
    for bad in [
        "", "90", "s", "1.5s", "1s1m", "1m1m", "-1s", "1 s", "1d", "1msx",
    ] {
        assert_eq!(
            ms(bad),
            Err(format!(
                "{bad:?} is not a duration: a duration is whole numbers with units h, m, s or ms, \
                 largest first, e.g. 90s, 1m30s or 300ms"
            )),
            "{bad}"
        );
    }
    // Shown in the shortest form that reads back the same.
    for (text, shown) in [
        ("90s", "1m30s"),
        ("0ms", "0s"),
        ("1500ms", "1s500ms"),
        ("60m", "1h"),
    ] {
        assert_eq!(text.parse::<Offset>().unwrap().to_string(), shown);
    }
}

#[test]
fn unknown_keys_are_refused_wherever_they_are() {
    assert_eq!(
        parse("description: t\nstep: []\nend: 1s\n"),
        Err(
            "unknown field `step`, expected one of `description`, `replicas`, `expect`, \
             `steps`, `end` at line 2 column 1"
                .into()
        )
    );
    assert_eq!(
        parse(&steps(&["{at: 0s, set: {error_rate: 0.9}, foo: 1}"], "1s")),
        Err("steps[0]: unknown field `foo`, expected `at` or `set` at line 3 column 38".into())
    );
    assert_eq!(
        parse("description: t\nexpect:\n  - {alert: A, by: 1s, within: 2s}\nsteps:\n  - {at: 0s, set: {error_rate: 1}}\nend: 1s\n"),
        Err("expect[0]: unknown field `within`, expected one of `alert`, `severity`, `fires`, `by` at line 3 column 24".into())
    );
    assert_eq!(
        parse(&steps(&["{at: 0s, set: {error_rat: 0.9}}"], "1s")),
        Err(
            "steps[0] (at 0s): set: unknown setting error_rat; the settings are min_delay_ms, \
             max_delay_ms, error_rate, slow_rate, slow_delay_ms"
                .into()
        )
    );
    assert_eq!(
        parse(&steps(&["{at: 90, set: {error_rate: 0.9}}"], "2m")),
        Err(
            "steps[0].at: \"90\" is not a duration: a duration is whole numbers with units h, \
             m, s or ms, largest first, e.g. 90s, 1m30s or 300ms at line 3 column 10"
                .into()
        )
    );
}

#[test]
fn offsets_must_increase_and_the_end_come_after_the_last() {
    let two = |second: &str, end: &str| {
        parse(&steps(
            &[
                "{at: 300ms, set: {error_rate: 0.9}}",
                &format!("{{at: {second}, set: {{error_rate: 0.8}}}}"),
            ],
            end,
        ))
    };
    assert_eq!(
        two("300ms", "1s"),
        Err("steps[1] (at 300ms): at must come after the previous step's (300ms)".into())
    );
    assert_eq!(
        two("299ms", "1s"),
        Err("steps[1] (at 299ms): at must come after the previous step's (300ms)".into())
    );
    assert!(two("301ms", "1s").is_ok());
    assert_eq!(
        two("301ms", "301ms"),
        Err("end (301ms) must come after the last step's at (301ms)".into())
    );
    assert!(two("301ms", "302ms").is_ok());
    assert_eq!(
        parse("description: t\nsteps: []\nend: 1s\n"),
        Err("steps: a scenario needs at least one step".into())
    );
    assert_eq!(
        parse(&steps(&["{at: 0s, set: {}}"], "1s")),
        Err("steps[0] (at 0s): set must name at least one setting".into())
    );
    assert_eq!(
        parse(&steps(&["{at: 0s, set: {error_rate: 1}}"], "1s").replace("test", "' '")),
        Err("description: must say what the scenario rehearses".into())
    );
}

#[test]
fn each_setting_follows_the_rules_of_the_admin_api_on_both_sides() {
    let one = |set: &str| parse(&steps(&[&format!("{{at: 0s, set: {set}}}")], "1s"));
    let refused = |set: &str, message: &str| {
        assert_eq!(
            one(set),
            Err(format!("steps[0] (at 0s): set: {message}")),
            "{set}"
        )
    };
    for ok in [
        "{error_rate: 1.0}",
        "{error_rate: 0}",
        "{slow_rate: 1}",
        "{max_delay_ms: 10000}",
        "{slow_delay_ms: 10000}",
        "{min_delay_ms: 10000, max_delay_ms: 10000}",
    ] {
        assert!(one(ok).is_ok(), "{ok}");
    }
    refused(
        "{error_rate: 1.01}",
        "error_rate must be between 0.0 and 1.0, not 1.01",
    );
    refused(
        "{slow_rate: -0.01}",
        "slow_rate must be between 0.0 and 1.0, not -0.01",
    );
    refused(
        "{max_delay_ms: 10001}",
        "max_delay_ms (10001) must not be greater than --delay-cap-ms (10000)",
    );
    refused(
        "{slow_delay_ms: 10001}",
        "slow_delay_ms (10001) must not be greater than --delay-cap-ms (10000)",
    );
    refused(
        "{min_delay_ms: 1.5}",
        "min_delay_ms must be a whole number of milliseconds, not 1.5",
    );
    refused(
        "{min_delay_ms: 501, max_delay_ms: 500}",
        "min_delay_ms (501) must not be greater than max_delay_ms (500)",
    );
    refused("[1]", "the settings must be a JSON object");
}

#[test]
fn a_step_is_checked_on_top_of_the_steps_before_it() {
    let after_min = |max: u64| {
        parse(&steps(
            &[
                "{at: 0s, set: {min_delay_ms: 500}}",
                &format!("{{at: 1s, set: {{max_delay_ms: {max}}}}}"),
            ],
            "2s",
        ))
    };
    assert!(after_min(500).is_ok());
    assert_eq!(
        after_min(499),
        Err(
            "steps[1] (at 1s): set: min_delay_ms (500) must not be greater than max_delay_ms \
             (499)"
                .into()
        )
    );
}

#[tokio::test]
async fn a_refused_step_says_what_put_admin_workload_says() {
    let app = TestApp::spawn(work(0, 100, 0.5)).await;
    for change in [
        json!({"error_rate": 2}),
        json!({"max_delay_ms": 10001}),
        json!({"min_delay_ms": -1}),
        json!({"slow_rate": "high"}),
    ] {
        let response = app
            .client
            .put("/admin/workload")
            .body_json(&change)
            .send()
            .await;
        response.assert_status(StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.value().deserialize();
        let yaml = steps(&[&format!("{{at: 0s, set: {change}}}")], "1s");
        assert_eq!(
            parse(&yaml),
            Err(format!(
                "steps[0] (at 0s): set: {}",
                body["error"].as_str().unwrap()
            ))
        );
    }
}

#[test]
fn expectations_say_by_when_an_alert_fires_or_that_it_does_not() {
    let with = |expect: &str| {
        parse(&format!(
            "description: t\nexpect:\n{expect}steps:\n  - {{at: 0s, set: {{error_rate: 1}}}}\nend: 10m\n"
        ))
    };
    assert!(with("  - {alert: A, by: 10m}\n  - {alert: B, fires: false}\n").is_ok());
    assert_eq!(
        with("  - {alert: A, by: 10m1ms}\n"),
        Err("expect[0] (A): by (10m1ms) must not come after end (10m)".into())
    );
    assert_eq!(
        with("  - {alert: A}\n"),
        Err("expect[0] (A): by must say when the alert fires at the latest".into())
    );
    assert_eq!(
        with("  - {alert: A, fires: false, by: 1m}\n"),
        Err(
            "expect[0] (A): by is for an alert that fires; this one must not (fires: false)".into()
        )
    );
    assert_eq!(
        with("  - {alert: A, by: 1m}\n  - {alert: A, fires: false}\n"),
        Err("expect[1] (A): the alert is named twice".into())
    );
}

#[test]
fn a_severity_tells_apart_the_alerts_of_one_name_and_is_named_in_messages() {
    let with = |expect: &str| {
        parse(&format!(
            "description: t\nexpect:\n{expect}steps:\n  - {{at: 0s, set: {{error_rate: 1}}}}\nend: 10m\n"
        ))
    };
    let both = with(
        "  - {alert: A, severity: page, by: 1m}\n  - {alert: A, severity: ticket, fires: false}\n",
    )
    .unwrap();
    assert_eq!(
        both.expect.iter().map(|e| e.name()).collect::<Vec<_>>(),
        ["A severity=page", "A severity=ticket"]
    );
    assert_eq!(both.expect[1].severity.as_deref(), Some("ticket"));
    assert_eq!(
        with("  - {alert: A, severity: page, by: 1m}\n  - {alert: A, severity: page, fires: false}\n"),
        Err("expect[1] (A severity=page): the alert is named twice".into())
    );
    // Without a severity an entry speaks for every severity: either order.
    assert_eq!(
        with("  - {alert: A, by: 1m}\n  - {alert: A, severity: ticket, fires: false}\n"),
        Err("expect[1] (A severity=ticket): the alert is named twice".into())
    );
    assert_eq!(
        with("  - {alert: A, severity: page, by: 1m}\n  - {alert: A, fires: false}\n"),
        Err("expect[1] (A): the alert is named twice".into())
    );
    assert_eq!(
        with("  - {alert: A, severity: '', by: 1m}\n"),
        Err("expect[0] (A severity=): severity must name a severity, or be left out".into())
    );
    assert_eq!(
        with("  - {alert: A, severity: page}\n"),
        Err("expect[0] (A severity=page): by must say when the alert fires at the latest".into())
    );
}

/// Every alert of `deploy/prometheus/rules.yml` and `slo-rules.yml`, with its
/// severity label, read with a YAML parser.
fn alerts_of_the_rules() -> BTreeSet<(String, String)> {
    [
        "deploy/prometheus/rules.yml",
        "deploy/prometheus/slo-rules.yml",
    ]
    .iter()
    .flat_map(|path| {
        let rules: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        rules["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|group| group["rules"].as_array().unwrap().clone())
            .filter_map(|rule| {
                let alert = rule["alert"].as_str()?.to_string();
                Some((alert, rule["labels"]["severity"].as_str()?.to_string()))
            })
            .collect::<Vec<_>>()
    })
    .collect()
}

#[test]
fn every_shipped_scenario_is_valid_and_names_only_alerts_of_the_rules() {
    let alerts = alerts_of_the_rules();
    // 5 threshold alerts, and a page and a ticket alert for each of the 2 SLOs.
    assert_eq!(alerts.len(), 9, "{alerts:?}");
    let mut names = Vec::new();
    for entry in std::fs::read_dir("scenarios").unwrap() {
        let path = entry.unwrap().path();
        let scenario = Scenario::load(&path, CAP).unwrap_or_else(|err| panic!("{err}"));
        for expect in &scenario.expect {
            assert!(
                alerts.iter().any(|(alert, severity)| *alert == expect.alert
                    && expect.severity.as_ref().is_none_or(|s| s == severity)),
                "{}: {}",
                path.display(),
                expect.name()
            );
        }
        // within-budget.yaml is the one whose point is that nothing fires.
        assert_eq!(
            scenario.expect.iter().any(|expect| expect.fires),
            !path.ends_with("within-budget.yaml"),
            "{}",
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "error-spike.yaml",
            "fast-burn.yaml",
            "latency-tail.yaml",
            "recovery.yaml",
            "sick-replica.yaml",
            "slow-burn.yaml",
            "within-budget.yaml"
        ]
    );
}

/// A scenario file, removed when dropped.
struct ScenarioFile(PathBuf);

impl ScenarioFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "myapp-test-{}-scenario-{name}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ScenarioFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn dry_run_prints_the_timeline_and_contacts_nothing() {
    let file = ScenarioFile::new(
        "dry",
        "description: >-\n  Two\n  lines.\nexpect:\n  - {alert: MyappHighErrorRatio, by: 7m30s}\n  \
         - {alert: MyappHighLatencyP99, fires: false}\nsteps:\n  - {at: 0s, set: {error_rate: 0.9, \
         slow_rate: 0}}\n  - {at: 90s, set: {max_delay_ms: 50}}\nend: 10m\n",
    );
    // An --admin that nothing listens on: a dry run never reaches it.
    let output = binary()
        .args([
            "scenario",
            file.path(),
            "--dry-run",
            "--admin",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!(
            "{}: Two lines.\n\
             replicas: every\n\
             at 0s: set {{\"error_rate\":0.9,\"slow_rate\":0}}\n\
             at 1m30s: set {{\"max_delay_ms\":50}}\n\
             at 10m: end, settings from before restored\n\
             expect MyappHighErrorRatio to fire by 7m30s\n\
             expect MyappHighLatencyP99 not to fire\n",
            file.path()
        )
    );
}

#[test]
fn a_bad_file_or_option_is_one_line_and_exit_2() {
    let bad = ScenarioFile::new(
        "bad",
        &steps(
            &[
                "{at: 1s, set: {error_rate: 0.9}}",
                "{at: 1s, set: {error_rate: 2}}",
            ],
            "2s",
        ),
    );
    assert_eq!(
        start_up_error(&["scenario", bad.path(), "--dry-run"], &[]),
        format!(
            "error: {}: steps[1] (at 1s): at must come after the previous step's (1s)",
            bad.path()
        )
    );
    let good = ScenarioFile::new("good", &steps(&["{at: 0s, set: {error_rate: 0.9}}"], "1s"));
    assert_eq!(
        start_up_error(&["scenario", good.path()], &[]),
        "error: the following required arguments were not provided: --admin <URL>"
    );
    assert_eq!(
        start_up_error(&["scenario", good.path(), "--admin", "localhost:8081"], &[]),
        "error: invalid value 'localhost:8081' for '--admin <URL>': expected an http:// or \
         https:// URL with a host, e.g. http://HOST:8081"
    );
    assert_eq!(
        start_up_error(&["scenario", "/nonexistent/s.yaml", "--dry-run"], &[]),
        "error: /nonexistent/s.yaml: cannot read: No such file or directory (os error 2)"
    );
    // The env twin of the file, and a secret file that is not there.
    assert_eq!(
        start_up_error(
            &["scenario", "--token-file", "/nonexistent/token"],
            &[("MYAPP_SCENARIO_FILE", good.path()), ("MYAPP_SCENARIO_ADMIN", "http://127.0.0.1:9")]
        ),
        "error: --token-file /nonexistent/token: cannot read: No such file or directory (os error 2)"
    );
}

/// `myapp scenario ARGS` running, its stdout lines read as they come, with
/// the time each arrived.
struct Run {
    child: Child,
    lines: std::sync::mpsc::Receiver<(Instant, String)>,
}

impl Run {
    fn start(args: &[&str]) -> Self {
        let mut child = binary()
            .arg("scenario")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = send.send((Instant::now(), line));
            }
        });
        Self { child, lines }
    }

    /// The next line of stdout (bounded: 10 s).
    fn line(&self) -> (Instant, String) {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line within 10 s")
    }

    /// Waits for the exit (bounded: 10 s); the code and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "still running after 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (self.child.wait().unwrap().code(), stderr)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /admin/workload` of `replica`, with `token` if any.
async fn settings(replica: &Binary, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(replica.url("/admin/workload"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn origin(replica: &Binary) -> String {
    replica.url("")
}

/// What the replicas are started with, as `GET /admin/workload` shows it.
fn started(min: u64, max: u64, error: f64, slow: f64, slow_delay: u64) -> Value {
    json!({"min_delay_ms": min, "max_delay_ms": max, "error_rate": error,
           "slow_rate": slow, "slow_delay_ms": slow_delay})
}

#[tokio::test]
async fn each_step_lands_on_every_replica_at_its_offset_then_all_is_restored() {
    let a = Binary::start(&["--error-rate", "0.25", "--max-delay-ms", "300"]);
    let b = Binary::start(&["--slow-rate", "0.1", "--slow-delay-ms", "700"]);
    let before_a = started(0, 300, 0.25, 0.0, 5000);
    let before_b = started(0, 2000, 0.5, 0.1, 700);
    let file = ScenarioFile::new(
        "offsets",
        &steps(
            &[
                "{at: 0s, set: {error_rate: 0.9}}",
                "{at: 400ms, set: {max_delay_ms: 50}}",
                "{at: 800ms, set: {slow_rate: 0.5, slow_delay_ms: 60}}",
            ],
            "1200ms",
        ),
    );
    let run = Run::start(&[file.path(), "--admin", &origin(&a), "--admin", &origin(&b)]);
    assert_eq!(
        run.line().1,
        format!("before, {}: {}", origin(&a), before_a)
    );
    assert_eq!(
        run.line().1,
        format!("before, {}: {}", origin(&b), before_b)
    );
    // Each step, as its line says it landed: on both replicas, and the
    // settings stay until the next step (400 ms later).
    let mut expected = [before_a.clone(), before_b.clone()];
    let changes = [
        ("0s", json!({"error_rate": 0.9})),
        ("400ms", json!({"max_delay_ms": 50})),
        ("800ms", json!({"slow_rate": 0.5, "slow_delay_ms": 60})),
    ];
    let mut first = None;
    for (index, (at, change)) in changes.iter().enumerate() {
        let (when, line) = run.line();
        assert_eq!(line, format!("at {at} on 2 replicas: set {change}"));
        let first = *first.get_or_insert(when);
        // Not before its offset, counted from the first step's line (which
        // came after the first step's requests: hence 50 ms of slack).
        let offset = Duration::from_millis(400 * index as u64);
        assert!(when - first + Duration::from_millis(50) >= offset, "{at}");
        for (settings, replica) in expected.iter_mut().zip([&a, &b]) {
            for (key, value) in change.as_object().unwrap() {
                settings[key] = value.clone();
            }
            assert_eq!(&self::settings(replica, None).await, settings, "{at}");
        }
        if index == 0 {
            // Halfway to the next step, nothing else has changed.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(settings(&a, None).await, expected[0]);
        }
    }
    assert_eq!(
        run.line().1,
        "at 1s200ms on 2 replicas: end, settings from before restored"
    );
    assert_eq!(run.finish(), (Some(0), String::new()));
    assert_eq!(settings(&a, None).await, before_a);
    assert_eq!(settings(&b, None).await, before_b);
}

#[tokio::test]
async fn a_step_one_replica_refuses_is_undone_on_the_others_and_the_run_stops() {
    let a = Binary::start(&["--error-rate", "0.25", "--max-delay-ms", "300"]);
    // Its cap refuses the second step's delay, which the file's cap allows.
    let b = Binary::start(&[
        "--delay-cap-ms",
        "400",
        "--max-delay-ms",
        "400",
        "--slow-delay-ms",
        "400",
    ]);
    let before_a = started(0, 300, 0.25, 0.0, 5000);
    let before_b = started(0, 400, 0.5, 0.0, 400);
    let file = ScenarioFile::new(
        "refused",
        &steps(
            &[
                "{at: 0s, set: {error_rate: 0.9}}",
                "{at: 300ms, set: {error_rate: 0.1, slow_rate: 0.2, slow_delay_ms: 500}}",
            ],
            "10s",
        ),
    );
    // The replicas through the env twin, comma-separated.
    let admin = format!("{},{}", origin(&a), origin(&b));
    let mut command = binary();
    command
        .args(["scenario", file.path()])
        .env("MYAPP_SCENARIO_ADMIN", &admin);
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().last(),
        Some("at 0s on 2 replicas: set {\"error_rate\":0.9}"),
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: steps[1] (at 300ms): {} refused: 400 Bad Request: slow_delay_ms (500) must \
             not be greater than --delay-cap-ms (400); the step was undone and every replica put \
             back to its settings from before the scenario\n",
            origin(&b)
        )
    );
    assert_eq!(settings(&a, None).await, before_a);
    assert_eq!(settings(&b, None).await, before_b);
}

#[tokio::test]
async fn a_replica_that_wants_a_token_the_run_lacks_stops_it_before_any_change() {
    let token = TokenFile::new("scenario-lacking", "s3cret-scenario");
    let a = Binary::start(&["--error-rate", "0.25"]);
    let b = Binary::start(&["--metrics-token-file", token.path.to_str().unwrap()]);
    let file = ScenarioFile::new(
        "lacking",
        &steps(&["{at: 0s, set: {error_rate: 0.9}}"], "10s"),
    );
    let output = binary()
        .args([
            "scenario",
            file.path(),
            "--admin",
            &origin(&a),
            "--admin",
            &origin(&b),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: {}: 401 Unauthorized: the replica wants credentials (--token-file, or \
             --basic-auth-user and --basic-auth-password-file); nothing changed\n",
            origin(&b)
        )
    );
    assert_eq!(settings(&a, None).await, started(0, 2000, 0.25, 0.0, 5000));
    assert_eq!(
        settings(&b, Some("s3cret-scenario")).await,
        started(0, 2000, 0.5, 0.0, 5000)
    );
}

#[tokio::test]
async fn sigint_and_sigterm_restore_every_replica_then_exit_as_a_shell_reports_them() {
    let token = TokenFile::new("scenario-signal", "s3cret-signal");
    let token_path = token.path.to_str().unwrap();
    let a = Binary::start(&["--metrics-token-file", token_path, "--error-rate", "0.25"]);
    let b = Binary::start(&["--metrics-token-file", token_path, "--min-delay-ms", "5"]);
    let before_a = started(0, 2000, 0.25, 0.0, 5000);
    let before_b = started(5, 2000, 0.5, 0.0, 5000);
    let file = ScenarioFile::new(
        "signal",
        &steps(
            &[
                "{at: 0s, set: {error_rate: 1.0, max_delay_ms: 10}}",
                "{at: 20s, set: {error_rate: 0}}",
            ],
            "30s",
        ),
    );
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let run = Run::start(&[
            file.path(),
            "--admin",
            &origin(&a),
            "--admin",
            &origin(&b),
            "--token-file",
            token_path,
        ]);
        run.line();
        run.line();
        assert_eq!(
            run.line().1,
            "at 0s on 2 replicas: set {\"error_rate\":1.0,\"max_delay_ms\":10}"
        );
        assert_eq!(settings(&a, Some("s3cret-signal")).await["error_rate"], 1.0);
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &run.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let line = run.line().1;
        assert!(
            line.ends_with(&format!(
                " on 2 replicas: SIG{signal}, settings from before restored"
            )),
            "{line}"
        );
        let (exit, stderr) = run.finish();
        assert_eq!((exit, stderr.as_str()), (Some(code), ""), "SIG{signal}");
        assert_eq!(settings(&a, Some("s3cret-signal")).await, before_a);
        assert_eq!(settings(&b, Some("s3cret-signal")).await, before_b);
    }
}

#[tokio::test]
async fn basic_auth_credentials_reach_the_replica_and_are_never_printed() {
    // A bcrypt hash of "pw" made by Python's bcrypt (as tests/api/web_config.rs).
    let web = ScenarioFile::new(
        "web-config",
        "basic_auth_users: {prometheus: $2b$04$kPK.7DmElstOowpWSYgFkOKfgpLVjQ4p074QPUmzaXDIsmB535cZG}",
    );
    let password = TokenFile::new("scenario-password", "pw");
    let replica = Binary::start(&["--web-config-file", web.path()]);
    let file = ScenarioFile::new(
        "basic",
        &steps(&["{at: 0s, set: {error_rate: 0.9}}"], "300ms"),
    );
    let run = |user: &str| {
        binary()
            .args(["scenario", file.path(), "--admin", &origin(&replica)])
            .args(["--basic-auth-user", user])
            .args([
                "--basic-auth-password-file",
                password.path.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let output = run("prometheus");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.lines().skip(1).collect::<Vec<_>>(),
        [
            "at 0s on 1 replica: set {\"error_rate\":0.9}",
            "at 300ms on 1 replica: end, settings from before restored"
        ]
    );
    let output = run("someone");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: {}: 401 Unauthorized: the replica wants credentials (--token-file, or \
             --basic-auth-user and --basic-auth-password-file); nothing changed\n",
            origin(&replica)
        )
    );
    assert!(!stdout.contains("pw") && !stderr.contains("pw"));
    let settings = reqwest::Client::new()
        .get(replica.url("/admin/workload"))
        .basic_auth("prometheus", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        settings.json::<Value>().await.unwrap(),
        started(0, 2000, 0.5, 0.0, 5000)
    );
}

#[tokio::test]
async fn a_scenario_for_one_replica_refuses_to_run_on_two() {
    let a = Binary::start(&["--error-rate", "0.25"]);
    let b = Binary::start(&[]);
    let text = format!(
        "replicas: one\n{}",
        steps(&["{at: 0s, set: {error_rate: 0.9}}"], "300ms")
    );
    let file = ScenarioFile::new("one", &text);
    let run = |admins: &[&str]| {
        let mut command = binary();
        command.args(["scenario", file.path()]);
        for admin in admins {
            command.args(["--admin", admin]);
        }
        command.output().unwrap()
    };
    let output = run(&[&origin(&a), &origin(&b)]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: {}: replicas: one, but --admin names 2 replicas ({}, {}): name one \
             replica's URL\n",
            file.path(),
            origin(&a),
            origin(&b)
        )
    );
    assert_eq!(settings(&a, None).await, started(0, 2000, 0.25, 0.0, 5000));
    assert_eq!(settings(&b, None).await, started(0, 2000, 0.5, 0.0, 5000));
    // One is what it is for.
    let output = run(&[&origin(&a)]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(settings(&a, None).await, started(0, 2000, 0.25, 0.0, 5000));
    assert_eq!(
        parse(&format!(
            "replicas: some\n{}",
            steps(&["{at: 0s, set: {error_rate: 1}}"], "1s")
        )),
        Err(
            "replicas: unknown variant `some`, expected `every` or `one` at line 1 column 11"
                .into()
        )
    );
}

#[test]
fn every_option_has_an_env_twin() {
    let file = ScenarioFile::new("env", &steps(&["{at: 0s, set: {max_delay_ms: 200}}"], "1s"));
    let env = |extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("MYAPP_SCENARIO_FILE", file.path().to_string()),
            ("MYAPP_SCENARIO_ADMIN", "http://127.0.0.1:9".to_string()),
        ];
        env.extend(extra.iter().map(|(key, value)| (*key, value.to_string())));
        env
    };
    let output = binary()
        .arg("scenario")
        .envs(env(&[("MYAPP_SCENARIO_DRY_RUN", "true")]))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8(output.stdout)
        .unwrap()
        .starts_with(&format!("{}: test\n", file.path())));
    let error = |extra: &[(&'static str, &str)]| {
        let env = env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_up_error(&["scenario"], &env)
    };
    assert_eq!(
        error(&[("MYAPP_DELAY_CAP_MS", "199")]),
        format!(
            "error: {}: steps[0] (at 0s): set: max_delay_ms (200) must not be greater than \
             --delay-cap-ms (199)",
            file.path()
        )
    );
    let missing = "No such file or directory (os error 2)";
    assert_eq!(
        error(&[("MYAPP_SCENARIO_TOKEN_FILE", "/nonexistent/t")]),
        format!("error: --token-file /nonexistent/t: cannot read: {missing}")
    );
    assert_eq!(
        error(&[
            ("MYAPP_SCENARIO_BASIC_AUTH_USER", "u"),
            ("MYAPP_SCENARIO_BASIC_AUTH_PASSWORD_FILE", "/nonexistent/p")
        ]),
        format!("error: --basic-auth-password-file /nonexistent/p: cannot read: {missing}")
    );
    assert_eq!(
        error(&[("MYAPP_SCENARIO_CA_FILE", "/nonexistent/ca.pem")]),
        format!("error: --ca-file /nonexistent/ca.pem: cannot read: {missing}")
    );
}

#[tokio::test]
async fn steps_a_replicas_own_settings_would_refuse_stop_the_run_before_any_change() {
    let a = Binary::start(&["--error-rate", "0.25"]);
    let b = Binary::start(&["--max-delay-ms", "100"]);
    // Valid on its own (the file does not set max_delay_ms), not on b, whose maximum is 100.
    let file = ScenarioFile::new(
        "own",
        &steps(
            &[
                "{at: 0s, set: {error_rate: 0.9}}",
                "{at: 1s, set: {min_delay_ms: 101}}",
            ],
            "2s",
        ),
    );
    let output = binary()
        .args([
            "scenario",
            file.path(),
            "--admin",
            &origin(&a),
            "--admin",
            &origin(&b),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: {}: steps[1] (at 1s): set: min_delay_ms (101) must not be greater than \
             max_delay_ms (100), on {}, whose settings are {}; nothing changed\n",
            file.path(),
            origin(&b),
            started(0, 100, 0.5, 0.0, 5000)
        )
    );
    assert_eq!(settings(&a, None).await, started(0, 2000, 0.25, 0.0, 5000));
    assert_eq!(settings(&b, None).await, started(0, 100, 0.5, 0.0, 5000));
    // Just inside b's maximum, the file runs.
    let file = ScenarioFile::new(
        "own-ok",
        &steps(&["{at: 0s, set: {min_delay_ms: 100}}"], "100ms"),
    );
    let output = binary()
        .args(["scenario", file.path(), "--admin", &origin(&b)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}
