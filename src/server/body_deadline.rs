//! The body deadline: a request's body must arrive within
//! `--body-timeout-secs` of its head, the twin of the header timeout. A body
//! that is late (a client that sends a `Content-Length` and then too little,
//! or `Expect: 100-continue` and then nothing) ends the request with 408 and
//! closes the connection; so a slow body also cannot hold up the drain at
//! shutdown for longer than the deadline.
use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::{future::Either, StreamExt, TryFutureExt};
use poem::{
    http::{header, StatusCode},
    Body, Endpoint, IntoResponse, Middleware, Request, Response,
};

/// Ends a request whose body has not arrived within the duration with 408
/// and `Connection: close`. Requests without a body go through untouched.
pub struct BodyDeadline(pub Duration);

impl<E: Endpoint> Middleware<E> for BodyDeadline {
    type Output = BodyDeadlineEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyDeadlineEndpoint {
            inner,
            timeout: self.0,
        }
    }
}

/// The endpoint of [`BodyDeadline`].
pub struct BodyDeadlineEndpoint<E> {
    inner: E,
    timeout: Duration,
}

/// Whether the request has a body: a `Content-Length` other than 0, or a
/// `Transfer-Encoding` (hyper refuses requests with both, or with neither
/// and a body).
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

impl<E: Endpoint> Endpoint for BodyDeadlineEndpoint<E> {
    type Output = Response;

    // perf: not `async`, as `BasicAuth`: a request without a body (every
    // `/work` request) gets the inner future itself.
    fn call(&self, mut req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        if !has_body(&req) {
            return Either::Left(self.inner.call(req).map_ok(IntoResponse::into_response));
        }
        let late = Arc::new(AtomicBool::new(false));
        let deadline = tokio::time::Instant::now() + self.timeout;
        let body = Box::pin(req.take_body().into_bytes_stream());
        // Each read of the body waits until the deadline at most; past it,
        // the body ends with an error, which the endpoint answers as it
        // answers any broken body, and that answer is replaced below.
        let timed =
            futures_util::stream::unfold(Some((body, late.clone())), move |state| async move {
                let (mut body, late) = state?;
                match tokio::time::timeout_at(deadline, body.next()).await {
                    Ok(Some(chunk)) => Some((chunk, Some((body, late)))),
                    Ok(None) => None,
                    Err(_) => {
                        late.store(true, Ordering::SeqCst);
                        let err =
                            std::io::Error::new(std::io::ErrorKind::TimedOut, "body deadline");
                        Some((Err(err), None))
                    }
                }
            });
        req.set_body(Body::from_bytes_stream(timed));
        let timeout = self.timeout;
        Either::Right(Box::pin(async move {
            let response = self.inner.call(req).await;
            if late.load(Ordering::SeqCst) {
                return Ok(Response::builder()
                    .status(StatusCode::REQUEST_TIMEOUT)
                    .header(header::CONNECTION, "close")
                    .body(format!(
                        "the request body did not arrive within {} s\n",
                        timeout.as_secs()
                    )));
            }
            response.map(IntoResponse::into_response)
        }))
    }
}
