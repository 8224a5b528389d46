//! `GET` and `PUT /admin/workload`: the workload settings in force, read and
//! changed while the service runs. Served where `/metrics` is, behind the
//! same token.
use std::sync::Arc;

use poem::{http::HeaderMap, web::RemoteAddr};
use poem_openapi::{
    payload::{Json, PlainText},
    ApiResponse, Object, OpenApi,
};

use super::{Change, Invalid, Settings, Source, Workload};
use crate::server::metrics_token::MetricsToken;

/// A change refused: nothing changed.
#[derive(Debug, Object)]
pub struct InvalidChange {
    /// The setting at fault, when the fault is one setting's.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
    /// The rule the change breaks.
    pub error: String,
}

/// Answers of `/admin/workload`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "not_json")]
pub enum WorkloadResponse {
    /// The settings in force (after the change, for a `PUT`).
    #[oai(status = 200)]
    Settings(Json<Settings>),
    /// The change breaks a rule, or the body is not JSON: nothing changed.
    #[oai(status = 400)]
    Invalid(Json<InvalidChange>),
    /// The service runs with `--metrics-token-file` and the request lacks
    /// `Authorization: Bearer <token>` with that token.
    #[oai(status = 401)]
    Unauthorized(
        PlainText<&'static str>,
        /// `Bearer`.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

impl From<Invalid> for WorkloadResponse {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(Json(InvalidChange {
            field: invalid.field,
            error: invalid.message,
        }))
    }
}

/// Answers a body that is not JSON: not a change, so not counted as one.
fn not_json(err: poem::Error) -> WorkloadResponse {
    WorkloadResponse::Invalid(Json(InvalidChange {
        field: None,
        error: err.to_string(),
    }))
}

/// The admin operations.
pub struct AdminApi {
    workload: Arc<Workload>,
    token: Option<MetricsToken>,
}

impl AdminApi {
    /// The operations on `workload`; with a token, they answer only requests
    /// that carry it.
    pub fn new(workload: Arc<Workload>, token: Option<MetricsToken>) -> Self {
        Self { workload, token }
    }

    fn unauthorized(&self, headers: &HeaderMap) -> Option<WorkloadResponse> {
        (!MetricsToken::admits(self.token.as_ref(), headers)).then(|| {
            WorkloadResponse::Unauthorized(
                PlainText("a bearer token is required\n"),
                "Bearer".to_string(),
            )
        })
    }
}

#[OpenApi]
impl AdminApi {
    /// The workload in force
    ///
    /// The settings `/work` follows now. With `--metrics-token-file`, requires
    /// `Authorization: Bearer <token>`.
    #[oai(path = "/admin/workload", method = "get")]
    async fn workload(&self, headers: &HeaderMap) -> WorkloadResponse {
        if let Some(refused) = self.unauthorized(headers) {
            return refused;
        }
        WorkloadResponse::Settings(Json(self.workload.settings()))
    }

    /// Change the workload
    ///
    /// Takes any of the settings; every one is checked, then the whole (each
    /// delay at most `--delay-cap-ms`, `min_delay_ms` at most `max_delay_ms`,
    /// the shares from 0.0 to 1.0), and the change applies at once to the
    /// next requests, or nothing changes and the answer names the field.
    /// Requests already waiting keep the delay they drew. The latest change
    /// wins, whether it came from here or from the `--workload-file`. Each
    /// change is logged with the old and new settings and the client's
    /// address. With `--metrics-token-file`, requires `Authorization: Bearer <token>`.
    #[oai(path = "/admin/workload", method = "put")]
    async fn change_workload(
        &self,
        headers: &HeaderMap,
        remote_addr: &RemoteAddr,
        change: Json<Change>,
    ) -> WorkloadResponse {
        if let Some(refused) = self.unauthorized(headers) {
            return refused;
        }
        let by = remote_addr
            .as_socket_addr()
            .map_or_else(|| remote_addr.to_string(), ToString::to_string);
        match self.workload.change(&change.0 .0, Source::Api, &by) {
            Ok(settings) => WorkloadResponse::Settings(Json(settings)),
            Err(invalid) => invalid.into(),
        }
    }
}
