//! The seed's design on actix-web, a peer of `scripts/bench.sh`: actix-web 4
//! with actix-web-prom as its README shows (the middleware serves `/metrics`),
//! and `GET /work` as benches/go-seed (benches/peers/seed). `--no-metrics`
//! leaves the middleware, and so `/metrics`, out.
//!
//! ```sh
//! cargo build --release --locked --manifest-path benches/peers/actix-prom/Cargo.toml --target-dir target/peers
//! ```
use actix_web::{http::StatusCode, web, App, HttpResponse, HttpServer};
use actix_web_prom::PrometheusMetricsBuilder;
use seed::Args;

// myapp's allocator, so that the benchmark compares stacks, not allocators.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = web::Data::new(Args::from_command_line());
    let listen = args.listen;
    // The two Apps are of different types: each branch binds and starts its own server.
    let (addresses, server) = if args.no_metrics {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(args.clone())
                .route("/work", web::get().to(work))
        })
        .bind(listen)?;
        (server.addrs(), server.run())
    } else {
        let prometheus = PrometheusMetricsBuilder::new("api")
            .endpoint("/metrics")
            .build()
            .expect("the default metrics register in a new registry");
        let server = HttpServer::new(move || {
            App::new()
                .wrap(prometheus.clone())
                .app_data(args.clone())
                .route("/work", web::get().to(work))
        })
        .bind(listen)?;
        (server.addrs(), server.run())
    };
    println!("listening address={}", addresses[0]);
    server.await
}

async fn work(args: web::Data<Args>) -> HttpResponse {
    let answer = seed::work(&args).await;
    let status = if answer.failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status)
        .content_type(seed::JSON)
        .body(answer.body)
}
