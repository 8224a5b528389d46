//! What the [`prometheus`] crate (tikv's) lacks to serve what Prometheus 3
//! scrapes, written around its registry: OpenMetrics 1.0.0 text, exemplars,
//! native histograms in protobuf, content negotiation as client_golang's
//! promhttp does it, and the `name[]` filter. Keep your registry and metrics as
//! they are; gather as usual and encode with [`Format::encode`].
//!
//! OpenMetrics with an exemplar on a counter, for a scrape whose `Accept`
//! asks for it:
//!
//! ```
//! use prometheus::{IntCounterVec, Opts, Registry};
//! use prometheus_exposition::{Exemplars, Negotiated, TraceId};
//!
//! let registry = Registry::new();
//! let opts = Opts::new("answers_total", "Answers by status.");
//! let answers = IntCounterVec::new(opts, &["status"]).unwrap();
//! registry.register(Box::new(answers.clone())).unwrap();
//! // The newest trace of each bucket of a histogram (none here) and each status.
//! let exemplars = Exemplars::new("", &[], "answers_total", "status");
//!
//! // Per request: count it, then keep its trace id as the series' exemplar.
//! answers.with_label_values(&["200"]).inc();
//! exemplars.record(200, 0.042, TraceId([0xab; 16]));
//!
//! // Per scrape: the exemplars first (each is then counted in what is gathered).
//! let snapshot = exemplars.snapshot();
//! let negotiated = Negotiated::from_accept(Some("application/openmetrics-text; version=1.0.0"));
//! let body = negotiated.format.encode(&registry.gather(), &snapshot, None).unwrap();
//! let text = String::from_utf8(body).unwrap();
//! // The sample, its exemplar (trace id, value 1 for the increment, when), the end.
//! let lines: Vec<&str> = text.lines().collect();
//! assert_eq!(lines[..2], ["# HELP answers Answers by status.", "# TYPE answers counter"]);
//! let sample = r#"answers_total{status="200"} 1.0 # {trace_id="abababababababababababababababab"} 1.0 "#;
//! assert!(lines[2].starts_with(sample) && lines[3] == "# EOF", "{text}");
//! assert_eq!(negotiated.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores");
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | `exemplars` | the newest trace id in each bucket and counter series |
//! | `native_histogram` | the sparse exponential buckets of a histogram |
//! | `negotiation` | `Accept` and `Accept-Encoding`: format, escaping, gzip |
//! | `text` | the 0.0.4 text format (the crate's encoder) |
//! | `openmetrics` | the OpenMetrics 1.0.0 text format |
//! | `protobuf` | the length-delimited protobuf format (the crate's encoder) |
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod exemplars;
mod native_histogram;
mod negotiation;
mod openmetrics;
mod protobuf;
mod text;

pub use exemplars::{Exemplar, ExemplarSnapshot, Exemplars, TraceId};
pub use native_histogram::{NativeBuckets, NativeHistogram, MAX_BUCKETS, ZERO_THRESHOLD};
pub use negotiation::{accepts_gzip, Escaping, Format, Negotiated};

use prometheus::proto::MetricFamily;

impl Format {
    /// Encodes `families` in this format, with `exemplars` in OpenMetrics
    /// and protobuf (the 0.0.4 text has no place for them), and `native`
    /// buckets in protobuf (the only format here that has them).
    pub fn encode(
        self,
        families: &[MetricFamily],
        exemplars: &ExemplarSnapshot,
        native: Option<&NativeBuckets>,
    ) -> prometheus::Result<Vec<u8>> {
        match self {
            Format::Text => text::encode(families),
            Format::OpenMetrics | Format::OpenMetricsV001 => {
                openmetrics::encode(families, exemplars)
            }
            Format::Protobuf => protobuf::encode(families, exemplars, native),
        }
    }
}

/// The families whose names are in `names`, in their order; all of them when
/// `names` is empty (promhttp's `name[]` filter).
pub fn only_named(mut families: Vec<MetricFamily>, names: &[String]) -> Vec<MetricFamily> {
    if !names.is_empty() {
        families.retain(|family| names.iter().any(|name| name == family.name()));
    }
    families
}
