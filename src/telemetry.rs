//! Logging through tracing, filtered by `RUST_LOG` (default `info`).
use std::{
    fmt::{self, Write as _},
    io::{BufWriter, IsTerminal},
};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    field::{MakeExt, MakeVisitor, VisitFmt, VisitOutput},
    filter::LevelFilter,
    fmt::format::{debug_fn, Writer},
    EnvFilter,
};

use crate::config::LogFormat;

/// `RUST_LOG` holds a directive that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("RUST_LOG: {0}")]
pub struct TelemetryError(#[from] tracing_subscriber::filter::FromEnvError);

/// Installs the global subscriber, writing to stdout in `format`, and
/// [`log_panics`]. Lines are written by a thread of their own, in batches;
/// the guard writes what is left when dropped: keep it until the end of `main`.
///
/// perf: formatting and writing the line of each request was a third of its
/// CPU time; a batch of lines per write(2) and [`plain_fields`] halved that
/// (benches/README.md).
pub fn init(format: LogFormat) -> Result<WorkerGuard, TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?;
    // Not lossy: when the thread falls behind by 128,000 lines, logging waits
    // rather than drops them.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("myapp-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => subscriber.fmt_fields(plain_fields()).init(),
        LogFormat::Json => subscriber.json().init(),
    }
    log_panics();
    Ok(guard)
}

/// The fields of a text line as tracing-subscriber writes them
/// (`message name=value ...`), without its per-field styling, which cost
/// about 4,000 instructions per request line even with colours off; control
/// characters in any value are escaped (`\n`, `\u{1b}`), so an event is
/// always one line and cannot write terminal escapes.
pub(crate) fn plain_fields() -> impl for<'w> MakeVisitor<Writer<'w>, Visitor: VisitFmt + VisitOutput<fmt::Result>>
       + Send
       + Sync
       + 'static {
    debug_fn(|writer, field, value| {
        let mut writer = EscapeControl(writer);
        match field.name() {
            "message" => write!(writer, "{value:?}"),
            name => write!(writer, "{name}={value:?}"),
        }
    })
    .delimited(" ")
}

/// Writes through, with each control character escaped as Rust escapes it.
struct EscapeControl<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for EscapeControl<'_, '_> {
    fn write_str(&mut self, mut text: &str) -> fmt::Result {
        while let Some(at) = text.find(char::is_control) {
            let control = text[at..].chars().next().expect("found at `at`");
            self.0.write_str(&text[..at])?;
            write!(self.0, "{}", control.escape_default())?;
            text = &text[at + control.len_utf8()..];
        }
        self.0.write_str(text)
    }
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
        .fmt_fields(plain_fields())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_as_name_equals_value_after_the_message() {
        let (logs, _turn) = capture_logs(tracing::Level::INFO);
        tracing::info!(status = 200u16, path = %"/work?fail=true", peer = ?"x", "request");
        let logs = logs.text();
        assert!(
            logs.ends_with(
                " INFO myapp::telemetry::tests: request status=200 path=/work?fail=true peer=\"x\"\n"
            ),
            "{logs}"
        );
    }

    #[test]
    fn control_characters_are_escaped_so_an_event_stays_one_line() {
        let (logs, _turn) = capture_logs(tracing::Level::INFO);
        let injected = "a\nfake line\u{1b}[31m\tb";
        tracing::info!(value = %injected, "two\nlines {}", '\r');
        let logs = logs.text();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(
            logs.ends_with(
                " INFO myapp::telemetry::tests: two\\nlines \\r value=a\\nfake line\\u{1b}[31m\\tb\n"
            ),
            "{logs}"
        );
    }
}
