//! The OpenMetrics 1.0.0 text format, written as client_golang's
//! `expfmt.MetricFamilyToOpenMetrics` writes it: counter families named
//! without `_total` in `# HELP` and `# TYPE` (their samples keep it), `# UNIT`
//! for families named after a unit, numbers in Go's shortest form with `.0`
//! on whole ones (`le="1.0"`), double quotes escaped in help texts too,
//! exemplars after the counter and bucket samples that have one
//! (`# {trace_id="…"} 0.042 1764208800.123`), when asked a `_created` sample
//! after each counter and histogram series that has a created time (as
//! expfmt's `WithCreatedLines`), and `# EOF` last.
use std::{
    fmt::Write,
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

use super::{
    created::created,
    exemplars::{Exemplar, ExemplarSnapshot},
};

/// Encodes `families` as OpenMetrics text, with `_created` samples when
/// `created_samples`, refusing a family without a metric or a name as the
/// crate's encoders do.
pub(super) fn encode(
    families: &[MetricFamily],
    exemplars: &ExemplarSnapshot,
    created_samples: bool,
) -> prometheus::Result<Vec<u8>> {
    let mut out = String::new();
    for family in families {
        let missing = if family.get_metric().is_empty() {
            Some("metrics")
        } else if family.name().is_empty() {
            Some("name")
        } else {
            None
        };
        if let Some(missing) = missing {
            return Err(prometheus::Error::Msg(format!(
                "MetricFamily has no {missing}: {family:?}"
            )));
        }
        write_family(&mut out, family, exemplars, created_samples);
    }
    out.push_str("# EOF\n");
    Ok(out.into_bytes())
}

/// The unit a family's name ends with, among the base units our families
/// use (OpenMetrics asks the name to end with `_<unit>` when one is given).
fn unit(name: &str) -> Option<&'static str> {
    ["seconds", "bytes"].into_iter().find(|unit| {
        name.strip_suffix(unit)
            .is_some_and(|rest| rest.ends_with('_'))
    })
}

fn write_family(
    out: &mut String,
    family: &MetricFamily,
    exemplars: &ExemplarSnapshot,
    created_samples: bool,
) {
    let name = family.name();
    let kind = family.get_field_type();
    let counter_total = kind == MetricType::COUNTER && name.ends_with("_total");
    let family_name = if counter_total {
        &name[..name.len() - "_total".len()]
    } else {
        name
    };
    if !family.help().is_empty() {
        let _ = writeln!(out, "# HELP {family_name} {}", escape(family.help()));
    }
    let type_name = match kind {
        MetricType::COUNTER if counter_total => "counter",
        MetricType::COUNTER | MetricType::UNTYPED => "unknown",
        MetricType::GAUGE => "gauge",
        MetricType::SUMMARY => "summary",
        MetricType::HISTOGRAM => "histogram",
    };
    let _ = writeln!(out, "# TYPE {family_name} {type_name}");
    // A counter without `_total` is written as `unknown`, which has no `_created`.
    let created_name = format!("{family_name}_created");
    let created_sample = |out: &mut String, metric: &Metric| {
        if let Some(time) = created(metric).filter(|_| created_samples) {
            sample(out, &created_name, metric, None, &float(unix_seconds(time)));
        }
    };
    if let Some(unit) = unit(family_name) {
        let _ = writeln!(out, "# UNIT {family_name} {unit}");
    }
    for metric in family.get_metric() {
        match kind {
            MetricType::COUNTER => {
                let value = float(metric.get_counter().value());
                sample(out, name, metric, None, &value);
                exemplar(out, exemplars.counter(name, metric));
                if counter_total {
                    created_sample(out, metric);
                }
            }
            MetricType::GAUGE => {
                sample(out, name, metric, None, &float(metric.get_gauge().value()))
            }
            MetricType::UNTYPED => {
                sample(
                    out,
                    name,
                    metric,
                    None,
                    &float(metric.untyped.get_or_default().value()),
                );
            }
            MetricType::SUMMARY => {
                let summary = metric.get_summary();
                for quantile in summary.get_quantile() {
                    let q = float(quantile.quantile());
                    sample(
                        out,
                        name,
                        metric,
                        Some(("quantile", &q)),
                        &float(quantile.value()),
                    );
                }
                sample(
                    out,
                    &format!("{name}_sum"),
                    metric,
                    None,
                    &float(summary.sample_sum()),
                );
                let count = summary.sample_count().to_string();
                sample(out, &format!("{name}_count"), metric, None, &count);
            }
            MetricType::HISTOGRAM => {
                let histogram = metric.get_histogram();
                let bucket_name = format!("{name}_bucket");
                let mut inf_seen = false;
                for (index, bucket) in histogram.get_bucket().iter().enumerate() {
                    let le = float(bucket.upper_bound());
                    inf_seen |= bucket.upper_bound() == f64::INFINITY;
                    let count = bucket.cumulative_count().to_string();
                    sample(out, &bucket_name, metric, Some(("le", &le)), &count);
                    exemplar(out, exemplars.bucket(name, index));
                }
                let count = histogram.get_sample_count().to_string();
                if !inf_seen {
                    sample(out, &bucket_name, metric, Some(("le", "+Inf")), &count);
                    let index = histogram.get_bucket().len();
                    exemplar(out, exemplars.bucket(name, index));
                }
                let sum = float(histogram.get_sample_sum());
                sample(out, &format!("{name}_sum"), metric, None, &sum);
                sample(out, &format!("{name}_count"), metric, None, &count);
                created_sample(out, metric);
            }
        }
    }
}

/// One sample line: the name, the metric's labels and `extra`, the value;
/// [`exemplar`] may end it.
fn sample(out: &mut String, name: &str, metric: &Metric, extra: Option<(&str, &str)>, value: &str) {
    out.push_str(name);
    write_labels(out, metric.get_label(), extra);
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Puts ` # {trace_id="…"} value timestamp` at the end of the sample line
/// just written, when there is an exemplar.
fn exemplar(out: &mut String, exemplar: Option<&Exemplar>) {
    let Some(exemplar) = exemplar else {
        return;
    };
    out.pop();
    let _ = writeln!(
        out,
        " # {{trace_id=\"{}\"}} {} {}",
        exemplar.trace_id,
        float(exemplar.value),
        float(exemplar.seconds())
    );
}

fn write_labels(out: &mut String, labels: &[LabelPair], extra: Option<(&str, &str)>) {
    let pairs = labels
        .iter()
        .map(|label| (label.name(), label.value()))
        .chain(extra);
    let mut separator = '{';
    for (name, value) in pairs {
        let _ = write!(out, "{separator}{name}=\"{}\"", escape(value));
        separator = ',';
    }
    if separator == ',' {
        out.push('}');
    }
}

/// `\`, newline and `"` escaped, as OpenMetrics asks in label values and
/// help texts.
fn escape(text: &str) -> String {
    text.replace('\\', r"\\")
        .replace('\n', r"\n")
        .replace('"', r#"\""#)
}

/// `time` in seconds since the epoch, as expfmt writes exemplar and created
/// times: nanoseconds / 1e9.
pub(super) fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_nanos() as f64 / 1e9)
}

/// A number as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it (the
/// shortest digits that read back exactly, an exponent below 1e-4 and from
/// 1e6 on: `1e-05`, `1.2345678e+07`), with `.0` added to whole numbers, and
/// `+Inf`, `-Inf`, `NaN`: expfmt's `writeOpenMetricsFloat`.
fn float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return "0.0".to_string();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` writes an exponent");
    let exponent: i32 = exponent.parse().expect("a decimal exponent");
    let text = if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        f.to_string()
    };
    if text.contains(['.', 'e']) {
        text
    } else {
        text + ".0"
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

    use super::*;

    #[test]
    fn numbers_are_written_as_go_writes_them() {
        // What `strconv.FormatFloat(f, 'g', -1, 64)` printed for these (go1.19),
        // with expfmt's `.0` on whole numbers.
        let cases = [
            (1e6, "1e+06"),
            (123456.0, "123456.0"),
            (1234567.0, "1.234567e+06"),
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (2.5, "2.5"),
            (1e21, "1e+21"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (12345678.0, "1.2345678e+07"),
            (100000.0, "100000.0"),
            (1234567.5, "1.2345675e+06"),
            (0.000123, "0.000123"),
            (1.5e-7, "1.5e-07"),
            (999999.9, "999999.9"),
            (-2e7, "-2e+07"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (number, expected) in cases {
            assert_eq!(float(number), expected, "{number:e}");
        }
    }

    #[test]
    fn a_registry_is_written_as_the_openmetrics_spec_shows_it() {
        let registry = Registry::new();
        let counter = IntCounterVec::new(
            Opts::new("requests_total", "Requests \"served\"\\by\nstatus"),
            &["status"],
        )
        .unwrap();
        counter.with_label_values(&["200"]).inc_by(7);
        counter.with_label_values(&["a\"b\\c\nd"]).inc();
        let histogram = Histogram::with_opts(
            HistogramOpts::new("latency_seconds", "Latency").buckets(vec![0.5, 1.0, 2.5]),
        )
        .unwrap();
        for value in [0.25, 0.75, 3.0] {
            histogram.observe(value);
        }
        let gauge = IntGauge::new("memory_bytes", "Memory").unwrap();
        gauge.set(12345678);
        let not_total = prometheus::IntCounter::new("events", "Events").unwrap();
        registry.register(Box::new(counter)).unwrap();
        registry.register(Box::new(histogram)).unwrap();
        registry.register(Box::new(gauge)).unwrap();
        registry.register(Box::new(not_total)).unwrap();
        let text = String::from_utf8(
            encode(&registry.gather(), &ExemplarSnapshot::default(), false).unwrap(),
        )
        .unwrap();
        assert_eq!(
            text,
            "# HELP events Events\n\
             # TYPE events unknown\n\
             events 0.0\n\
             # HELP latency_seconds Latency\n\
             # TYPE latency_seconds histogram\n\
             # UNIT latency_seconds seconds\n\
             latency_seconds_bucket{le=\"0.5\"} 1\n\
             latency_seconds_bucket{le=\"1.0\"} 2\n\
             latency_seconds_bucket{le=\"2.5\"} 2\n\
             latency_seconds_bucket{le=\"+Inf\"} 3\n\
             latency_seconds_sum 4.0\n\
             latency_seconds_count 3\n\
             # HELP memory_bytes Memory\n\
             # TYPE memory_bytes gauge\n\
             # UNIT memory_bytes bytes\n\
             memory_bytes 1.2345678e+07\n\
             # HELP requests Requests \\\"served\\\"\\\\by\\nstatus\n\
             # TYPE requests counter\n\
             requests_total{status=\"200\"} 7.0\n\
             requests_total{status=\"a\\\"b\\\\c\\nd\"} 1.0\n\
             # EOF\n"
        );
    }

    #[test]
    fn exemplars_follow_their_counter_and_bucket_samples() {
        use std::time::{Duration, UNIX_EPOCH};

        use crate::exemplars::TraceId;

        let registry = Registry::new();
        let counter = IntCounterVec::new(Opts::new("ops_total", "Ops"), &["status"]).unwrap();
        counter.with_label_values(&["200"]).inc();
        counter.with_label_values(&["500"]).inc();
        let histogram = Histogram::with_opts(
            HistogramOpts::new("latency_seconds", "Latency").buckets(vec![0.5, 1.0]),
        )
        .unwrap();
        histogram.observe(0.25);
        histogram.observe(2.0);
        registry.register(Box::new(counter)).unwrap();
        registry.register(Box::new(histogram)).unwrap();
        let exemplars =
            super::super::Exemplars::new("latency_seconds", &[0.5, 1.0], "ops_total", "status");
        exemplars.record(200, 0.25, TraceId([0xab; 16]));
        exemplars.record(200, 2.0, TraceId([0x01; 16]));
        let mut snapshot = exemplars.snapshot();
        // What Go's expfmt writes for this time: float64(UnixNano()) / 1e9,
        // printed by go1.19 as 1.7642088001230001e+09.
        snapshot.set_timestamps(UNIX_EPOCH + Duration::from_millis(1_764_208_800_123));
        let text =
            String::from_utf8(encode(&registry.gather(), &snapshot, false).unwrap()).unwrap();
        let ab = "abababababababababababababababab";
        let one = "01010101010101010101010101010101";
        assert_eq!(
            text,
            format!(
                "# HELP latency_seconds Latency\n\
                 # TYPE latency_seconds histogram\n\
                 # UNIT latency_seconds seconds\n\
                 latency_seconds_bucket{{le=\"0.5\"}} 1 # {{trace_id=\"{ab}\"}} 0.25 1.7642088001230001e+09\n\
                 latency_seconds_bucket{{le=\"1.0\"}} 1\n\
                 latency_seconds_bucket{{le=\"+Inf\"}} 2 # {{trace_id=\"{one}\"}} 2.0 1.7642088001230001e+09\n\
                 latency_seconds_sum 2.25\n\
                 latency_seconds_count 2\n\
                 # HELP ops Ops\n\
                 # TYPE ops counter\n\
                 ops_total{{status=\"200\"}} 1.0 # {{trace_id=\"{one}\"}} 1.0 1.7642088001230001e+09\n\
                 ops_total{{status=\"500\"}} 1.0\n\
                 # EOF\n"
            )
        );
    }

    #[test]
    fn created_samples_follow_counter_and_histogram_series_only_when_asked() {
        use std::time::{Duration, UNIX_EPOCH};

        use crate::{created::set_created, ExemplarSnapshot, Format};

        let registry = Registry::new();
        let counter = IntCounterVec::new(Opts::new("ops_total", "Ops"), &["status"]).unwrap();
        counter.with_label_values(&["200"]).inc();
        let histogram = Histogram::with_opts(
            HistogramOpts::new("latency_seconds", "Latency").buckets(vec![0.5]),
        )
        .unwrap();
        histogram.observe(0.25);
        let not_total = prometheus::IntCounter::new("events", "Events").unwrap();
        registry.register(Box::new(counter)).unwrap();
        registry.register(Box::new(histogram)).unwrap();
        registry.register(Box::new(not_total)).unwrap();
        let plain = registry.gather();
        let mut stamped = plain.clone();
        for family in &mut stamped {
            set_created(
                &mut family.mut_metric()[0],
                UNIX_EPOCH + Duration::from_millis(1_764_208_800_123),
            );
        }
        let none = ExemplarSnapshot::default();
        let text = |families, created_samples| {
            String::from_utf8(encode(families, &none, created_samples).unwrap()).unwrap()
        };
        // As expfmt's WithCreatedLines writes them (the time as in
        // exemplars_follow_their_counter_and_bucket_samples); a counter
        // without `_total`, written as `unknown`, has none.
        assert_eq!(
            text(&stamped, true),
            "# HELP events Events\n\
             # TYPE events unknown\n\
             events 0.0\n\
             # HELP latency_seconds Latency\n\
             # TYPE latency_seconds histogram\n\
             # UNIT latency_seconds seconds\n\
             latency_seconds_bucket{le=\"0.5\"} 1\n\
             latency_seconds_bucket{le=\"+Inf\"} 1\n\
             latency_seconds_sum 0.25\n\
             latency_seconds_count 1\n\
             latency_seconds_created 1.7642088001230001e+09\n\
             # HELP ops Ops\n\
             # TYPE ops counter\n\
             ops_total{status=\"200\"} 1.0\n\
             ops_created{status=\"200\"} 1.7642088001230001e+09\n\
             # EOF\n"
        );
        // Off: the same bytes as without created times; the 0.0.4 text never
        // has them.
        assert_eq!(text(&stamped, false), text(&plain, false));
        assert_eq!(text(&plain, true), text(&plain, false));
        let text_format =
            |families: &[MetricFamily]| Format::Text.encode(families, &none, None, true).unwrap();
        assert_eq!(text_format(&stamped), text_format(&plain));
    }

    #[test]
    fn units_are_whole_words_at_the_end_of_the_name() {
        assert_eq!(unit("process_cpu_seconds"), Some("seconds"));
        assert_eq!(unit("process_resident_memory_bytes"), Some("bytes"));
        assert_eq!(unit("myapp_build_info"), None);
        assert_eq!(unit("kilobytes"), None);
        assert_eq!(unit("bytes"), None);
    }

    #[test]
    fn a_family_without_metrics_is_refused() {
        let mut empty = MetricFamily::default();
        empty.set_name("empty".to_string());
        let why = prometheus::Error::Msg(format!("MetricFamily has no metrics: {empty:?}"));
        assert_eq!(
            encode(
                std::slice::from_ref(&empty),
                &ExemplarSnapshot::default(),
                false
            )
            .unwrap_err()
            .to_string(),
            why.to_string()
        );
    }
}
