//! Shutdown: the first SIGTERM or Ctrl-C begins a graceful drain, a second one
//! forces the end.
use tokio_util::sync::CancellationToken;

/// The shutdown state shared by the server, the readiness probe and the signal
/// handler. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    begun: CancellationToken,
    forced: CancellationToken,
}

impl Shutdown {
    /// Begins the graceful shutdown: readiness turns 503 at once; new
    /// connections are accepted until the shutdown delay has passed.
    pub fn begin(&self) {
        self.begun.cancel();
    }

    /// Ends the drain at once.
    pub fn force(&self) {
        self.begin();
        self.forced.cancel();
    }

    /// Whether shutdown has begun.
    pub fn has_begun(&self) -> bool {
        self.begun.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn begun(&self) {
        self.begun.cancelled().await
    }

    /// Resolves when shutdown is forced.
    pub async fn forced(&self) {
        self.forced.cancelled().await
    }

    /// Begins shutdown on the first SIGTERM or Ctrl-C and forces it on the second.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let mut received = 0;
            loop {
                let name = tokio::select! {
                    _ = terminate.recv() => "SIGTERM",
                    _ = interrupt.recv() => "SIGINT",
                };
                received += 1;
                if received == 1 {
                    tracing::info!(signal = name, "shutting down: draining in-flight requests");
                    shutdown.begin();
                } else {
                    tracing::warn!(signal = name, "second signal: stopping now");
                    shutdown.force();
                    return;
                }
            }
        });
        Ok(())
    }
}
