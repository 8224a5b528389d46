//! The text format, version 0.0.4: the prometheus crate's encoder, byte for
//! byte what the service has always served to `curl` and browsers.
use prometheus::{proto::MetricFamily, Encoder, TextEncoder};

/// Encodes `families` in the 0.0.4 text format.
pub(super) fn encode(families: &[MetricFamily]) -> prometheus::Result<Vec<u8>> {
    let mut body = Vec::new();
    TextEncoder::new().encode(families, &mut body)?;
    Ok(body)
}
