//! The length-delimited protobuf format (`io.prometheus.client.MetricFamily`
//! messages, each preceded by its length): the prometheus crate's encoder,
//! with the exemplars and native buckets that its model predates added as the
//! fields of Prometheus's own model (io.prometheus.client's metrics.proto:
//! `Counter.exemplar` = 2, `Bucket.exemplar` = 3, `Exemplar { label = 1,
//! value = 2, timestamp = 3 }`, and `Histogram { schema = 5 (sint32),
//! zero_threshold = 6 (double), zero_count = 7, positive_span = 12
//! (BucketSpan { offset = 1 (sint32), length = 2 }), positive_delta = 13
//! (sint64) }`), which the crate's messages carry as unknown fields.
use std::borrow::Cow;

use prometheus::{
    proto::{Bucket, LabelPair, MetricFamily, MetricType},
    Encoder, ProtobufEncoder,
};
use protobuf::{CodedOutputStream, SpecialFields};

use super::{
    exemplars::{Exemplar, ExemplarSnapshot},
    native_histogram::NativeBuckets,
};

/// `Counter.exemplar` in io.prometheus.client's metrics.proto.
const COUNTER_EXEMPLAR: u32 = 2;
/// `Bucket.exemplar`.
const BUCKET_EXEMPLAR: u32 = 3;
/// `Histogram.schema`, `zero_threshold`, `zero_count`, `positive_span`,
/// `positive_delta`.
const SCHEMA: u32 = 5;
const ZERO_THRESHOLD: u32 = 6;
const ZERO_COUNT: u32 = 7;
const POSITIVE_SPAN: u32 = 12;
const POSITIVE_DELTA: u32 = 13;

/// Encodes `families` as length-delimited protobuf messages, with their
/// exemplars and the `native` buckets of their histogram.
pub(super) fn encode(
    families: &[MetricFamily],
    exemplars: &ExemplarSnapshot,
    native: Option<&NativeBuckets>,
) -> prometheus::Result<Vec<u8>> {
    let mut body = Vec::new();
    let encoder = ProtobufEncoder::new();
    for family in families {
        let mut family = with_exemplars(family, exemplars)?;
        if let Some(native) = native.filter(|native| native.family == family.name()) {
            for metric in family.to_mut().mut_metric() {
                add_native(
                    &mut metric.histogram.mut_or_insert_default().special_fields,
                    native,
                )?;
            }
        }
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

/// The native buckets' fields, as client_golang fills them: the schema, the
/// zero bucket, the spans of consecutive buckets and each bucket's count as
/// a delta from the one before.
fn add_native(fields: &mut SpecialFields, native: &NativeBuckets) -> protobuf::Result<()> {
    let fields = fields.mut_unknown_fields();
    fields.add_varint(SCHEMA, zigzag(i64::from(native.schema)));
    fields.add_fixed64(ZERO_THRESHOLD, native.zero_threshold.to_bits());
    fields.add_varint(ZERO_COUNT, native.zero_count);
    for &(offset, length) in &native.spans {
        let mut span = Vec::new();
        let mut stream = CodedOutputStream::vec(&mut span);
        stream.write_sint32(1, offset)?;
        stream.write_uint32(2, length)?;
        stream.flush()?;
        drop(stream);
        fields.add_length_delimited(POSITIVE_SPAN, span);
    }
    for &delta in &native.deltas {
        fields.add_varint(POSITIVE_DELTA, zigzag(delta));
    }
    Ok(())
}

/// The ZigZag encoding of `sint32` and `sint64`: 0, -1, 1, -2 … as 0, 1, 2, 3 …
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
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

#[cfg(test)]
mod tests {
    use prometheus::{Histogram, HistogramOpts, Registry};

    use super::*;

    #[test]
    fn zigzag_maps_signed_to_unsigned_as_protobuf_does() {
        let cases = [
            (0, 0),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (2, 4),
            (-80, 159),
            (i64::MIN, u64::MAX),
        ];
        for (n, expected) in cases {
            assert_eq!(zigzag(n), expected, "{n}");
        }
    }

    #[test]
    fn native_fields_go_only_on_their_family() {
        let registry = Registry::new();
        let histogram = Histogram::with_opts(HistogramOpts::new("h_seconds", "h")).unwrap();
        histogram.observe(0.3);
        registry.register(Box::new(histogram)).unwrap();
        let families = registry.gather();
        let none = ExemplarSnapshot::default();
        let plain = encode(&families, &none, None).unwrap();
        let native = |family: &str| NativeBuckets {
            family: family.to_string(),
            schema: -1,
            zero_threshold: 0.5,
            zero_count: 2,
            spans: vec![(-3, 1)],
            deltas: vec![1],
        };
        assert_eq!(
            encode(&families, &none, Some(&native("other"))).unwrap(),
            plain
        );
        let with = encode(&families, &none, Some(&native("h_seconds"))).unwrap();
        let decoded: MetricFamily = protobuf::CodedInputStream::from_bytes(&with)
            .read_message()
            .unwrap();
        let histogram = decoded.get_metric()[0].get_histogram();
        assert_eq!(
            histogram.get_sample_count(),
            1,
            "the crate's fields are intact"
        );
        let mut fields: Vec<(u32, String)> = histogram
            .special_fields
            .unknown_fields()
            .iter()
            .map(|(number, value)| (number, format!("{value:?}")))
            .collect();
        fields.sort();
        // schema -1 (zigzag 1), zero threshold 0.5, zero count 2, one span
        // {offset -3 (zigzag 5), length 1}, delta 1 (zigzag 2).
        assert_eq!(
            fields,
            [
                (5, "Varint(1)".to_string()),
                (6, format!("Fixed64({})", 0.5f64.to_bits())),
                (7, "Varint(2)".to_string()),
                (12, "LengthDelimited([8, 5, 16, 1])".to_string()),
                (13, "Varint(2)".to_string()),
            ]
        );
    }
}
