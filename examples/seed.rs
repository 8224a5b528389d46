//! The seed's design whole, to copy: `GET /work` simulates work, a middleware
//! counts and times it in the prometheus crate's default registry, `GET /metrics`
//! exposes the registry, Swagger UI is at `/docs`. `cargo run --example seed` serves
//! 0.0.0.0:3000 (or `SEED_ADDR`): `curl -i localhost:3000/work; curl localhost:3000/metrics`
use std::{sync::LazyLock, time::Duration, time::Instant};

use poem::{handler, listener::TcpListener, Endpoint, EndpointExt, Middleware, Response, Route};
use poem_openapi::{param::Query, payload::Json, ApiResponse, Object, OpenApi, OpenApiService};
use prometheus::{register_histogram, register_int_counter_vec, Histogram, IntCounterVec};
use prometheus::{TextEncoder, TEXT_FORMAT};

struct Metrics {
    /// A counter only goes up; `rate()` makes it requests per second, by status.
    processed: IntCounterVec,
    /// A histogram counts durations in buckets (<= 5 ms, ... <= 10 s), plus their
    /// sum and count. An average hides the slow requests; buckets show how slow
    /// the slowest 1 % are (`histogram_quantile()`), added across instances.
    duration: Histogram,
}

/// The metrics, process-wide as exporters do; registered at first use: `app()` may run twice.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    processed: register_int_counter_vec!(
        "myapp_processed_ops_total",
        "The total number of processed events",
        &["status"]
    )
    .expect("registered once (the LazyLock)"),
    duration: register_histogram!(
        "myapp_request_duration_seconds",
        "Time taken to answer a /work request, in seconds"
    )
    .expect("registered once (the LazyLock)"),
});

/// Records each request of the endpoint it wraps: its status and duration.
struct RecordMetrics(&'static Metrics);

impl<E: Endpoint> Middleware<E> for RecordMetrics {
    type Output = RecordMetricsEndpoint<E>;
    fn transform(&self, inner: E) -> Self::Output {
        RecordMetricsEndpoint(inner, self.0)
    }
}

/// The endpoint made by [`RecordMetrics`]: the inner endpoint and the metrics.
struct RecordMetricsEndpoint<E>(E, &'static Metrics);

impl<E: Endpoint> Endpoint for RecordMetricsEndpoint<E> {
    type Output = Response;
    async fn call(&self, req: poem::Request) -> poem::Result<Response> {
        // A future dropped mid-request (its HTTP/2 client gone, a timeout, a
        // shutdown) never runs the lines after its `.await`. The guard records
        // once, on drop: as 499 (nginx's "client closed request") if unanswered.
        let mut recording = Recording {
            metrics: self.1,
            start: Instant::now(),
            status: 499,
        };
        let response = self.0.get_response(req).await;
        recording.status = response.status().as_u16();
        Ok(response)
    }
}

/// One request being recorded. Dropping it records the request.
struct Recording {
    metrics: &'static Metrics,
    start: Instant,
    status: u16,
}

impl Drop for Recording {
    fn drop(&mut self) {
        let (seconds, status) = (self.start.elapsed().as_secs_f64(), self.status.to_string());
        self.metrics.duration.observe(seconds);
        self.metrics.processed.with_label_values(&[status]).inc();
    }
}

/// What `GET /work` did.
#[derive(Object)]
struct Work {
    /// How long the work took, in milliseconds.
    delay_ms: u64,
    /// What went wrong, on a 500 (the service fails on purpose); else absent.
    #[oai(skip_serializing_if_is_none)]
    error: Option<String>,
}

/// Answers of `GET /work`.
#[derive(ApiResponse)]
enum WorkResponse {
    /// The work was done (half the requests, at random).
    #[oai(status = 200)]
    Done(Json<Work>),
    /// The work failed (the other half).
    #[oai(status = 500)]
    Failed(Json<Work>),
}

struct WorkApi;

#[OpenApi]
impl WorkApi {
    /// Sleeps 0 to 1000 ms (uniform), then answers 200 or 500 (50 % each).
    // Only /work is recorded (not /metrics, /docs, 404s), as the help says.
    #[oai(path = "/work", method = "get", transform = "record_metrics")]
    async fn work(
        &self,
        /// Sleep exactly this many milliseconds (0 to 1000) instead of a random time.
        #[oai(validator(maximum(value = "1000")))]
        delay_ms: Query<Option<u64>>,
    ) -> WorkResponse {
        let delay_ms = delay_ms.0.unwrap_or_else(|| rand::random_range(0..=1000));
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let error = rand::random_bool(0.5).then(|| "simulated failure".to_string());
        match error {
            Some(_) => WorkResponse::Failed(Json(Work { delay_ms, error })),
            None => WorkResponse::Done(Json(Work { delay_ms, error })),
        }
    }
}

fn record_metrics(work: impl Endpoint) -> impl Endpoint {
    work.with(RecordMetrics(&METRICS))
}

/// `GET /metrics`: every metric of the default registry, in the text format.
#[handler]
fn scrape() -> poem::Result<Response> {
    let text = TextEncoder::new().encode_to_string(&prometheus::gather());
    let body = text.map_err(poem::error::InternalServerError)?;
    Ok(Response::builder().content_type(TEXT_FORMAT).body(body))
}

/// The whole service: `/work`, `/metrics` and Swagger UI at `/docs`.
pub fn app() -> impl Endpoint {
    let api = OpenApiService::new(WorkApi, "seed", "1.0");
    Route::new()
        .nest("/docs", api.swagger_ui())
        .at("/metrics", scrape)
        .nest("/", api)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("SEED_ADDR").unwrap_or_else(|_| "0.0.0.0:3000".to_string());
    poem::Server::new(TcpListener::bind(addr)).run(app()).await
}
