//! `GET /metrics` as a scraper sees it: formats, gzip, HEAD, the scrape
//! counter, the bearer token.
use std::io::Read;

use poem::http::StatusCode;
use prometheus::proto::{MetricFamily, MetricType};

use crate::helpers::{decode_protobuf, work, Snapshot, TestApp, TokenFile};

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores";
const OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";

/// What Prometheus 3 sends by default.
const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// What Prometheus 2.x sends with native histograms enabled.
const PROMETHEUS_PROTOBUF_FIRST: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

/// `myapp_processed_ops_total{status}` in a protobuf exposition.
fn processed(families: &[MetricFamily], status: &str) -> f64 {
    let family = families
        .iter()
        .find(|family| family.name() == "myapp_processed_ops_total")
        .expect("the counter family");
    assert_eq!(family.type_(), MetricType::COUNTER);
    family
        .get_metric()
        .iter()
        .find(|metric| {
            metric
                .get_label()
                .iter()
                .any(|label| label.name() == "status" && label.value() == status)
        })
        .map(|metric| metric.get_counter().value())
        .unwrap_or_else(|| panic!("no series status={status}"))
}

#[tokio::test]
async fn the_accept_header_picks_openmetrics_protobuf_or_text() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let cases = [
        (None, TEXT),
        (Some("*/*"), TEXT),
        (Some("text/plain;version=0.0.4"), TEXT),
        (Some(PROMETHEUS_PROTOBUF_FIRST), PROTOBUF),
        (Some("text/plain"), TEXT),
        (Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), OPENMETRICS),
        (Some(PROMETHEUS_3), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
        (Some("application/openmetrics-text"), "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores"),
        (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,text/plain;q=0.8"), TEXT),
        (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), PROTOBUF),
        // OpenMetrics 2.0, which we do not speak, alone: the text format, as
        // expfmt answers it, with the escaping it asked for echoed.
        (Some("application/openmetrics-text; version=2.0.0"), TEXT),
        (Some("application/openmetrics-text;version=2.0.0;escaping=allow-utf-8"), "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"),
    ];
    for (accept, expected) in cases {
        let mut request = app.client.get("/metrics");
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await;
        response.assert_status_is_ok();
        response.assert_content_type(expected);
        response.assert_header("Vary", "Accept-Encoding, Accept");
    }
}

#[tokio::test]
async fn the_protobuf_exposition_holds_the_counts_of_the_text_one() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let protobuf_scrape = || async {
        let response = app
            .client
            .get("/metrics")
            .header("Accept", PROMETHEUS_PROTOBUF_FIRST)
            .send()
            .await;
        response.assert_content_type(PROTOBUF);
        decode_protobuf(&response.0.into_body().into_vec().await.unwrap())
    };
    let before = protobuf_scrape().await;
    let text = app.scrape().await;
    assert_eq!(processed(&before, "200"), text.processed("200") as f64);
    assert_eq!(processed(&before, "500"), text.processed("500") as f64);
    for _ in 0..7 {
        app.get("/work").await.assert_status_is_ok();
    }
    let after = protobuf_scrape().await;
    assert_eq!(processed(&after, "200") - processed(&before, "200"), 7.0);
    assert_eq!(processed(&after, "500"), processed(&before, "500"));
    let histogram = after
        .iter()
        .find(|family| family.name() == "myapp_request_duration_seconds")
        .expect("the histogram family");
    assert_eq!(histogram.type_(), MetricType::HISTOGRAM);
    assert_eq!(
        histogram.get_metric()[0].get_histogram().get_sample_count(),
        text.duration().count + 7
    );
}

#[tokio::test]
async fn gzip_round_trips_to_the_same_metrics() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    app.get("/work").await.assert_status_is_ok();
    let plain = app.scrape().await;
    let response = app
        .client
        .get("/metrics")
        .header("Accept-Encoding", "gzip")
        .send()
        .await;
    response.assert_status_is_ok();
    response.assert_content_type(TEXT);
    response.assert_header("Content-Encoding", "gzip");
    response.assert_header("Vary", "Accept-Encoding, Accept");
    let compressed = response.0.into_body().into_vec().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .expect("a gzip stream");
    let unzipped = Snapshot::parse(text);
    // Nothing touched /work between the two scrapes.
    assert_eq!(unzipped.samples("myapp_"), plain.samples("myapp_"));
    let mut names: Vec<String> = plain
        .samples("myapp_")
        .iter()
        .map(|sample| sample.split(' ').next().unwrap().to_string())
        .collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "myapp_build_info",
            "myapp_log_lines_dropped_total",
            "myapp_processed_ops_total",
            "myapp_request_duration_seconds",
            "myapp_request_duration_seconds_count",
            "myapp_request_duration_seconds_sum",
            "myapp_requests_in_flight",
            "myapp_workload_changes_total",
            "myapp_workload_error_rate",
            "myapp_workload_max_delay_seconds",
            "myapp_workload_min_delay_seconds",
            "myapp_workload_slow_delay_seconds",
            "myapp_workload_slow_rate",
        ],
        "the samples compared"
    );
    assert_eq!(unzipped.scrapes("200"), plain.scrapes("200") + 1);
}

#[tokio::test]
async fn without_gzip_in_accept_encoding_the_body_is_plain() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    for accept_encoding in ["identity", "br", "gzip;q=0"] {
        let response = app
            .client
            .get("/metrics")
            .header("Accept-Encoding", accept_encoding)
            .send()
            .await;
        response.assert_header_is_not_exist("Content-Encoding");
        let text = response.0.into_body().into_string().await.unwrap();
        assert!(text.starts_with("# HELP "), "{accept_encoding}: {text}");
    }
}

#[tokio::test]
async fn head_answers_the_headers_without_a_body() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let response = app.client.head("/metrics").send().await;
    response.assert_status_is_ok();
    response.assert_content_type(TEXT);
    assert_eq!(response.0.into_body().into_vec().await.unwrap(), b"");
}

#[tokio::test]
async fn the_scrape_counter_grows_by_exactly_the_number_of_scrapes() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let first = app.scrape().await;
    app.get("/metrics").await.assert_status_is_ok();
    app.client
        .head("/metrics")
        .send()
        .await
        .assert_status_is_ok();
    app.client
        .get("/metrics")
        .header("Accept", PROMETHEUS_PROTOBUF_FIRST)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .assert_status_is_ok();
    app.get("/healthz").await.assert_status_is_ok();
    let last = app.scrape().await;
    // The first scrape counts once it has answered, so it shows in the last one.
    assert_eq!(last.scrapes("200") - first.scrapes("200"), 4);
    assert_eq!(last.scrapes("500"), first.scrapes("500"));
    // The scrape that reads the gauge is the one in flight.
    assert_eq!(
        last.value("promhttp_metric_handler_requests_in_flight"),
        1.0
    );
}

#[tokio::test]
async fn the_promhttp_and_tokio_families_have_the_help_of_go_and_tokio() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let text = app
        .get("/metrics")
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    for line in [
        "# HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code.",
        "# TYPE promhttp_metric_handler_requests_total counter",
        "promhttp_metric_handler_requests_total{code=\"503\"} 0",
        "# HELP promhttp_metric_handler_requests_in_flight Current number of scrapes being served.",
        "# TYPE promhttp_metric_handler_requests_in_flight gauge",
        "# TYPE tokio_workers gauge",
        "# TYPE tokio_alive_tasks gauge",
        "# TYPE tokio_global_queue_depth gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn the_tokio_gauges_describe_the_runtime_that_serves() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let scrape = app.scrape().await;
    assert_eq!(scrape.value("tokio_workers"), 3.0);
    assert_eq!(scrape.value("tokio_global_queue_depth"), 0.0);
}

#[tokio::test]
async fn a_token_guards_metrics_but_not_the_probes() {
    let file = TokenFile::new("guards", "s3cret");
    let app = TestApp::spawn_with_token(work(0, 0, 0.0), Some(file.token.clone())).await;
    let authorized = || async {
        let response = app
            .client
            .get("/metrics")
            .header("Authorization", "Bearer s3cret")
            .send()
            .await;
        response.assert_status_is_ok();
        response.assert_content_type(TEXT);
        Snapshot::parse(response.0.into_body().into_string().await.unwrap())
    };
    let before = authorized().await;
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Basic s3cret"),
        Some("Bearer s3cret2"),
    ] {
        let mut request = app.client.get("/metrics");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let response = request.send().await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        response.assert_header("WWW-Authenticate", "Bearer");
        response.assert_text("a bearer token is required\n").await;
    }
    let after = authorized().await;
    assert_eq!(after.scrapes("401") - before.scrapes("401"), 4);
    assert_eq!(after.scrapes("200") - before.scrapes("200"), 1);
    app.get("/healthz").await.assert_status_is_ok();
    app.get("/readyz").await.assert_status_is_ok();
}

/// The body of a `GET /metrics` with these headers, and its Content-Type.
async fn metrics_body(app: &TestApp, path: &str, accept: Option<&str>) -> (String, String) {
    let mut request = app.client.get(path);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await;
    response.assert_status_is_ok();
    let content_type = response.0.content_type().unwrap_or_default().to_string();
    (
        content_type,
        response.0.into_body().into_string().await.unwrap(),
    )
}

#[tokio::test]
async fn prometheus_3_gets_openmetrics_with_the_counts_the_client_saw() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let before = app.scrape().await;
    for _ in 0..5 {
        app.get("/work").await.assert_status_is_ok();
    }
    let (content_type, body) = metrics_body(&app, "/metrics", Some(PROMETHEUS_3)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
    );
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
    let ok = before.processed("200") + 5;
    let count = before.duration().count + 5;
    for line in [
        "# HELP myapp_processed_ops The total number of processed events".to_string(),
        "# TYPE myapp_processed_ops counter".to_string(),
        format!("myapp_processed_ops_total{{status=\"200\"}} {ok}.0"),
        "# TYPE myapp_request_duration_seconds histogram".to_string(),
        "# UNIT myapp_request_duration_seconds seconds".to_string(),
        format!("myapp_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"),
        format!("myapp_request_duration_seconds_count {count}"),
        "# TYPE process_cpu_seconds counter".to_string(),
        "# UNIT process_cpu_seconds seconds".to_string(),
        "# TYPE promhttp_metric_handler_requests counter".to_string(),
    ] {
        // A sample line may end with its exemplar.
        let exemplar = format!("{line} # {{");
        assert!(
            lines.iter().any(|l| *l == line || l.starts_with(&exemplar)),
            "missing {line:?} in\n{body}"
        );
    }
    // Bucket bounds in OpenMetrics' canonical form.
    assert!(
        body.contains("\nmyapp_request_duration_seconds_bucket{le=\"1.0\"} "),
        "{body}"
    );
}

#[tokio::test]
async fn plain_clients_get_the_text_format_with_the_same_lines_as_before() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let browser =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
    for accept in [None, Some("*/*"), Some("text/plain"), Some(browser)] {
        let (content_type, body) = metrics_body(&app, "/metrics", accept).await;
        assert_eq!(content_type, TEXT, "Accept: {accept:?}");
        assert!(
            !body.contains("# EOF") && !body.contains("# UNIT"),
            "{body}"
        );
        for line in [
            "# HELP myapp_processed_ops_total The total number of processed events",
            "# TYPE myapp_processed_ops_total counter",
            "# TYPE myapp_request_duration_seconds histogram",
            "myapp_request_duration_seconds_bucket{le=\"1\"} ",
        ] {
            assert!(body.contains(line), "missing {line:?} in\n{body}");
        }
    }
}

#[tokio::test]
async fn name_filters_return_only_the_named_families_in_every_format() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let path = "/metrics?name[]=myapp_requests_in_flight&name[]=myapp_processed_ops_total&name[]=no_such_metric";
    let (_, text) = metrics_body(&app, path, None).await;
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .collect();
    families.sort();
    assert_eq!(
        families,
        [
            "myapp_processed_ops_total counter",
            "myapp_requests_in_flight gauge"
        ]
    );
    let (_, openmetrics) = metrics_body(&app, path, Some(PROMETHEUS_3)).await;
    let families: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        families,
        [
            "myapp_processed_ops counter",
            "myapp_requests_in_flight gauge"
        ]
    );
    let response = app
        .client
        .get(path)
        .header("Accept", PROMETHEUS_PROTOBUF_FIRST)
        .send()
        .await;
    let protobuf = decode_protobuf(&response.0.into_body().into_vec().await.unwrap());
    let names: Vec<&str> = protobuf.iter().map(|family| family.name()).collect();
    assert_eq!(
        names,
        ["myapp_processed_ops_total", "myapp_requests_in_flight"]
    );
    // Without name[], every family.
    let (_, all) = metrics_body(&app, "/metrics", None).await;
    assert!(all.lines().filter(|l| l.starts_with("# TYPE ")).count() > 10);
}

/// The native-histogram fields of the latency histogram in a protobuf
/// answer, read from the wire with protobuf's own decoder (the crate's model
/// keeps them as unknown fields): (schema, zero count, spans, bucket counts).
fn native_fields(
    histogram: &prometheus::proto::Histogram,
) -> (i32, u64, Vec<(i32, u32)>, Vec<u64>) {
    use protobuf::{CodedInputStream, UnknownValueRef};
    let unzigzag = |n: u64| ((n >> 1) as i64) ^ -((n & 1) as i64);
    let (mut schema, mut zero_count, mut spans, mut counts) = (None, 0, vec![], vec![]);
    let mut count = 0i64;
    for (field, value) in histogram.special_fields.unknown_fields().iter() {
        match (field, value) {
            (5, UnknownValueRef::Varint(n)) => schema = Some(unzigzag(n) as i32),
            (6, UnknownValueRef::Fixed64(bits)) => {
                assert_eq!(f64::from_bits(bits), 2.938735877055719e-39)
            }
            (7, UnknownValueRef::Varint(n)) => zero_count = n,
            (12, UnknownValueRef::LengthDelimited(bytes)) => {
                let mut input = CodedInputStream::from_bytes(bytes);
                let (mut offset, mut length) = (0, 0);
                while let Some(tag) = input.read_raw_tag_or_eof().unwrap() {
                    match tag >> 3 {
                        1 => offset = input.read_sint32().unwrap(),
                        2 => length = input.read_uint32().unwrap(),
                        other => panic!("BucketSpan has no field {other}"),
                    }
                }
                spans.push((offset, length));
            }
            (13, UnknownValueRef::Varint(n)) => {
                count += unzigzag(n);
                counts.push(count as u64);
            }
            // created_timestamp, which tests/api/created.rs checks.
            (15, UnknownValueRef::LengthDelimited(_)) => {}
            other => panic!("unexpected field {other:?}"),
        }
    }
    (schema.expect("a schema"), zero_count, spans, counts)
}

#[tokio::test]
async fn protobuf_answers_carry_native_buckets_that_add_up_to_the_count() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    for _ in 0..9 {
        app.get("/work").await.assert_status_is_ok();
    }
    let response = app
        .client
        .get("/metrics")
        .header("Accept", PROMETHEUS_PROTOBUF_FIRST)
        .send()
        .await;
    let families = decode_protobuf(&response.0.into_body().into_vec().await.unwrap());
    let histogram = families
        .iter()
        .find(|family| family.name() == "myapp_request_duration_seconds")
        .unwrap()
        .get_metric()[0]
        .get_histogram();
    let (schema, zero_count, spans, counts) = native_fields(histogram);
    // The default factor, 1.1, is schema 3, as in client_golang.
    assert_eq!(schema, 3);
    assert_eq!(
        spans
            .iter()
            .map(|&(_, length)| length as usize)
            .sum::<usize>(),
        counts.len()
    );
    assert!(counts.iter().all(|&count| count > 0), "{counts:?}");
    assert_eq!(
        zero_count + counts.iter().sum::<u64>(),
        histogram.get_sample_count()
    );
    assert!(histogram.get_sample_count() >= 9);
    // Not in the text formats.
    let text = app.scrape().await;
    assert_eq!(text.duration().count, histogram.get_sample_count());
}
