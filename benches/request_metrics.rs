//! What the `RecordMetrics` middleware costs per request, on one thread.
//!
//! - `bare_endpoint`: a trivial endpoint that answers at once, called through
//!   `Endpoint::get_response` as poem calls it;
//! - `with_request_metrics`: the same endpoint wrapped in `RecordMetrics`; the
//!   difference between the two is the middleware's cost per request;
//! - `metric_ops`: only the metric calls the middleware makes per request
//!   (`begin`, the clock, `record`), without the endpoint or the trace
//!   context.
//!
//! `cargo bench --bench request_metrics`; `scripts/bench.sh` runs it and reports
//! the difference against the 100 ns target.
use std::{hint::black_box, time::Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use myapp::{
    config::{Buckets, DEFAULT_BUCKETS},
    metrics::{middleware::RecordMetrics, RequestMetrics},
    telemetry::trace_context::TraceId,
};
use poem::{endpoint::make_sync, Endpoint, EndpointExt, Request, Response};
use prometheus::Registry;

fn metrics() -> &'static RequestMetrics {
    let buckets: Buckets = DEFAULT_BUCKETS.parse().expect("default buckets");
    Box::leak(Box::new(
        RequestMetrics::register(&Registry::new(), &buckets.0, 1.1).expect("fresh registry"),
    ))
}

/// One request through `endpoint`, which answers without waiting.
fn call(endpoint: &impl Endpoint) -> Response {
    endpoint
        .get_response(Request::default())
        .now_or_never()
        .expect("a trivial endpoint answers at once")
}

fn request_metrics(c: &mut Criterion) {
    let metrics = metrics();
    let bare = make_sync(|_| r#"{"delay_ms":0}"#);
    let instrumented = make_sync(|_| r#"{"delay_ms":0}"#).with(RecordMetrics::new(metrics));

    let mut group = c.benchmark_group("request_metrics");
    group.bench_function("bare_endpoint", |b| b.iter(|| black_box(call(&bare))));
    group.bench_function("with_request_metrics", |b| {
        b.iter(|| black_box(call(&instrumented)))
    });
    // The calls `Recording` makes, through the same API.
    group.bench_function("metric_ops", |b| {
        b.iter(|| {
            metrics.begin();
            let start = Instant::now();
            metrics.record(black_box(200), start.elapsed(), TraceId([7; 16]));
        })
    });
    group.finish();
    assert!(metrics.count(200) > 0, "the requests were recorded");
}

criterion_group!(benches, request_metrics);
criterion_main!(benches);
