//! The seed's design on axum, a peer of `scripts/bench.sh`: axum 0.8 with
//! axum-prometheus (metrics-exporter-prometheus) as its README shows, and
//! `GET /work` as benches/go-seed (benches/peers/seed). `--no-metrics` leaves
//! the layer and `/metrics` out.
//!
//! ```sh
//! cargo build --release --locked --manifest-path benches/peers/axum-prom/Cargo.toml --target-dir target/peers
//! ```
use std::sync::Arc;

use axum::{
    extract::State,
    http::{header::CONTENT_TYPE, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use axum_prometheus::PrometheusMetricLayer;
use seed::Args;
use tokio::net::TcpListener;

// myapp's allocator, so that the benchmark compares stacks, not allocators.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Arc::new(Args::from_command_line());
    let mut app = Router::new()
        .route("/work", get(work))
        .with_state(Arc::clone(&args));
    if !args.no_metrics {
        let (layer, handle) = PrometheusMetricLayer::pair();
        app = app
            .route("/metrics", get(|| async move { handle.render() }))
            .layer(layer);
    }
    let listener = TcpListener::bind(args.listen).await?;
    println!("listening address={}", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn work(State(args): State<Arc<Args>>) -> impl IntoResponse {
    let answer = seed::work(&args).await;
    let status = if answer.failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (status, [(CONTENT_TYPE, seed::JSON)], answer.body)
}
