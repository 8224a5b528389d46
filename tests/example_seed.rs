//! `examples/seed.rs`, driven in-process through `seed::app()`. A process of
//! its own (`examples/by_route.rs` registers the same names with other labels).
use std::time::Duration;

use futures_util::future::join_all;
use poem::{http::StatusCode, test::TestClient, Endpoint};
use prometheus_parse::{Scrape, Value};
use tokio::sync::Mutex;

#[allow(dead_code)] // its `main` serves; the tests call `app()`
#[path = "../examples/seed.rs"]
mod seed;

const PROCESSED: &str = "myapp_processed_ops_total";

// Each test reads what its own requests added to the process-wide metrics:
// one test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// `/metrics`, parsed by a parser we did not write.
async fn scrape(client: &TestClient<impl Endpoint>) -> Scrape {
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    response.assert_content_type("text/plain; version=0.0.4");
    let text = response.0.into_body().into_string().await.unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap()
}

/// The value of the series of `metric` with exactly these labels; 0 when it
/// has none yet (a label value appears at its first request).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let series = scrape.samples.iter().find(|sample| {
        let same = |(name, value): &(&str, &str)| sample.labels.get(name) == Some(value);
        sample.metric == metric && sample.labels.len() == labels.len() && labels.iter().all(same)
    });
    match series.map(|sample| &sample.value) {
        None => 0.0,
        Some(Value::Counter(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{metric}: not a counter or a count: {other:?}"),
    }
}

/// What the requests between two scrapes added to the counter of each status
/// the seed can record, and to the histogram's count.
fn added(before: &Scrape, after: &Scrape) -> [(&'static str, f64); 5] {
    let delta = |metric, labels: &[_]| value(after, metric, labels) - value(before, metric, labels);
    let status = |status| (status, delta(PROCESSED, &[("status", status)]));
    let count = delta("myapp_request_duration_seconds_count", &[]);
    [
        status("200"),
        status("500"),
        status("499"),
        status("400"),
        ("count", count),
    ]
}

/// What the requests between two scrapes added to the histogram's sum.
fn seconds_added(before: &Scrape, after: &Scrape) -> f64 {
    let sum = "myapp_request_duration_seconds_sum";
    value(after, sum, &[]) - value(before, sum, &[])
}

/// Sends `GET /work?{query}`; its status and the `delay_ms` of its body,
/// after checking that the body is the one of its status.
async fn work(client: &TestClient<impl Endpoint>, query: &str) -> (StatusCode, f64) {
    let response = client.get(format!("/work?{query}")).send().await;
    let status = response.0.status();
    let json = response.json().await;
    let body = json.value().object();
    match status {
        StatusCode::OK => body.assert_len(1),
        StatusCode::INTERNAL_SERVER_ERROR => body.get("error").assert_string("simulated failure"),
        other => panic!("/work answered {other}"),
    }
    (status, body.get("delay_ms").i64() as f64)
}

/// How many of `statuses` are 200 and how many are 500.
fn ok_and_failed(statuses: impl IntoIterator<Item = StatusCode>) -> (f64, f64) {
    let statuses: Vec<_> = statuses.into_iter().collect();
    let count = |status| statuses.iter().filter(|s| **s == status).count() as f64;
    (
        count(StatusCode::OK),
        count(StatusCode::INTERNAL_SERVER_ERROR),
    )
}

#[tokio::test]
async fn counter_counts_each_status_the_client_saw() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(seed::app());
    let before = scrape(&client).await;

    // Concurrent, at random delays (up to 1 s each): about 1 s in all.
    let answers = join_all((0..20).map(|_| work(&client, ""))).await;

    let after = scrape(&client).await;
    let (ok, failed) = ok_and_failed(answers.iter().map(|(status, _)| *status));
    let expected = [
        ("200", ok),
        ("500", failed),
        ("499", 0.0),
        ("400", 0.0),
        ("count", 20.0),
    ];
    assert_eq!(added(&before, &after), expected);
    let slept_ms: f64 = answers.iter().map(|(_, delay_ms)| delay_ms).sum();
    let seconds = seconds_added(&before, &after);
    assert!(
        seconds >= slept_ms / 1000.0,
        "{seconds} s recorded, {slept_ms} ms slept"
    );
    assert_eq!(
        after.docs[PROCESSED],
        "The total number of processed events"
    );
    assert_eq!(
        after.docs["myapp_request_duration_seconds"],
        "Time taken to answer a /work request, in seconds"
    );
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_counts_once_as_499() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(seed::app());
    let before = scrape(&client).await;

    // The client gives up after 50 ms on a request that takes 1 s: its
    // future is dropped, as the server drops it when the client disconnects.
    let request = client.get("/work").query("delay_ms", &1000).send();
    let waited = Duration::from_millis(50);
    let timed_out = tokio::time::timeout(waited, request).await.is_err();
    assert!(timed_out, "answered within {waited:?}");

    let after = scrape(&client).await;
    let expected = [
        ("200", 0.0),
        ("500", 0.0),
        ("499", 1.0),
        ("400", 0.0),
        ("count", 1.0),
    ];
    assert_eq!(added(&before, &after), expected);
    let seconds = seconds_added(&before, &after);
    assert!(seconds >= waited.as_secs_f64(), "{seconds} s recorded");
}

#[tokio::test]
async fn delay_ms_is_accepted_up_to_1000_and_refused_above() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(seed::app());
    let before = scrape(&client).await;

    let refused = client.get("/work").query("delay_ms", &1001).send().await;
    refused.assert_status(StatusCode::BAD_REQUEST);
    let (status, delay_ms) = work(&client, "delay_ms=1000").await;

    let after = scrape(&client).await;
    assert_eq!(delay_ms, 1000.0);
    let (ok, failed) = ok_and_failed([status]);
    let expected = [
        ("200", ok),
        ("500", failed),
        ("499", 0.0),
        ("400", 1.0),
        ("count", 2.0),
    ];
    assert_eq!(added(&before, &after), expected);
    let seconds = seconds_added(&before, &after);
    assert!(seconds >= 1.0, "{seconds} s recorded");
}

#[tokio::test]
async fn two_apps_in_one_process_record_into_the_same_metrics() {
    let _serial = SERIAL.lock().await;
    let (first, second) = (TestClient::new(seed::app()), TestClient::new(seed::app()));
    let before = scrape(&first).await;

    let (status, _) = work(&second, "delay_ms=0").await;

    let after = scrape(&first).await;
    let (ok, failed) = ok_and_failed([status]);
    let expected = [
        ("200", ok),
        ("500", failed),
        ("499", 0.0),
        ("400", 0.0),
        ("count", 1.0),
    ];
    assert_eq!(added(&before, &after), expected);
}
