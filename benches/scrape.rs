//! What one scrape of `/metrics` costs: gathering the default registry (the
//! app's metrics and the process collector, which reads `/proc`) and encoding it
//! in the text format, as `MetricsApi` does.
//!
//! `cargo bench --bench scrape`; `scripts/bench.sh` runs it.
use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion};
use myapp::{
    config::{Buckets, DEFAULT_BUCKETS},
    metrics,
    telemetry::trace_context::TraceId,
};
use prometheus::{Encoder, TextEncoder};

fn scrape(c: &mut Criterion) {
    let buckets: Buckets = DEFAULT_BUCKETS.parse().expect("default buckets");
    let registered = metrics::init(&buckets.0, 1.1);
    let metrics = &registered.requests;
    // A scrape of a service that has been working: every series present.
    for (status, seconds) in [(200, 0.3), (500, 1.2), (499, 2.2)] {
        metrics.begin();
        metrics.record(status, Duration::from_secs_f64(seconds), TraceId([1; 16]));
    }

    let mut group = c.benchmark_group("scrape");
    group.bench_function("gather_and_encode", |b| {
        b.iter(|| {
            TextEncoder::new()
                .encode_to_string(&registered.gather())
                .expect("encodes")
        })
    });
    let families = registered.gather();
    let mut buffer = Vec::with_capacity(8 * 1024);
    group.bench_function("encode_only", |b| {
        b.iter(|| {
            buffer.clear();
            TextEncoder::new()
                .encode(black_box(&families), &mut buffer)
                .expect("encodes");
            buffer.len()
        })
    });
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
