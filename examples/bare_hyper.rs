//! The limit of this stack on this machine, for `scripts/bench.sh`: a bare hyper
//! server, configured as `src/server/mod.rs` configures it (same hyper settings, same
//! allocator), that answers every request
//! with the bytes of a zero-delay `/work` (`{"delay_ms":0}`, same Content-Type),
//! and does nothing else: no routing, no middleware, no logging, no metrics.
//!
//! ```sh
//! cargo run --release --example bare_hyper -- --listen 127.0.0.1:0
//! ```
use std::{convert::Infallible, net::SocketAddr, time::Duration};

use hyper::{
    body::Incoming,
    header::{HeaderValue, CONTENT_TYPE},
    service::service_fn,
    Request, Response,
};
use hyper_util::rt::TokioIo;
use myapp::{config::Config, server::http1_builder};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BODY: &str = r#"{"delay_ms":0}"#;
const JSON: &str = "application/json; charset=utf-8";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = listen_address();
    let listener = TcpListener::bind(listen).await?;
    println!("listening address={}", listener.local_addr()?);
    let builder = http1_builder(Duration::from_secs(Config::defaults().header_timeout_secs));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // As src/server/mod.rs: back off instead of spinning on, say, EMFILE.
                eprintln!("failed to accept a connection: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let builder = builder.clone();
        tokio::spawn(async move {
            // A client that goes away mid-request is not this benchmark's concern.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(_: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let mut response = Response::new(BODY.to_owned());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    Ok(response)
}

/// `--listen ADDR`, as myapp takes it; 127.0.0.1:0 without it.
fn listen_address() -> SocketAddr {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let address = match args.as_slice() {
        [] => "127.0.0.1:0",
        [flag, address] if flag == "--listen" => address,
        _ => exit_usage(),
    };
    address.parse().unwrap_or_else(|_| exit_usage())
}

fn exit_usage() -> ! {
    eprintln!("usage: bare_hyper [--listen ADDR]");
    std::process::exit(2)
}
