//! Native (sparse, exponential) buckets for the latency histogram, as
//! client_golang keeps them with `NativeHistogramBucketFactor`: bucket `i`
//! of schema `s` holds the values in `(2^((i-1)/2^s), 2^(i/2^s)]`, only the
//! buckets that got a value exist, and values at or below the zero threshold
//! count in the zero bucket. Exposed in protobuf answers only, beside the
//! classic buckets of the prometheus crate's histogram.
use std::{collections::BTreeMap, sync::Mutex};

use prometheus::{core::Collector, proto::MetricFamily, Histogram};

/// Buckets allowed before the resolution halves (schema minus one, each pair
/// of buckets merged), as client_golang's `NativeHistogramMaxBucketNumber`.
pub const MAX_BUCKETS: usize = 160;

/// Values at or below it count in the zero bucket: client_golang's
/// `DefNativeHistogramZeroThreshold`, 2^-128.
pub const ZERO_THRESHOLD: f64 = 2.938735877055719e-39;

/// The lowest schema: buckets 2^16 wide.
const MIN_SCHEMA: i32 = -4;

/// The schema whose buckets grow by at most `factor` each, as client_golang's
/// `pickSchema`: 1.1 gives 3 (a growth of 2^(1/8), 1.09), 2 gives 0,
/// factors at or below 1.0027 the finest, 8.
fn schema_for(factor: f64) -> i32 {
    let floor = factor.log2().log2().floor();
    if floor <= -8.0 {
        8
    } else if floor >= 4.0 {
        -4
    } else {
        -(floor as i32)
    }
}

/// The native buckets of one histogram. Its observations go through
/// [`NativeHistogram::observe`], which also feeds the crate's classic
/// histogram under the same lock, so that a scrape sees both agree.
#[derive(Debug)]
pub struct NativeHistogram {
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
struct State {
    schema: i32,
    /// For schemas above 0, the fraction thresholds of one power of two.
    bounds: Vec<f64>,
    zero_count: u64,
    buckets: BTreeMap<i32, u64>,
}

impl State {
    fn new(schema: i32) -> Self {
        let per_power = if schema > 0 { 1usize << schema } else { 0 };
        Self {
            schema,
            bounds: (0..per_power)
                .map(|i| 0.5 * (i as f64 / per_power as f64).exp2())
                .collect(),
            zero_count: 0,
            buckets: BTreeMap::new(),
        }
    }

    /// The index of the bucket of `value` (positive, finite, above the zero
    /// threshold), computed as client_golang does from the binary exponent.
    fn index(&self, value: f64) -> i32 {
        let (fraction, exponent) = frexp(value);
        if self.schema > 0 {
            let i = self.bounds.partition_point(|&bound| bound < fraction);
            i as i32 + (exponent - 1) * self.bounds.len() as i32
        } else {
            let key = if fraction == 0.5 {
                exponent - 1
            } else {
                exponent
            };
            let shift = -self.schema;
            (key + (1 << shift) - 1) >> shift
        }
    }

    fn observe(&mut self, value: f64) {
        if value <= ZERO_THRESHOLD {
            self.zero_count += 1;
            return;
        }
        *self.buckets.entry(self.index(value)).or_default() += 1;
        while self.buckets.len() > MAX_BUCKETS && self.schema > MIN_SCHEMA {
            let buckets = std::mem::take(&mut self.buckets);
            *self = Self {
                zero_count: self.zero_count,
                ..Self::new(self.schema - 1)
            };
            for (index, count) in buckets {
                *self.buckets.entry((index + 1).div_euclid(2)).or_default() += count;
            }
        }
    }
}

/// `value` as `fraction * 2^exponent` with `fraction` in [0.5, 1), for a
/// positive normal `value` (Go's `math.Frexp`).
fn frexp(value: f64) -> (f64, i32) {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let fraction = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (fraction, exponent)
}

/// The native buckets at one moment, as the protobuf model holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeBuckets {
    /// The family they belong to.
    pub family: String,
    /// The resolution: bucket bounds grow by 2^(2^-schema).
    pub schema: i32,
    /// [`ZERO_THRESHOLD`].
    pub zero_threshold: f64,
    /// Values at or below the threshold.
    pub zero_count: u64,
    /// (offset from the previous span's end, or the first index; length).
    pub spans: Vec<(i32, u32)>,
    /// Each bucket's count minus the previous one's, in index order.
    pub deltas: Vec<i64>,
}

impl NativeHistogram {
    /// Native buckets that grow by at most `factor` (above 1) each.
    pub fn new(factor: f64) -> Self {
        Self {
            state: Mutex::new(State::new(schema_for(factor))),
        }
    }

    /// Observes `value` in the classic `histogram` and in the native buckets.
    pub fn observe(&self, histogram: &Histogram, value: f64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        histogram.observe(value);
        state.observe(value);
    }

    /// The native buckets, and the classic `histogram`'s family collected
    /// again in place of its copy in `families`, both read under the lock that
    /// [`NativeHistogram::observe`] holds: the same observations, so that the
    /// native buckets add up to the count.
    pub fn collect_into(
        &self,
        histogram: &Histogram,
        families: &mut [MetricFamily],
    ) -> NativeBuckets {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = histogram
            .collect()
            .pop()
            .expect("a histogram collects one family");
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(state.buckets.len());
        let (mut previous_index, mut previous_count) = (None, 0u64);
        for (&index, &count) in &state.buckets {
            match previous_index {
                Some(previous) if index == previous + 1 => spans.last_mut().unwrap().1 += 1,
                Some(previous) => spans.push((index - previous - 1, 1)),
                None => spans.push((index, 1)),
            }
            deltas.push(count as i64 - previous_count as i64);
            (previous_index, previous_count) = (Some(index), count);
        }
        let family = fresh.name().to_string();
        if let Some(copy) = families.iter_mut().find(|copy| copy.name() == family) {
            *copy = fresh;
        }
        NativeBuckets {
            family,
            schema: state.schema,
            zero_threshold: ZERO_THRESHOLD,
            zero_count: state.zero_count,
            spans,
            deltas,
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::HistogramOpts;

    use super::*;

    fn histogram() -> Histogram {
        Histogram::with_opts(HistogramOpts::new("h_seconds", "h").buckets(vec![0.1, 1.0])).unwrap()
    }

    /// The index of `value`'s bucket computed from the definition: the
    /// smallest i with value <= 2^(i / 2^schema).
    fn by_definition(value: f64, schema: i32) -> i32 {
        (value.log2() * 2f64.powi(schema)).ceil() as i32
    }

    #[test]
    fn the_schema_is_the_finest_whose_growth_stays_within_the_factor() {
        // 2^(2^-s) is each schema's growth: 3 grows by 1.0905, 2 by 1.1892.
        assert_eq!(schema_for(1.1), 3);
        assert_eq!(schema_for(1.0905), 4, "just under 2^(1/8)");
        assert_eq!(schema_for(1.0906), 3, "just over 2^(1/8)");
        assert_eq!(schema_for(2.0), 0);
        assert_eq!(schema_for(4.0), -1);
        assert_eq!(schema_for(1.0001), 8, "finest");
        assert_eq!(schema_for(1e9), -4, "coarsest");
    }

    #[test]
    fn values_land_in_the_bucket_their_definition_gives() {
        for schema in [-2, 0, 3, 8] {
            let state = State::new(schema);
            for value in [0.0003, 0.0123, 0.049, 0.1, 0.77, 1.5, 3.3, 42.0, 1e6] {
                assert_eq!(
                    state.index(value),
                    by_definition(value, schema),
                    "{value} at schema {schema}"
                );
            }
            // Both sides of a power of two: 1 is the top of bucket 0.
            assert_eq!(state.index(1.0), 0, "schema {schema}");
            assert_eq!(state.index(1.0 + 1e-12), 1, "schema {schema}");
            assert_eq!(
                state.index(0.5),
                by_definition(0.5, schema),
                "schema {schema}"
            );
        }
    }

    #[test]
    fn buckets_add_up_to_the_count_and_spans_skip_the_empty_ones() {
        let native = NativeHistogram::new(2.0); // schema 0: (0.5, 1], (1, 2], (2, 4], …
        let classic = histogram();
        for value in [0.0, 0.75, 0.9, 1.5, 3.0, 3.5, 3.9, 100.0] {
            native.observe(&classic, value);
        }
        let mut families = Vec::new();
        let buckets = native.collect_into(&classic, &mut families);
        assert_eq!(
            buckets,
            NativeBuckets {
                family: "h_seconds".to_string(),
                schema: 0,
                zero_threshold: ZERO_THRESHOLD,
                zero_count: 1,
                // Buckets 0 (2), 1 (1), 2 (3); then 100 in bucket 7.
                spans: vec![(0, 3), (4, 1)],
                deltas: vec![2, -1, 2, -2],
            }
        );
        assert_eq!(classic.get_sample_count(), 8);
    }

    #[test]
    fn past_the_bucket_limit_the_resolution_halves_and_nothing_is_lost() {
        let native = NativeHistogram::new(1.1);
        let classic = histogram();
        // 400 values spread over 2^-10 to 2^10: far more than 160 buckets at schema 3.
        let values: Vec<f64> = (0..400).map(|i| (i as f64 / 20.0 - 10.0).exp2()).collect();
        for &value in &values {
            native.observe(&classic, value);
        }
        let mut families = vec![];
        let buckets = native.collect_into(&classic, &mut families);
        let populated: u32 = buckets.spans.iter().map(|&(_, length)| length).sum();
        assert!(populated as usize <= MAX_BUCKETS, "{populated} buckets");
        // Schema 3 would need 160 buckets for 2^-10..2^10 plus one: it halved to 2.
        assert_eq!(buckets.schema, 2);
        let mut count = 0i64;
        let total: i64 = buckets
            .deltas
            .iter()
            .map(|delta| {
                count += delta;
                count
            })
            .sum();
        assert_eq!(total, 400);
        // Each value is in the bucket its definition gives at the final schema.
        let mut expected = std::collections::BTreeMap::new();
        for &value in &values {
            *expected.entry(by_definition(value, 2)).or_insert(0) += 1;
        }
        assert_eq!(expected.len() as u32, populated);
    }
}
