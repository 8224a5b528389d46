//! Command-line and environment configuration, validated at start-up.
use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{
    error::{ContextKind, ContextValue},
    Args, Parser, Subcommand, ValueEnum,
};

use crate::{
    load::LoadArgs,
    workload::{self, Invalid, Naming, Settings, SHARE_RULE},
};

/// Default histogram buckets in seconds: fine between 0.1 s and 2.5 s, the range
/// of the default 0 to 2 s workload, with a few edges below and one above.
pub const DEFAULT_BUCKETS: &str =
    "0.005,0.01,0.025,0.05,0.1,0.2,0.3,0.4,0.5,0.75,1,1.25,1.5,1.75,2,2.5,5";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Simulates work on GET /work and exposes Prometheus metrics on GET /metrics"
)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the server.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the OpenAPI spec as JSON and exit.
    Openapi,
    /// Send GET requests to URLs at a constant rate and summarise what came back.
    Load(LoadArgs),
    /// Apply a scenario file's workload changes to replicas at their times, then restore.
    Scenario(crate::scenario::ScenarioArgs),
}

/// Every setting of the service.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on: IP:PORT, or :PORT for 0.0.0.0:PORT.
    #[arg(long, env = "MYAPP_LISTEN", default_value = "0.0.0.0:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Address to serve /metrics, /healthz, /readyz and /admin/workload on,
    /// instead of on --listen, which then answers 404 for them. /admin/workload
    /// moves with /metrics to this port and is guarded by --metrics-token-file
    /// as /metrics is. IP:PORT, or :PORT for 0.0.0.0:PORT [default: none: they
    /// are served on --listen].
    #[arg(long, env = "MYAPP_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the bearer token (`Authorization: Bearer <token>`) that
    /// /metrics and /admin/workload then require, on whichever port serves them
    /// (--metrics-listen, or else --listen); /healthz and /readyz stay open.
    /// Read at start-up [default: none: /metrics and /admin/workload are open].
    #[arg(long, env = "MYAPP_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Shortest simulated work, in milliseconds.
    #[arg(
        long,
        env = "MYAPP_MIN_DELAY_MS",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    pub min_delay_ms: u64,
    /// Longest simulated work, in milliseconds (included).
    #[arg(
        long,
        env = "MYAPP_MAX_DELAY_MS",
        allow_negative_numbers = true,
        default_value_t = 2000
    )]
    pub max_delay_ms: u64,
    /// Share of /work requests that answer 500, from 0.0 to 1.0.
    #[arg(long, env = "MYAPP_ERROR_RATE", allow_negative_numbers = true, default_value_t = 0.5, value_parser = parse_share)]
    pub error_rate: f64,
    /// Share of /work requests that take --slow-delay-ms instead of a delay
    /// between the minimum and the maximum, from 0.0 to 1.0: a latency tail.
    #[arg(long, env = "MYAPP_SLOW_RATE", allow_negative_numbers = true, default_value_t = 0.0, value_parser = parse_share)]
    pub slow_rate: f64,
    /// Delay of the slow /work requests, in milliseconds.
    #[arg(
        long,
        env = "MYAPP_SLOW_DELAY_MS",
        allow_negative_numbers = true,
        default_value_t = 5000
    )]
    pub slow_delay_ms: u64,
    /// Longest delay any /work request may take, in milliseconds: bounds every
    /// delay setting and the `delay_ms` query parameter.
    #[arg(
        long,
        env = "MYAPP_DELAY_CAP_MS",
        allow_negative_numbers = true,
        default_value_t = 10_000
    )]
    pub delay_cap_ms: u64,
    /// JSON file of workload settings, applied at start-up over the flags and
    /// again whenever it changes (read every second) [default: none].
    #[arg(long, env = "MYAPP_WORKLOAD_FILE")]
    pub workload_file: Option<PathBuf>,
    /// Upper bounds of the latency histogram's buckets: seconds, comma-separated,
    /// strictly increasing.
    #[arg(long, env = "MYAPP_BUCKETS", default_value = DEFAULT_BUCKETS)]
    pub buckets: Buckets,
    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C
    /// [default: --delay-cap-ms rounded up to whole seconds, plus 1; 11 with the defaults].
    #[arg(
        long,
        env = "MYAPP_SHUTDOWN_TIMEOUT_SECS",
        allow_negative_numbers = true
    )]
    pub shutdown_timeout_secs: Option<u64>,
    /// Seconds a client has to send a request's headers, counted from when the
    /// connection opens or its previous answer was sent; slower or idle
    /// connections are closed.
    #[arg(long, env = "MYAPP_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body, counted from when its
    /// headers arrived (`Expect: 100-continue` included); a late body is
    /// answered 408 and the connection closed. Bounds the drain at shutdown
    /// too: keep it below --shutdown-timeout-secs.
    #[arg(long, env = "MYAPP_BODY_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// /work requests allowed in flight at once; beyond it /work answers 503
    /// with Retry-After at once.
    #[arg(long, env = "MYAPP_MAX_IN_FLIGHT", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Seconds to keep accepting and serving new connections after the first
    /// SIGTERM or Ctrl-C, with /readyz answering 503, before accepting stops
    /// and the drain begins: time for load balancers to stop sending requests.
    /// --shutdown-timeout-secs counts from the end of this delay.
    #[arg(
        long,
        env = "MYAPP_SHUTDOWN_DELAY_SECS",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    pub shutdown_delay_secs: u64,
    /// TLS and basic auth for the port that serves /metrics, in the web
    /// configuration file format of Prometheus's exporter-toolkit
    /// (tls_server_config, basic_auth_users), read at start-up
    /// [default: none: plain HTTP, open].
    #[arg(long, env = "MYAPP_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Growth factor of the native (sparse, exponential) buckets of the latency
    /// histogram, exposed in protobuf answers beside its classic buckets: each
    /// bucket is at most this many times wider than the one below (client_golang's
    /// NativeHistogramBucketFactor; 1.1 gives schema 3). 0 turns them off; else
    /// above 1. At most 160 buckets (beyond, the resolution halves); values at
    /// or below 2^-128 s count in the zero bucket.
    #[arg(long, env = "MYAPP_NATIVE_HISTOGRAM_BUCKET_FACTOR", default_value_t = 1.1, value_parser = parse_bucket_factor)]
    pub native_histogram_bucket_factor: f64,
    /// Write a `_created` sample (when the series began counting, in seconds
    /// since the epoch) after each counter and histogram series in OpenMetrics
    /// answers, as client_golang's EnableOpenMetricsTextCreatedSamples. Off by
    /// default, as there: Prometheus before 3 stores each as a series of its
    /// own. Protobuf answers always carry the time (created_timestamp); the
    /// 0.0.4 text never does. The env twin takes true or false.
    #[arg(long, env = "MYAPP_OPENMETRICS_CREATED_SAMPLES")]
    pub openmetrics_created_samples: bool,
    /// Log format.
    #[arg(long, env = "MYAPP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The configuration with every default, as the binary sees it with no flags.
    pub fn defaults() -> Self {
        Cli::parse_from(["myapp"]).config
    }

    /// The workload the flags set.
    pub fn workload(&self) -> Settings {
        Settings {
            min_delay_ms: self.min_delay_ms,
            max_delay_ms: self.max_delay_ms,
            error_rate: self.error_rate,
            slow_rate: self.slow_rate,
            slow_delay_ms: self.slow_delay_ms,
        }
    }

    /// Checks the rules that involve more than one setting.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.workload().validate(self.delay_cap_ms, Naming::Flags)
    }

    /// How long shutdown waits for in-flight requests: by default, long
    /// enough for the longest delay a request may take.
    pub fn shutdown_timeout(&self) -> Duration {
        let secs = self
            .shutdown_timeout_secs
            .unwrap_or(self.delay_cap_ms.div_ceil(1000) + 1);
        Duration::from_secs(secs)
    }
}

/// The one line a command-line error is reported with: clap's first line, which
/// names the option and the problem (the rest is a hint to try --help), and the
/// values allowed, which clap lists on a line of their own.
pub fn error_line(err: &clap::Error) -> String {
    let message = err.to_string();
    let first = message.lines().next().unwrap_or_default();
    // A missing argument's name is on the next line: bring it onto this one.
    if let Some(ContextValue::Strings(names)) = err.get(ContextKind::InvalidArg) {
        if err.kind() == clap::error::ErrorKind::MissingRequiredArgument {
            return format!("{first} {}", names.join(", "));
        }
    }
    match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) => match values.split_last() {
            Some((last, [])) => format!("{first}: expected {last}"),
            Some((last, rest)) => format!("{first}: expected {} or {last}", rest.join(", ")),
            None => first.to_string(),
        },
        _ => first.to_string(),
    }
}

/// Parses a listen address: IP:PORT, or Go's form :PORT, taken as 0.0.0.0:PORT
/// (every IPv4 address; Go's listens on IPv6 too).
fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    match value.strip_prefix(':') {
        Some(port) => port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([0, 0, 0, 0], port)))
            .map_err(|_| "expected :PORT with a port from 0 to 65535, e.g. :8080".to_string()),
        None => value
            .parse()
            .map_err(|err| format!("{err}: expected IP:PORT or :PORT, e.g. 0.0.0.0:8080 or :8080")),
    }
}

fn parse_share(value: &str) -> Result<f64, String> {
    let share: f64 = value.parse().map_err(|_| "not a number".to_string())?;
    workload::share(share).ok_or_else(|| SHARE_RULE.to_string())
}

fn parse_bucket_factor(value: &str) -> Result<f64, String> {
    let factor: f64 = value.parse().map_err(|_| "not a number".to_string())?;
    if factor == 0.0 || (factor > 1.0 && factor.is_finite()) {
        Ok(factor)
    } else {
        Err("must be 0 (off) or a finite number above 1, e.g. 1.1".to_string())
    }
}

/// Histogram bucket upper bounds in seconds, strictly increasing and finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<f64>);

impl FromStr for Buckets {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bounds = value
            .split(',')
            .map(|part| {
                let part = part.trim();
                match part.parse::<f64>() {
                    Ok(bound) if bound.is_finite() && bound > 0.0 => Ok(bound),
                    _ => Err(format!("'{part}' is not a positive number of seconds")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(pair) = bounds.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(format!(
                "must be strictly increasing, but {} is followed by {}",
                pair[0], pair[1]
            ));
        }
        Ok(Buckets(bounds))
    }
}

impl fmt::Display for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bounds: Vec<String> = self.0.iter().map(f64::to_string).collect();
        f.write_str(&bounds.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let config = Config::defaults();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.metrics_token_file, None);
        assert_eq!((config.min_delay_ms, config.max_delay_ms), (0, 2000));
        assert_eq!(config.error_rate, 0.5);
        assert_eq!((config.slow_rate, config.slow_delay_ms), (0.0, 5000));
        assert_eq!(config.delay_cap_ms, 10_000);
        assert_eq!(config.workload_file, None);
        assert_eq!(config.buckets.to_string(), DEFAULT_BUCKETS);
        assert_eq!(config.shutdown_timeout(), Duration::from_secs(11));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.header_timeout_secs, 10);
        assert_eq!(config.body_timeout_secs, 10);
        assert_eq!(config.max_in_flight, 10_000);
        assert_eq!(config.shutdown_delay_secs, 0);
        assert_eq!(config.web_config_file, None);
        assert_eq!(config.native_histogram_bucket_factor, 1.1);
        assert!(!config.openmetrics_created_samples);
    }

    #[test]
    fn the_bucket_factor_is_off_or_above_one() {
        assert_eq!(parse_bucket_factor("0"), Ok(0.0));
        assert_eq!(parse_bucket_factor("1.0001"), Ok(1.0001));
        assert_eq!(parse_bucket_factor("2"), Ok(2.0));
        let refused = Err("must be 0 (off) or a finite number above 1, e.g. 1.1".to_string());
        for bad in ["1", "0.5", "-1.1", "inf", "NaN", "0.0001"] {
            assert_eq!(parse_bucket_factor(bad), refused, "{bad}");
        }
        assert_eq!(parse_bucket_factor("fast"), Err("not a number".to_string()));
    }

    #[test]
    fn default_buckets_hold_the_edges_the_dashboards_use() {
        let buckets: Buckets = DEFAULT_BUCKETS.parse().unwrap();
        assert!(buckets.0.contains(&0.1) && buckets.0.contains(&0.5));
        let fine = buckets
            .0
            .iter()
            .filter(|b| (0.1..=2.5).contains(*b))
            .count();
        assert_eq!(fine, 12);
    }

    #[test]
    fn shutdown_timeout_follows_the_delay_cap_unless_set() {
        let mut config = Config::defaults();
        config.delay_cap_ms = 4500;
        assert_eq!(config.shutdown_timeout(), Duration::from_secs(6));
        config.delay_cap_ms = 5000;
        assert_eq!(config.shutdown_timeout(), Duration::from_secs(6));
        config.delay_cap_ms = 5001;
        assert_eq!(config.shutdown_timeout(), Duration::from_secs(7));
        config.shutdown_timeout_secs = Some(1);
        assert_eq!(config.shutdown_timeout(), Duration::from_secs(1));
    }

    #[test]
    fn buckets_reject_unordered_and_non_numeric_bounds() {
        assert_eq!(
            "0.1,0.1".parse::<Buckets>(),
            Err("must be strictly increasing, but 0.1 is followed by 0.1".to_string())
        );
        assert_eq!(
            "0.1,x".parse::<Buckets>(),
            Err("'x' is not a positive number of seconds".to_string())
        );
        assert_eq!(
            "inf".parse::<Buckets>(),
            Err("'inf' is not a positive number of seconds".to_string())
        );
        assert_eq!("0.5, 1".parse::<Buckets>(), Ok(Buckets(vec![0.5, 1.0])));
        // Both sides of "positive".
        assert_eq!(
            "0,1".parse::<Buckets>(),
            Err("'0' is not a positive number of seconds".to_string())
        );
        assert_eq!("0.001".parse::<Buckets>(), Ok(Buckets(vec![0.001])));
    }

    #[test]
    fn a_listen_address_is_ip_and_port_or_a_colon_and_port_for_every_ipv4_address() {
        let every = |port| Ok(SocketAddr::from(([0, 0, 0, 0], port)));
        assert_eq!(parse_listen(":8080"), every(8080));
        assert_eq!(parse_listen(":0"), every(0));
        assert_eq!(parse_listen(":65535"), every(65535));
        let bad_port = Err("expected :PORT with a port from 0 to 65535, e.g. :8080".to_string());
        for bad in [":65536", ":99999", ":", ":abc", ":-1", "::1"] {
            assert_eq!(parse_listen(bad), bad_port, "{bad}");
        }
        assert_eq!(
            parse_listen("127.0.0.1:65535"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 65535)))
        );
        assert_eq!(
            parse_listen("[::1]:0"),
            Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)))
        );
        let bad_syntax = Err(
            "invalid socket address syntax: expected IP:PORT or :PORT, e.g. 0.0.0.0:8080 or :8080"
                .to_string(),
        );
        for bad in [
            "host:",
            "host:8080",
            "8080",
            "127.0.0.1:65536",
            "127.0.0.1:",
            "",
        ] {
            assert_eq!(parse_listen(bad), bad_syntax, "{bad}");
        }
    }

    #[test]
    fn both_listen_flags_take_a_colon_and_port() {
        let cli =
            Cli::try_parse_from(["myapp", "--listen", ":8080", "--metrics-listen", ":0"]).unwrap();
        assert_eq!(cli.config.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(
            cli.config.metrics_listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 0)))
        );
        for flag in ["--listen", "--metrics-listen"] {
            let err = Cli::try_parse_from(["myapp", flag, ":99999"]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}"
            );
        }
    }

    #[test]
    fn a_bad_log_format_is_one_line_that_lists_the_allowed_values() {
        let err = Cli::try_parse_from(["myapp", "--log-format", "xml"]).unwrap_err();
        assert_eq!(
            error_line(&err),
            "error: invalid value 'xml' for '--log-format <LOG_FORMAT>': expected text or json"
        );
        let err = Cli::try_parse_from(["myapp", "--log-format="]).unwrap_err();
        assert_eq!(
            error_line(&err),
            "error: a value is required for '--log-format <LOG_FORMAT>' but none was \
             supplied: expected text or json"
        );
        // The other side: an error without a list of values is clap's first line alone.
        let err = Cli::try_parse_from(["myapp", "--error-rate", "2"]).unwrap_err();
        assert_eq!(
            error_line(&err),
            "error: invalid value '2' for '--error-rate <ERROR_RATE>': must be between 0.0 and 1.0"
        );
    }

    #[test]
    fn a_missing_argument_is_named_on_the_same_line() {
        let err = Cli::try_parse_from(["myapp", "load"]).unwrap_err();
        assert_eq!(
            error_line(&err),
            "error: the following required arguments were not provided: <URL>..."
        );
        // The other side: given, it parses.
        assert!(Cli::try_parse_from(["myapp", "load", "http://h/"]).is_ok());
    }

    #[test]
    fn allowed_values_are_listed_with_commas_and_a_last_or() {
        let err = |values: &[&str]| {
            let mut err = clap::Error::new(clap::error::ErrorKind::InvalidValue);
            err.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(values.iter().map(ToString::to_string).collect()),
            );
            err
        };
        let first = error_line(&err(&[]));
        assert_eq!(error_line(&err(&["a"])), format!("{first}: expected a"));
        assert_eq!(
            error_line(&err(&["a", "b", "c"])),
            format!("{first}: expected a, b or c")
        );
    }

    #[test]
    fn shares_are_from_zero_to_one() {
        assert_eq!(parse_share("1"), Ok(1.0));
        assert_eq!(parse_share("0"), Ok(0.0));
        // -0.0 equals 0.0 and is taken as 0.0, which prints as 0, not -0.
        assert_eq!(
            parse_share("-0.0").map(|share| share.to_string()),
            Ok("0".into())
        );
        assert_eq!(
            parse_share("1.5"),
            Err("must be between 0.0 and 1.0".into())
        );
        assert_eq!(
            parse_share("-0.1"),
            Err("must be between 0.0 and 1.0".into())
        );
        assert_eq!(
            parse_share("NaN"),
            Err("must be between 0.0 and 1.0".into())
        );
        assert_eq!(parse_share("abc"), Err("not a number".into()));
    }
}
