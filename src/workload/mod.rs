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
    borrow::Cow,
    fmt,
    path::PathBuf,
    sync::{PoisonError, RwLock},
    time::Duration,
};

use poem_openapi::{
    registry::{MetaSchemaRef, Registry as SchemaRegistry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
    Object,
};
use prometheus::{Gauge, IntCounterVec, Opts, Registry};
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

/// A change to the workload as `PUT /admin/workload` receives it: a JSON
/// object with any of the settings. It is documented as [`SettingsChange`]
/// but read by [`Settings::changed`], so that every error names its field.
pub struct Change(pub Value);

/// Any of the workload's settings; those left out keep their value.
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

impl Type for Change {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        SettingsChange::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        SettingsChange::schema_ref()
    }

    fn register(registry: &mut SchemaRegistry) {
        SettingsChange::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for Change {
    /// An empty body is not JSON: refused as a body that is not, and so not
    /// counted as a change. poem-openapi reads it as `null`, so `null` is
    /// refused so too.
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Err(ParseError::custom(
                "the body is empty (or null); the settings must be a JSON object",
            )),
            Some(value) => Ok(Self(value)),
        }
    }
}

const NOT_AN_OBJECT: &str = "the settings must be a JSON object";

/// The changes a workload file holds: a JSON object, checked by [`Settings::changed`].
pub fn parse_file(contents: &[u8]) -> Result<Value, Invalid> {
    serde_json::from_slice(contents).map_err(|err| Invalid::whole(format!("not JSON: {err}")))
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
    error_rate: Gauge,
    min_delay: Gauge,
    max_delay: Gauge,
    slow_rate: Gauge,
    slow_delay: Gauge,
    changes: IntCounterVec,
}

impl WorkloadMetrics {
    /// Creates the metrics and registers them in `registry`; every
    /// `source` and `result` of the changes counter starts at 0.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<Gauge> {
            let gauge = Gauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let metrics = Self {
            error_rate: gauge(
                "myapp_workload_error_rate",
                "Share of /work requests set to answer 500",
            )?,
            min_delay: gauge(
                "myapp_workload_min_delay_seconds",
                "Shortest delay of the uniform draw of /work, in seconds",
            )?,
            max_delay: gauge(
                "myapp_workload_max_delay_seconds",
                "Longest delay of the uniform draw of /work, in seconds",
            )?,
            slow_rate: gauge(
                "myapp_workload_slow_rate",
                "Share of /work requests set to take the slow delay",
            )?,
            slow_delay: gauge(
                "myapp_workload_slow_delay_seconds",
                "Delay of the slow /work requests, in seconds",
            )?,
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
        self.error_rate.set(settings.error_rate);
        self.min_delay.set(seconds(settings.min_delay_ms));
        self.max_delay.set(seconds(settings.max_delay_ms));
        self.slow_rate.set(settings.slow_rate);
        self.slow_delay.set(seconds(settings.slow_delay_ms));
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
            match tokio::fs::read(&path).await {
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
