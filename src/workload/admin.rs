//! `GET` and `PUT /admin/workload`: the workload settings in force, read and
//! changed while the service runs. Served where `/metrics` is, behind the
//! same token or basic auth; without either, changes are taken from loopback
//! only.
use std::sync::Arc;

use poem::{error::ReadBodyError, http::HeaderMap, web::RemoteAddr, Body, Request, RequestBody};
use poem_openapi::{
    payload::{Json, ParsePayload, Payload, PlainText},
    registry::{MetaSchemaRef, Registry},
    types::Type,
    ApiResponse, Object, OpenApi,
};

use serde_json::Value;

use super::{Invalid, Settings, SettingsChange, Source, Workload};
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
    /// Neither `--metrics-token-file` nor `basic_auth_users` is set, and the
    /// change comes from a peer that is not loopback: changes are taken from
    /// loopback only until one of them is set.
    #[oai(status = 403)]
    Forbidden(PlainText<&'static str>),
    /// The body is longer than 64 KiB: not read further, nothing changed, and
    /// the connection closed.
    #[oai(status = 413)]
    TooLarge(
        PlainText<&'static str>,
        /// `close`.
        #[oai(header = "Connection")]
        String,
    ),
}

/// The longest body `PUT /admin/workload` reads, in bytes; a change is a few
/// dozen.
pub const MAX_CHANGE_BYTES: usize = 64 * 1024;

/// Why a change from a peer that is not loopback is refused, and what opens it.
pub const LOOPBACK_ONLY: &str = "PUT /admin/workload is taken from loopback only while neither \
    --metrics-token-file nor basic_auth_users in --web-config-file is set: set one to change \
    the workload from other hosts\n";

/// The body of `PUT /admin/workload`, documented as [`SettingsChange`] but taken
/// unread: it is read only once the request is let in, and at most
/// [`MAX_CHANGE_BYTES`] of it.
pub struct ChangeBody(Body);

impl Payload for ChangeBody {
    const CONTENT_TYPE: &'static str = Json::<SettingsChange>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<SettingsChange>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        SettingsChange::schema_ref()
    }

    fn register(registry: &mut Registry) {
        SettingsChange::register(registry);
    }
}

impl ParsePayload for ChangeBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(body.take()?))
    }
}

// With no bounds: the one-argument form calls itself without its crate path.
poem_openapi::impl_apirequest_for_payload!(ChangeBody,);

impl From<Invalid> for WorkloadResponse {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(Json(InvalidChange {
            field: invalid.field,
            error: invalid.message,
        }))
    }
}

/// Answers a body that is not JSON: not a change, so not counted as one.
fn not_json(err: impl ToString) -> WorkloadResponse {
    WorkloadResponse::Invalid(Json(InvalidChange {
        field: None,
        error: err.to_string(),
    }))
}

/// The admin operations.
pub struct AdminApi {
    workload: Arc<Workload>,
    token: Option<MetricsToken>,
    /// Whether basic auth guards the port (checked before the routes).
    basic_auth: bool,
}

impl AdminApi {
    /// The operations on `workload`; with a token, they answer only requests
    /// that carry it; with neither a token nor basic auth, changes are taken
    /// from loopback only.
    pub fn new(workload: Arc<Workload>, token: Option<MetricsToken>, basic_auth: bool) -> Self {
        Self {
            workload,
            token,
            basic_auth,
        }
    }

    /// Refuses a change from a peer that is not loopback when neither a token
    /// nor basic auth guards the port. A peer that is not an IP address
    /// (poem's in-process test client) is local.
    fn not_local(&self, remote_addr: &RemoteAddr) -> Option<WorkloadResponse> {
        let guarded = self.token.is_some() || self.basic_auth;
        let peer = remote_addr
            .as_socket_addr()
            .map(|addr| addr.ip().to_canonical());
        (!guarded && peer.is_some_and(|ip| !ip.is_loopback()))
            .then_some(WorkloadResponse::Forbidden(PlainText(LOOPBACK_ONLY)))
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
    /// address. With `--metrics-token-file`, requires `Authorization: Bearer
    /// <token>`; without it or basic auth, is taken from loopback only (403
    /// otherwise). The body is read only then, and at most 64 KiB of it (413).
    #[oai(path = "/admin/workload", method = "put")]
    async fn change_workload(
        &self,
        headers: &HeaderMap,
        remote_addr: &RemoteAddr,
        change: ChangeBody,
    ) -> WorkloadResponse {
        if let Some(refused) = self
            .unauthorized(headers)
            .or_else(|| self.not_local(remote_addr))
        {
            return refused;
        }
        let body = match change.0.into_bytes_limit(MAX_CHANGE_BYTES).await {
            Ok(body) => body,
            Err(ReadBodyError::PayloadTooLarge) => {
                return WorkloadResponse::TooLarge(
                    PlainText("the body is longer than 64 KiB, the most a change may take\n"),
                    "close".to_owned(),
                )
            }
            Err(err) => return not_json(poem::Error::from(err)),
        };
        let change: Value = match serde_json::from_slice(&body) {
            Ok(change) => change,
            Err(err) => return not_json(format!("parse request payload error: {err}")),
        };
        let by = remote_addr
            .as_socket_addr()
            .map_or_else(|| remote_addr.to_string(), ToString::to_string);
        match self.workload.change(&change, Source::Api, &by) {
            Ok(settings) => WorkloadResponse::Settings(Json(settings)),
            Err(invalid) => invalid.into(),
        }
    }
}
