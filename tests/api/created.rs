//! Created timestamps: in every protobuf answer, as `_created` samples in
//! OpenMetrics only with `--openmetrics-created-samples`, and the process's
//! start for its CPU time (the in-process app is this test process).
use std::{collections::BTreeMap, fs, process::Command};

use prometheus::proto::{Metric, MetricType};
use protobuf::{well_known_types::timestamp::Timestamp, Message, UnknownValueRef};

use crate::helpers::{decode_protobuf, work, TestApp};

const PROTOBUF: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// `created_timestamp` of a counter (field 3) or histogram (field 15), as
/// Prometheus's metrics.proto numbers it, decoded as a
/// `google.protobuf.Timestamp` by the protobuf crate.
fn created(metric: &Metric, kind: MetricType) -> Option<Timestamp> {
    let (fields, number) = match kind {
        MetricType::COUNTER => (&metric.get_counter().special_fields, 3),
        MetricType::HISTOGRAM => (&metric.get_histogram().special_fields, 15),
        _ => return None,
    };
    match fields.unknown_fields().get(number)? {
        UnknownValueRef::LengthDelimited(bytes) => {
            Some(Timestamp::parse_from_bytes(bytes).unwrap())
        }
        other => panic!("created_timestamp is a message, not {other:?}"),
    }
}

/// Every counter and histogram series of a protobuf scrape, as OpenMetrics
/// names its `_created` sample, with its created time in seconds.
async fn protobuf_created(app: &TestApp) -> BTreeMap<String, f64> {
    let response = app
        .client
        .get("/metrics")
        .header("Accept", PROTOBUF)
        .send()
        .await;
    let mut times = BTreeMap::new();
    for family in decode_protobuf(&response.0.into_body().into_vec().await.unwrap()) {
        let kind = family.get_field_type();
        let base = match kind {
            MetricType::COUNTER => family.name().strip_suffix("_total").unwrap(),
            MetricType::HISTOGRAM => family.name(),
            _ => continue,
        };
        for metric in family.get_metric() {
            let labels: Vec<String> = metric
                .get_label()
                .iter()
                .map(|label| format!("{}=\"{}\"", label.name(), label.value()))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let time = created(metric, kind)
                .unwrap_or_else(|| panic!("{base}{labels} has no created time"));
            times.insert(
                format!("{base}_created{labels}"),
                time.seconds as f64 + f64::from(time.nanos) / 1e9,
            );
        }
    }
    times
}

/// The `_created` samples of an OpenMetrics scrape: series and value.
async fn openmetrics_created(app: &TestApp) -> BTreeMap<String, f64> {
    let response = app
        .client
        .get("/metrics")
        .header("Accept", OPENMETRICS)
        .send()
        .await;
    let text = response.0.into_body().into_string().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next().unwrap().ends_with("_created"))
        .map(|(series, value)| (series.to_string(), value.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn openmetrics_has_the_protobuf_created_times_only_with_the_flag() {
    let mut config = work(0, 0, 0.0);
    config.openmetrics_created_samples = true;
    let app = TestApp::spawn(config).await;
    let protobuf = protobuf_created(&app).await;
    let openmetrics = openmetrics_created(&app).await;
    for series in [
        "myapp_processed_ops_created{status=\"200\"}",
        "myapp_request_duration_seconds_created",
        "process_cpu_seconds_created",
        "promhttp_metric_handler_requests_created{code=\"200\"}",
    ] {
        assert!(protobuf.contains_key(series), "{series} in {protobuf:?}");
    }
    assert_eq!(
        openmetrics.keys().collect::<Vec<_>>(),
        protobuf.keys().collect::<Vec<_>>()
    );
    for (series, seconds) in &openmetrics {
        // Float seconds in the text: exact to well under a microsecond.
        assert!(
            (seconds - protobuf[series]).abs() < 1e-6,
            "{series}: {seconds} vs {}",
            protobuf[series]
        );
    }
    drop(app);

    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    assert_eq!(
        protobuf_created(&app).await.len(),
        protobuf.len(),
        "protobuf has them without the flag"
    );
    assert_eq!(openmetrics_created(&app).await, BTreeMap::new());
}

/// A value of `getconf`, e.g. `CLK_TCK`.
fn getconf(name: &str) -> u64 {
    let output = Command::new("getconf").arg(name).output().expect("getconf");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn cpu_time_was_created_when_the_process_started_to_the_nanosecond() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let response = app
        .client
        .get("/metrics")
        .header("Accept", PROTOBUF)
        .send()
        .await;
    let families = decode_protobuf(&response.0.into_body().into_vec().await.unwrap());
    let cpu = families
        .iter()
        .find(|family| family.name() == "process_cpu_seconds_total")
        .unwrap();
    let created = created(&cpu.get_metric()[0], MetricType::COUNTER).unwrap();
    // btime of /proc/stat plus starttime (field 22) of /proc/self/stat, in
    // clock ticks: what proc(5) says, in whole seconds and nanoseconds.
    let boot: u64 = fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .unwrap()
        .parse()
        .unwrap();
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: u64 = after_name.split(' ').nth(22 - 3).unwrap().parse().unwrap();
    let hz = getconf("CLK_TCK");
    let expected = (
        (boot + ticks / hz) as i64,
        ((ticks % hz) * 1_000_000_000 / hz) as i32,
    );
    assert_eq!((created.seconds, created.nanos), expected);
}
