//! Created timestamps: when each counter and histogram series began counting
//! from zero, as client_golang's `createdTs`, which Prometheus reads from the
//! protobuf format (`created-timestamp-zero-ingestion`) and OpenMetrics
//! writes as `_created` samples.
//!
//! client_golang stamps a series when it is created (`NewCounter`, or a
//! vector's `With` for a new label set). The prometheus crate does not, so
//! [`CreatedTimes`] stamps each series when it first appears in a gather,
//! with the time taken before the gather that preceded it, or its own
//! creation time for the first gather: the series did not exist then, so it
//! counted nothing before that time, and Prometheus's synthetic zero at the
//! created time comes before every increment. A series made at start-up
//! (before the first scrape) thus gets the time [`CreatedTimes::new`] was
//! called; one made later gets a time at most one scrape interval before it
//! was made. A collector that knows better (a process's CPU time counts from
//! the process's start) sets its own with [`set_created`], which is kept.
//!
//! The time is the field `created_timestamp` of Prometheus's metrics.proto
//! (`Counter` = 3, `Histogram` = 15, a `google.protobuf.Timestamp`), which
//! the crate's model predates: it is carried as an unknown field, which the
//! crate's protobuf encoder writes and its text encoder ignores.
use std::{collections::HashMap, sync::Mutex, time::SystemTime};

use prometheus::proto::{Metric, MetricFamily, MetricType};
use protobuf::{well_known_types::timestamp::Timestamp, Message, UnknownValueRef};

/// `Counter.created_timestamp` in io.prometheus.client's metrics.proto.
const COUNTER_CREATED: u32 = 3;
/// `Histogram.created_timestamp`.
const HISTOGRAM_CREATED: u32 = 15;

/// The created times of the series gathered so far; see the module's
/// documentation for how they are decided.
#[derive(Debug)]
pub struct CreatedTimes {
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    /// The latest time taken before a gather (at first, the creation time).
    before_last_gather: SystemTime,
    /// The created time of each series seen, by family name and labels.
    series: HashMap<(String, Vec<(String, String)>), SystemTime>,
}

impl Default for CreatedTimes {
    fn default() -> Self {
        Self::new()
    }
}

impl CreatedTimes {
    /// Created times for the series of a registry, none seen yet: make it
    /// before the metrics it will stamp.
    pub fn new() -> Self {
        Self {
            seen: Mutex::new(Seen {
                before_last_gather: SystemTime::now(),
                series: HashMap::new(),
            }),
        }
    }

    /// Gives every counter and histogram series of `families` its created
    /// time, unless it has one already; `gathered_at` is a time taken
    /// before `families` were gathered. A series keeps the time it first got
    /// for the life of this value.
    pub fn stamp(&self, gathered_at: SystemTime, families: &mut [MetricFamily]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Seen {
            before_last_gather,
            series,
        } = &mut *seen;
        for family in families.iter_mut() {
            if !matches!(
                family.get_field_type(),
                MetricType::COUNTER | MetricType::HISTOGRAM
            ) {
                continue;
            }
            let name = family.name().to_string();
            for metric in family.mut_metric().iter_mut() {
                if created(metric).is_some() {
                    continue;
                }
                let labels = metric
                    .get_label()
                    .iter()
                    .map(|label| (label.name().to_string(), label.value().to_string()))
                    .collect();
                let time = *series
                    .entry((name.clone(), labels))
                    .or_insert(*before_last_gather);
                set_created(metric, time);
            }
        }
        // The latest, should a concurrent scrape that gathered earlier stamp
        // later: a series it did not see was made after its gather began.
        *before_last_gather = gathered_at.max(*before_last_gather);
    }
}

/// Sets the created time of `metric`, a counter's or a histogram's (for a
/// collector that knows when its series began); other kinds have none.
pub fn set_created(metric: &mut Metric, time: SystemTime) {
    let (number, fields) = if let Some(counter) = metric.counter.as_mut() {
        (COUNTER_CREATED, &mut counter.special_fields)
    } else if let Some(histogram) = metric.histogram.as_mut() {
        (HISTOGRAM_CREATED, &mut histogram.special_fields)
    } else {
        return;
    };
    let bytes = Timestamp::from(time)
        .write_to_bytes()
        .expect("a timestamp encodes");
    fields
        .mut_unknown_fields()
        .add_length_delimited(number, bytes);
}

/// The created time of `metric`, when it is a counter or histogram with one.
pub(crate) fn created(metric: &Metric) -> Option<SystemTime> {
    let (number, fields) = if let Some(counter) = metric.counter.as_ref() {
        (COUNTER_CREATED, &counter.special_fields)
    } else {
        (
            HISTOGRAM_CREATED,
            &metric.histogram.as_ref()?.special_fields,
        )
    };
    match fields.unknown_fields().get(number)? {
        UnknownValueRef::LengthDelimited(bytes) => {
            Timestamp::parse_from_bytes(bytes).ok().map(Into::into)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

    use super::*;

    /// (family, first label value or "", created time) of each series.
    fn times(families: &[MetricFamily]) -> Vec<(String, String, Option<SystemTime>)> {
        families
            .iter()
            .flat_map(|family| {
                family.get_metric().iter().map(|metric| {
                    let label = metric.get_label().first().map_or("", |l| l.value());
                    (
                        family.name().to_string(),
                        label.to_string(),
                        created(metric),
                    )
                })
            })
            .collect()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn each_series_is_stamped_with_the_time_before_the_gather_that_preceded_it() {
        let before = SystemTime::now();
        let created = CreatedTimes::new();
        let after = SystemTime::now();
        let registry = Registry::new();
        let ops = IntCounterVec::new(Opts::new("ops_total", "Ops"), &["status"]).unwrap();
        ops.with_label_values(&["200"]).inc();
        let latency = Histogram::with_opts(HistogramOpts::new("latency_seconds", "L")).unwrap();
        let gauge = IntGauge::new("memory_bytes", "Memory").unwrap();
        registry.register(Box::new(ops.clone())).unwrap();
        registry.register(Box::new(latency)).unwrap();
        registry.register(Box::new(gauge)).unwrap();

        // The first gather: the series made so far get the creation time.
        let mut first = registry.gather();
        created.stamp(at(2_000_000_000), &mut first);
        let start = times(&first)[0].2.unwrap();
        assert!(before <= start && start <= after, "{start:?}");
        assert_eq!(
            times(&first),
            [
                ("latency_seconds".to_string(), String::new(), Some(start)),
                ("memory_bytes".to_string(), String::new(), None),
                ("ops_total".to_string(), "200".to_string(), Some(start)),
            ]
        );

        // A series made after it gets the time taken before it; the others
        // keep theirs.
        ops.with_label_values(&["500"]).inc();
        let mut second = registry.gather();
        created.stamp(at(2_000_000_015), &mut second);
        let ops_times: Vec<_> = times(&second).into_iter().skip(2).collect();
        assert_eq!(
            ops_times,
            [
                ("ops_total".to_string(), "200".to_string(), Some(start)),
                (
                    "ops_total".to_string(),
                    "500".to_string(),
                    Some(at(2_000_000_000))
                ),
            ]
        );

        // A scrape that gathered before the last one but stamps after it
        // does not move the time back: a series made since gets the latest.
        let mut late = registry.gather();
        created.stamp(at(2_000_000_010), &mut late);
        ops.with_label_values(&["503"]).inc();
        let mut third = registry.gather();
        created.stamp(at(2_000_000_030), &mut third);
        assert_eq!(
            times(&third).last().unwrap(),
            &(
                "ops_total".to_string(),
                "503".to_string(),
                Some(at(2_000_000_015))
            )
        );
    }

    #[test]
    fn a_time_that_a_collector_set_is_kept() {
        let created = CreatedTimes::new();
        let registry = Registry::new();
        let ops = IntCounterVec::new(Opts::new("ops_total", "Ops"), &["status"]).unwrap();
        ops.with_label_values(&["200"]);
        registry.register(Box::new(ops)).unwrap();
        let mut families = registry.gather();
        set_created(&mut families[0].mut_metric()[0], at(1_700_000_000));
        created.stamp(at(2_000_000_000), &mut families);
        assert_eq!(
            times(&families),
            [(
                "ops_total".to_string(),
                "200".to_string(),
                Some(at(1_700_000_000))
            )]
        );
    }

    #[test]
    fn the_time_is_the_created_timestamp_field_of_prometheus_s_model() {
        let registry = Registry::new();
        let ops = IntCounterVec::new(Opts::new("ops_total", "Ops"), &["status"]).unwrap();
        ops.with_label_values(&["200"]).inc();
        let latency = Histogram::with_opts(HistogramOpts::new("latency_seconds", "L")).unwrap();
        registry.register(Box::new(ops)).unwrap();
        registry.register(Box::new(latency)).unwrap();
        let mut families = registry.gather();
        let time = UNIX_EPOCH + Duration::new(1_764_208_800, 123_456_789);
        for family in &mut families {
            set_created(&mut family.mut_metric()[0], time);
        }
        // Timestamp { seconds = 1 (varint), nanos = 2 (varint) } as bytes.
        let mut timestamp = vec![0x08];
        let mut seconds = 1_764_208_800u64;
        while seconds >= 0x80 {
            timestamp.push(seconds as u8 | 0x80);
            seconds >>= 7;
        }
        timestamp.push(seconds as u8);
        timestamp.extend([0x10, 0x95, 0x9a, 0xef, 0x3a]);
        let histogram = families[0].get_metric()[0].get_histogram();
        let counter = families[1].get_metric()[0].get_counter();
        for (fields, number) in [
            (&histogram.special_fields, 15),
            (&counter.special_fields, 3),
        ] {
            let found: Vec<(u32, String)> = fields
                .unknown_fields()
                .iter()
                .map(|(number, value)| (number, format!("{value:?}")))
                .collect();
            assert_eq!(found, [(number, format!("LengthDelimited({timestamp:?})"))]);
        }
    }
}
