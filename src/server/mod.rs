//! The HTTP server and its guards: this file accepts connections, serves
//! them with hyper under the limits, and drains them on shutdown.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the accept loop, header timeout, TLS handshake, the drain |
//! | `client_gone.rs` | a client that leaves with requests pipelined, noticed |
//! | `shutdown.rs` | the shutdown signal and readiness |
//! | `health.rs` | `GET /healthz` and `GET /readyz` |
//! | `body_deadline.rs` | the body deadline (`--body-timeout-secs`) |
//! | `basic_auth.rs` | basic auth of the metrics port (`--web-config-file`) |
//! | `web_config.rs` | the web configuration file: TLS and users |
//! | `certificate.rs` | the server certificate, read again when it changes |
//! | `metrics_token.rs` | the bearer token of the metrics port |
//! | `open_files.rs` | the open-file limit, raised at start-up |
pub mod basic_auth;
pub mod body_deadline;
pub mod certificate;
pub mod client_gone;
pub mod health;
pub mod metrics_token;
pub mod open_files;
pub mod shutdown;
pub mod web_config;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper::{body::Incoming, server::conn::http1, service::HttpService};
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::{
    http::{
        uri::{PathAndQuery, Scheme},
        HeaderValue, Uri,
    },
    web::{LocalAddr, RemoteAddr},
    Endpoint, Request, Response,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::shutdown::Shutdown;

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
    /// How long new connections and requests are still served once shutdown
    /// has begun, before accepting stops and the drain begins.
    pub shutdown_delay: Duration,
    /// How long shutdown waits for in-flight requests, counted from the end
    /// of the delay.
    pub shutdown_timeout: Duration,
    /// How long a connection may take to send a request head, counted from
    /// when it opens or its previous answer was sent.
    pub header_timeout: Duration,
}

/// Serves `endpoint` on `listener` until the shutdown delay has passed since
/// `shutdown` began, then lets in-flight requests finish for at most the
/// shutdown timeout. Forcing shutdown ends the delay and the drain at once.
///
/// With `tls`, every connection is a TLS one: the handshake must end within
/// the header timeout, and a failed one closes the connection.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    shutdown: Shutdown,
    limits: Limits,
    tls: Option<TlsAcceptor>,
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
    let scheme = if tls.is_some() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    // Cancelled when accepting stops; each connection then finishes its
    // request in flight and closes.
    let closing = CancellationToken::new();
    let delay_over = delay_after_begun(&shutdown, limits.shutdown_delay);
    tokio::pin!(delay_over);

    let serve_connection = |stream: TcpStream, remote_addr: SocketAddr| {
        // Holds a permit once the connection has sent a request.
        let requested = Arc::new(Notify::new());
        let (socket, watch) = client_gone::watched(stream);
        let service = {
            let endpoint = endpoint.clone();
            let in_flight = in_flight.clone();
            let requested = requested.clone();
            let scheme = scheme.clone();
            let local_addr = LocalAddr(local_addr.unwrap_or(remote_addr).into());
            let remote_addr = RemoteAddr(remote_addr.into());
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                requested.notify_one();
                let endpoint = endpoint.clone();
                let in_flight = InFlight::enter(&in_flight);
                // A request with a body is left to hyper, which sees a close
                // while it reads the body; a client that sends its whole body
                // and then closes its side is not taken for gone.
                let watch = hyper::body::Body::is_end_stream(req.body()).then(|| watch.clone());
                let host_fault = host_fault(&req);
                let req = Request::from((
                    detach_head(req),
                    local_addr.clone(),
                    remote_addr.clone(),
                    scheme.clone(),
                ));
                // hyper keeps this future's box for as long as the connection
                // is open: 1,216 bytes (release build), of which 720 are the
                // app's. `endpoint.get_response(req)` would wrap the call in
                // two more layers (`Arc`'s `call` and `get_response`), each
                // holding its own copy of the 472-byte request.
                async move {
                    if let Some(fault) = host_fault {
                        return Ok(hyper::Response::from(
                            Response::builder()
                                .status(poem::http::StatusCode::BAD_REQUEST)
                                .body(fault),
                        ));
                    }
                    let call = endpoint.as_ref().call(req);
                    let response = match watch {
                        None => call.await,
                        // Dropped unanswered when the client has gone: the
                        // request counts 499, and hyper closes the connection.
                        Some(watch) => tokio::select! {
                            biased;
                            response = call => response,
                            () = watch.client_gone() => return Err(ClientGone),
                        },
                    };
                    let response = response.unwrap_or_else(|err| err.into_response());
                    drop(in_flight);
                    Ok::<_, ClientGone>(hyper::Response::from(response))
                }
            })
        };
        let builder = builder.clone();
        let closing = closing.clone();
        let cut_off = cut_off.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let Some(tls) = tls else {
                let connection = builder.serve_connection(TokioIo::new(socket), service);
                return drive(connection, &requested, &closing, &cut_off).await;
            };
            // Boxed: a TLS stream is large, and plain connections should not
            // carry its size.
            Box::pin(async move {
                let handshake = tokio::time::timeout(limits.header_timeout, async {
                    if sent_plain_http(&socket).await {
                        return Err(None);
                    }
                    tls.accept(socket).await.map_err(Some)
                });
                let stream = tokio::select! {
                    accepted = handshake => match accepted {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(Some(err))) => {
                            log_handshake_failure(&err, remote_addr);
                            return;
                        }
                        Ok(Err(None)) => {
                            tracing::debug!(%remote_addr, "plain HTTP on the TLS port: answered 400");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote_addr, "TLS handshake timed out");
                            return;
                        }
                    },
                    _ = cut_off.cancelled() => return,
                };
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                drive(connection, &requested, &closing, &cut_off).await
            })
            .await
        });
    };

    loop {
        let (stream, remote_addr) = tokio::select! {
            biased;
            _ = &mut delay_over => break,
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
        serve_connection(stream, remote_addr);
    }
    // Connections the kernel completed before accepting stopped are served
    // too: closing the listener would reset them, though their connect
    // succeeded.
    for (stream, remote_addr) in backlog(listener) {
        serve_connection(stream, remote_addr);
    }

    closing.cancel();
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

/// Serves one connection until it ends or the drain is cut off; once
/// accepting stops, closes it after its current or first request.
async fn drive<I, S>(
    connection: http1::Connection<I, S>,
    requested: &Notify,
    closing: &CancellationToken,
    cut_off: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    // hyper's graceful shutdown closes a connection that has not sent
    // anything yet, though its client may be about to: such a connection
    // gets to send its first request (within the header timeout), and is
    // closed after answering it. A keep-alive connection between requests is
    // closed at once.
    let closed_after_a_request = async {
        closing.cancelled().await;
        requested.notified().await;
    };
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closed_after_a_request => connection.as_mut().graceful_shutdown(),
        _ = cut_off.cancelled() => return,
    }
    tokio::select! {
        _ = connection => {}
        _ = cut_off.cancelled() => {}
    }
}

/// Why `req` must be answered 400 as RFC 9112 (section 3.2) says: an
/// HTTP/1.1 request without a `Host` header, or any with more than one.
/// Answered before the app, so not counted, as hyper's own 400s are not.
fn host_fault<B>(req: &hyper::Request<B>) -> Option<&'static str> {
    match req
        .headers()
        .get_all(poem::http::header::HOST)
        .iter()
        .count()
    {
        0 if req.version() == poem::http::Version::HTTP_11 => {
            Some("an HTTP/1.1 request needs a Host header\n")
        }
        0 | 1 => None,
        _ => Some("a request has one Host header, not several\n"),
    }
}

/// Whether the client began with an HTTP request instead of a TLS handshake,
/// as Go's net/http tells from the first 5 bytes (`GET /`, `HEAD `, `POST `,
/// `PUT /`, `OPTIO`); if so, it is answered as Go answers it: 400 and
/// "Client sent an HTTP request to an HTTPS server.", then closed.
async fn sent_plain_http(socket: &client_gone::Socket) -> bool {
    const ANSWER: &[u8] =
        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    let mut head = [0; 5];
    let peeked = std::future::poll_fn(|cx| {
        socket.with_stream(|stream| stream.poll_peek(cx, &mut tokio::io::ReadBuf::new(&mut head)))
    })
    .await;
    let plain = matches!(peeked, Ok(5))
        && [b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO"].contains(&&head);
    if plain {
        // Best effort: the connection is closed either way. The request
        // read first (at most a head's worth), so that closing sends FIN,
        // not a reset that could discard the answer at the client.
        let mut request = vec![0; MAX_HEAD_BYTES];
        socket.with_stream(|stream| {
            let _ = stream.try_read(&mut request);
            let _ = stream.try_write(ANSWER);
        });
    }
    plain
}

/// A refused client certificate is logged at warn with rustls's reason;
/// other failed handshakes (a client that left, a port scan) at debug.
fn log_handshake_failure(err: &std::io::Error, remote_addr: SocketAddr) {
    let refused_certificate = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|err| {
            matches!(
                err,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if refused_certificate {
        tracing::warn!(error = %err, %remote_addr, "TLS handshake failed: client certificate refused");
    } else {
        tracing::debug!(error = %err, %remote_addr, "TLS handshake failed");
    }
}

/// Accepts every connection waiting in `listener`'s backlog, without waiting
/// for more, and closes the listener.
fn backlog(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let mut waiting = Vec::new();
    // The std listener stays non-blocking: accept fails with WouldBlock once
    // the backlog is empty.
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(error = %err, "cannot accept the connections still waiting");
            return waiting;
        }
    };
    loop {
        let accepted = listener.accept().and_then(|(stream, remote_addr)| {
            stream.set_nonblocking(true)?;
            Ok((TcpStream::from_std(stream)?, remote_addr))
        });
        match accepted {
            Ok(accepted) => waiting.push(accepted),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return waiting,
            Err(err) => {
                tracing::warn!(error = %err, "failed to accept a waiting connection");
                return waiting;
            }
        }
    }
}

/// Resolves `delay` after shutdown begins, or as soon as it is forced.
async fn delay_after_begun(shutdown: &Shutdown, delay: Duration) {
    shutdown.begun().await;
    if delay.is_zero() {
        return;
    }
    tracing::info!(
        delay_secs = delay.as_secs_f64(),
        "shutdown delay: /readyz answers 503; still serving new connections"
    );
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = shutdown.forced() => {}
    }
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
fn detach_head<B>(req: hyper::Request<B>) -> hyper::Request<B> {
    let (mut head, body) = req.into_parts();
    let uri = match head.uri.path_and_query() {
        // The origin form (`GET /work HTTP/1.1`), as nearly every request comes.
        Some(path) if head.uri.scheme().is_none() => {
            PathAndQuery::try_from(path.as_str()).map(Uri::from)
        }
        _ => Uri::try_from(head.uri.to_string()),
    };
    if let Ok(uri) = uri {
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

/// Ends a request whose client has left ([`client_gone`]) unanswered.
#[derive(Debug, thiserror::Error)]
#[error("the client closed the connection before the answer")]
struct ClientGone;

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

#[cfg(test)]
mod tests {
    use poem::http::header::HOST;

    use super::*;

    /// Whether `text` lies inside `buffer`'s memory.
    fn within(buffer: &[u8], text: &str) -> bool {
        buffer.as_ptr_range().contains(&text.as_ptr())
    }

    #[test]
    fn the_head_is_copied_out_of_the_buffer_it_was_parsed_from() {
        // As hyper parses: the URI and header values are slices of its buffer.
        let buffer = hyper::body::Bytes::from_static(
            b"/work?delay_ms=5&fail=true http://example.com:8080/work?x=1 example.com:8080",
        );
        let slice = |start: usize, end: usize| buffer.slice(start..end);
        for (uri, text) in [
            (slice(0, 26), "/work?delay_ms=5&fail=true"),
            (slice(27, 59), "http://example.com:8080/work?x=1"),
        ] {
            let request = hyper::Request::builder()
                .uri(Uri::from_maybe_shared(uri).unwrap())
                .header(HOST, HeaderValue::from_maybe_shared(slice(60, 76)).unwrap())
                .body(())
                .unwrap();
            assert!(
                within(&buffer, request.uri().path()),
                "{text}: the test shares the buffer"
            );

            let detached = detach_head(request);
            assert_eq!(detached.uri().to_string(), text);
            assert!(
                !within(&buffer, detached.uri().path()),
                "{text}: the URI still in the buffer"
            );
            let host = detached.headers()[HOST].to_str().unwrap();
            assert_eq!(host, "example.com:8080");
            assert!(
                !within(&buffer, host),
                "{text}: the Host value still in the buffer"
            );
        }
    }
}
