//! The length-delimited protobuf format (`io.prometheus.client.MetricFamily`
//! messages, each preceded by its length): the prometheus crate's encoder,
//! with the exemplars that its model predates added as the fields of
//! Prometheus's own model (`Counter.exemplar` = 2, `Bucket.exemplar` = 3,
//! `Exemplar { label = 1, value = 2, timestamp = 3 }`), which the crate's
//! messages carry as unknown fields.
use std::borrow::Cow;

use prometheus::{
    proto::{Bucket, LabelPair, MetricFamily, MetricType},
    Encoder, ProtobufEncoder,
};
use protobuf::{CodedOutputStream, SpecialFields};

use super::exemplars::{Exemplar, ExemplarSnapshot};

/// `Counter.exemplar` in io.prometheus.client's metrics.proto.
const COUNTER_EXEMPLAR: u32 = 2;
/// `Bucket.exemplar`.
const BUCKET_EXEMPLAR: u32 = 3;

/// Encodes `families` as length-delimited protobuf messages, with their
/// exemplars.
pub(super) fn encode(
    families: &[MetricFamily],
    exemplars: &ExemplarSnapshot,
) -> prometheus::Result<Vec<u8>> {
    let mut body = Vec::new();
    let encoder = ProtobufEncoder::new();
    for family in families {
        let family = with_exemplars(family, exemplars)?;
        encoder.encode(std::slice::from_ref(family.as_ref()), &mut body)?;
    }
    Ok(body)
}

/// `family`, copied with its exemplars when it has any. A histogram whose
/// +Inf bucket has one gets that bucket, which the crate leaves out, as
/// client_golang adds it.
fn with_exemplars<'a>(
    family: &'a MetricFamily,
    exemplars: &ExemplarSnapshot,
) -> prometheus::Result<Cow<'a, MetricFamily>> {
    let name = family.name();
    let mut family = Cow::Borrowed(family);
    match family.get_field_type() {
        MetricType::COUNTER => {
            for i in 0..family.get_metric().len() {
                if let Some(exemplar) = exemplars.counter(name, &family.get_metric()[i]) {
                    let bytes = message(exemplar)?;
                    let counter = family.to_mut().mut_metric()[i]
                        .counter
                        .mut_or_insert_default();
                    add(&mut counter.special_fields, COUNTER_EXEMPLAR, bytes);
                }
            }
        }
        MetricType::HISTOGRAM => {
            for i in 0..family.get_metric().len() {
                let histogram = family.get_metric()[i].get_histogram();
                let bounds = histogram.get_bucket().len();
                let count = histogram.get_sample_count();
                for index in 0..=bounds {
                    let Some(exemplar) = exemplars.bucket(name, index) else {
                        continue;
                    };
                    let bytes = message(exemplar)?;
                    let histogram = family.to_mut().mut_metric()[i]
                        .histogram
                        .mut_or_insert_default();
                    if index == bounds {
                        let mut inf = Bucket::default();
                        inf.set_upper_bound(f64::INFINITY);
                        inf.set_cumulative_count(count);
                        histogram.bucket.push(inf);
                    }
                    add(
                        &mut histogram.bucket[index].special_fields,
                        BUCKET_EXEMPLAR,
                        bytes,
                    );
                }
            }
        }
        _ => {}
    }
    Ok(family)
}

fn add(fields: &mut SpecialFields, number: u32, bytes: Vec<u8>) {
    fields
        .mut_unknown_fields()
        .add_length_delimited(number, bytes);
}

/// An `io.prometheus.client.Exemplar` message: the `trace_id` label, the
/// value, the timestamp (a `google.protobuf.Timestamp`: seconds = 1,
/// nanos = 2).
fn message(exemplar: &Exemplar) -> protobuf::Result<Vec<u8>> {
    let mut label = LabelPair::default();
    label.set_name("trace_id".to_string());
    label.set_value(exemplar.trace_id.to_string());
    let since_epoch = exemplar
        .timestamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut timestamp = Vec::new();
    let mut stream = CodedOutputStream::vec(&mut timestamp);
    stream.write_int64(1, since_epoch.as_secs() as i64)?;
    stream.write_int32(2, since_epoch.subsec_nanos() as i32)?;
    stream.flush()?;
    drop(stream);
    let mut bytes = Vec::new();
    let mut stream = CodedOutputStream::vec(&mut bytes);
    stream.write_message(1, &label)?;
    stream.write_double(2, exemplar.value)?;
    stream.write_bytes(3, &timestamp)?;
    stream.flush()?;
    drop(stream);
    Ok(bytes)
}
