//! `myapp load URL...`: a load generator at a constant arrival rate, to
//! rehearse an incident against the service from the same binary.
//!
//! | file | what it owns |
//! | --- | --- |
//! | `args` | the flags and their env twins |
//! | `schedule` | the open loop: each request leaves when due, timed from then |
//! | `summary` | outcomes and latency percentiles, the status line, the summary |
//!
//! [`run`] checks that every target accepts connections, then runs the
//! schedule until its duration ends or `stop` completes.
use std::{future::Future, io::IsTerminal, time::Duration};

use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use reqwest::Url;
use tokio::net::TcpStream;

pub mod args;
pub mod schedule;
pub mod summary;

pub use args::LoadArgs;
pub use summary::Summary;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A target refused or never answered the check before the run.
    #[error("{url}: cannot connect: {reason}")]
    Unreachable {
        /// The URL as given.
        url: Url,
        /// What the connection attempt said.
        reason: String,
    },
}

/// Runs `args` until its duration ends or `stop` completes, after checking
/// that each URL's host and port accept a TCP connection. The check sends no
/// request, so a target's counters see only the run.
pub async fn run(args: &LoadArgs, stop: impl Future<Output = ()>) -> Result<Summary, LoadError> {
    for url in &args.urls {
        check_reachable(url, args.timeout).await?;
    }
    // Each request in flight may hold a connection of its own.
    let _ = crate::server::open_files::raise_to_hard_limit();
    // Each request written at once, as reqwest and curl do.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let plan = schedule::Plan {
        targets: args.urls.iter().map(schedule::Target::new).collect(),
        timeout: args.timeout,
        rate: args.rate,
        duration: args.duration,
        max_in_flight: args.max_in_flight,
    };
    let progress = std::io::stderr().is_terminal();
    Ok(schedule::run(client, plan, stop, progress).await)
}

/// Completes at the first SIGINT or SIGTERM.
pub fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Opens (and closes) one TCP connection to `url`'s host and port.
async fn check_reachable(url: &Url, timeout: Duration) -> Result<(), LoadError> {
    let unreachable = |reason: String| LoadError::Unreachable {
        url: url.clone(),
        reason,
    };
    let port = url
        .port_or_known_default()
        .expect("http has a default port");
    // An IPv6 host is written in brackets in a URL, bare in an address.
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = TcpStream::connect((host, port));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(unreachable(err.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
    }
}
