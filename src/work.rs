//! `GET /work`: simulated work that takes a random time and fails at a random rate.
use std::time::Duration;

use poem::Endpoint;
use poem_openapi::{payload::Json, ApiResponse, Object, OpenApi};
use rand::Rng;
use tokio::sync::Semaphore;

/// How `/work` behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkSettings {
    /// Shortest delay, in milliseconds.
    pub min_delay_ms: u64,
    /// Longest delay, in milliseconds (included).
    pub max_delay_ms: u64,
    /// Share of requests that fail, from 0.0 to 1.0.
    pub error_rate: f64,
    /// Requests allowed in flight at once; more are answered 503.
    pub max_in_flight: u32,
}

/// The work was done.
#[derive(Debug, Object)]
pub struct WorkDone {
    /// How long the work took, in milliseconds.
    pub delay_ms: u64,
}

/// The work failed (on purpose: the service simulates failures).
#[derive(Debug, Object)]
pub struct WorkFailed {
    /// How long the work took before failing, in milliseconds.
    pub delay_ms: u64,
    /// What went wrong.
    pub error: String,
}

/// Too many requests are in flight: this one was not started.
#[derive(Debug, Object)]
pub struct Overloaded {
    /// Why the request was refused.
    pub error: String,
}

/// Seconds a refused client is asked to wait, in `Retry-After`.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Answers of `GET /work`.
#[derive(Debug, ApiResponse)]
pub enum WorkResponse {
    /// The work was done.
    #[oai(status = 200)]
    Done(Json<WorkDone>),
    /// The work failed, as it does for a share of requests set by `--error-rate`.
    #[oai(status = 500)]
    Failed(Json<WorkFailed>),
    /// `--max-in-flight` requests are already in flight; retry after the
    /// number of seconds in `Retry-After`.
    #[oai(status = 503)]
    Overloaded(
        Json<Overloaded>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// The `/work` operation.
pub struct WorkApi {
    settings: WorkSettings,
    permits: Semaphore,
}

impl WorkApi {
    /// The operation with these settings.
    pub fn new(settings: WorkSettings) -> Self {
        Self {
            settings,
            permits: Semaphore::new(settings.max_in_flight as usize),
        }
    }
}

#[OpenApi]
impl WorkApi {
    /// Simulate work
    ///
    /// Sleeps a uniformly random time between the minimum and maximum delay,
    /// then answers 200, or 500 for a random share of requests; 503 at once when
    /// `--max-in-flight` requests are already in flight. Counted in
    /// `myapp_processed_ops_total` and timed in `myapp_request_duration_seconds`.
    #[oai(path = "/work", method = "get", transform = "record_metrics")]
    async fn work(&self) -> WorkResponse {
        let Ok(_permit) = self.permits.try_acquire() else {
            return WorkResponse::Overloaded(
                Json(Overloaded {
                    error: format!("{} requests already in flight", self.settings.max_in_flight),
                }),
                RETRY_AFTER_SECS,
            );
        };
        let WorkSettings {
            min_delay_ms,
            max_delay_ms,
            error_rate,
            ..
        } = self.settings;
        let (delay_ms, fails) = {
            let mut rng = rand::rng();
            (
                rng.random_range(min_delay_ms..=max_delay_ms),
                rng.random_bool(error_rate),
            )
        };
        // tokio rounds a sleep up to its next millisecond tick, so even a zero
        // delay would park the request until the timer fires; like Go's
        // time.Sleep(0), no delay means no wait.
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        if fails {
            WorkResponse::Failed(Json(WorkFailed {
                delay_ms,
                error: "simulated failure".to_string(),
            }))
        } else {
            WorkResponse::Done(Json(WorkDone { delay_ms }))
        }
    }
}

#[cfg(not(feature = "bench-uninstrumented"))]
fn record_metrics(endpoint: impl Endpoint) -> impl Endpoint {
    use crate::{metrics, request_metrics::RequestMetrics};
    use poem::EndpointExt;

    endpoint.with(RequestMetrics::new(metrics::global()))
}

// Only in the bench-only build of scripts/bench.sh, which measures what the
// middleware costs: the endpoint unchanged.
#[cfg(feature = "bench-uninstrumented")]
fn record_metrics(endpoint: impl Endpoint) -> impl Endpoint {
    endpoint
}
