//! Log lines dropped because stdout was not read: counted in
//! `myapp_log_lines_dropped_total`, and told in one warning once stdout has
//! taken every line queued.
use std::{
    io::{self, Write},
    sync::OnceLock,
};

use prometheus::{core::Collector, proto::MetricFamily, IntCounter};
use tracing_appender::non_blocking::ErrorCounter;

/// The count of lines the writer dropped, once [`super::init`] made it.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Counts the lines the writer of [`super::init`] drops from now on.
pub(super) fn count(counter: ErrorCounter) {
    let _ = DROPPED.set(counter);
}

/// The lines dropped so far: 0 without [`super::init`] (in tests).
fn dropped() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// The writer of the logging thread. tracing-appender's thread flushes it
/// once it has taken every line queued; then, if lines were dropped since it
/// last said so, it says how many in one warning. Not while the queue may
/// still be full: when lines were dropped during the last write (stdout
/// blocked it), the queue holds those that were not, and the warning waits
/// for the flush after them, or it would be dropped too.
pub(super) struct Output<W> {
    inner: W,
    /// The drops told so far.
    told: u64,
    /// The drops when the last write began.
    at_write: u64,
}

impl<W> Output<W> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            inner,
            told: 0,
            at_write: 0,
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.at_write = dropped();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        let dropped = dropped();
        if dropped > self.told && dropped == self.at_write {
            tracing::warn!(
                dropped = dropped - self.told,
                total = dropped,
                "log lines were dropped while stdout was not read \
                 (myapp_log_lines_dropped_total)"
            );
            self.told = dropped;
        }
        Ok(())
    }
}

/// `myapp_log_lines_dropped_total`, read from the writer's count at each
/// scrape.
pub struct DroppedLinesCollector(IntCounter);

impl DroppedLinesCollector {
    /// The collector; register it once.
    pub fn new() -> prometheus::Result<Self> {
        IntCounter::new(
            "myapp_log_lines_dropped_total",
            "Log lines dropped because stdout was not read fast enough",
        )
        .map(Self)
    }
}

impl Collector for DroppedLinesCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let counter = &self.0;
        counter.inc_by(dropped().saturating_sub(counter.get()));
        counter.collect()
    }
}
