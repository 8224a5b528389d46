//! `examples/by_route.rs`, driven in-process through `by_route::app()`. A
//! process of its own (`examples/seed.rs` registers the same names with other
//! labels).
use poem::{http::StatusCode, test::TestClient, Endpoint};
use prometheus_parse::{Scrape, Value};
use tokio::sync::Mutex;

#[allow(dead_code)] // its `main` serves; the tests call `app()`
#[path = "../examples/by_route.rs"]
mod by_route;

const PROCESSED: &str = "myapp_processed_ops_total";
const DURATION_COUNT: &str = "myapp_request_duration_seconds_count";

// The template of `#[oai(path = "/users/:id")]` as poem's router holds it:
// poem-openapi renames each path variable `param0`, `param1`… (the spec keeps
// `/users/{id}`).
const USERS_ROUTE: &str = "/users/:param0";

// Each test reads what its own requests added to the process-wide metrics:
// one test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// `/metrics`, parsed by a parser we did not write.
async fn scrape(client: &TestClient<impl Endpoint>) -> Scrape {
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    let text = response.0.into_body().into_string().await.unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap()
}

/// The value of the series of `metric` labelled `{route, status}`; 0 when it
/// has none yet.
fn value(scrape: &Scrape, metric: &str, route: &str, status: &str) -> f64 {
    let series = scrape.samples.iter().find(|sample| {
        sample.metric == metric
            && sample.labels.len() == 2
            && sample.labels.get("route") == Some(route)
            && sample.labels.get("status") == Some(status)
    });
    match series.map(|sample| &sample.value) {
        None => 0.0,
        Some(Value::Counter(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{metric}: not a counter or a count: {other:?}"),
    }
}

/// What the requests between two scrapes added to the counter and to the
/// histogram's count of `{route, status}`.
fn added(before: &Scrape, after: &Scrape, route: &str, status: &str) -> (f64, f64) {
    let delta = |metric| value(after, metric, route, status) - value(before, metric, route, status);
    (delta(PROCESSED), delta(DURATION_COUNT))
}

/// Every label value of every series of the scrape.
fn label_values(scrape: &Scrape) -> Vec<&str> {
    let labels = scrape
        .samples
        .iter()
        .flat_map(|sample| sample.labels.values());
    labels.map(String::as_str).collect()
}

/// The status of `GET path`.
async fn get(client: &TestClient<impl Endpoint>, path: &str) -> StatusCode {
    client.get(path).send().await.0.status()
}

#[tokio::test]
async fn users_1_and_2_are_one_series_labelled_with_the_route_template() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(by_route::app());
    let before = scrape(&client).await;

    for (id, name) in [(1, "ada"), (2, "grace")] {
        let response = client.get(format!("/users/{id}")).send().await;
        response.assert_status_is_ok();
        response
            .assert_json(serde_json::json!({ "name": name }))
            .await;
    }

    let after = scrape(&client).await;
    assert_eq!(added(&before, &after, USERS_ROUTE, "200"), (2.0, 2.0));
    let values = label_values(&after);
    let users: Vec<_> = values.iter().filter(|v| v.starts_with("/users/")).collect();
    assert!(
        !users.is_empty() && users.iter().all(|v| **v == USERS_ROUTE),
        "{users:?}"
    );
    assert!(!values
        .iter()
        .any(|v| v.contains("/users/1") || v.contains("/users/2")));
}

#[tokio::test]
async fn an_unmatched_path_is_labelled_none_and_never_by_its_path() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(by_route::app());
    let before = scrape(&client).await;

    for path in ["/nope", "/nope/1", "/users/1/extra"] {
        assert_eq!(get(&client, path).await, StatusCode::NOT_FOUND, "{path}");
    }

    let after = scrape(&client).await;
    assert_eq!(added(&before, &after, "none", "404"), (3.0, 3.0));
    let values = label_values(&after);
    let raw: Vec<_> = values
        .iter()
        .filter(|v| v.contains("nope") || v.contains("extra"))
        .collect();
    assert_eq!(raw, Vec::<&&str>::new());
}

#[tokio::test]
async fn a_matched_route_keeps_its_template_whatever_it_answers() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(by_route::app());
    let before = scrape(&client).await;

    // No user 4: the operation's own 404. Not a number: poem-openapi's 400.
    assert_eq!(get(&client, "/users/4").await, StatusCode::NOT_FOUND);
    assert_eq!(get(&client, "/users/x").await, StatusCode::BAD_REQUEST);
    let post = client.post("/users/1").send().await;
    post.assert_status(StatusCode::METHOD_NOT_ALLOWED);

    let after = scrape(&client).await;
    assert_eq!(added(&before, &after, USERS_ROUTE, "404"), (1.0, 1.0));
    assert_eq!(added(&before, &after, USERS_ROUTE, "400"), (1.0, 1.0));
    assert_eq!(added(&before, &after, USERS_ROUTE, "405"), (1.0, 1.0));
    assert_eq!(added(&before, &after, "none", "404"), (0.0, 0.0));
}

#[tokio::test]
async fn work_counts_each_status_the_client_saw_under_its_route() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(by_route::app());
    let before = scrape(&client).await;

    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&client, "/work").await);
    }

    let after = scrape(&client).await;
    let saw = |status| statuses.iter().filter(|s| **s == status).count() as f64;
    let (ok, failed) = (saw(StatusCode::OK), saw(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(ok + failed, 20.0, "{statuses:?}");
    assert_eq!(added(&before, &after, "/work", "200"), (ok, ok));
    assert_eq!(added(&before, &after, "/work", "500"), (failed, failed));
}

#[tokio::test]
async fn a_scrape_is_counted_under_the_metrics_route() {
    let _serial = SERIAL.lock().await;
    let client = TestClient::new(by_route::app());
    let before = scrape(&client).await;

    let after = scrape(&client).await;
    // `before` was recorded once its answer was out, so before `after` was read.
    assert_eq!(added(&before, &after, "/metrics", "200"), (1.0, 1.0));
}
