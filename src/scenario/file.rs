//! A scenario file: its schema, its durations, and the rules it must follow
//! before anything is contacted.
use std::{fmt, path::Path, time::Duration};

use serde::{de, Deserialize, Deserializer};
use serde_json::Value;

use crate::workload::Settings;

/// An incident as a file: the settings changes to apply, when, and the alerts
/// they should (and should not) fire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario rehearses, for the people who run it.
    pub description: String,
    /// Whether it is meant for every replica or for one.
    #[serde(default)]
    pub replicas: Replicas,
    /// The alerts it should fire by a time, and those it must not fire.
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// The changes, in the order of their offsets.
    pub steps: Vec<Step>,
    /// When the scenario ends and every replica gets back the settings it had
    /// before it began.
    pub end: Offset,
}

/// The replicas a scenario is meant for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replicas {
    /// Every replica of the service (the default): one `--admin` URL per
    /// replica, or a name that resolves to each.
    #[default]
    Every,
    /// One replica, the others left as they are: `--admin` must name exactly one.
    One,
}

impl Replicas {
    /// The name the file uses.
    pub fn name(self) -> &'static str {
        match self {
            Replicas::Every => "every",
            Replicas::One => "one",
        }
    }
}

/// One change of the workload, at its time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Time since the scenario began.
    pub at: Offset,
    /// Any of the settings of `PUT /admin/workload`, by their field names.
    pub set: Value,
}

/// An alert the scenario should fire by a time, or must not fire at all.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The alert's name, as in `deploy/prometheus/rules.yml` or `slo-rules.yml`.
    pub alert: String,
    /// Its `severity` label, when the name alone does not say which alert:
    /// an SLO's page and ticket alerts share their name. None: any severity.
    pub severity: Option<String>,
    /// Whether it fires; `false` means it must not fire before `end`.
    #[serde(default = "fires_by_default")]
    pub fires: bool,
    /// Fires by then (time since the scenario began); required when it fires.
    pub by: Option<Offset>,
}

impl Expect {
    /// How messages name it: `MyappHighErrorRatio`, or
    /// `MyappAvailabilityBudgetBurn severity=page` with a severity.
    pub fn name(&self) -> String {
        match &self.severity {
            Some(severity) => format!("{} severity={severity}", self.alert),
            None => self.alert.clone(),
        }
    }
}

fn fires_by_default() -> bool {
    true
}

/// A time since the scenario began, written like Prometheus's durations:
/// `90s`, `1m30s`, `300ms`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub Duration);

const DURATION_RULE: &str =
    "a duration is whole numbers with units h, m, s or ms, largest first, e.g. 90s, 1m30s or 300ms";

impl std::str::FromStr for Offset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)];
        let bad = || format!("{text:?} is not a duration: {DURATION_RULE}");
        let mut rest = text;
        let mut ms: u64 = 0;
        // The index of the next unit allowed: each unit once, largest first.
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let unit_len = rest[digits..]
                .bytes()
                .take_while(u8::is_ascii_alphabetic)
                .count();
            let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
            let position = UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(bad)?;
            let factor = UNITS[next_unit + position].1;
            next_unit += position + 1;
            let value: u64 = number.parse().map_err(|_| bad())?;
            ms = value
                .checked_mul(factor)
                .and_then(|part| ms.checked_add(part))
                .ok_or_else(bad)?;
            rest = &rest[digits + unit_len..];
        }
        if text.is_empty() {
            return Err(bad());
        }
        Ok(Self(Duration::from_millis(ms)))
    }
}

impl fmt::Display for Offset {
    /// The shortest form that reads back the same: `1m30s`, `300ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, factor) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            if ms >= factor {
                write!(f, "{}{unit}", ms / factor)?;
                ms %= factor;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Offset;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 90s, 1m30s or 300ms")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Offset, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Why a scenario file cannot be run: one line naming the file and the place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FileError {
    /// The file, as named on the command line.
    pub file: String,
    /// What is wrong, naming the field (and the step, counted from 0).
    pub message: String,
}

impl Scenario {
    /// Reads and checks the scenario at `path`; see [`Scenario::parse`].
    pub fn load(path: &Path, delay_cap_ms: u64) -> Result<Self, FileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| FileError {
            file: file.clone(),
            message: format!("cannot read: {err}"),
        })?;
        Self::parse(&text, delay_cap_ms).map_err(|message| FileError { file, message })
    }

    /// Parses a scenario and checks every rule: no unknown key, offsets
    /// increasing, every step's change valid (the rules and messages of
    /// `PUT /admin/workload`, with delays up to `delay_cap_ms`) on top of the
    /// steps before it, the end after the last step, and each expectation
    /// fully said.
    pub fn parse(text: &str, delay_cap_ms: u64) -> Result<Self, String> {
        let scenario: Self = serde_yaml::from_str(text).map_err(|err| err.to_string())?;
        scenario.check(delay_cap_ms)?;
        Ok(scenario)
    }

    fn check(&self, delay_cap_ms: u64) -> Result<(), String> {
        if self.description.trim().is_empty() {
            return Err("description: must say what the scenario rehearses".into());
        }
        if self.steps.is_empty() {
            return Err("steps: a scenario needs at least one step".into());
        }
        // The settings a replica will have are not known before it is asked,
        // so the steps are checked on the loosest ones: no delay, a maximum at
        // the cap. A rule a step breaks here, it breaks on every replica; what
        // depends on a replica's own settings is checked again against them.
        let mut settings = Settings {
            min_delay_ms: 0,
            max_delay_ms: delay_cap_ms,
            error_rate: 0.0,
            slow_rate: 0.0,
            slow_delay_ms: 0,
        };
        let mut previous: Option<Offset> = None;
        for (index, step) in self.steps.iter().enumerate() {
            let name = step_name(index, step.at);
            if let Some(before) = previous.filter(|before| step.at <= *before) {
                return Err(format!(
                    "{name}: at must come after the previous step's ({before})"
                ));
            }
            previous = Some(step.at);
            if step.set.as_object().is_some_and(|set| set.is_empty()) {
                return Err(format!("{name}: set must name at least one setting"));
            }
            settings = settings
                .changed(&step.set, delay_cap_ms)
                .map_err(|invalid| format!("{name}: set: {invalid}"))?;
        }
        if let Some(last) = previous.filter(|last| self.end <= *last) {
            return Err(format!(
                "end ({}) must come after the last step's at ({last})",
                self.end
            ));
        }
        for (index, expect) in self.expect.iter().enumerate() {
            let name = format!("expect[{index}] ({})", expect.name());
            if expect.alert.trim().is_empty() {
                return Err(format!("expect[{index}]: alert must name an alert"));
            }
            if expect
                .severity
                .as_deref()
                .is_some_and(|s| s.trim().is_empty())
            {
                return Err(format!(
                    "{name}: severity must name a severity, or be left out"
                ));
            }
            // Without a severity an entry speaks for every severity of the alert.
            if self.expect[..index].iter().any(|other| {
                other.alert == expect.alert
                    && (other.severity.is_none()
                        || expect.severity.is_none()
                        || other.severity == expect.severity)
            }) {
                return Err(format!("{name}: the alert is named twice"));
            }
            match (expect.fires, expect.by) {
                (true, None) => {
                    return Err(format!(
                        "{name}: by must say when the alert fires at the latest"
                    ))
                }
                (false, Some(_)) => {
                    return Err(format!(
                        "{name}: by is for an alert that fires; this one must not (fires: false)"
                    ))
                }
                (true, Some(by)) if by > self.end => {
                    return Err(format!(
                        "{name}: by ({by}) must not come after end ({})",
                        self.end
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// How a step is named in messages: `steps[1] (at 1m30s)`, counted from 0
/// as the YAML parser's own messages count.
pub fn step_name(index: usize, at: Offset) -> String {
    format!("steps[{index}] (at {at})")
}
