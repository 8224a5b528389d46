//! Exemplars: for each bucket of the latency histogram and each status of
//! the request counter, the newest request that landed there (its trace id,
//! the observed value, when), as client_golang keeps them. The prometheus
//! crate's model has no exemplars, so they are kept here, beside its metrics,
//! and added by the OpenMetrics and protobuf encoders (never the 0.0.4 text).
use std::{fmt, sync::Mutex, time::SystemTime};

use prometheus::proto::Metric;

/// A 16-byte W3C trace id, written as 32 lowercase hex digits: the one label
/// of an exemplar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// One exemplar: `{trace_id="…"} value timestamp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The request's trace id, the exemplar's only label.
    pub trace_id: TraceId,
    /// The observed value: seconds for the histogram, 1 for the counter
    /// (the increment, as client_golang's `AddWithExemplar(1, …)`).
    pub value: f64,
    /// When it was observed.
    pub timestamp: SystemTime,
}

impl Exemplar {
    /// The timestamp in seconds since the epoch, as client_golang computes
    /// it (nanoseconds / 1e9).
    pub fn seconds(&self) -> f64 {
        super::openmetrics::unix_seconds(self.timestamp)
    }
}

/// The newest exemplar of each bucket of one histogram and of each label
/// value of one counter.
#[derive(Debug)]
pub struct Exemplars {
    histogram: String,
    counter: String,
    counter_label: &'static str,
    /// The histogram's upper bounds, without +Inf.
    bounds: Box<[f64]>,
    /// One slot per bucket, +Inf last.
    buckets: Box<[Mutex<Option<Exemplar>>]>,
    /// The newest exemplar of each counter label value seen.
    counter_values: Mutex<Vec<(u16, Exemplar)>>,
}

impl Exemplars {
    /// Exemplars of the histogram `histogram` with these upper `bounds` and of
    /// the counter `counter`, whose series are told apart by `counter_label`.
    pub fn new(
        histogram: &str,
        bounds: &[f64],
        counter: &str,
        counter_label: &'static str,
    ) -> Self {
        Self {
            histogram: histogram.to_string(),
            counter: counter.to_string(),
            counter_label,
            bounds: bounds.into(),
            buckets: (0..=bounds.len()).map(|_| Mutex::new(None)).collect(),
            counter_values: Mutex::new(Vec::new()),
        }
    }

    /// Records the request of `trace_id` that took `seconds` and was counted
    /// under `label` (its status): the newest exemplar of its bucket and of
    /// its counter series.
    pub fn record(&self, label: u16, seconds: f64, trace_id: TraceId) {
        let timestamp = SystemTime::now();
        // The bucket `observe` counts it in: the first bound at or above it.
        let bucket = self.bounds.partition_point(|&bound| bound < seconds);
        *lock(&self.buckets[bucket]) = Some(Exemplar {
            trace_id,
            value: seconds,
            timestamp,
        });
        let exemplar = Exemplar {
            trace_id,
            value: 1.0,
            timestamp,
        };
        let mut values = lock(&self.counter_values);
        match values.iter_mut().find(|(value, _)| *value == label) {
            Some(slot) => slot.1 = exemplar,
            None => values.push((label, exemplar)),
        }
    }

    /// A copy of every exemplar now. Take it before gathering the metrics:
    /// an exemplar is recorded after its observation, so each one in the copy
    /// is counted in the gathered families.
    pub fn snapshot(&self) -> ExemplarSnapshot {
        ExemplarSnapshot {
            histogram: self.histogram.clone(),
            counter: self.counter.clone(),
            counter_label: self.counter_label,
            buckets: self.buckets.iter().map(|slot| *lock(slot)).collect(),
            counter_values: lock(&self.counter_values).clone(),
        }
    }
}

/// A poisoned slot still holds a whole exemplar: recording cannot panic
/// halfway through writing one.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The exemplars at one moment, for the encoders.
#[derive(Debug, Default)]
pub struct ExemplarSnapshot {
    histogram: String,
    counter: String,
    counter_label: &'static str,
    buckets: Vec<Option<Exemplar>>,
    counter_values: Vec<(u16, Exemplar)>,
}

impl ExemplarSnapshot {
    /// The exemplar of bucket `index` (in exposition order, +Inf last) of
    /// the family `family`.
    pub fn bucket(&self, family: &str, index: usize) -> Option<&Exemplar> {
        if family != self.histogram {
            return None;
        }
        self.buckets.get(index)?.as_ref()
    }

    /// The exemplar of the counter series `metric` of the family `family`.
    pub fn counter(&self, family: &str, metric: &Metric) -> Option<&Exemplar> {
        if family != self.counter {
            return None;
        }
        let value = metric
            .get_label()
            .iter()
            .find(|label| label.name() == self.counter_label)?
            .value();
        self.counter_values
            .iter()
            .find(|(label, _)| label.to_string() == value)
            .map(|(_, exemplar)| exemplar)
    }
}

#[cfg(test)]
impl ExemplarSnapshot {
    /// Every exemplar at `timestamp`, for exact expectations.
    pub(crate) fn set_timestamps(&mut self, timestamp: SystemTime) {
        let buckets = self.buckets.iter_mut().flatten();
        let counters = self.counter_values.iter_mut().map(|(_, exemplar)| exemplar);
        for exemplar in buckets.chain(counters) {
            exemplar.timestamp = timestamp;
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::proto::LabelPair;

    use super::*;

    fn series(status: &str) -> Metric {
        let mut label = LabelPair::default();
        label.set_name("status".to_string());
        label.set_value(status.to_string());
        Metric::from_label(vec![label])
    }

    fn trace(n: u8) -> TraceId {
        TraceId([n; 16])
    }

    #[test]
    fn each_exemplar_lands_in_the_bucket_that_counts_its_value() {
        let exemplars = Exemplars::new("h", &[0.1, 0.5], "c_total", "status");
        // On a bound: that bucket (le is inclusive); just above: the next.
        exemplars.record(200, 0.1, trace(1));
        exemplars.record(200, 0.100_000_1, trace(2));
        exemplars.record(200, 0.5, trace(3));
        exemplars.record(200, 7.0, trace(4));
        let snapshot = exemplars.snapshot();
        let bucket = |i| snapshot.bucket("h", i).map(|e| (e.trace_id, e.value));
        assert_eq!(bucket(0), Some((trace(1), 0.1)));
        // Bucket 1 (0.1, 0.5]: 0.1000001, then 0.5; the newest wins.
        assert_eq!(bucket(1), Some((trace(3), 0.5)));
        assert_eq!(bucket(2), Some((trace(4), 7.0)), "+Inf");
        assert_eq!(bucket(3), None);
        assert_eq!(snapshot.bucket("other", 0), None);
    }

    #[test]
    fn each_counter_series_keeps_its_newest_request_with_value_one() {
        let exemplars = Exemplars::new("h", &[1.0], "c_total", "status");
        let before = SystemTime::now();
        exemplars.record(200, 0.2, trace(1));
        exemplars.record(500, 0.3, trace(2));
        exemplars.record(200, 0.4, trace(3));
        let after = SystemTime::now();
        let snapshot = exemplars.snapshot();
        let ok = snapshot.counter("c_total", &series("200")).unwrap();
        assert_eq!((ok.trace_id, ok.value), (trace(3), 1.0));
        assert!(before <= ok.timestamp && ok.timestamp <= after);
        let error = snapshot.counter("c_total", &series("500")).unwrap();
        assert_eq!(error.trace_id, trace(2));
        assert_eq!(snapshot.counter("c_total", &series("503")), None);
        assert_eq!(snapshot.counter("other_total", &series("200")), None);
    }
}
