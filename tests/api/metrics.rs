use poem::http::StatusCode;

use crate::helpers::{assert_histogram_grew, work, TestApp};

#[tokio::test]
async fn counter_counts_each_status_the_client_saw() {
    let app = TestApp::spawn(work(0, 2, 0.5)).await;
    let before = app.scrape().await;
    let mut seen = [0u64; 2];
    for _ in 0..300 {
        match app.get("/work").await.0.status() {
            StatusCode::OK => seen[0] += 1,
            StatusCode::INTERNAL_SERVER_ERROR => seen[1] += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let after = app.scrape().await;
    assert_eq!(after.processed("200") - before.processed("200"), seen[0]);
    assert_eq!(after.processed("500") - before.processed("500"), seen[1]);
    assert_histogram_grew(&before, &after, 300, 0, 2);
    assert_eq!(after.in_flight(), 0);
}

#[tokio::test]
async fn histogram_puts_each_request_in_the_bucket_of_its_delay() {
    // 300 ms lies between the 0.2 and 0.3 bucket edges... and the sleep plus
    // overhead stays below 0.4.
    let app = TestApp::spawn(work(300, 300, 0.0)).await;
    let before = app.scrape().await.duration();
    let requests = (0..5).map(|_| app.get("/work"));
    futures_util::future::join_all(requests).await;
    let after = app.scrape().await.duration();
    let grew = |le: f64| after.bucket(le) - before.bucket(le);
    assert_eq!(
        (grew(0.2), grew(0.3), grew(0.4), grew(f64::INFINITY)),
        (0, 0, 5, 5)
    );
    let sum = after.sum - before.sum;
    assert!(
        (1.5..2.0).contains(&sum),
        "sum of five 300 ms requests: {sum}"
    );
}

#[tokio::test]
async fn only_work_is_counted() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let before = app.scrape().await;
    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/docs",
        "/openapi.json",
        "/openapi.yaml",
    ] {
        app.get(path).await.assert_status_is_ok();
    }
    app.get("/nope").await.assert_status(StatusCode::NOT_FOUND);
    app.client
        .post("/work")
        .send()
        .await
        .assert_status(StatusCode::METHOD_NOT_ALLOWED);
    let after = app.scrape().await;
    assert_eq!(after.duration().count, before.duration().count);
    for status in ["200", "404", "405", "500"] {
        assert_eq!(
            after.processed(status),
            before.processed(status),
            "status {status}"
        );
    }
}

#[tokio::test]
async fn metrics_are_served_in_the_text_format_with_its_content_type() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let response = app.get("/metrics").await;
    response.assert_status_is_ok();
    response.assert_content_type("text/plain; version=0.0.4; charset=utf-8; escaping=underscores");
    let text = response.0.into_body().into_string().await.unwrap();
    for line in [
        "# HELP myapp_processed_ops_total The total number of processed events",
        "# TYPE myapp_processed_ops_total counter",
        "# TYPE myapp_request_duration_seconds histogram",
        "# TYPE myapp_requests_in_flight gauge",
        "myapp_build_info{version=\"0.1.0\"} 1",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
}
