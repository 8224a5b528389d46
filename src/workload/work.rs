//! `GET /work`: simulated work that takes a random time and fails at a random
//! rate, as the [`Workload`] in force says, unless the request says otherwise.
use std::{sync::Arc, time::Duration};

use poem_openapi::{param::Query, payload::Json, ApiResponse, Object, OpenApi};
use tokio::sync::Semaphore;

use super::Workload;

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

/// A query parameter was refused.
#[derive(Debug, Object)]
pub struct InvalidParameter {
    /// The parameter at fault.
    pub parameter: String,
    /// The rule it breaks.
    pub error: String,
}

/// Seconds a refused client is asked to wait, in `Retry-After`.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Answers of `GET /work`.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "invalid_parameter")]
pub enum WorkResponse {
    /// The work was done.
    #[oai(status = 200)]
    Done(Json<WorkDone>),
    /// A query parameter is malformed or out of range; the body names it and
    /// the rule.
    #[oai(status = 400)]
    InvalidParameter(Json<InvalidParameter>),
    /// The work failed, as it does for a share of requests set by the error
    /// rate, or when `fail=true`.
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

/// The rule of the `delay_ms` parameter.
const DELAY_MS_RULE: &str =
    "delay_ms must be a whole number of milliseconds, from 0 to --delay-cap-ms";

/// The rule of the `fail` parameter.
const FAIL_RULE: &str = "fail must be true or false";

impl WorkResponse {
    fn invalid(parameter: &str, error: String) -> Self {
        Self::InvalidParameter(Json(InvalidParameter {
            parameter: parameter.to_string(),
            error,
        }))
    }
}

/// Answers a parameter that does not parse: the only way a `/work` request
/// can be malformed.
fn invalid_parameter(err: poem::Error) -> WorkResponse {
    match err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        Some(err) if err.name == "delay_ms" => {
            WorkResponse::invalid(err.name, DELAY_MS_RULE.to_string())
        }
        Some(err) if err.name == "fail" => WorkResponse::invalid(err.name, FAIL_RULE.to_string()),
        Some(err) => WorkResponse::invalid(err.name, err.reason.clone()),
        None => WorkResponse::invalid("", err.to_string()),
    }
}

/// The `/work` operation.
pub struct WorkApi {
    workload: Arc<Workload>,
    max_in_flight: u32,
    permits: Semaphore,
}

impl WorkApi {
    /// The operation, following `workload`, with at most `max_in_flight`
    /// requests at once.
    pub fn new(workload: Arc<Workload>, max_in_flight: u32) -> Self {
        Self {
            workload,
            max_in_flight,
            permits: Semaphore::new(max_in_flight as usize),
        }
    }
}

#[OpenApi]
impl WorkApi {
    /// Simulate work
    ///
    /// Sleeps a uniformly random time between the minimum and maximum delay
    /// (or, for a share of requests, the slow delay), then answers 200, or 500
    /// for a random share of requests, as the workload in force says
    /// (`GET /admin/workload`); the query parameters override both draws.
    /// 503 at once when `--max-in-flight` requests are already in flight.
    /// Counted in `myapp_processed_ops_total` and timed in
    /// `myapp_request_duration_seconds`.
    #[oai(path = "/work", method = "get")]
    async fn work(
        &self,
        /// Sleep exactly this many milliseconds (0 to `--delay-cap-ms`, 10000
        /// by default) instead of a random delay.
        delay_ms: Query<Option<u64>>,
        /// `true` answers 500 and `false` answers 200, instead of the random draw.
        fail: Query<Option<bool>>,
    ) -> WorkResponse {
        let delay_cap_ms = self.workload.delay_cap_ms();
        if let Some(delay_ms) = delay_ms.0.filter(|&delay_ms| delay_ms > delay_cap_ms) {
            return WorkResponse::invalid(
                "delay_ms",
                format!("delay_ms ({delay_ms}) must not be greater than --delay-cap-ms ({delay_cap_ms})"),
            );
        }
        let Ok(_permit) = self.permits.try_acquire() else {
            return WorkResponse::Overloaded(
                Json(Overloaded {
                    error: format!("{} requests already in flight", self.max_in_flight),
                }),
                RETRY_AFTER_SECS,
            );
        };
        let settings = self.workload.settings();
        let (delay_ms, fails) = {
            let mut rng = rand::rng();
            (
                delay_ms.0.unwrap_or_else(|| settings.draw_delay(&mut rng)),
                fail.0.unwrap_or_else(|| settings.draw_failure(&mut rng)),
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
