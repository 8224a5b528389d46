//! Builds the application: the routes, the OpenAPI service, the listener.
use std::{net::SocketAddr, time::Duration};

use poem::{
    endpoint::BoxEndpoint, middleware::CatchPanic, Endpoint, EndpointExt, IntoEndpoint, Request,
    Response, Route,
};
use poem_openapi::{OpenApi, OpenApiService};
use tokio::net::{TcpListener, TcpSocket};

use crate::{
    config::Config,
    exposition::MetricsApi,
    health::HealthApi,
    metrics,
    metrics_token::{MetricsToken, TokenFileError},
    request_log::RequestLog,
    server::{self, Limits, ShutdownReport},
    shutdown::Shutdown,
    work::{WorkApi, WorkSettings},
};

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("--listen {address}: cannot bind: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error("--metrics-listen {address}: cannot bind: {source}")]
    MetricsBind {
        /// The address asked for.
        address: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The metrics token file cannot be used.
    #[error(transparent)]
    MetricsToken(#[from] TokenFileError),
    /// The metrics could not be registered.
    #[error("cannot register the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What the routes need.
#[derive(Debug, Clone)]
pub struct AppState {
    /// How `/work` behaves.
    pub work: WorkSettings,
    /// Shared with the server; drives `/readyz`.
    pub shutdown: Shutdown,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<MetricsToken>,
}

/// The OpenAPI service: every documented operation, as one port serves them
/// without `--metrics-listen`.
pub fn api(state: &AppState) -> OpenApiService<(WorkApi, HealthApi, MetricsApi), ()> {
    let (health, metrics) = metrics_port_operations(state);
    openapi(
        (WorkApi::new(state.work), health, metrics),
        "Simulates work on GET /work and exposes Prometheus metrics about it on GET /metrics.",
    )
}

/// The OpenAPI spec as pretty JSON, as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let config = Config::defaults();
    api(&AppState::new(&config, Shutdown::default())).spec()
}

/// The whole application on one port. [`metrics::init`] must have run.
pub fn app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    with_docs(api(state))
        .with(CatchPanic::new())
        .with(RequestLog)
}

/// The public port when `--metrics-listen` is set: `/work` and its docs, but
/// not `/metrics`, `/healthz` or `/readyz` (404).
pub fn public_app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    let api = openapi(
        WorkApi::new(state.work),
        "Simulates work on GET /work. This instance serves its metrics and health \
         probes on its --metrics-listen port.",
    );
    with_docs(api).with(CatchPanic::new()).with(RequestLog)
}

/// The `--metrics-listen` port: `/metrics`, `/healthz` and `/readyz` only.
pub fn metrics_app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    OpenApiService::new(
        metrics_port_operations(state),
        "myapp",
        env!("CARGO_PKG_VERSION"),
    )
    .into_endpoint()
    .with(CatchPanic::new())
    .with(RequestLog)
}

/// The operations that `--metrics-listen` moves to its port.
fn metrics_port_operations(state: &AppState) -> (HealthApi, MetricsApi) {
    (
        HealthApi::new(state.shutdown.clone()),
        MetricsApi::new(state.metrics_token.clone()),
    )
}

fn openapi<T: OpenApi>(operations: T, description: &str) -> OpenApiService<T, ()> {
    OpenApiService::new(operations, "myapp", env!("CARGO_PKG_VERSION")).description(description)
}

// Where Swagger UI and the spec are served.
const DOCS_PATH: &str = "/docs";
const SPEC_JSON_PATH: &str = "/openapi.json";
const SPEC_YAML_PATH: &str = "/openapi.yaml";

/// The operations, with Swagger UI at `/docs` and the spec at `/openapi.*`.
fn with_docs<T: OpenApi + 'static>(api: OpenApiService<T, ()>) -> WithDocs {
    WithDocs {
        docs: Route::new()
            .nest(DOCS_PATH, api.swagger_ui())
            .at(SPEC_JSON_PATH, api.spec_endpoint())
            .at(SPEC_YAML_PATH, api.spec_endpoint_yaml()),
        api: api.into_endpoint(),
    }
}

/// Sends the docs' paths to their route and every other request straight to
/// the operations. `Route::new().nest("/", api)` would do the same, but it
/// routes every request twice and rebuilds its URI on the way: this saves 4,400
/// of the 26,100 instructions of a `/work` request (callgrind, benches/README.md).
struct WithDocs {
    docs: Route,
    api: BoxEndpoint<'static>,
}

impl Endpoint for WithDocs {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        let is_docs = path == SPEC_JSON_PATH
            || path == SPEC_YAML_PATH
            || path
                .strip_prefix(DOCS_PATH)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if is_docs {
            self.docs.call(req).await
        } else {
            self.api.call(req).await
        }
    }
}

impl AppState {
    /// The state described by `config`, without a metrics token:
    /// [`Application::build`] reads the token file.
    pub fn new(config: &Config, shutdown: Shutdown) -> Self {
        Self {
            work: WorkSettings {
                min_delay_ms: config.min_delay_ms,
                max_delay_ms: config.max_delay_ms,
                error_rate: config.error_rate,
                max_in_flight: config.max_in_flight,
            },
            shutdown,
            metrics_token: None,
        }
    }
}

/// The service, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    /// The `--metrics-listen` listener and its address.
    metrics: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    limits: Limits,
}

impl Application {
    /// Registers the metrics, reads the metrics token and binds the listen
    /// addresses (port 0 picks a free one).
    pub async fn build(config: &Config, shutdown: Shutdown) -> Result<Self, StartError> {
        metrics::init(&config.buckets.0, config.native_histogram_bucket_factor)?;
        let mut state = AppState::new(config, shutdown);
        state.metrics_token = config
            .metrics_token_file
            .as_deref()
            .map(MetricsToken::read)
            .transpose()?;
        let (listener, address) = bind(config.listen).map_err(|source| StartError::Bind {
            address: config.listen,
            source,
        })?;
        let metrics = match config.metrics_listen {
            Some(address) => {
                Some(bind(address).map_err(|source| StartError::MetricsBind { address, source })?)
            }
            None => None,
        };
        Ok(Self {
            listener,
            address,
            metrics,
            state,
            limits: Limits {
                shutdown_timeout: config.shutdown_timeout(),
                header_timeout: Duration::from_secs(config.header_timeout_secs),
            },
        })
    }

    /// The address the service listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address that serves `/metrics`, `/healthz` and `/readyz`: the
    /// `--metrics-listen` one, or else the public one.
    pub fn metrics_address(&self) -> SocketAddr {
        self.metrics
            .as_ref()
            .map_or(self.address, |(_, address)| *address)
    }

    /// Whether `/metrics` requires a bearer token.
    pub fn has_metrics_token(&self) -> bool {
        self.state.metrics_token.is_some()
    }

    /// Serves until shutdown begins and the drain ends; both ports drain
    /// together, and the report counts the requests cut off on either.
    pub async fn run(self) -> ShutdownReport {
        let Self {
            listener,
            metrics,
            state,
            limits,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        let Some((metrics_listener, _)) = metrics else {
            return server::serve(listener, app(&state), shutdown, limits).await;
        };
        let (public, metrics) = tokio::join!(
            server::serve(listener, public_app(&state), shutdown.clone(), limits),
            server::serve(metrics_listener, metrics_app(&state), shutdown, limits),
        );
        ShutdownReport {
            cut_off: public.cut_off + metrics.cut_off,
        }
    }
}

/// How many established connections the kernel queues until they are accepted;
/// it caps this at `net.core.somaxconn` (4096 by default). `TcpListener::bind`
/// asks for 128: a burst of thousands of connections overflows that, and the
/// kernel drops the overflow for the clients to retry a second or more later.
/// Go's `net.Listen` asks for `somaxconn` too.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` as `TcpListener::bind` does (`SO_REUSEADDR`), with
/// [`LISTEN_BACKLOG`], and says which address it got.
fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}
