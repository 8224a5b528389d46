//! Notices a client that leaves while its request is in flight, even with
//! more requests pipelined behind it.
//!
//! hyper notices a client that closes the connection by reading on while a
//! request runs, but only when its read buffer is empty: with a pipelined
//! request waiting in the buffer, it reads nothing more until the request in
//! flight is answered, so the close goes unseen, the request runs to its end
//! and counts 200 though its answer is never delivered. [`Socket`] lets the
//! request in flight read the connection ahead ([`Watch::client_gone`]): the
//! bytes read ahead are handed to hyper, in order, when it reads next; the
//! close, once seen, ends the request, which then counts 499.
//!
//! Requests pipelined behind the one in flight are not counted when the
//! client leaves: hyper has not parsed them, so nothing knows their route.
use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// The most bytes read ahead of hyper: past it, the client is still
/// sending, and the watch stops reading until hyper has taken them.
const MAX_AHEAD: usize = 64 * 1024;

/// How the client's side of the connection ended.
#[derive(Debug, Clone, Copy)]
enum End {
    Closed,
    Broken(io::ErrorKind),
}

#[derive(Debug)]
struct Shared {
    stream: TcpStream,
    /// Bytes read ahead and not yet handed to hyper.
    ahead: Vec<u8>,
    /// Seen while reading ahead; handed to hyper after the bytes.
    end: Option<End>,
}

/// The connection as hyper (or TLS) reads and writes it: the bytes read
/// ahead first, then the socket.
#[derive(Debug)]
pub struct Socket(Arc<Mutex<Shared>>);

/// What a request in flight uses to notice that its client has left.
#[derive(Debug, Clone)]
pub struct Watch(Arc<Mutex<Shared>>);

/// The connection, and the watch of its client.
pub fn watched(stream: TcpStream) -> (Socket, Watch) {
    let shared = Arc::new(Mutex::new(Shared {
        stream,
        ahead: Vec::new(),
        end: None,
    }));
    (Socket(shared.clone()), Watch(shared))
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Socket {
    /// Runs `f` on the TCP stream underneath, for a look at the connection
    /// before hyper reads it (plain HTTP sent to the TLS port), when nothing
    /// has been read ahead.
    pub fn with_stream<T>(&self, f: impl FnOnce(&TcpStream) -> T) -> T {
        f(&lock(&self.0).stream)
    }
}

impl Watch {
    /// Resolves once the client has closed the connection or it broke,
    /// reading ahead for it; never while the client keeps sending past
    /// [`MAX_AHEAD`] bytes. Polled in the connection's task, as hyper's reads
    /// are: both wake the same task.
    pub async fn client_gone(&self) {
        std::future::poll_fn(|cx| {
            let mut shared = lock(&self.0);
            let shared = &mut *shared;
            loop {
                if shared.end.is_some() {
                    return Poll::Ready(());
                }
                if shared.ahead.len() >= MAX_AHEAD {
                    return Poll::Pending;
                }
                let mut chunk = [0; 4096];
                let mut buf = ReadBuf::new(&mut chunk);
                match Pin::new(&mut shared.stream).poll_read(cx, &mut buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                        shared.end = Some(End::Closed);
                    }
                    Poll::Ready(Ok(())) => shared.ahead.extend_from_slice(buf.filled()),
                    Poll::Ready(Err(err)) => shared.end = Some(End::Broken(err.kind())),
                }
            }
        })
        .await;
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.0);
        if !shared.ahead.is_empty() {
            let n = shared.ahead.len().min(buf.remaining());
            buf.put_slice(&shared.ahead[..n]);
            shared.ahead.drain(..n);
            return Poll::Ready(Ok(()));
        }
        match shared.end {
            Some(End::Closed) => Poll::Ready(Ok(())),
            Some(End::Broken(kind)) => Poll::Ready(Err(kind.into())),
            None => Pin::new(&mut shared.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut lock(&self.0).stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut lock(&self.0).stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.0).stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.0).stream).poll_shutdown(cx)
    }
}
