//! The metrics and their exposition. Every metric lives in the prometheus
//! crate's default registry, registered once at start-up by [`init`], which
//! hands back what the app records into; the app receives them as state.
//!
//! | file | what |
//! | --- | --- |
//! | `request.rs` | `/work`'s request metrics and their one `record` method |
//! | `middleware.rs` | the poem middleware that records each `/work` request |
//! | `exposition.rs` | `GET /metrics` and its `promhttp_*` metrics |
//! | `process.rs` | the `process_*` metrics, from `/proc/self` |
//! | `runtime.rs` | the tokio runtime's gauges |
//!
//! The formats the prometheus crate lacks (OpenMetrics, exemplars, native
//! histograms, negotiation) are the workspace's `prometheus-exposition` crate.
pub mod exposition;
pub mod middleware;
pub mod process;
pub mod request;
pub mod runtime;

use std::sync::OnceLock;

use prometheus::{IntGaugeVec, Opts, Registry};
use prometheus_exposition::CreatedTimes;

pub use self::{exposition::ScrapeMetrics, request::RequestMetrics};
use self::{process::ProcessCollector, runtime::RuntimeCollector};
use crate::{telemetry::dropped::DroppedLinesCollector, workload::WorkloadMetrics};

/// Every metric of the service that the app records into.
#[derive(Debug)]
pub struct Registered {
    /// The request metrics of `/work`.
    pub requests: RequestMetrics,
    /// The settings of the workload in force.
    pub workload: WorkloadMetrics,
    /// The `promhttp_*` metrics of `/metrics`.
    pub scrapes: ScrapeMetrics,
    /// When each counter and histogram series was created: the time they
    /// were registered for those made then, as client_golang has it.
    pub created: CreatedTimes,
    registry: Registry,
}

impl Registered {
    /// Registers every metric in `registry`: the [`RequestMetrics`] of `/work`
    /// with these histogram buckets (and native ones of this growth factor,
    /// unless 0), `myapp_build_info`, the [`WorkloadMetrics`], the
    /// [`ScrapeMetrics`] of `/metrics`, the process's metrics, the tokio
    /// runtime's gauges and the count of log lines dropped.
    pub fn register(
        registry: &Registry,
        buckets: &[f64],
        native_factor: f64,
    ) -> prometheus::Result<Self> {
        // Before the metrics, so that its first gather stamps them with a
        // time before any of them counted.
        let created = CreatedTimes::new();
        let requests = RequestMetrics::register(registry, buckets, native_factor)?;
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
        registry.register(Box::new(build_info))?;
        let workload = WorkloadMetrics::register(registry)?;
        let scrapes = ScrapeMetrics::register(registry)?;
        registry.register(Box::new(ProcessCollector::new()?))?;
        registry.register(Box::new(RuntimeCollector::new()?))?;
        registry.register(Box::new(DroppedLinesCollector::new()?))?;
        Ok(Self {
            requests,
            workload,
            scrapes,
            created,
            registry: registry.clone(),
        })
    }

    /// The families of every metric in the registry.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}

static REGISTERED: OnceLock<Registered> = OnceLock::new();

/// Registers every metric of the service in the default registry
/// ([`Registered::register`]) and returns them.
///
/// The first call registers; later calls in the same process (tests build many
/// apps) return the metrics it registered.
pub fn init(buckets: &[f64], native_factor: f64) -> &'static Registered {
    REGISTERED.get_or_init(|| {
        // A failure is a bug: the names are fixed and registered once, and
        // `Buckets` parses only increasing positive bounds.
        Registered::register(prometheus::default_registry(), buckets, native_factor)
            .expect("the metrics have valid, distinct names and buckets")
    })
}
