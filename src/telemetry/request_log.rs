//! The middleware that logs one line per request.
use std::{
    fmt,
    future::Future,
    net::{SocketAddr, SocketAddrV4},
    pin::Pin,
    task::{ready, Context, Poll},
    time::Instant,
};

use pin_project_lite::pin_project;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::{field::display, instrument::Instrumented, Instrument, Span};

use crate::telemetry::trace_context::{trace_id_of, TRACEPARENT};

/// Logs each answered request at INFO, as the close of its `request` span.
///
/// While the request is handled, the `request` span carries its method, path
/// (with the query) and the client's address, so the lines logged meanwhile
/// (the 499 of a client gone, which has no request line, or a panic) say which
/// request they are about. When the answer is ready, the request line is
/// logged in that span, with only what the span does not say: the status, the
/// error's message for an error, the trace id of a `/work` answer (from the
/// `traceparent` that `RequestMetrics` put on it) and the duration in
/// milliseconds. Put it outermost.
///
/// perf: each field is formatted once, into the span; the line writes the
/// span's fields as they were formatted. Unlike poem's `Tracing`, it reads
/// nothing from the request and makes no span unless the span is enabled:
/// with `RUST_LOG=warn` a request costs one check of the filter.
pub struct RequestLog;

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestLogEndpoint { inner }
    }
}

/// The endpoint made by [`RequestLog`].
pub struct RequestLogEndpoint<E> {
    inner: E,
}

/// The target of the request line and span, which `RUST_LOG` filters name
/// (`myapp::request_log=warn`): the module's path before it moved into
/// `telemetry/`, kept so that existing filters still apply.
const LOG_TARGET: &str = "myapp::request_log";

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    // perf: not `async`, as `RequestMetrics`: an `async fn` would hold the
    // 472-byte request twice (its argument and the inner call's) beside the
    // inner future, in every request's future.
    fn call(&self, req: Request) -> impl Future<Output = Result<Response>> + Send {
        // The macro reads the fields only when the span is enabled.
        let span = tracing::info_span!(
            target: LOG_TARGET,
            "request",
            method = %req.method(),
            // Outermost, it sees the path before routing strips any prefix.
            path = %req.uri(),
            // The peer of the connection (a proxy's, behind one).
            remote_addr = req.remote_addr().as_socket_addr().map(|peer| display(Peer(*peer))),
        );
        let start = (!span.is_disabled()).then(Instant::now);
        Logged {
            inner: self.inner.call(req).instrument(span),
            start,
        }
    }
}

pin_project! {
    /// The inner endpoint's future, in its span, and when it started, if
    /// its line is to be logged.
    struct Logged<F> {
        #[pin]
        inner: Instrumented<F>,
        start: Option<Instant>,
    }
}

impl<F, T> Future for Logged<F>
where
    F: Future<Output = Result<T>>,
    T: IntoResponse,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll(cx)).map(IntoResponse::into_response);
        if let Some(start) = this.start.take() {
            log(this.inner.span(), start, &result);
        }
        Poll::Ready(result)
    }
}

/// Logs the line of the request answered with `result`, in its `span`.
fn log(span: &Span, start: Instant, result: &Result<Response>) {
    let (status, error, trace_id) = match result {
        Ok(response) => (
            response.status(),
            None,
            response.headers().get(TRACEPARENT).and_then(trace_id_of),
        ),
        Err(err) => (err.status(), Some(display(err)), None),
    };
    tracing::info!(
        target: LOG_TARGET,
        parent: span,
        status = status.as_u16(),
        error,
        trace_id = trace_id.map(display),
        // Microsecond precision: 0.017, not 0.017426.
        duration_ms = start.elapsed().as_micros() as f64 / 1e3,
    );
}

/// A client's address, written as `SocketAddr` writes it.
// perf: std's Display writes an IPv4 address and port through five formatted
// integers, 1,300 instructions per request line; this takes about 200.
struct Peer(SocketAddr);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SocketAddr::V4(peer) = self.0 else {
            return self.0.fmt(f);
        };
        // "255.255.255.255:65535"
        let mut text = [0; 21];
        let length = write_v4(&mut text, &peer);
        f.write_str(std::str::from_utf8(&text[..length]).expect("ASCII digits, dots and a colon"))
    }
}

/// Writes `peer` at the start of `out`; returns the length written.
fn write_v4(out: &mut [u8; 21], peer: &SocketAddrV4) -> usize {
    let mut at = 0;
    let mut put = |number: u16, after: Option<u8>| {
        let mut digits = [0; 5];
        let mut first = digits.len();
        let mut rest = number;
        loop {
            first -= 1;
            digits[first] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        out[at..at + digits.len() - first].copy_from_slice(&digits[first..]);
        at += digits.len() - first;
        if let Some(after) = after {
            out[at] = after;
            at += 1;
        }
    };
    let [a, b, c, d] = peer.ip().octets();
    put(a.into(), Some(b'.'));
    put(b.into(), Some(b'.'));
    put(c.into(), Some(b'.'));
    put(d.into(), Some(b':'));
    put(peer.port(), None);
    at
}

#[cfg(test)]
mod tests {
    use poem::{handler, test::TestClient, EndpointExt, Route};
    use tracing::Level;

    use super::*;
    use crate::telemetry::capture_logs;

    #[handler]
    fn ok() -> &'static str {
        "done"
    }

    #[tokio::test]
    async fn each_request_is_one_line_in_its_span_with_method_path_and_status() {
        let (logs, _default) = capture_logs(Level::INFO);
        let client = TestClient::new(Route::new().at("/ok", ok).with(RequestLog));
        client
            .get("/ok")
            .query("n", &1)
            .send()
            .await
            .assert_status_is_ok();
        client
            .get("/missing")
            .send()
            .await
            .assert_status(poem::http::StatusCode::NOT_FOUND);

        let logs = logs.text();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(
            lines[0].contains(
                " INFO request{method=GET path=/ok?n=1}: myapp::request_log: status=200 duration_ms="
            ),
            "{logs}"
        );
        assert!(
            lines[1].contains(" INFO request{method=GET path=/missing}: myapp::request_log: status=404 error=not found duration_ms="),
            "{logs}"
        );
    }

    #[handler]
    fn traced() -> poem::Response {
        poem::Response::builder()
            .header(
                TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body("done")
    }

    #[tokio::test]
    async fn an_answer_with_a_traceparent_logs_its_trace_id() {
        let (logs, _default) = capture_logs(Level::INFO);
        let client = TestClient::new(traced.with(RequestLog));
        client.get("/").send().await.assert_status_is_ok();
        let logs = logs.text();
        assert!(
            logs.contains(
                " INFO request{method=GET path=/}: myapp::request_log: status=200 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 duration_ms="
            ),
            "{logs}"
        );
    }

    #[test]
    fn a_peer_is_written_as_std_writes_its_socket_address() {
        for peer in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "127.0.0.1:8080",
            "10.20.3.4:9",
            "[::1]:443",
            "[2001:db8::ff00:42:8329]:65535",
        ] {
            let peer: SocketAddr = peer.parse().unwrap();
            assert_eq!(Peer(peer).to_string(), peer.to_string());
        }
    }

    #[handler]
    fn warns() -> &'static str {
        tracing::warn!("inside");
        "done"
    }

    #[tokio::test]
    async fn lines_logged_while_handling_carry_the_request_span_only_with_the_request_line() {
        for (level, expected) in [
            (
                Level::INFO,
                " WARN request{method=GET path=/warns?n=1}: myapp::telemetry::request_log::tests: inside",
            ),
            (Level::WARN, " WARN myapp::telemetry::request_log::tests: inside"),
        ] {
            let (logs, _default) = capture_logs(level);
            let client = TestClient::new(Route::new().at("/warns", warns).with(RequestLog));
            client
                .get("/warns")
                .query("n", &1)
                .send()
                .await
                .assert_status_is_ok();
            let logs = logs.text();
            let inside: Vec<&str> = logs.lines().filter(|l| l.ends_with(" inside")).collect();
            assert_eq!(inside.len(), 1, "{level}: {logs}");
            assert!(inside[0].ends_with(expected), "{level}: {logs}");
        }
    }

    #[tokio::test]
    async fn nothing_is_logged_below_info() {
        let (logs, _default) = capture_logs(Level::WARN);
        let client = TestClient::new(ok.with(RequestLog));
        client.get("/").send().await.assert_status_is_ok();
        assert_eq!(logs.text(), "");
    }
}
