//! The metrics: process-wide globals in the prometheus crate's default
//! registry. `GET /metrics` (src/exposition/) exposes them.
use std::{borrow::Cow, sync::OnceLock};

use prometheus::{
    proto::MetricFamily, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use prometheus::core::Collector;

use crate::{
    exposition::{Exemplars, NativeHistogram, ScrapeMetrics},
    process_metrics::ProcessCollector,
    runtime_metrics::RuntimeCollector,
    workload::WorkloadMetrics,
};

/// The request metrics of `/work`.
#[derive(Debug)]
pub struct Metrics {
    processed: IntCounterVec,
    // The two common outcomes, resolved once so that recording them skips the
    // label lookup.
    processed_ok: IntCounter,
    processed_error: IntCounter,
    /// Time from the request reaching the middleware to its answer, in seconds.
    pub duration: Histogram,
    /// Requests being handled now.
    pub in_flight: IntGauge,
    /// The settings of the workload in force.
    pub workload: WorkloadMetrics,
    /// The newest request of each histogram bucket and counter series.
    pub exemplars: Exemplars,
    /// The native buckets of `duration`, unless turned off.
    pub native: Option<NativeHistogram>,
}

impl Metrics {
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
        let build_info = IntGaugeVec::new(
            Opts::new(
                "myapp_build_info",
                "Build information: the version of myapp, always 1",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(processed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(build_info))?;
        let exemplars = Exemplars::new(
            &duration.desc()[0].fq_name,
            buckets,
            &processed.desc()[0].fq_name,
            "status",
        );
        Ok(Self {
            workload: WorkloadMetrics::register(registry)?,
            processed_ok: processed.with_label_values(&["200"]),
            processed_error: processed.with_label_values(&["500"]),
            processed,
            duration,
            in_flight,
            exemplars,
            native: (native_factor > 0.0).then(|| NativeHistogram::new(native_factor)),
        })
    }

    /// Observes a request's duration in the histogram and its native buckets.
    pub fn observe_duration(&self, seconds: f64) {
        match &self.native {
            Some(native) => native.observe(&self.duration, seconds),
            None => self.duration.observe(seconds),
        }
    }

    /// The counter of requests answered with `status`; borrowed for 200 and
    /// 500, which saves cloning and dropping an `Arc` per request.
    pub fn processed(&self, status: u16) -> Cow<'_, IntCounter> {
        match status {
            200 => Cow::Borrowed(&self.processed_ok),
            500 => Cow::Borrowed(&self.processed_error),
            other => Cow::Owned(self.processed.with_label_values(&[other.to_string()])),
        }
    }
}

/// Every metric of the service that the handlers record into, registered in
/// the default registry by [`init`].
#[derive(Debug)]
pub struct Registered {
    /// The request metrics of `/work`.
    pub work: Metrics,
    /// The `promhttp_*` metrics of `/metrics`.
    pub scrapes: ScrapeMetrics,
}

impl Registered {
    /// Registers every metric in the default registry.
    fn register(buckets: &[f64], native_factor: f64) -> prometheus::Result<Self> {
        let registry = prometheus::default_registry();
        let work = Metrics::register(registry, buckets, native_factor)?;
        let scrapes = ScrapeMetrics::register(registry)?;
        registry.register(Box::new(ProcessCollector::new()?))?;
        registry.register(Box::new(RuntimeCollector::new()?))?;
        Ok(Self { work, scrapes })
    }

    /// The families of every metric in the default registry.
    pub fn gather(&self) -> Vec<MetricFamily> {
        prometheus::default_registry().gather()
    }
}

static REGISTERED: OnceLock<Registered> = OnceLock::new();

/// Registers every metric of the service in the default registry: the
/// [`Metrics`] of `/work` with these histogram buckets (and native ones of
/// this growth factor, unless 0), the [`ScrapeMetrics`] of `/metrics`, the
/// process's metrics and the tokio runtime's gauges.
///
/// The first call registers; later calls in the same process (tests build many
/// apps) return the metrics it registered.
pub fn init(buckets: &[f64], native_factor: f64) -> &'static Registered {
    REGISTERED.get_or_init(|| {
        // A failure is a bug: the names are fixed and registered once, and
        // `Buckets` parses only increasing positive bounds.
        Registered::register(buckets, native_factor)
            .expect("the metrics have valid, distinct names and buckets")
    })
}

/// The metrics registered by [`init`].
pub fn global() -> &'static Registered {
    REGISTERED
        .get()
        .expect("metrics::init runs before the app is built")
}
