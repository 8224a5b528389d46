//! Exemplars: the trace id of a `/work` request, from its `traceparent` or
//! new, in its answer and as the exemplar of its bucket and its counter, in
//! OpenMetrics and protobuf answers but never in the 0.0.4 text.
use std::time::{SystemTime, UNIX_EPOCH};

use myapp::config::Config;
use prometheus::proto::{LabelPair, MetricFamily};
use protobuf::{well_known_types::timestamp::Timestamp, CodedInputStream, UnknownValueRef};

use crate::helpers::{decode_protobuf, work, TestApp};

const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const PROTOBUF: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
// One trace id per test: the metrics are the process's, and an exemplar stays
// on its histogram bucket until a later request lands in the same bucket, so
// a shared id could be found where another test left it.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const NEWEST_TRACE_ID: &str = "1bf7651916cd43dd8448eb211c80319d";
const PROTOBUF_TRACE_ID: &str = "2cf7651916cd43dd8448eb211c80319e";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn body(app: &TestApp, accept: Option<&str>) -> String {
    let mut request = app.client.get("/metrics");
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    request
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap()
}

/// Sends `/work` with this `traceparent`; returns the trace id answered.
async fn traced_work(app: &TestApp, traceparent: Option<&str>) -> String {
    let mut request = app.client.get("/work");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await;
    response.assert_status_is_ok();
    let answered = response.0.headers()["traceparent"].to_str().unwrap();
    assert_eq!(answered.len(), 55, "{answered}");
    answered[3..35].to_string()
}

/// (value, timestamp) of the exemplar with `trace_id` at the end of the
/// OpenMetrics line that starts with `prefix`.
fn exemplar_on(body: &str, prefix: &str, trace_id: &str) -> (f64, f64) {
    let line = body
        .lines()
        .find(|line| line.starts_with(prefix) && line.contains(trace_id))
        .unwrap_or_else(|| panic!("no {prefix}… line with {trace_id} in\n{body}"));
    let (_, exemplar) = line
        .split_once(&format!(" # {{trace_id=\"{trace_id}\"}} "))
        .unwrap();
    let (value, timestamp) = exemplar.split_once(' ').unwrap();
    (value.parse().unwrap(), timestamp.parse().unwrap())
}

#[tokio::test]
async fn a_traced_request_is_the_exemplar_of_its_bucket_and_its_counter() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let before = now();
    let answered = traced_work(&app, Some(&format!("00-{TRACE_ID}-b7ad6b7169203331-01"))).await;
    let after = now();
    assert_eq!(answered, TRACE_ID);

    let openmetrics = body(&app, Some(PROMETHEUS_3)).await;
    let (value, timestamp) = exemplar_on(
        &openmetrics,
        "myapp_processed_ops_total{status=\"200\"} ",
        TRACE_ID,
    );
    assert_eq!(value, 1.0);
    assert!(
        before <= timestamp && timestamp <= after,
        "{before} {timestamp} {after}"
    );
    let (seconds, timestamp) = exemplar_on(
        &openmetrics,
        "myapp_request_duration_seconds_bucket{",
        TRACE_ID,
    );
    assert!(before <= timestamp && timestamp <= after);
    assert!(seconds > 0.0 && seconds <= after - before, "{seconds}");
    // On the line of the bucket that counts it: the first bound at or above it.
    let bounds = Config::defaults().buckets.0;
    let bound = bounds.iter().find(|&&bound| seconds <= bound).unwrap();
    let line = openmetrics
        .lines()
        .find(|line| line.contains(TRACE_ID) && line.contains("_bucket"))
        .unwrap();
    let le = format!("{{le=\"{bound}");
    assert!(line.contains(&le), "{line} not in the bucket {le}");

    let text = body(&app, None).await;
    assert!(!text.contains(" # {") && !text.contains(TRACE_ID), "{text}");
}

#[tokio::test]
async fn the_newest_request_wins_and_a_bad_traceparent_gets_a_new_trace_id() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    traced_work(
        &app,
        Some(&format!("00-{NEWEST_TRACE_ID}-b7ad6b7169203331-01")),
    )
    .await;
    let newest = traced_work(
        &app,
        Some(&format!("00-{NEWEST_TRACE_ID}-b7ad6b7169203331")),
    )
    .await;
    assert_ne!(
        newest, NEWEST_TRACE_ID,
        "a traceparent without flags is malformed"
    );
    let openmetrics = body(&app, Some(PROMETHEUS_3)).await;
    exemplar_on(
        &openmetrics,
        "myapp_processed_ops_total{status=\"200\"} ",
        &newest,
    );
    // The counter's series has one exemplar, the newest; the first request's
    // may stay on its histogram bucket if the second landed in another.
    let counter = openmetrics
        .lines()
        .find(|line| line.starts_with("myapp_processed_ops_total{status=\"200\"} "))
        .unwrap();
    assert!(!counter.contains(NEWEST_TRACE_ID), "{counter}");
}

/// The `trace_id` and value of an `io.prometheus.client.Exemplar` message
/// carried as field `field` of a message the crate's model decodes without it,
/// read with protobuf's own `LabelPair` and `Timestamp`.
fn exemplar_field(fields: &protobuf::UnknownFields, field: u32) -> Option<(String, f64, f64)> {
    let Some(UnknownValueRef::LengthDelimited(bytes)) = fields.get(field) else {
        return None;
    };
    let mut input = CodedInputStream::from_bytes(bytes);
    let (mut trace_id, mut value, mut seconds) = (String::new(), 0.0, 0.0);
    while let Some(tag) = input.read_raw_tag_or_eof().unwrap() {
        match tag >> 3 {
            1 => {
                let label: LabelPair = input.read_message().unwrap();
                assert_eq!(label.name(), "trace_id");
                trace_id = label.value().to_string();
            }
            2 => value = input.read_double().unwrap(),
            3 => {
                let timestamp: Timestamp = input.read_message().unwrap();
                seconds = timestamp.seconds as f64 + timestamp.nanos as f64 / 1e9;
            }
            other => panic!("unexpected field {other}"),
        }
    }
    Some((trace_id, value, seconds))
}

#[tokio::test]
async fn protobuf_answers_carry_the_exemplars_in_prometheus_model_fields() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let before = now();
    traced_work(
        &app,
        Some(&format!("00-{PROTOBUF_TRACE_ID}-b7ad6b7169203331-01")),
    )
    .await;
    let after = now();
    let response = app
        .client
        .get("/metrics")
        .header("Accept", PROTOBUF)
        .send()
        .await;
    let families = decode_protobuf(&response.0.into_body().into_vec().await.unwrap());
    let family = |name: &str| -> &MetricFamily {
        families
            .iter()
            .find(|family| family.name() == name)
            .unwrap()
    };
    let ok = family("myapp_processed_ops_total")
        .get_metric()
        .iter()
        .find(|metric| metric.get_label()[0].value() == "200")
        .unwrap();
    let (trace_id, value, seconds) =
        exemplar_field(ok.get_counter().special_fields.unknown_fields(), 2).unwrap();
    assert_eq!((trace_id.as_str(), value), (PROTOBUF_TRACE_ID, 1.0));
    assert!(before <= seconds && seconds <= after);
    let histogram = family("myapp_request_duration_seconds").get_metric()[0].get_histogram();
    let traced: Vec<(f64, f64)> = histogram
        .get_bucket()
        .iter()
        .filter_map(|bucket| {
            let (trace_id, value, _) = exemplar_field(bucket.special_fields.unknown_fields(), 3)?;
            (trace_id == PROTOBUF_TRACE_ID).then_some((bucket.upper_bound(), value))
        })
        .collect();
    let [(bound, value)] = traced[..] else {
        panic!("one bucket has the exemplar: {traced:?}");
    };
    let bounds = Config::defaults().buckets.0;
    assert_eq!(Some(&bound), bounds.iter().find(|&&b| value <= b));
}
