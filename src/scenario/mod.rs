//! `myapp scenario`: an incident as a file. The whole file is checked first
//! (the rules and messages of `PUT /admin/workload`), then each step is
//! applied to every replica at its time, a step landing on every replica or
//! on none, and at the end, on a refusal or on SIGINT/SIGTERM every replica
//! gets back the settings it had before.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the command's options and the run: timeline, all-or-nothing, restore |
//! | `file.rs` | the scenario file: schema, durations, rules |
//! | `replica.rs` | the replicas: URLs resolved to addresses, `GET`/`PUT /admin/workload` |
pub mod file;
pub mod replica;

use std::{path::PathBuf, process::ExitCode};

use base64::Engine;
use futures_util::future::join_all;
use poem_openapi::types::ToJSON;
use reqwest::{header::HeaderValue, Certificate, Url};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::Instant,
};

use self::{
    file::{step_name, Offset, Replicas, Scenario},
    replica::{Access, Replica},
};
use crate::workload::Settings;

/// Exit code for a bad file or option, as clap uses for bad arguments.
const USAGE_ERROR: u8 = 2;

/// The options of `myapp scenario`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScenarioArgs {
    /// The scenario: a YAML file (docs/workload.md, "Scenarios").
    #[arg(env = "MYAPP_SCENARIO_FILE", value_name = "FILE")]
    pub file: PathBuf,
    /// URL of a replica's port that serves /admin/workload (--metrics-listen,
    /// or else --listen), e.g. http://10.0.0.5:8081; repeat it or separate
    /// URLs with commas. A host that resolves to several addresses (a headless
    /// Service) means each of them.
    #[arg(
        long = "admin",
        value_name = "URL",
        env = "MYAPP_SCENARIO_ADMIN",
        value_delimiter = ',',
        required_unless_present = "dry_run",
        value_parser = parse_admin_url
    )]
    pub admin: Vec<Url>,
    /// File holding the bearer token the replicas require (their
    /// --metrics-token-file) [default: none].
    #[arg(
        long,
        env = "MYAPP_SCENARIO_TOKEN_FILE",
        conflicts_with = "basic_auth_user"
    )]
    pub token_file: Option<PathBuf>,
    /// Basic auth user, one of the replicas' basic_auth_users (--web-config-file)
    /// [default: none].
    #[arg(
        long,
        env = "MYAPP_SCENARIO_BASIC_AUTH_USER",
        requires = "basic_auth_password_file"
    )]
    pub basic_auth_user: Option<String>,
    /// File holding the basic auth user's password [default: none].
    #[arg(
        long,
        env = "MYAPP_SCENARIO_BASIC_AUTH_PASSWORD_FILE",
        requires = "basic_auth_user"
    )]
    pub basic_auth_password_file: Option<PathBuf>,
    /// PEM file of the CA that signs the replicas' certificates, for https URLs
    /// [default: none: https is refused].
    #[arg(long, env = "MYAPP_SCENARIO_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The replicas' --delay-cap-ms: the longest delay a step may set.
    #[arg(long, env = "MYAPP_DELAY_CAP_MS", default_value_t = 10_000)]
    pub delay_cap_ms: u64,
    /// Print the timeline and exit without contacting any replica.
    #[arg(long, env = "MYAPP_SCENARIO_DRY_RUN")]
    pub dry_run: bool,
}

fn parse_admin_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("{err}; expected e.g. http://HOST:8081"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(
            "expected an http:// or https:// URL with a host, e.g. http://HOST:8081".into(),
        );
    }
    Ok(url)
}

/// Why a run stopped early: a bad file or option (exit 2) or a replica that
/// refused or could not be reached (exit 1).
enum Stop {
    Usage(String),
    Failed(String),
}

/// Runs `myapp scenario`: prints the timeline (with `--dry-run`, only that),
/// or applies it; every error is one line on stderr.
pub async fn run(args: ScenarioArgs) -> ExitCode {
    match execute(&args).await {
        Ok(code) => code,
        Err(Stop::Usage(line)) => {
            eprintln!("error: {line}");
            ExitCode::from(USAGE_ERROR)
        }
        Err(Stop::Failed(line)) => {
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: &ScenarioArgs) -> Result<ExitCode, Stop> {
    let scenario = Scenario::load(&args.file, args.delay_cap_ms)
        .map_err(|err| Stop::Usage(err.to_string()))?;
    let file = args.file.display().to_string();
    if args.dry_run {
        print!("{}", timeline(&file, &scenario));
        return Ok(ExitCode::SUCCESS);
    }
    let access = access(args).map_err(Stop::Usage)?;
    // Before any change, so that a signal never leaves a change behind.
    let mut signals =
        Signals::new().map_err(|err| Stop::Failed(format!("cannot listen for signals: {err}")))?;
    let replicas = replica::resolve(&args.admin, &access)
        .await
        .map_err(Stop::Failed)?;
    if scenario.replicas == Replicas::One && replicas.len() != 1 {
        let names: Vec<String> = replicas.iter().map(ToString::to_string).collect();
        return Err(Stop::Usage(format!(
            "{file}: replicas: one, but --admin names {} replicas ({}): name one replica's URL",
            replicas.len(),
            names.join(", ")
        )));
    }
    let mut before = Vec::new();
    for (replica, settings) in replicas
        .iter()
        .zip(join_all(replicas.iter().map(Replica::settings)).await)
    {
        let settings = settings
            .map_err(|reason| Stop::Failed(format!("{replica}: {reason}; nothing changed")))?;
        // The steps again, on this replica's own settings: a rule that depends
        // on them (min_delay_ms at most max_delay_ms) refuses the run now
        // rather than halfway through.
        scenario
            .steps
            .iter()
            .enumerate()
            .try_fold(settings, |changed, (index, step)| {
                changed
                    .changed(&step.set, args.delay_cap_ms)
                    .map_err(|invalid| {
                        Stop::Failed(format!(
                            "{file}: {}: set: {invalid}, on {replica}, whose settings are {}; \
                             nothing changed",
                            step_name(index, step.at),
                            settings.to_json_string()
                        ))
                    })
            })?;
        println!("before, {replica}: {}", settings.to_json_string());
        before.push(settings);
    }
    let on = match replicas.len() {
        1 => "1 replica".to_string(),
        n => format!("{n} replicas"),
    };

    let start = Instant::now();
    let mut current = before.clone();
    let mut interrupted = None;
    for (index, step) in scenario.steps.iter().enumerate() {
        if let Some(name) = signals.until(start + step.at.0).await {
            interrupted = Some(name);
            break;
        }
        let answers = join_all(replicas.iter().map(|replica| replica.change(&step.set))).await;
        if let Some((refused, reason)) = replicas
            .iter()
            .zip(&answers)
            .find_map(|(replica, answer)| answer.as_ref().err().map(|reason| (replica, reason)))
        {
            // All or nothing: those that took the step give it back, then every
            // replica gets back what it had before the scenario.
            let took: Vec<(&Replica, &Settings)> = replicas
                .iter()
                .zip(&answers)
                .zip(&current)
                .filter(|((_, answer), _)| answer.is_ok())
                .map(|((replica, _), settings)| (replica, settings))
                .collect();
            join_all(
                took.iter()
                    .map(|(replica, settings)| replica.restore(settings)),
            )
            .await;
            let unrestored = restore(&replicas, &before).await;
            eprintln!(
                "error: {}: {refused} refused: {reason}; the step was undone and every replica \
                 put back to its settings from before the scenario",
                step_name(index, step.at)
            );
            for line in unrestored {
                eprintln!("error: {line}");
            }
            return Ok(ExitCode::FAILURE);
        }
        current = answers.into_iter().flatten().collect();
        println!("at {} on {on}: set {}", step.at, step.set);
    }
    if interrupted.is_none() {
        interrupted = signals.until(start + scenario.end.0).await;
    }
    let unrestored = restore(&replicas, &before).await;
    let at = Offset(start.elapsed().min(scenario.end.0));
    match interrupted {
        None => println!(
            "at {} on {on}: end, settings from before restored",
            scenario.end
        ),
        Some(name) => println!("at {at} on {on}: {name}, settings from before restored"),
    }
    for line in &unrestored {
        eprintln!("error: {line}");
    }
    Ok(match (interrupted, unrestored.is_empty()) {
        (_, false) => ExitCode::FAILURE,
        (None, true) => ExitCode::SUCCESS,
        // 128 + the signal's number, as a shell reports it.
        (Some("SIGINT"), true) => ExitCode::from(130),
        (Some(_), true) => ExitCode::from(143),
    })
}

/// Puts `before` back on each replica; the lines of those that did not take it.
async fn restore(replicas: &[Replica], before: &[Settings]) -> Vec<String> {
    let answers = join_all(
        replicas
            .iter()
            .zip(before)
            .map(|(replica, settings)| replica.restore(settings)),
    )
    .await;
    replicas
        .iter()
        .zip(before)
        .zip(answers)
        .filter_map(|((replica, settings), answer)| {
            answer.err().map(|reason| {
                format!(
                    "{replica}: cannot restore {}: {reason}",
                    settings.to_json_string()
                )
            })
        })
        .collect()
}

/// What `--dry-run` prints: every step, the end, and the alerts expected.
pub fn timeline(file: &str, scenario: &Scenario) -> String {
    let mut lines = vec![format!(
        "{file}: {}",
        scenario
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    )];
    lines.push(format!("replicas: {}", scenario.replicas.name()));
    for step in &scenario.steps {
        lines.push(format!("at {}: set {}", step.at, step.set));
    }
    lines.push(format!(
        "at {}: end, settings from before restored",
        scenario.end
    ));
    for expect in &scenario.expect {
        lines.push(match expect.by {
            Some(by) if expect.fires => format!("expect {} to fire by {by}", expect.name()),
            _ => format!("expect {} not to fire", expect.name()),
        });
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// The `Authorization` header and the CA the options name.
fn access(args: &ScenarioArgs) -> Result<Access, String> {
    let secret = |flag: &str, path: &PathBuf| -> Result<String, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("{flag} {}: cannot read: {err}", path.display()))?;
        let secret = text.trim().to_string();
        if secret.is_empty() {
            return Err(format!("{flag} {}: the file is empty", path.display()));
        }
        Ok(secret)
    };
    let header = |value: String, flag: &str, path: &PathBuf| {
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            format!(
                "{flag} {}: must be one line of printable ASCII",
                path.display()
            )
        })?;
        value.set_sensitive(true);
        Ok::<_, String>(value)
    };
    let mut access = Access::default();
    if let Some(path) = &args.token_file {
        let token = secret("--token-file", path)?;
        access.authorization = Some(header(format!("Bearer {token}"), "--token-file", path)?);
    }
    if let (Some(user), Some(path)) = (&args.basic_auth_user, &args.basic_auth_password_file) {
        let password = secret("--basic-auth-password-file", path)?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        access.authorization = Some(header(
            format!("Basic {credentials}"),
            "--basic-auth-password-file",
            path,
        )?);
    }
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path)
            .map_err(|err| format!("--ca-file {}: cannot read: {err}", path.display()))?;
        access.ca = Some(Certificate::from_pem(&pem).map_err(|err| {
            format!("--ca-file {}: not a PEM certificate: {err}", path.display())
        })?);
    }
    Ok(access)
}

/// SIGINT and SIGTERM, listened for during the waits between steps.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits until `deadline`, or returns the name of a signal that came first.
    async fn until(&mut self, deadline: Instant) -> Option<&'static str> {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => None,
            _ = self.interrupt.recv() => Some("SIGINT"),
            _ = self.terminate.recv() => Some("SIGTERM"),
        }
    }
}
