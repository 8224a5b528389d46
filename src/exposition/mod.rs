//! `GET /metrics`, as Go's `promhttp.Handler()` serves it with OpenMetrics
//! enabled: the format the scraper's `Accept` prefers, gzip when its
//! `Accept-Encoding` allows it, an optional bearer token, the `name[]`
//! filter, and the handler's own `promhttp_*` metrics.
//!
//! | file | what |
//! | --- | --- |
//! | `exemplars.rs` | the newest trace id in each bucket and counter series |
//! | `native_histogram.rs` | the sparse exponential buckets of the latency histogram |
//! | `negotiation.rs` | `Accept` and `Accept-Encoding`: format, escaping, gzip |
//! | `text.rs` | the 0.0.4 text format (the crate's encoder) |
//! | `openmetrics.rs` | the OpenMetrics 1.0.0 text format |
//! | `protobuf.rs` | the length-delimited protobuf format (the crate's encoder) |
//! | `handler.rs` | the operation, its answers and its `promhttp_*` metrics |
mod exemplars;
mod handler;
mod native_histogram;
mod negotiation;
mod openmetrics;
mod protobuf;
mod text;

pub use exemplars::{Exemplar, ExemplarSnapshot, Exemplars};
pub use handler::{Exposition, MetricsApi, MetricsResponse, ScrapeMetrics, VARY};
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
