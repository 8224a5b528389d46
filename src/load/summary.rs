//! What a run saw: each request's outcome and latency, the status line shown
//! each second, and the summary at the end (a table, or one JSON object).
use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How one request sent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer, with this HTTP status, read to the end of its body.
    Status(u16),
    /// No answer, for this reason.
    Error(ErrorKind),
}

/// Why a request got no answer: the keys of the summary's `errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// `--timeout` passed before the body ended.
    Timeout,
    /// No connection could be made.
    Connect,
    /// Anything else (the connection closed mid-answer, a bad answer, ...).
    Other,
}

impl ErrorKind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [ErrorKind; 3] = [ErrorKind::Timeout, ErrorKind::Connect, ErrorKind::Other];

    /// The kind's key in the summary.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Other => "other",
        }
    }
}

/// Outcomes and latencies, counted as the answers come in.
#[derive(Debug, Clone)]
pub struct Tally {
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<ErrorKind, u64>,
    /// Microseconds from each request's scheduled time to its end.
    latency_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            // 1 µs to 1 h at 3 significant digits: any timeout a user may set.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant bounds are valid"),
        }
    }
}

impl Tally {
    /// Counts one request that ended `latency` after its scheduled time.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Status(code) => *self.statuses.entry(code).or_default() += 1,
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(micros.max(1));
    }

    /// Requests that ended: answered or failed.
    pub fn ended(&self) -> u64 {
        self.latency_us.len()
    }

    /// The latency at quantile `q` (0 to 1), in milliseconds; 0 with no requests.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency_us.is_empty() {
            return 0.0;
        }
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    fn latency_ms(&self) -> LatencyMs {
        LatencyMs {
            p50: self.quantile_ms(0.5),
            p90: self.quantile_ms(0.9),
            p99: self.quantile_ms(0.99),
            max: if self.latency_us.is_empty() {
                0.0
            } else {
                self.latency_us.max() as f64 / 1000.0
            },
        }
    }

    fn statuses(&self) -> String {
        if self.statuses.is_empty() {
            return "none".to_string();
        }
        let counts: Vec<String> = self
            .statuses
            .iter()
            .map(|(code, count)| format!("{code}: {count}"))
            .collect();
        counts.join("  ")
    }

    fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The status line printed each second: this tally is the last second's.
    pub fn status_line(
        &self,
        elapsed: Duration,
        sent: u64,
        dropped: u64,
        sent_in_second: u64,
    ) -> String {
        let latency = self.latency_ms();
        format!(
            "{:>4}s  sent {sent}  rate {sent_in_second}/s  {}  errors {}  dropped {dropped}  p50 {:.1} ms  p99 {:.1} ms",
            elapsed.as_secs(),
            self.statuses(),
            self.errors(),
            latency.p50,
            latency.p99,
        )
    }
}

/// The summary of a run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests sent (not dropped).
    pub sent: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<String, u64>,
    /// Requests without an answer, by kind: `timeout`, `connect`, `other`.
    pub errors: BTreeMap<&'static str, u64>,
    /// Requests due while `--max-in-flight` were waiting: never sent.
    pub dropped: u64,
    /// Requests sent per second of the schedule (from the start to its end).
    pub achieved_rate: f64,
    /// Latency of every request sent, from its scheduled time to its end.
    pub latency_ms: LatencyMs,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Longest.
    pub max: f64,
}

impl Summary {
    /// The summary of `tally`, for `sent` and `dropped` requests over `elapsed`.
    pub fn new(tally: &Tally, sent: u64, dropped: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            sent,
            statuses: tally
                .statuses
                .iter()
                .map(|(code, count)| (code.to_string(), *count))
                .collect(),
            errors: ErrorKind::ALL
                .iter()
                .map(|kind| (kind.name(), tally.errors.get(kind).copied().unwrap_or(0)))
                .collect(),
            dropped,
            achieved_rate: if seconds > 0.0 {
                sent as f64 / seconds
            } else {
                0.0
            },
            latency_ms: tally.latency_ms(),
        }
    }

    /// The summary as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the summary serializes")
    }
}

/// The summary as a table, for people.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let l = &self.latency_ms;
        writeln!(f, "sent          {}", self.sent)?;
        writeln!(f, "dropped       {}", self.dropped)?;
        writeln!(f, "rate          {:.1}/s", self.achieved_rate)?;
        writeln!(
            f,
            "statuses      {}",
            if statuses.is_empty() {
                "none".to_string()
            } else {
                statuses.join("  ")
            }
        )?;
        writeln!(f, "errors        {}", errors.join("  "))?;
        write!(
            f,
            "latency (ms)  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_each_outcome_and_its_percentiles() {
        let mut tally = Tally::default();
        for ms in 1..=100 {
            tally.record(Outcome::Status(200), Duration::from_millis(ms));
        }
        tally.record(Outcome::Status(500), Duration::from_millis(1000));
        tally.record(
            Outcome::Error(ErrorKind::Timeout),
            Duration::from_millis(2000),
        );
        let summary = Summary::new(&tally, 102, 3, Duration::from_secs(2));
        // 102 values: p50 is the 51st (51 ms), p90 the 92nd (ceil(91.8): 92 ms),
        // p99 the 101st (1000 ms), each reported as the top of its HdrHistogram
        // bucket at 3 significant digits (within 0.1 % above).
        assert_eq!(
            summary.to_json(),
            r#"{"sent":102,"statuses":{"200":100,"500":1},"errors":{"connect":0,"other":0,"timeout":1},"dropped":3,"achieved_rate":51.0,"latency_ms":{"p50":51.007,"p90":92.031,"p99":1000.447,"max":2000.895}}"#
        );
    }

    #[test]
    fn an_empty_run_has_zero_percentiles_and_rate() {
        let summary = Summary::new(&Tally::default(), 0, 0, Duration::ZERO);
        assert_eq!(
            summary.to_json(),
            r#"{"sent":0,"statuses":{},"errors":{"connect":0,"other":0,"timeout":0},"dropped":0,"achieved_rate":0.0,"latency_ms":{"p50":0.0,"p90":0.0,"p99":0.0,"max":0.0}}"#
        );
    }
}
