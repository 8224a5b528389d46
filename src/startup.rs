//! Builds the application: the routes of each port and the request stack
//! around them ([`app`], [`stack`]), the state they share ([`AppState`]), and
//! the listeners ([`Application::build`]).
use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use poem::{
    endpoint::{BoxEndpoint, DynEndpoint},
    middleware::CatchPanic,
    Endpoint, EndpointExt, IntoEndpoint, Request, Response, Route,
};
use poem_openapi::{OpenApi, OpenApiService};
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::Config,
    metrics::{self, exposition::MetricsApi, middleware::RecordOperations, Registered},
    server::{
        self,
        basic_auth::{BasicAuth, BasicAuthUsers},
        body_deadline::BodyDeadline,
        health::HealthApi,
        metrics_token::{MetricsToken, TokenFileError},
        shutdown::Shutdown,
        web_config::{WebConfig, WebConfigError},
        Limits, ShutdownReport,
    },
    telemetry::request_log::RequestLog,
    workload::{admin::AdminApi, parse_file, read_file, work::WorkApi, Invalid, Source, Workload},
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
    /// The workload file cannot be read.
    #[error("--workload-file {}: cannot read: {source}", path.display())]
    WorkloadFileUnreadable {
        /// The file named.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The workload file holds settings that break a rule.
    #[error("--workload-file {}: {invalid}", path.display())]
    WorkloadFileInvalid {
        /// The file named.
        path: PathBuf,
        /// The rule broken.
        invalid: Invalid,
    },
    /// The web configuration file cannot be used.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    /// Basic auth and the bearer token both want the `Authorization` header.
    #[error(
        "--web-config-file {} lists basic_auth_users and --metrics-token-file is set: a \
         request carries one Authorization header, so use one of them",
        .0.display()
    )]
    BasicAuthAndToken(std::path::PathBuf),
}

/// What the routes need.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The metrics registered at start-up, which the app records into and
    /// `/metrics` exposes.
    pub metrics: &'static Registered,
    /// How `/work` behaves now.
    pub workload: Arc<Workload>,
    /// `/work` requests allowed in flight at once.
    pub max_in_flight: u32,
    /// Shared with the server; drives `/readyz`.
    pub shutdown: Shutdown,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<MetricsToken>,
    /// The users that basic auth lets in on the port that serves `/metrics`,
    /// if `--web-config-file` lists any.
    pub basic_auth: Option<BasicAuthUsers>,
    /// How long a request's body may take to arrive (`--body-timeout-secs`).
    pub body_timeout: Duration,
    /// Whether OpenMetrics answers carry `_created` samples.
    pub openmetrics_created_samples: bool,
}

impl AppState {
    /// The state described by `config`'s flags (validated), recording into
    /// `metrics`, without a metrics token or users: [`Application::build`]
    /// reads their files and the workload file.
    pub fn new(config: &Config, shutdown: Shutdown, metrics: &'static Registered) -> Self {
        Self {
            metrics,
            workload: Arc::new(Workload::new(
                config.workload(),
                config.delay_cap_ms,
                metrics.workload.clone(),
            )),
            max_in_flight: config.max_in_flight,
            shutdown,
            metrics_token: None,
            basic_auth: None,
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            openmetrics_created_samples: config.openmetrics_created_samples,
        }
    }
}

/// The whole application on one port: every operation, the docs, and the
/// request stack.
pub fn app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    stack(
        Routes::new(api(state)),
        state.basic_auth.clone(),
        state.body_timeout,
    )
}

/// The public port when `--metrics-listen` is set: `/work` and its docs, but
/// not `/metrics`, `/healthz`, `/readyz` or `/admin/*` (404).
pub fn public_app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    let api = openapi(
        work_api(state),
        "Simulates work on GET /work. This instance serves its metrics and health \
         probes on its --metrics-listen port.",
    );
    stack(Routes::new(api), None, state.body_timeout)
}

/// The `--metrics-listen` port: `/metrics`, `/healthz`, `/readyz` and
/// `/admin/*` only, without docs.
pub fn metrics_app(state: &AppState) -> impl Endpoint<Output = Response> + 'static {
    let api = OpenApiService::new(
        metrics_port_operations(state),
        "myapp",
        env!("CARGO_PKG_VERSION"),
    );
    stack(
        api.into_endpoint(),
        state.basic_auth.clone(),
        state.body_timeout,
    )
}

/// The request stack of every port around its routes. A request goes, from
/// the outside in, through:
///
/// 1. the server (`server::serve`): the header timeout, TLS on the port that
///    serves `/metrics` with `--web-config-file`, the drain on shutdown;
/// 2. `RequestLog`: one log line per request, and its span;
/// 3. `CatchPanic`: a panic answered 500;
/// 4. `BodyDeadline`: a body late by `--body-timeout-secs` answered 408;
/// 5. `BasicAuth`: the users of `--web-config-file`, when this port serves
///    `/metrics` and it lists any (a no-op otherwise);
/// 6. the routes (`Routes`): the docs, or the operations; `/work` records its
///    metrics around its operation (`work_api`, `RecordOperations`) and
///    refuses past `--max-in-flight` (`WorkApi`); `/metrics` and
///    `/admin/workload` check the bearer token (`MetricsApi`, `AdminApi`).
fn stack(
    routes: impl Endpoint + 'static,
    basic_auth: Option<BasicAuthUsers>,
    body_timeout: Duration,
) -> impl Endpoint<Output = Response> + 'static {
    routes
        .with(BasicAuth(basic_auth))
        .with(BodyDeadline(body_timeout))
        .with(CatchPanic::new())
        .with(RequestLog)
}

/// The OpenAPI service: every documented operation, as one port serves them
/// without `--metrics-listen`.
pub fn api(
    state: &AppState,
) -> OpenApiService<(RecordOperations<WorkApi>, HealthApi, MetricsApi, AdminApi), ()> {
    let (health, metrics, admin) = metrics_port_operations(state);
    openapi(
        (work_api(state), health, metrics, admin),
        "Simulates work on GET /work and exposes Prometheus metrics about it on GET /metrics.",
    )
}

/// The OpenAPI spec as pretty JSON, as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let config = Config::defaults();
    // Registered in a registry of their own, never scraped: the spec needs
    // the operations, not their metrics.
    let unexposed = Registered::register(
        &prometheus::Registry::new(),
        &config.buckets.0,
        config.native_histogram_bucket_factor,
    )
    .expect("a new registry takes the metrics");
    let state = AppState::new(&config, Shutdown::default(), Box::leak(Box::new(unexposed)));
    api(&state).spec()
}

/// `/work`, recorded in the request metrics.
fn work_api(state: &AppState) -> RecordOperations<WorkApi> {
    let work = WorkApi::new(state.workload.clone(), state.max_in_flight);
    RecordOperations::new(work, &state.metrics.requests)
}

/// The operations that `--metrics-listen` moves to its port.
fn metrics_port_operations(state: &AppState) -> (HealthApi, MetricsApi, AdminApi) {
    (
        HealthApi::new(state.shutdown.clone()),
        MetricsApi::new(
            state.metrics,
            state.metrics_token.clone(),
            state.openmetrics_created_samples,
        ),
        AdminApi::new(
            state.workload.clone(),
            state.metrics_token.clone(),
            state.basic_auth.is_some(),
        ),
    )
}

fn openapi<T: OpenApi>(operations: T, description: &str) -> OpenApiService<T, ()> {
    OpenApiService::new(operations, "myapp", env!("CARGO_PKG_VERSION")).description(description)
}

// Where Swagger UI and the spec are served.
const DOCS_PATH: &str = "/docs";
const SPEC_JSON_PATH: &str = "/openapi.json";
const SPEC_YAML_PATH: &str = "/openapi.yaml";

/// A port's routes: Swagger UI at `/docs` and the spec at `/openapi.*`,
/// every other request straight to the operations.
///
/// `Route::new().nest("/", api)` would route the same, but it routes every
/// request twice and rebuilds its URI on the way.
// perf: benches/README.md, "What the second round of changes bought", the
// row of `WithDocs` (now `Routes`).
struct Routes {
    docs: BoxEndpoint<'static>,
    api: BoxEndpoint<'static>,
}

impl Routes {
    fn new<T: OpenApi + 'static>(api: OpenApiService<T, ()>) -> Self {
        Self {
            docs: Route::new()
                .nest(DOCS_PATH, api.swagger_ui())
                .at(SPEC_JSON_PATH, api.spec_endpoint())
                .at(SPEC_YAML_PATH, api.spec_endpoint_yaml())
                .boxed(),
            api: api.into_endpoint(),
        }
    }
}

impl Endpoint for Routes {
    type Output = Response;

    // perf: not `async`: the boxed future of the endpoint is the whole of
    // this one (16 bytes). An `async fn` would hold the 472-byte request
    // twice (its argument and the call's) and the route's future inline,
    // 1,500 bytes more in every request's future, moved on every layer.
    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let path = req.uri().path();
        let is_docs = path == SPEC_JSON_PATH
            || path == SPEC_YAML_PATH
            || path
                .strip_prefix(DOCS_PATH)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        let endpoint = if is_docs { &self.docs } else { &self.api };
        DynEndpoint::call(endpoint.as_ref(), req)
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
    /// The `--workload-file` and the contents applied at start-up.
    workload_file: Option<(PathBuf, Vec<u8>)>,
    /// TLS for the port that serves `/metrics`, from `--web-config-file`.
    tls: Option<TlsAcceptor>,
}

impl Application {
    /// Registers the metrics, reads the metrics token, applies the workload
    /// file and binds the listen addresses (port 0 picks a free one).
    pub async fn build(config: &Config, shutdown: Shutdown) -> Result<Self, StartError> {
        let metrics = metrics::init(&config.buckets.0, config.native_histogram_bucket_factor);
        let mut state = AppState::new(config, shutdown, metrics);
        let workload_file = match &config.workload_file {
            Some(path) => {
                // Before serving: a blocking read holds up nothing.
                let contents =
                    read_file(path).map_err(|source| StartError::WorkloadFileUnreadable {
                        path: path.clone(),
                        source,
                    })?;
                let invalid_file = |invalid| StartError::WorkloadFileInvalid {
                    path: path.clone(),
                    invalid,
                };
                // Checked first, so that an invalid file stops start-up with
                // its one line rather than a log line too.
                let changes = parse_file(&contents)
                    .and_then(|changes| {
                        let flags = state.workload.settings();
                        flags.changed(&changes, config.delay_cap_ms)?;
                        Ok(changes)
                    })
                    .map_err(invalid_file)?;
                state
                    .workload
                    .change(&changes, Source::File, &path.display())
                    .map_err(invalid_file)?;
                Some((path.clone(), contents))
            }
            None => None,
        };
        state.metrics_token = config
            .metrics_token_file
            .as_deref()
            .map(MetricsToken::read)
            .transpose()?;
        let web = config
            .web_config_file
            .as_deref()
            .map(WebConfig::read)
            .transpose()?
            .unwrap_or_default();
        if let (Some(path), Some(_), Some(_)) =
            (&config.web_config_file, &web.users, &state.metrics_token)
        {
            return Err(StartError::BasicAuthAndToken(path.clone()));
        }
        state.basic_auth = web.users;
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
                shutdown_delay: Duration::from_secs(config.shutdown_delay_secs),
                shutdown_timeout: config.shutdown_timeout(),
                header_timeout: Duration::from_secs(config.header_timeout_secs),
            },
            workload_file,
            tls: web.tls.map(TlsAcceptor::from),
        })
    }

    /// The workload in force.
    pub fn workload(&self) -> &Workload {
        &self.state.workload
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

    /// Whether the port that serves `/metrics` speaks TLS.
    pub fn has_metrics_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the port that serves `/metrics` requires basic auth.
    pub fn has_basic_auth(&self) -> bool {
        self.state.basic_auth.is_some()
    }

    /// Serves until shutdown begins and the drain ends; both ports drain
    /// together, and the report counts the requests cut off on either. Until
    /// shutdown begins, the workload file is watched for changes.
    pub async fn run(self) -> ShutdownReport {
        let Self {
            listener,
            metrics,
            state,
            limits,
            workload_file,
            tls,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        if let Some((path, contents)) = workload_file {
            let (workload, shutdown) = (state.workload.clone(), shutdown.clone());
            tokio::spawn(async move { workload.watch_file(path, contents, shutdown).await });
        }
        let Some((metrics_listener, _)) = metrics else {
            return server::serve(listener, app(&state), shutdown, limits, tls).await;
        };
        let (public, metrics) = tokio::join!(
            server::serve(listener, public_app(&state), shutdown.clone(), limits, None),
            server::serve(metrics_listener, metrics_app(&state), shutdown, limits, tls),
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
