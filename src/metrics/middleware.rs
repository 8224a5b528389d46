//! The middleware that records every request of the endpoint it wraps: the
//! poem `Middleware` + `Endpoint` pair, the future that polls the inner one
//! in place, the `Recording` guard that records on drop, and
//! `RecordOperations`, which puts it around each operation of an OpenAPI.
use std::{
    collections::HashMap,
    future::Future,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use pin_project_lite::pin_project;
use poem::{
    endpoint::BoxEndpoint,
    http::{Method, StatusCode},
    Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Result,
};
use poem_openapi::{
    registry::{MetaApi, Registry},
    OpenApi,
};

use super::RequestMetrics;
use crate::telemetry::trace_context::{TraceContext, TRACEPARENT};

/// The status recorded for a request whose client went away before the answer
/// (nginx's "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The target of the 499 line, which `RUST_LOG` filters name: the module's
/// path before it moved into `metrics/`, kept so that filters still apply.
const LOG_TARGET: &str = "myapp::request_metrics";

/// Records each request in [`RequestMetrics`]: in flight while it runs, then
/// its duration, status and trace id, exactly once ([`RequestMetrics::record`]).
///
/// The trace id is the one of a valid W3C `traceparent` request header, or a
/// new random one; the answer carries it in its own `traceparent` (with a
/// new parent id), except an error answer (a caught panic), which is made
/// from the error further out.
///
/// Errors count with the status they become, panics are caught and count (and
/// answer) as 500, and a request dropped unanswered because its client closed
/// the connection counts as 499.
pub struct RecordMetrics {
    metrics: &'static RequestMetrics,
}

impl RecordMetrics {
    /// A middleware that records into `metrics`.
    pub fn new(metrics: &'static RequestMetrics) -> Self {
        Self { metrics }
    }
}

impl<E: Endpoint> Middleware<E> for RecordMetrics {
    type Output = RecordMetricsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RecordMetricsEndpoint {
            inner,
            metrics: self.metrics,
        }
    }
}

/// The endpoint made by [`RecordMetrics`].
pub struct RecordMetricsEndpoint<E> {
    inner: E,
    metrics: &'static RequestMetrics,
}

impl<E: Endpoint> Endpoint for RecordMetricsEndpoint<E> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = Result<Response>> + Send {
        let trace = TraceContext::from_header(req.headers().get(TRACEPARENT));
        let recording = Recording::start(self.metrics, trace);
        Recorded {
            inner: self.inner.call(req),
            recording,
        }
    }
}

/// Every operation of the OpenAPI `T`, each wrapped in [`RecordMetrics`]
/// into `metrics`, as poem-openapi's `#[oai(transform)]` would wrap it (inside
/// the route, so that an unknown method or path is not recorded), but with
/// the metrics the app was given. The spec is `T`'s.
pub struct RecordOperations<T> {
    operations: T,
    metrics: &'static RequestMetrics,
}

impl<T> RecordOperations<T> {
    /// `operations`, recorded into `metrics`.
    pub fn new(operations: T, metrics: &'static RequestMetrics) -> Self {
        Self {
            operations,
            metrics,
        }
    }
}

impl<T: OpenApi> OpenApi for RecordOperations<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        let mut own = HashMap::new();
        self.operations.add_routes(&mut own);
        for (path, methods) in own {
            let routes = route_table.entry(path).or_default();
            for (method, endpoint) in methods {
                // Only scripts/bench.sh's bench-only build, which measures
                // what the middleware costs, leaves the operations as they are.
                let endpoint = if cfg!(feature = "bench-uninstrumented") {
                    endpoint
                } else {
                    endpoint.with(RecordMetrics::new(self.metrics)).boxed()
                };
                routes.insert(method, endpoint);
            }
        }
    }
}

pin_project! {
    /// The inner endpoint's future and its recording. The simple version is
    /// an `async` block: `let recording = ...; let result =
    /// AssertUnwindSafe(inner).catch_unwind().await; recording.status = ...`.
    // perf: polled in place instead, which saves moving the inner future
    // (and the request it holds) on every layer: benches/README.md, "What
    // the second round of changes bought".
    // Fields drop in this order: the inner future (and the request it holds)
    // before the recording ends.
    struct Recorded<F> {
        #[pin]
        inner: F,
        recording: Recording,
    }
}

impl<F, T> Future for Recorded<F>
where
    F: Future<Output = Result<T>>,
    T: IntoResponse,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match panic::catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result.map(IntoResponse::into_response),
            // The panic hook has logged the message. A future that panicked is
            // not polled again: this one is ready.
            Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR.into()),
        };
        let result = result.map(|mut response| {
            response
                .headers_mut()
                .insert(TRACEPARENT, this.recording.trace.response_header());
            response
        });
        this.recording.status = match &result {
            Ok(response) => response.status(),
            Err(err) => err.status(),
        }
        .as_u16();
        Poll::Ready(result)
    }
}

/// One request being recorded. Dropping it records the request, so a future
/// dropped mid-flight (client gone) is recorded too, and nothing twice.
struct Recording {
    metrics: &'static RequestMetrics,
    start: Instant,
    status: u16,
    trace: TraceContext,
}

impl Recording {
    fn start(metrics: &'static RequestMetrics, trace: TraceContext) -> Self {
        metrics.begin();
        Self {
            metrics,
            start: Instant::now(),
            status: CLIENT_CLOSED_REQUEST,
            trace,
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.metrics
            .record(self.status, elapsed, self.trace.trace_id);
        if self.status == CLIENT_CLOSED_REQUEST {
            tracing::info!(
                target: LOG_TARGET,
                ?elapsed,
                "client closed the connection before the answer; counted as 499"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use poem::{handler, test::TestClient, EndpointExt};
    use prometheus::Registry;

    use super::*;

    fn metrics() -> &'static RequestMetrics {
        let buckets = [0.05, 0.1, 1.0];
        Box::leak(Box::new(
            RequestMetrics::register(&Registry::new(), &buckets, 1.1).unwrap(),
        ))
    }

    fn counts(metrics: &RequestMetrics, status: u16) -> (u64, u64) {
        (
            metrics.processed(status).get(),
            metrics.duration.get_sample_count(),
        )
    }

    #[handler]
    fn ok() -> &'static str {
        "done"
    }

    #[handler]
    fn not_found() -> Result<&'static str> {
        Err(poem::error::NotFoundError.into())
    }

    #[handler]
    fn panics() -> &'static str {
        panic!("simulated bug")
    }

    #[handler]
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "too late"
    }

    #[tokio::test]
    async fn a_response_counts_with_its_status_and_is_timed() {
        let metrics = metrics();
        let (logs, _default) = crate::telemetry::capture_logs(tracing::Level::INFO);
        let client = TestClient::new(ok.with(RecordMetrics::new(metrics)));
        for _ in 0..3 {
            client.get("/").send().await.assert_status_is_ok();
        }
        assert_eq!(counts(metrics, 200), (3, 3));
        assert_eq!(metrics.in_flight.get(), 0);
        // Only a client gone before its answer is logged here.
        assert_eq!(logs.text(), "");
    }

    /// The exemplar of the counter series of `status`, as (trace id, value).
    fn counter_exemplar(metrics: &RequestMetrics, status: &str) -> Option<(String, f64)> {
        let mut label = prometheus::proto::LabelPair::default();
        label.set_name("status".to_string());
        label.set_value(status.to_string());
        let series = prometheus::proto::Metric::from_label(vec![label]);
        metrics
            .exemplars
            .snapshot()
            .counter("myapp_processed_ops_total", &series)
            .map(|exemplar| (exemplar.trace_id.to_string(), exemplar.value))
    }

    #[tokio::test]
    async fn the_trace_id_of_a_valid_traceparent_is_answered_and_becomes_the_exemplar() {
        let metrics = metrics();
        let client = TestClient::new(ok.with(RecordMetrics::new(metrics)));
        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let response = client.get("/").header("traceparent", sent).send().await;
        let answered = response.0.headers()[TRACEPARENT].to_str().unwrap();
        assert_eq!(&answered[..36], &sent[..36]);
        assert_eq!(&answered[52..], "-01");
        assert_eq!(
            counter_exemplar(metrics, "200"),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736".to_string(), 1.0))
        );
    }

    #[tokio::test]
    async fn without_a_valid_traceparent_a_new_trace_id_is_answered_and_recorded() {
        let metrics = metrics();
        let client = TestClient::new(ok.with(RecordMetrics::new(metrics)));
        for sent in [
            None,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"),
        ] {
            let mut request = client.get("/");
            if let Some(sent) = sent {
                request = request.header("traceparent", sent);
            }
            let response = request.send().await;
            let answered = response.0.headers()[TRACEPARENT]
                .to_str()
                .unwrap()
                .to_string();
            let trace_id = &answered[3..35];
            assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(
                counter_exemplar(metrics, "200"),
                Some((trace_id.to_string(), 1.0)),
                "sent {sent:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_error_counts_with_the_status_it_becomes() {
        let metrics = metrics();
        let client = TestClient::new(not_found.with(RecordMetrics::new(metrics)));
        client
            .get("/")
            .send()
            .await
            .assert_status(StatusCode::NOT_FOUND);
        assert_eq!(counts(metrics, 404), (1, 1));
        assert_eq!(metrics.processed(200).get(), 0);
    }

    #[tokio::test]
    async fn a_panic_is_logged_once_and_the_endpoint_keeps_serving() {
        let metrics = metrics();
        let (logs, _default) = crate::telemetry::capture_logs(tracing::Level::INFO);
        crate::telemetry::log_panics();
        let app = poem::Route::new()
            .at("/panic", panics)
            .at("/ok", ok)
            .with(RecordMetrics::new(metrics));
        let client = TestClient::new(app);
        client
            .get("/panic")
            .send()
            .await
            .assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        client.get("/ok").send().await.assert_status_is_ok();
        let logs = logs.text();
        assert_eq!(logs.matches("simulated bug").count(), 1, "{logs}");
        assert!(logs.contains("ERROR") && logs.contains("panic"), "{logs}");
        assert_eq!(
            (counts(metrics, 500), counts(metrics, 200)),
            ((1, 2), (1, 2))
        );
    }

    #[tokio::test]
    async fn a_panic_answers_and_counts_500() {
        let metrics = metrics();
        // Its panic goes through the hook that the test above installs: taking
        // a turn keeps the two from logging the same event at once, which
        // tracing's cache of enabled events does not survive.
        let (_logs, _turn) = crate::telemetry::capture_logs(tracing::Level::INFO);
        let client = TestClient::new(panics.with(RecordMetrics::new(metrics)));
        client
            .get("/")
            .send()
            .await
            .assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(counts(metrics, 500), (1, 1));
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[tokio::test]
    async fn a_request_dropped_unanswered_counts_once_as_499() {
        let metrics = metrics();
        let (logs, _default) = crate::telemetry::capture_logs(tracing::Level::INFO);
        let endpoint = slow.with(RecordMetrics::new(metrics));
        let request = endpoint.call(Request::default());
        let abandoned = tokio::time::timeout(Duration::from_millis(60), request).await;
        assert!(
            abandoned.is_err(),
            "the slow handler cannot answer in 60 ms"
        );
        assert_eq!(counts(metrics, 499), (1, 1));
        assert_eq!(metrics.processed(200).get(), 0);
        assert_eq!(metrics.in_flight.get(), 0);
        // Timed from the start to the drop: at least the 60 ms waited, and in
        // the bucket above 0.05 s.
        assert!(metrics.duration.get_sample_sum() >= 0.06);
        let logs = logs.text();
        assert_eq!(
            logs.matches("client closed the connection before the answer; counted as 499")
                .count(),
            1,
            "{logs}"
        );
    }
}
