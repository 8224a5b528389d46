//! The seed's metrics (`examples/seed.rs` explains them and the guard) for several routes,
//! labelled `{route, status}`: `route` is the template of the route that answered
//! (`/users/:param0`), never the path asked (`/users/1`), so there is one series per route.
//! `cargo run --example by_route` (0.0.0.0:3000, or `BY_ROUTE_ADDR`); `curl localhost:3000/users/1`
use std::{sync::Arc, sync::LazyLock, time::Instant};

use poem::{listener::TcpListener, Endpoint, EndpointExt, PathPattern, Response, Route};
use poem_openapi::{param::Path, payload::Json, ApiResponse, Object, OpenApi, OpenApiService};
use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};
use prometheus::{TextEncoder, TEXT_FORMAT};

/// The route label when no route matched (404: the API nested at `/` then answers with its
/// own, empty, template), or the client left (499) before the answer that carries it. Never
/// the raw path: anyone can ask for `/a`, `/b`, `/c`…, each value a new series kept until
/// restart, so the client would choose how many. No template collides: all start with `/`.
const NO_ROUTE: &str = "none";

struct Metrics {
    processed: IntCounterVec,
    duration: HistogramVec,
}

/// The metrics, process-wide as exporters do; registered at first use.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    processed: register_int_counter_vec!(
        "myapp_processed_ops_total",
        "The total number of processed events",
        &["route", "status"]
    )
    .expect("registered once (the LazyLock)"),
    duration: register_histogram_vec!(
        "myapp_request_duration_seconds",
        "Time taken to answer a request, in seconds",
        &["route", "status"]
    )
    .expect("registered once (the LazyLock)"),
});

/// The middleware: records each request under the template poem's `Route` put in its answer.
async fn record_by_route<E: Endpoint>(
    metrics: &'static Metrics,
    routes: Arc<E>,
    req: poem::Request,
) -> poem::Result<Response> {
    let mut recording = Recording {
        metrics,
        start: Instant::now(),
        route: None,
        status: 499,
    };
    let response = routes.get_response(req).await;
    let route = response.data::<PathPattern>().map(|route| route.0.clone());
    recording.route = route.filter(|route| !route.is_empty());
    recording.status = response.status().as_u16();
    Ok(response)
}

/// One request being recorded. Dropping it records the request.
struct Recording {
    metrics: &'static Metrics,
    start: Instant,
    route: Option<Arc<str>>,
    status: u16,
}

impl Drop for Recording {
    fn drop(&mut self) {
        let (seconds, status) = (self.start.elapsed().as_secs_f64(), self.status.to_string());
        let labels = [self.route.as_deref().unwrap_or(NO_ROUTE), &status];
        let metrics = self.metrics;
        metrics.duration.with_label_values(&labels).observe(seconds);
        metrics.processed.with_label_values(&labels).inc();
    }
}

/// A user.
#[derive(Object)]
struct User {
    /// The user's name.
    name: String,
}

/// Answers of `GET /users/{id}`.
#[derive(ApiResponse)]
enum UserResponse {
    /// The user of this id.
    #[oai(status = 200)]
    Found(Json<User>),
    /// No user has this id: a 404 of this route, labelled with its template.
    #[oai(status = 404)]
    NotFound,
}

/// Answers of `GET /work`.
#[derive(ApiResponse)]
enum WorkResponse {
    /// The work was done (half the requests, at random).
    #[oai(status = 200)]
    Done,
    /// The work failed (the other half).
    #[oai(status = 500)]
    Failed,
}

struct Api;

#[OpenApi]
impl Api {
    /// Answers 200 or 500 at random (50 % each), at once.
    #[oai(path = "/work", method = "get")]
    async fn work(&self) -> WorkResponse {
        match rand::random_bool(0.5) {
            true => WorkResponse::Failed,
            false => WorkResponse::Done,
        }
    }

    /// The user of this id; ids 1 to 3 exist.
    #[oai(path = "/users/:id", method = "get")]
    async fn user(&self, id: Path<u64>) -> UserResponse {
        let name = ["ada", "grace", "alan"].get((id.0 as usize).wrapping_sub(1));
        match name.map(|name| name.to_string()) {
            Some(name) => UserResponse::Found(Json(User { name })),
            None => UserResponse::NotFound,
        }
    }
}

/// `GET /metrics`: every metric of the default registry, in the text format.
#[poem::handler]
fn scrape() -> poem::Result<Response> {
    let text = TextEncoder::new().encode_to_string(&prometheus::gather());
    let body = text.map_err(poem::error::InternalServerError)?;
    Ok(Response::builder().content_type(TEXT_FORMAT).body(body))
}

/// The whole service; the middleware wraps every route (`/metrics` too).
pub fn app() -> impl Endpoint {
    let (api, metrics) = (OpenApiService::new(Api, "by_route", "1.0"), &*METRICS);
    Route::new()
        .at("/metrics", scrape)
        .nest("/", api)
        .around(move |routes, req| record_by_route(metrics, routes, req))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BY_ROUTE_ADDR").unwrap_or_else(|_| "0.0.0.0:3000".to_string());
    poem::Server::new(TcpListener::bind(addr)).run(app()).await
}
