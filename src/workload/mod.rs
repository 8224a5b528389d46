//! The workload and its control: how long `GET /work` requests take and how
//! often they fail. It can change while the service runs (`PUT
//! /admin/workload`, the `--workload-file`), and its gauges report the
//! settings in force.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the settings, their rules, the workload file, the gauges |
//! | `work.rs` | `GET /work`, the simulated work |
//! | `admin.rs` | `GET` and `PUT /admin/workload` |
pub mod admin;
pub mod work;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use poem_openapi::{types::ToJSON, Object};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Gauge, IntCounterVec, Opts, Registry,
};
use rand::Rng;
use serde_json::Value;

use crate::server::shutdown::Shutdown;

/// The rule of a share: the flags' message too.
pub const SHARE_RULE: &str = "must be between 0.0 and 1.0";

/// `value` as a share, if it is one (0.0 to 1.0); -0.0, equal to 0.0, is
/// taken as 0.0, so that the gauges and settings never show `-0`.
pub fn share(value: f64) -> Option<f64> {
    (0.0..=1.0).contains(&value).then_some(value.abs())
}

/// How often the `--workload-file` is read for changes.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The largest `--workload-file` read, in bytes; a change is a few dozen.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The settings of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Object)]
#[oai(rename = "WorkloadSettings")]
pub struct Settings {
    /// Shortest delay of the uniform draw, in milliseconds.
    pub min_delay_ms: u64,
    /// Longest delay of the uniform draw, in milliseconds (included).
    pub max_delay_ms: u64,
    /// Share of requests that answer 500, from 0.0 to 1.0.
    pub error_rate: f64,
    /// Share of requests that take `slow_delay_ms` instead of the uniform
    /// draw, from 0.0 to 1.0: a latency tail.
    pub slow_rate: f64,
    /// Delay of the slow requests, in milliseconds.
    pub slow_delay_ms: u64,
}

/// A setting of [`Settings`], by the names it has as a JSON field and as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    MinDelayMs,
    MaxDelayMs,
    ErrorRate,
    SlowRate,
    SlowDelayMs,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::MinDelayMs,
        Field::MaxDelayMs,
        Field::ErrorRate,
        Field::SlowRate,
        Field::SlowDelayMs,
    ];

    fn key(self) -> &'static str {
        match self {
            Field::MinDelayMs => "min_delay_ms",
            Field::MaxDelayMs => "max_delay_ms",
            Field::ErrorRate => "error_rate",
            Field::SlowRate => "slow_rate",
            Field::SlowDelayMs => "slow_delay_ms",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Field::MinDelayMs => "--min-delay-ms",
            Field::MaxDelayMs => "--max-delay-ms",
            Field::ErrorRate => "--error-rate",
            Field::SlowRate => "--slow-rate",
            Field::SlowDelayMs => "--slow-delay-ms",
        }
    }

    fn is_share(self) -> bool {
        matches!(self, Field::ErrorRate | Field::SlowRate)
    }

    fn name(self, naming: Naming) -> &'static str {
        match naming {
            Naming::Flags => self.flag(),
            Naming::Fields => self.key(),
        }
    }
}

/// Whether an error names the settings as flags or as JSON fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `--error-rate`: the settings came from the command line.
    Flags,
    /// `error_rate`: they came from `PUT /admin/workload` or the workload file.
    Fields,
}

/// A change refused, and why: the field it concerns, if one, and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The setting at fault (as named in the change), if the fault is one setting's.
    pub field: Option<String>,
    /// The rule, naming the setting.
    pub message: String,
}

impl Invalid {
    fn of(field: &str, message: String) -> Self {
        Self {
            field: Some(field.to_string()),
            message,
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
}

impl Settings {
    /// Checks the rules beyond one value: every delay at most
    /// `delay_cap_ms`, the shortest no longer than the longest. (A share is
    /// checked where it is read: by the flags' parser, or [`Settings::changed`].)
    pub fn validate(&self, delay_cap_ms: u64, naming: Naming) -> Result<(), Invalid> {
        for (field, delay) in [
            (Field::MinDelayMs, self.min_delay_ms),
            (Field::MaxDelayMs, self.max_delay_ms),
            (Field::SlowDelayMs, self.slow_delay_ms),
        ] {
            if delay > delay_cap_ms {
                let name = field.name(naming);
                return Err(Invalid::of(
                    name,
                    format!(
                        "{name} ({delay}) must not be greater than --delay-cap-ms ({delay_cap_ms})"
                    ),
                ));
            }
        }
        if self.min_delay_ms > self.max_delay_ms {
            let (min, max) = (
                Field::MinDelayMs.name(naming),
                Field::MaxDelayMs.name(naming),
            );
            return Err(Invalid::of(
                min,
                format!(
                    "{min} ({}) must not be greater than {max} ({})",
                    self.min_delay_ms, self.max_delay_ms
                ),
            ));
        }
        Ok(())
    }

    /// These settings with `changes` applied: a JSON object holding any of
    /// the settings by their field names. Every value is checked, then the
    /// whole, so a change is taken whole or not at all.
    pub fn changed(&self, changes: &Value, delay_cap_ms: u64) -> Result<Self, Invalid> {
        let Value::Object(changes) = changes else {
            return Err(Invalid::whole(NOT_AN_OBJECT));
        };
        let mut changed = *self;
        for (key, value) in changes {
            let Some(field) = Field::ALL.into_iter().find(|field| field.key() == key) else {
                let known: Vec<&str> = Field::ALL.iter().map(|field| field.key()).collect();
                return Err(Invalid::of(
                    key,
                    format!(
                        "unknown setting {key}; the settings are {}",
                        known.join(", ")
                    ),
                ));
            };
            changed.set(field, value)?;
        }
        changed.validate(delay_cap_ms, Naming::Fields)?;
        Ok(changed)
    }

    /// A request's delay: the slow delay for a `slow_rate` share, else
    /// uniform between the shortest and the longest.
    pub fn draw_delay(&self, rng: &mut impl Rng) -> u64 {
        if rng.random_bool(self.slow_rate) {
            self.slow_delay_ms
        } else {
            rng.random_range(self.min_delay_ms..=self.max_delay_ms)
        }
    }

    /// Whether a request fails: true for an `error_rate` share.
    pub fn draw_failure(&self, rng: &mut impl Rng) -> bool {
        rng.random_bool(self.error_rate)
    }

    fn set(&mut self, field: Field, value: &Value) -> Result<(), Invalid> {
        let key = field.key();
        if field.is_share() {
            let share = value
                .as_f64()
                .and_then(share)
                .ok_or_else(|| Invalid::of(key, format!("{key} {SHARE_RULE}, not {value}")))?;
            match field {
                Field::ErrorRate => self.error_rate = share,
                _ => self.slow_rate = share,
            }
        } else {
            let delay = value.as_u64().ok_or_else(|| {
                Invalid::of(
                    key,
                    format!("{key} must be a whole number of milliseconds, not {value}"),
                )
            })?;
            match field {
                Field::MinDelayMs => self.min_delay_ms = delay,
                Field::MaxDelayMs => self.max_delay_ms = delay,
                _ => self.slow_delay_ms = delay,
            }
        }
        Ok(())
    }
}

/// Any of the workload's settings; those left out keep their value.
// The schema of `PUT /admin/workload`'s body (`admin::ChangeBody`), which
// `Settings::changed` reads, so that every error names its field.
#[derive(Object)]
#[oai(rename = "WorkloadChange")]
pub struct SettingsChange {
    /// Shortest delay of the uniform draw, in milliseconds, at most `--delay-cap-ms`.
    pub min_delay_ms: Option<u64>,
    /// Longest delay of the uniform draw, in milliseconds, at most `--delay-cap-ms`.
    pub max_delay_ms: Option<u64>,
    /// Share of requests that answer 500, from 0.0 to 1.0.
    pub error_rate: Option<f64>,
    /// Share of requests that take `slow_delay_ms`, from 0.0 to 1.0.
    pub slow_rate: Option<f64>,
    /// Delay of the slow requests, in milliseconds, at most `--delay-cap-ms`.
    pub slow_delay_ms: Option<u64>,
}

const NOT_AN_OBJECT: &str = "the settings must be a JSON object";

/// The changes a workload file holds: a JSON object, checked by [`Settings::changed`].
pub fn parse_file(contents: &[u8]) -> Result<Value, Invalid> {
    serde_json::from_slice(contents).map_err(|err| Invalid::whole(format!("not JSON: {err}")))
}

/// Reads the `--workload-file`: a regular file of at most [`MAX_FILE_BYTES`],
/// or an error saying what it is instead. It is opened with `O_NONBLOCK`, so
/// that a FIFO without a writer is refused at once rather than waited on
/// (the flag does not change how a regular file reads); a device such as
/// `/dev/zero` is refused before any read.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    let too_large = |bytes: u64| {
        std::io::Error::other(format!(
            "{bytes} bytes, more than the {MAX_FILE_BYTES} a workload file may hold"
        ))
    };
    if !metadata.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file but {}; the workload file must be a regular file of at most \
             {MAX_FILE_BYTES} bytes",
            kind(metadata.file_type())
        )));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large(metadata.len()));
    }
    // A file that grows while it is read is cut one byte past the limit.
    let mut contents = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(contents.len() as u64));
    }
    Ok(contents)
}

/// What a file that is not a regular one is, for the error.
fn kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;

    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Who changed the workload, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line, at start-up.
    Flag,
    /// `PUT /admin/workload`.
    Api,
    /// The `--workload-file`.
    File,
}

impl Source {
    const ALL: [Source; 3] = [Source::Flag, Source::Api, Source::File];

    fn label(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Api => "api",
            Source::File => "file",
        }
    }
}

/// The gauges of the settings in force, in base units, and the count of changes.
#[derive(Debug, Clone)]
pub struct WorkloadMetrics {
    gauges: SettingsGauges,
    changes: IntCounterVec,
}

/// The five gauges of the settings, set and collected under one lock, so that
/// a scrape sees one change whole: never some gauges of one change and some
/// of another.
#[derive(Debug, Clone)]
struct SettingsGauges {
    /// error_rate, min_delay, max_delay, slow_rate, slow_delay.
    gauges: Arc<Mutex<Vec<Gauge>>>,
    descs: Vec<Desc>,
}

impl Collector for SettingsGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        gauges.iter().flat_map(Collector::collect).collect()
    }
}

impl WorkloadMetrics {
    /// Creates the metrics and registers them in `registry`; every
    /// `source` and `result` of the changes counter starts at 0.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauges = [
            (
                "myapp_workload_error_rate",
                "Share of /work requests set to answer 500",
            ),
            (
                "myapp_workload_min_delay_seconds",
                "Shortest delay of the uniform draw of /work, in seconds",
            ),
            (
                "myapp_workload_max_delay_seconds",
                "Longest delay of the uniform draw of /work, in seconds",
            ),
            (
                "myapp_workload_slow_rate",
                "Share of /work requests set to take the slow delay",
            ),
            (
                "myapp_workload_slow_delay_seconds",
                "Delay of the slow /work requests, in seconds",
            ),
        ]
        .into_iter()
        .map(|(name, help)| Gauge::new(name, help))
        .collect::<prometheus::Result<Vec<_>>>()?;
        let gauges = SettingsGauges {
            descs: gauges
                .iter()
                .flat_map(|gauge| gauge.desc())
                .cloned()
                .collect(),
            gauges: Arc::new(Mutex::new(gauges)),
        };
        registry.register(Box::new(gauges.clone()))?;
        let metrics = Self {
            gauges,
            changes: IntCounterVec::new(
                Opts::new(
                    "myapp_workload_changes_total",
                    "Changes of the workload settings, by source and result",
                ),
                &["source", "result"],
            )?,
        };
        for source in Source::ALL {
            for result in ["applied", "rejected"] {
                metrics.changes.with_label_values(&[source.label(), result]);
            }
        }
        registry.register(Box::new(metrics.changes.clone()))?;
        Ok(metrics)
    }

    fn show(&self, settings: &Settings) {
        let seconds = |ms: u64| ms as f64 / 1000.0;
        let gauges = self
            .gauges
            .gauges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let values = [
            settings.error_rate,
            seconds(settings.min_delay_ms),
            seconds(settings.max_delay_ms),
            settings.slow_rate,
            seconds(settings.slow_delay_ms),
        ];
        for (gauge, value) in gauges.iter().zip(values) {
            gauge.set(value);
        }
    }

    fn count(&self, source: Source, result: &str) {
        self.changes
            .with_label_values(&[source.label(), result])
            .inc();
    }
}

/// The settings in force, shared by `/work`, the admin API and the file watcher.
#[derive(Debug)]
pub struct Workload {
    settings: RwLock<Settings>,
    delay_cap_ms: u64,
    metrics: WorkloadMetrics,
}

impl Workload {
    /// The workload as the command line sets it (checked by
    /// [`Settings::validate`] with [`Naming::Flags`]); counted as a change
    /// from `flag`.
    pub fn new(settings: Settings, delay_cap_ms: u64, metrics: WorkloadMetrics) -> Self {
        metrics.show(&settings);
        metrics.count(Source::Flag, "applied");
        Self {
            settings: RwLock::new(settings),
            delay_cap_ms,
            metrics,
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> Settings {
        *self.settings.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The longest delay any request may take, in milliseconds (`--delay-cap-ms`).
    pub fn delay_cap_ms(&self) -> u64 {
        self.delay_cap_ms
    }

    /// Applies `changes` (see [`Settings::changed`]) at once, for the next
    /// requests, or nothing. Logs the change with the old and new settings
    /// and `by` (who asked), and counts it.
    pub fn change(
        &self,
        changes: &Value,
        source: Source,
        by: &dyn fmt::Display,
    ) -> Result<Settings, Invalid> {
        let mut settings = self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let old = *settings;
        match old.changed(changes, self.delay_cap_ms) {
            Ok(new) => {
                *settings = new;
                self.metrics.show(&new);
                self.metrics.count(source, "applied");
                tracing::info!(
                    source = source.label(),
                    by = %by,
                    old = %old.to_json_string(),
                    new = %new.to_json_string(),
                    "workload changed; the latest change wins, whichever its source"
                );
                Ok(new)
            }
            Err(invalid) => {
                self.reject(source, by, &invalid);
                Err(invalid)
            }
        }
    }

    fn reject(&self, source: Source, by: &dyn fmt::Display, invalid: &Invalid) {
        self.metrics.count(source, "rejected");
        tracing::warn!(
            source = source.label(),
            by = %by,
            error = %invalid,
            "workload change rejected; the settings in force stay"
        );
    }

    /// Reads `path` every [`FILE_POLL_INTERVAL`] until shutdown begins, and
    /// applies its settings whenever its contents differ from `last` (the
    /// contents applied at start-up). Reading the path anew each time follows
    /// a mounted ConfigMap's atomic symlink swap.
    pub async fn watch_file(&self, path: PathBuf, mut last: Vec<u8>, shutdown: Shutdown) {
        let mut unreadable = None;
        loop {
            tokio::select! {
                _ = shutdown.begun() => return,
                _ = tokio::time::sleep(FILE_POLL_INTERVAL) => {}
            }
            // Blocking reads, off the runtime's threads; `read_file` never
            // waits on a FIFO or reads past its limit.
            let read = tokio::task::spawn_blocking({
                let path = path.clone();
                move || read_file(&path)
            });
            match read
                .await
                .unwrap_or_else(|err| Err(std::io::Error::other(err)))
            {
                Ok(contents) => {
                    unreadable = None;
                    if contents != last {
                        // An invalid file is logged once, not at every poll.
                        let by = path.display();
                        match parse_file(&contents) {
                            Ok(changes) => {
                                let _ = self.change(&changes, Source::File, &by);
                            }
                            Err(invalid) => self.reject(Source::File, &by, &invalid),
                        }
                        last = contents;
                    }
                }
                Err(err) => {
                    let reason = err.to_string();
                    if unreadable.as_ref() != Some(&reason) {
                        tracing::warn!(
                            path = %path.display(),
                            error = %reason,
                            "cannot read the workload file; the settings in force stay"
                        );
                        unreadable = Some(reason);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The five gauges of one gathering, in the order of [`Settings`]' fields.
    fn gauges(registry: &Registry) -> [f64; 5] {
        let families = registry.gather();
        let value = |name: &str| {
            families
                .iter()
                .find(|family| family.name() == name)
                .unwrap_or_else(|| panic!("no {name}"))
                .get_metric()[0]
                .get_gauge()
                .value()
        };
        [
            value("myapp_workload_min_delay_seconds"),
            value("myapp_workload_max_delay_seconds"),
            value("myapp_workload_error_rate"),
            value("myapp_workload_slow_rate"),
            value("myapp_workload_slow_delay_seconds"),
        ]
    }

    #[test]
    fn a_gathering_during_changes_sees_the_five_gauges_of_one_change() {
        let registry = Registry::new();
        let metrics = WorkloadMetrics::register(&registry).unwrap();
        // Two settings that differ in every field, and their gauges as the
        // test computes them (seconds from milliseconds by hand).
        let a = Settings {
            min_delay_ms: 100,
            max_delay_ms: 200,
            error_rate: 0.1,
            slow_rate: 0.2,
            slow_delay_ms: 300,
        };
        let b = Settings {
            min_delay_ms: 400,
            max_delay_ms: 500,
            error_rate: 0.6,
            slow_rate: 0.7,
            slow_delay_ms: 800,
        };
        let expected = [[0.1, 0.2, 0.1, 0.2, 0.3], [0.4, 0.5, 0.6, 0.7, 0.8]];
        let workload = Workload::new(a, 1000, metrics);
        let changes = [b.to_json().unwrap(), a.to_json().unwrap()];
        let done = std::sync::atomic::AtomicBool::new(false);
        let torn = std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..50_000 {
                    workload
                        .change(&changes[i % 2], Source::Api, &"test")
                        .unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut torn = Vec::new();
                        while !done.load(std::sync::atomic::Ordering::SeqCst) {
                            let seen = gauges(&registry);
                            if !expected.contains(&seen) {
                                torn.push(seen);
                            }
                        }
                        torn
                    })
                })
                .collect();
            readers
                .into_iter()
                .flat_map(|reader| reader.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert!(
            torn.is_empty(),
            "{} gatherings mixed two changes, e.g. {:?}",
            torn.len(),
            &torn[..torn.len().min(5)]
        );
        assert_eq!(gauges(&registry), expected[0], "the last change, a, whole");
    }
}
