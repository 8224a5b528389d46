//! The length-delimited protobuf format (`io.prometheus.client.MetricFamily`
//! messages, each preceded by its length): the prometheus crate's encoder.
use prometheus::{proto::MetricFamily, Encoder, ProtobufEncoder};

/// Encodes `families` as length-delimited protobuf messages.
pub(super) fn encode(families: &[MetricFamily]) -> prometheus::Result<Vec<u8>> {
    let mut body = Vec::new();
    ProtobufEncoder::new().encode(families, &mut body)?;
    Ok(body)
}
