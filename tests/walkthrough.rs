//! The seed's walk-through, in a process of its own so that the process-wide
//! metrics start from zero.
use myapp::{
    config::Config,
    metrics,
    server::shutdown::Shutdown,
    startup::{app, AppState},
};
use poem::test::TestClient;

async fn scrape<E: poem::Endpoint>(client: &TestClient<E>) -> String {
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    response.0.into_body().into_string().await.unwrap()
}

fn client(error_rate: f64) -> TestClient<impl poem::Endpoint> {
    let mut config = Config::defaults();
    (config.min_delay_ms, config.max_delay_ms, config.error_rate) = (0, 0, error_rate);
    config.max_in_flight = 10;
    let metrics = metrics::init(&config.buckets.0, config.native_histogram_bucket_factor);
    TestClient::new(app(&AppState::new(&config, Shutdown::default(), metrics)))
}

#[tokio::test]
async fn four_200s_and_one_500_give_the_seed_lines() {
    metrics::init(&Config::defaults().buckets.0, 1.1);
    let (succeeds, fails) = (client(0.0), client(1.0));

    let first = scrape(&succeeds).await;
    assert!(
        first.contains(concat!(
            "myapp_processed_ops_total{status=\"200\"} 0\n",
            "myapp_processed_ops_total{status=\"500\"} 0\n",
        )),
        "{first}"
    );
    assert!(
        first.contains("myapp_request_duration_seconds_count 0\n"),
        "{first}"
    );

    for _ in 0..4 {
        succeeds.get("/work").send().await.assert_status_is_ok();
    }
    fails
        .get("/work")
        .send()
        .await
        .assert_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR);

    let text = scrape(&succeeds).await;
    assert!(
        text.contains(concat!(
            "# HELP myapp_processed_ops_total The total number of processed events\n",
            "# TYPE myapp_processed_ops_total counter\n",
            "myapp_processed_ops_total{status=\"200\"} 4\n",
            "myapp_processed_ops_total{status=\"500\"} 1\n",
        )),
        "{text}"
    );
    assert!(
        text.contains("myapp_request_duration_seconds_bucket{le=\"0.005\"} 5\n"),
        "{text}"
    );
    assert!(
        text.contains("myapp_request_duration_seconds_bucket{le=\"+Inf\"} 5\n"),
        "{text}"
    );
    assert!(
        text.contains("myapp_request_duration_seconds_count 5\n"),
        "{text}"
    );
}
