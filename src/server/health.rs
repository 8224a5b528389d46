//! `GET /healthz` and `GET /readyz`.
use poem_openapi::{payload::PlainText, ApiResponse, OpenApi};

use crate::server::shutdown::Shutdown;

/// Answer of `GET /healthz`.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The process is alive and serving.
    #[oai(status = 200)]
    Alive(PlainText<&'static str>),
}

/// Answers of `GET /readyz`.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The service takes new requests.
    #[oai(status = 200)]
    Ready(PlainText<&'static str>),
    /// Shutdown has begun: send new requests elsewhere.
    #[oai(status = 503)]
    ShuttingDown(PlainText<&'static str>),
}

/// The health operations.
pub struct HealthApi {
    shutdown: Shutdown,
}

impl HealthApi {
    /// Readiness follows `shutdown`.
    pub fn new(shutdown: Shutdown) -> Self {
        Self { shutdown }
    }
}

#[OpenApi]
impl HealthApi {
    /// Liveness probe
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Alive(PlainText("ok"))
    }

    /// Readiness probe
    ///
    /// 503 from the moment shutdown begins, so that load balancers stop
    /// sending requests while the in-flight ones finish.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> ReadyResponse {
        if self.shutdown.has_begun() {
            ReadyResponse::ShuttingDown(PlainText("shutting down"))
        } else {
            ReadyResponse::Ready(PlainText("ready"))
        }
    }
}
