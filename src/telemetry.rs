//! Logging through tracing, filtered by `RUST_LOG` (default `info`).
use std::io::IsTerminal;

use tracing_subscriber::{filter::LevelFilter, EnvFilter};

use crate::config::LogFormat;

/// `RUST_LOG` holds a directive that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("RUST_LOG: {0}")]
pub struct TelemetryError(#[from] tracing_subscriber::filter::FromEnvError);

/// Installs the global subscriber, writing to stdout in `format`, and
/// [`log_panics`].
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    log_panics();
    Ok(())
}

/// Replaces the default panic hook (a message and maybe a backtrace on stderr)
/// by one error event with the panic's message and location.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("non-string panic payload");
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(message, location, "panic");
    }));
}

/// What a test's subscriber writes, to assert on log lines.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a text subscriber at `level` this thread's default (tokio's
/// current-thread test runtime polls every future on it) until the guard drops.
///
/// One test at a time: tracing caches which events are enabled across all
/// threads, and another test's subscriber coming or going while this one
/// logs could make it miss an event.
#[cfg(test)]
pub(crate) fn capture_logs(level: tracing::Level) -> (Captured, CaptureGuard) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let default = tracing::subscriber::set_default(subscriber);
    (
        logs,
        CaptureGuard {
            _default: default,
            _turn: turn,
        },
    )
}

/// Keeps a test's subscriber, and its turn, until dropped.
#[cfg(test)]
pub(crate) struct CaptureGuard {
    // Dropped first: the subscriber goes before the next test's comes.
    _default: tracing::subscriber::DefaultGuard,
    _turn: std::sync::MutexGuard<'static, ()>,
}
