//! The request metrics of `/work`: answers counted by status, the latency
//! histogram, the requests in flight, and the layers around the histogram
//! that the prometheus crate lacks (exemplars, native buckets).
use std::{borrow::Cow, time::Duration};

use prometheus::{
    core::Collector, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use prometheus_exposition::{Exemplars, NativeHistogram, TraceId};

/// The request metrics of `/work`, registered once at start-up.
#[derive(Debug)]
pub struct RequestMetrics {
    processed: IntCounterVec,
    // perf: the two common outcomes, resolved once (see `processed`).
    processed_ok: IntCounter,
    processed_error: IntCounter,
    /// Time from the request reaching the middleware to its answer, in seconds.
    pub duration: Histogram,
    /// Requests being handled now.
    pub in_flight: IntGauge,
    /// The newest request of each histogram bucket and counter series.
    pub(crate) exemplars: Exemplars,
    /// The native buckets of `duration`, unless turned off.
    pub(crate) native: Option<NativeHistogram>,
}

impl RequestMetrics {
    /// Creates the metrics and registers them in `registry`; the histogram
    /// has native buckets of this growth factor too, unless it is 0.
    pub fn register(
        registry: &Registry,
        buckets: &[f64],
        native_factor: f64,
    ) -> prometheus::Result<Self> {
        let processed = IntCounterVec::new(
            Opts::new(
                "myapp_processed_ops_total",
                "The total number of processed events",
            ),
            &["status"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "myapp_request_duration_seconds",
                "Time taken to answer a /work request, in seconds",
            )
            .buckets(buckets.to_vec()),
        )?;
        let in_flight = IntGauge::new(
            "myapp_requests_in_flight",
            "Number of /work requests being handled",
        )?;
        registry.register(Box::new(processed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        let exemplars = Exemplars::new(
            &duration.desc()[0].fq_name,
            buckets,
            &processed.desc()[0].fq_name,
            "status",
        );
        Ok(Self {
            processed_ok: processed.with_label_values(&["200"]),
            processed_error: processed.with_label_values(&["500"]),
            processed,
            duration,
            in_flight,
            exemplars,
            native: (native_factor > 0.0).then(|| NativeHistogram::new(native_factor)),
        })
    }

    /// A request begins: one more in flight until [`RequestMetrics::record`].
    /// Each `begin` is followed by exactly one `record`: the middleware's
    /// drop guard (`middleware.rs`) makes sure of it.
    pub fn begin(&self) {
        self.in_flight.inc();
    }

    /// A request that began has ended with `status` after `elapsed`: its
    /// duration goes into the histogram (and its native buckets), its status
    /// into the counter, its trace id into the exemplars of both, and it is no
    /// longer in flight. Without the exemplar and native layers this is
    ///
    /// ```text
    /// self.duration.observe(elapsed.as_secs_f64());
    /// self.processed.with_label_values(&[status.to_string()]).inc();
    /// self.in_flight.dec();
    /// ```
    pub fn record(&self, status: u16, elapsed: Duration, trace_id: TraceId) {
        let seconds = elapsed.as_secs_f64();
        match &self.native {
            Some(native) => native.observe(&self.duration, seconds),
            None => self.duration.observe(seconds),
        }
        self.processed(status).inc();
        // After the observation, so that a scrape that reads the exemplars
        // first finds each one counted (see `Exemplars::snapshot`).
        self.exemplars.record(status, seconds, trace_id);
        self.in_flight.dec();
    }

    /// How many requests were answered with `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.processed(status).get()
    }

    /// The counter of requests answered with `status`:
    /// `processed.with_label_values(&[status.to_string()])`.
    // perf: borrowed for 200 and 500, which saves formatting the label,
    // looking it up and cloning and dropping an `Arc` per request
    // (benches/README.md, "What the second round of changes bought").
    pub(crate) fn processed(&self, status: u16) -> Cow<'_, IntCounter> {
        match status {
            200 => Cow::Borrowed(&self.processed_ok),
            500 => Cow::Borrowed(&self.processed_error),
            other => Cow::Owned(self.processed.with_label_values(&[other.to_string()])),
        }
    }
}
