#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod created;
mod exemplars;
mod native_histogram;
mod negotiation;
mod openmetrics;
mod protobuf;
mod text;

pub use created::{set_created, CreatedTimes};
pub use exemplars::{Exemplar, ExemplarSnapshot, Exemplars, TraceId};
pub use native_histogram::{NativeBuckets, NativeHistogram, MAX_BUCKETS, ZERO_THRESHOLD};
pub use negotiation::{accepts_gzip, Escaping, Format, Negotiated};

use prometheus::proto::MetricFamily;

impl Format {
    /// Encodes `families` in this format, with `exemplars` in OpenMetrics
    /// and protobuf (the 0.0.4 text has no place for them), `native`
    /// buckets in protobuf (the only format here that has them), and the
    /// created times ([`CreatedTimes`]) in protobuf, and in OpenMetrics as
    /// `_created` samples when `created_samples` (client_golang's
    /// `EnableOpenMetricsTextCreatedSamples`, off there by default too).
    pub fn encode(
        self,
        families: &[MetricFamily],
        exemplars: &ExemplarSnapshot,
        native: Option<&NativeBuckets>,
        created_samples: bool,
    ) -> prometheus::Result<Vec<u8>> {
        match self {
            Format::Text => text::encode(families),
            Format::OpenMetrics | Format::OpenMetricsV001 => {
                openmetrics::encode(families, exemplars, created_samples)
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
