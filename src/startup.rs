//! Builds the application: the routes, the OpenAPI service, the listener.
use std::{net::SocketAddr, time::Duration};

use poem::{
    middleware::{CatchPanic, Tracing},
    Endpoint, EndpointExt, Response, Route,
};
use poem_openapi::OpenApiService;
use tokio::net::{TcpListener, TcpSocket};

use crate::{
    config::Config,
    health::HealthApi,
    metrics::{self, MetricsApi},
    server::{self, ShutdownReport},
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
}

/// The OpenAPI service: every documented operation.
pub fn api(state: &AppState) -> OpenApiService<(WorkApi, HealthApi, MetricsApi), ()> {
    OpenApiService::new(
        (
            WorkApi::new(state.work),
            HealthApi::new(state.shutdown.clone()),
            MetricsApi,
        ),
        "myapp",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Simulates work on GET /work and exposes Prometheus metrics about it on GET /metrics.",
    )
}

/// The OpenAPI spec as pretty JSON, as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let config = Config::defaults();
    api(&AppState::new(&config, Shutdown::default())).spec()
}

/// The whole application as one endpoint. [`metrics::init`] must have run.
pub fn app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    let api = api(state);
    Route::new()
        .nest("/docs", api.swagger_ui())
        .at("/openapi.json", api.spec_endpoint())
        .at("/openapi.yaml", api.spec_endpoint_yaml())
        .nest("/", api)
        .with(CatchPanic::new())
        .with(Tracing)
}

impl AppState {
    /// The state described by `config`.
    pub fn new(config: &Config, shutdown: Shutdown) -> Self {
        Self {
            work: WorkSettings {
                min_delay_ms: config.min_delay_ms,
                max_delay_ms: config.max_delay_ms,
                error_rate: config.error_rate,
            },
            shutdown,
        }
    }
}

/// The service, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    shutdown_timeout: Duration,
}

impl Application {
    /// Registers the metrics and binds the listen address (port 0 picks a free one).
    pub async fn build(config: &Config, shutdown: Shutdown) -> Result<Self, StartError> {
        metrics::init(&config.buckets.0)?;
        let listener = bind(config.listen).map_err(|source| StartError::Bind {
            address: config.listen,
            source,
        })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            address: config.listen,
            source,
        })?;
        Ok(Self {
            listener,
            address,
            state: AppState::new(config, shutdown),
            shutdown_timeout: config.shutdown_timeout(),
        })
    }

    /// The address the service listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until shutdown begins and the drain ends.
    pub async fn run(self) -> ShutdownReport {
        let app = app(&self.state);
        server::serve(
            self.listener,
            app,
            self.state.shutdown.clone(),
            self.shutdown_timeout,
        )
        .await
    }
}

/// How many established connections the kernel queues until they are accepted;
/// it caps this at `net.core.somaxconn` (4096 by default). `TcpListener::bind`
/// asks for 128: a burst of thousands of connections overflows that, and the
/// kernel drops the overflow for the clients to retry a second or more later.
/// Go's `net.Listen` asks for `somaxconn` too.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` as `TcpListener::bind` does (`SO_REUSEADDR`), with
/// [`LISTEN_BACKLOG`].
fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
