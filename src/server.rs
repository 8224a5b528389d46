//! The HTTP server: accepts connections, serves them with hyper, and drains
//! them on shutdown.
use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::{
    http::{uri::Scheme, HeaderValue, Uri},
    web::{LocalAddr, RemoteAddr},
    Endpoint, Request, Response,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::shutdown::Shutdown;

/// The largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Requests still in flight when the shutdown timeout or a second signal
    /// ended the drain; 0 after a complete drain.
    pub cut_off: usize,
}

/// Time limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// How long a connection may take to send a request head, counted from
    /// when it opens or its previous answer was sent.
    pub header_timeout: Duration,
}

/// Serves `endpoint` on `listener` until `shutdown` begins, then lets in-flight
/// requests finish for at most the shutdown timeout (or until shutdown is forced).
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    shutdown: Shutdown,
    limits: Limits,
) -> ShutdownReport
where
    E: Endpoint<Output = Response> + 'static,
{
    let endpoint = Arc::new(endpoint);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let connections = TaskTracker::new();
    let cut_off = CancellationToken::new();
    let builder = http1_builder(limits.header_timeout);
    let local_addr = listener.local_addr().ok();

    loop {
        let (stream, remote_addr) = tokio::select! {
            biased;
            _ = shutdown.begun() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = {
            let endpoint = endpoint.clone();
            let in_flight = in_flight.clone();
            let local_addr = LocalAddr(local_addr.unwrap_or(remote_addr).into());
            let remote_addr = RemoteAddr(remote_addr.into());
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let endpoint = endpoint.clone();
                let in_flight = InFlight::enter(&in_flight);
                let req = Request::from((
                    detach_head(req),
                    local_addr.clone(),
                    remote_addr.clone(),
                    Scheme::HTTP,
                ));
                // hyper keeps this future for as long as the connection is
                // open. `endpoint.get_response(req)` would wrap the call in two
                // more layers (`Arc`'s `call` and `get_response`), each holding
                // its own copy of the 472-byte request: 5,144 bytes instead of
                // 4,168.
                async move {
                    let response = endpoint
                        .as_ref()
                        .call(req)
                        .await
                        .unwrap_or_else(|err| err.into_response());
                    drop(in_flight);
                    Ok::<_, Infallible>(hyper::Response::from(response))
                }
            })
        };
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let cut_off = cut_off.clone();
        connections.spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = shutdown.begun() => connection.as_mut().graceful_shutdown(),
            }
            tokio::select! {
                _ = connection => {}
                _ = cut_off.cancelled() => {}
            }
        });
    }

    drop(listener);
    connections.close();
    tracing::info!(
        in_flight = in_flight.load(Ordering::SeqCst),
        timeout_secs = limits.shutdown_timeout.as_secs_f64(),
        "stopped accepting connections; waiting for in-flight requests"
    );
    tokio::select! {
        _ = connections.wait() => return ShutdownReport { cut_off: 0 },
        _ = tokio::time::sleep(limits.shutdown_timeout) => {}
        _ = shutdown.forced() => {}
    }
    let report = ShutdownReport {
        cut_off: in_flight.load(Ordering::SeqCst),
    };
    cut_off.cancel();
    connections.wait().await;
    report
}

/// How every connection is served: HTTP/1.1, at most `header_timeout` to send
/// a request head, heads of at most [`MAX_HEAD_BYTES`].
pub fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Bounds the memory one connection can hold while sending headers;
        // larger heads are answered 431.
        .max_header_size(MAX_HEAD_BYTES);
    builder
}

/// The request with its URI and header values copied out of hyper's read buffer.
///
/// hyper parses them as slices of its 8 KiB buffer, so a request that waits
/// (up to the max delay) keeps the buffer alive, and hyper, which reads on to
/// notice a client that leaves, reserves a second one. Copying the few hundred
/// bytes of the head lets it reuse the first: 8 KiB less per waiting request.
fn detach_head(req: hyper::Request<Incoming>) -> hyper::Request<Incoming> {
    let (mut head, body) = req.into_parts();
    if let Ok(uri) = Uri::try_from(head.uri.to_string()) {
        head.uri = uri;
    }
    for value in head.headers.values_mut() {
        // This accepts every value hyper accepts; should one fail, it stays shared.
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            *value = copy;
        }
    }
    hyper::Request::from_parts(head, body)
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
