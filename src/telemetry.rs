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
