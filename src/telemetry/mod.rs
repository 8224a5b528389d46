//! Telemetry: logging through tracing, filtered by `RUST_LOG` (default
//! `info`), one line per request, and W3C trace context.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the subscriber (text or JSON), panics logged, log capture for tests |
//! | `request_log.rs` | the middleware that writes one line per request |
//! | `dropped.rs` | lines dropped while stdout is not read: counted, then told |
//! | `trace_context.rs` | the `traceparent` of a request and of its answer |
pub mod dropped;
pub mod request_log;
pub mod trace_context;

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    io::{BufWriter, IsTerminal},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_log::NormalizeEvent;
use tracing_subscriber::{
    field::{MakeExt, MakeVisitor, VisitFmt, VisitOutput},
    filter::LevelFilter,
    fmt::{
        format::{debug_fn, Writer},
        time::FormatTime,
        FmtContext, FormatEvent, FormatFields, FormattedFields,
    },
    registry::LookupSpan,
    EnvFilter,
};

use crate::config::LogFormat;

/// `RUST_LOG` holds a directive that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("RUST_LOG: {0}")]
pub struct TelemetryError(#[from] tracing_subscriber::filter::FromEnvError);

/// How many lines the writing thread may fall behind (about 3 MB of request
/// lines) before lines are dropped. perf: the queue is allocated whole at
/// start-up, 32 bytes a line; tracing-appender's default of 128,000 lines
/// took 4 MB.
const LINES_BEHIND: usize = 16_384;

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
    // Lossy: when the thread falls behind by `LINES_BEHIND` lines (stdout
    // not read), further lines are dropped and counted, rather than every
    // request waiting to log: a stalled log reader must not stall the
    // service, nor grow its memory. Once stdout takes a write again, one
    // warning says how many were dropped.
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(LINES_BEHIND)
        .lossy(true)
        .thread_name("myapp-log")
        .finish(BufWriter::with_capacity(
            64 * 1024,
            dropped::Output::new(std::io::stdout()),
        ));
    dropped::count(writer.error_counter());
    let colours = std::io::stdout().is_terminal();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_timer(Timestamp)
        .with_ansi(colours);
    match format {
        LogFormat::Text if !colours => subscriber
            .fmt_fields(plain_fields())
            .event_format(PlainLine)
            .init(),
        LogFormat::Text => subscriber.fmt_fields(plain_fields()).init(),
        // The request span's fields once, in `span`: its list of spans
        // (`spans`) would repeat them, and it is the only span.
        LogFormat::Json => subscriber.json().with_span_list(false).init(),
    }
    log_panics();
    Ok(guard)
}

/// The fields of a text line as tracing-subscriber writes them
/// (`message name=value ...`), without its per-field styling, which cost
/// about 4,000 instructions per request line even with colours off; control
/// characters in any value are escaped (`\n`, `\u{1b}`), so an event is
/// always one line and cannot write terminal escapes.
pub(crate) fn plain_fields(
) -> impl for<'w> MakeVisitor<Writer<'w>, Visitor: VisitFmt + VisitOutput<fmt::Result>>
       + Send
       + Sync
       + 'static {
    debug_fn(|writer, field, value| {
        // Names come from the code, not from a request.
        match field.name() {
            "message" => {}
            name => {
                writer.write_str(name)?;
                writer.write_char('=')?;
            }
        }
        write!(EscapeControl(writer), "{value:?}")
    })
    .delimited(" ")
}

/// A text line as tracing-subscriber's default format writes it without
/// colours: the time, the level, each span with its fields, the target, the
/// fields. perf: the default writes the level, each span's name and braces,
/// the target and each colon through `nu_ansi_term` and `write!`, even with
/// colours off: about 2,000 instructions per request line.
struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A `log` record's own target and level, not `log`'s.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        Timestamp.format_time(&mut writer)?;
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The time of a line as tracing-subscriber writes it by default (RFC 3339,
/// UTC, microseconds: `2026-11-27T05:52:46.113171Z`), with the date and time
/// of day formatted once per second per thread: writing the whole of it for
/// every line cost about 2,400 instructions per request.
struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, writer: &mut Writer<'_>) -> fmt::Result {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write_timestamp(writer, since_epoch)
    }
}

/// Writes the instant `since_epoch` after the Unix epoch as [`Timestamp`] does.
fn write_timestamp(writer: &mut impl fmt::Write, since_epoch: Duration) -> fmt::Result {
    thread_local! {
        /// A second since the epoch and its `YYYY-MM-DDTHH:MM:SS.`.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let seconds = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != seconds {
            let at = i64::try_from(seconds)
                .ok()
                .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            text.clear();
            write!(
                text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )?;
            *second = seconds;
        }
        writer.write_str(text)
    })?;
    let mut micros = *b"000000Z";
    let mut rest = since_epoch.subsec_micros();
    for digit in micros[..6].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    writer.write_str(std::str::from_utf8(&micros).expect("ASCII digits"))
}

/// Writes through, with each control character escaped as Rust escapes it.
struct EscapeControl<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for EscapeControl<'_, '_> {
    fn write_str(&mut self, mut text: &str) -> fmt::Result {
        // perf: most text has none; a byte scan says so faster than `find`
        // decoding chars (C0 controls and DEL are single bytes; C1 controls
        // start with 0xC2).
        if !text
            .bytes()
            .any(|byte| byte < 0x20 || byte == 0x7f || byte == 0xc2)
        {
            return self.0.write_str(text);
        }
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

/// The lines a test's subscriber wrote, as [`init`]'s text subscriber writes
/// them. For tests, unit and integration alike: see [`capture_logs`].
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(lock(&self.0).clone()).expect("lines are UTF-8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// For tests: makes a text subscriber at `level`, formatted as [`init`]'s
/// (without colours), this thread's default until the guard drops. An
/// in-process server is polled on the test's thread by tokio's
/// current-thread test runtime, so its lines are captured.
///
/// One test at a time: tracing caches which events are enabled across all
/// threads, and another test's subscriber coming or going while this one
/// logs could make it miss an event.
pub fn capture_logs(level: tracing::Level) -> (Captured, CaptureGuard) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let turn = lock(&ONE_AT_A_TIME);
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .fmt_fields(plain_fields())
        .with_timer(Timestamp)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .event_format(PlainLine)
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
pub struct CaptureGuard {
    // Dropped first: the subscriber goes before the next test's comes.
    _default: tracing::subscriber::DefaultGuard,
    _turn: MutexGuard<'static, ()>,
}

/// Locks `mutex`, also after a test panicked holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamp(since_epoch: Duration) -> String {
        let mut text = String::new();
        write_timestamp(&mut text, since_epoch).unwrap();
        text
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(timestamp(Duration::ZERO), "1970-01-01T00:00:00.000000Z");
        // A leap day, the last microsecond of a second, then the next second
        // (the cached date and time of day must change with it).
        let leap_day = Duration::from_secs(951_782_400);
        assert_eq!(
            timestamp(leap_day + Duration::from_nanos(999_999_999)),
            "2000-02-29T00:00:00.999999Z"
        );
        assert_eq!(
            timestamp(leap_day + Duration::from_secs(86_399) + Duration::from_micros(1)),
            "2000-02-29T23:59:59.000001Z"
        );
        assert_eq!(
            timestamp(leap_day + Duration::from_secs(86_400)),
            "2000-03-01T00:00:00.000000Z"
        );
        // Python: datetime.fromtimestamp(1795851166.113171, timezone.utc)
        assert_eq!(
            timestamp(Duration::from_micros(1_795_851_166_113_171)),
            "2026-11-28T07:32:46.113171Z"
        );
    }

    #[test]
    fn a_line_carries_the_time_it_was_logged() {
        let (logs, _turn) = capture_logs(tracing::Level::INFO);
        let before = time::OffsetDateTime::now_utc();
        tracing::info!("now");
        let after = time::OffsetDateTime::now_utc();
        let logs = logs.text();
        let logged = time::OffsetDateTime::parse(
            &logs[..27],
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or_else(|err| panic!("{err}: {logs}"));
        assert!(
            before - time::Duration::MICROSECOND <= logged && logged <= after,
            "{logs}"
        );
    }

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
    fn a_plain_line_is_what_tracing_subscribers_default_format_writes_without_colours() {
        fn log_some() {
            tracing::trace!(n = 1, "t");
            tracing::debug!("d");
            tracing::info!(n = 3);
            tracing::warn!(text = %"a b", "w");
            tracing::error!("e");
            let outer = tracing::info_span!("outer", a = 1, path = %"/x?y");
            let _entered = outer.enter();
            tracing::info_span!("inner").in_scope(|| tracing::warn!(b = 2, "in both"));
            tracing::info!(parent: &outer, status = 200u16);
            tracing::info!(parent: None, "no span");
        }
        let (plain, _turn) = capture_logs(tracing::Level::TRACE);
        log_some();
        let default = Captured::default();
        let writer = default.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .fmt_fields(plain_fields())
            .with_timer(Timestamp)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, log_some);
        // Without the times, which differ.
        let untimed = |logs: &Captured| -> Vec<String> {
            logs.text()
                .lines()
                .map(|line| line[27..].to_string())
                .collect()
        };
        let default = untimed(&default);
        assert_eq!(default.len(), 8, "{default:#?}");
        assert_eq!(untimed(&plain), default);
        assert_eq!(
            default[5],
            "  WARN outer{a=1 path=/x?y}:inner: myapp::telemetry::tests: in both b=2"
        );
    }

    #[test]
    fn control_characters_are_escaped_so_an_event_stays_one_line() {
        let (logs, _turn) = capture_logs(tracing::Level::INFO);
        let injected = "a\nfake line\u{1b}[31m\tb\u{7f}\u{85}é£";
        tracing::info!(value = %injected, "two\nlines {}", '\r');
        let logs = logs.text();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(
            logs.ends_with(
                " INFO myapp::telemetry::tests: two\\nlines \\r value=a\\nfake line\\u{1b}[31m\\tb\\u{7f}\\u{85}é£\n"
            ),
            "{logs}"
        );
    }
}
