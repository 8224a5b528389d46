//! A scrape whose metrics cannot be encoded: answered 500 with the reason,
//! logged, and counted as `code="500"`. In a process of its own, since it
//! puts a broken collector in the process-wide default registry.
use myapp::{
    config::Config,
    metrics,
    server::shutdown::Shutdown,
    startup::{app, AppState},
    telemetry::capture_logs,
};
use poem::test::TestClient;
use prometheus::{
    core::{Collector, Desc},
    proto::{Gauge, Metric, MetricFamily, MetricType},
};

/// Collects one gauge in a family without a name, which the encoders refuse.
struct Nameless(Desc);

impl Collector for Nameless {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut metric = Metric::default();
        let mut gauge = Gauge::default();
        gauge.set_value(1.0);
        metric.set_gauge(gauge);
        let mut family = MetricFamily::default();
        family.set_field_type(MetricType::GAUGE);
        family.mut_metric().push(metric);
        vec![family]
    }
}

#[tokio::test]
async fn an_encoding_failure_answers_500_is_logged_and_counted() {
    let (logs, _default) = capture_logs(tracing::Level::INFO);
    let config = Config::defaults();
    let metrics = metrics::init(&config.buckets.0, config.native_histogram_bucket_factor);
    let client = TestClient::new(app(&AppState::new(&config, Shutdown::default(), metrics)));
    let nameless =
        Nameless(Desc::new("nameless".into(), "help".into(), vec![], Default::default()).unwrap());
    prometheus::register(Box::new(nameless)).unwrap();

    for accept in [
        "text/plain",
        "application/openmetrics-text;version=1.0.0",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
    ] {
        let response = client.get("/metrics").header("Accept", accept).send().await;
        response.assert_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.0.into_body().into_string().await.unwrap();
        assert!(
            body.starts_with("failed to encode metrics: Error: MetricFamily has no name: MetricFamily { name: None"),
            "Accept: {accept}: {body}"
        );
    }
    let logged = logs.text();
    assert_eq!(
        logged
            .matches(" ERROR request{method=GET path=/metrics}: myapp::exposition::handler: failed to serve /metrics error=failed to encode metrics: Error: MetricFamily has no name: MetricFamily { name: None")
            .count(),
        3,
        "{logged}"
    );

    let broken =
        Nameless(Desc::new("nameless".into(), "help".into(), vec![], Default::default()).unwrap());
    prometheus::unregister(Box::new(broken)).unwrap();
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    let text = response.0.into_body().into_string().await.unwrap();
    assert!(
        text.contains("promhttp_metric_handler_requests_total{code=\"500\"} 3\n"),
        "{text}"
    );
}
