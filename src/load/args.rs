//! The flags of `myapp load`, each with an env twin, checked as clap parses them.
use std::time::Duration;

use clap::Args;
use reqwest::Url;

/// The highest `--rate` accepted, requests per second.
pub const MAX_RATE: u32 = 1_000_000;

/// `myapp load URL...`: requests at a constant arrival rate.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// URLs to GET, taken in turn (round robin); each may carry /work's
    /// overrides, e.g. 'http://127.0.0.1:8080/work?delay_ms=500'.
    #[arg(required = true, value_name = "URL", value_parser = parse_url)]
    pub urls: Vec<Url>,
    /// Requests per second, sent on schedule whether or not earlier ones have
    /// answered (open loop), from 1 to 1000000.
    #[arg(long, env = "MYAPP_LOAD_RATE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RATE)))]
    pub rate: u32,
    /// How long to send: a whole number and a unit, e.g. 500ms, 30s, 5m, 1h
    /// [default: until SIGINT or SIGTERM].
    #[arg(long, env = "MYAPP_LOAD_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests allowed in flight at once, from 1 to 1000000; a request due
    /// when this many are waiting is not sent and counts as dropped.
    #[arg(long, env = "MYAPP_LOAD_MAX_IN_FLIGHT", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Longest a request may take, from connecting to the end of the body, e.g.
    /// 10s or 500ms; a slower one counts as the error "timeout".
    #[arg(long, env = "MYAPP_LOAD_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the summary as one JSON object on stdout, and nothing else.
    #[arg(long, env = "MYAPP_LOAD_JSON")]
    pub json: bool,
}

/// The rule every duration flag follows, as its error says it.
const DURATION_RULE: &str = "expected a whole number above 0 and a unit (ms, s, m or h), e.g. 30s";

/// Parses `500ms`, `30s`, `5m` or `1h`: a whole number above 0 and a unit.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    let (number, unit) = value.split_at(digits);
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DURATION_RULE.to_string()),
    };
    match number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
    {
        Some(millis) if millis > 0 => Ok(Duration::from_millis(millis)),
        _ => Err(DURATION_RULE.to_string()),
    }
}

/// The rule every URL follows, as its error says it.
const URL_RULE: &str = "expected an http:// URL (plain HTTP), e.g. http://127.0.0.1:8080/work";

/// An absolute http URL: the client speaks plain HTTP/1.1.
fn parse_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value)
        .map_err(|err| format!("{err}: expected e.g. http://127.0.0.1:8080/work"))?;
    if url.scheme() != "http" || url.host().is_none() {
        return Err(URL_RULE.to_string());
    }
    // As the client sends it: an `http::Uri` holds at most 65,534 bytes.
    hyper::Uri::try_from(url.as_str()).map_err(|err| err.to_string())?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{error_line, Cli, Command};

    fn parse(args: &[&str]) -> Result<LoadArgs, String> {
        let argv = ["myapp", "load"].iter().chain(args);
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Some(Command::Load(load)),
                ..
            }) => Ok(load),
            Ok(other) => panic!("not the load command: {other:?}"),
            Err(err) => Err(error_line(&err)),
        }
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let args = parse(&["http://127.0.0.1:8080/work"]).unwrap();
        assert_eq!(args.rate, 100);
        assert_eq!(args.duration, None);
        assert_eq!(args.max_in_flight, 1000);
        assert_eq!(args.timeout, Duration::from_secs(10));
        assert!(!args.json);
    }

    #[test]
    fn the_rate_is_from_one_to_a_million() {
        for ok in ["1", "1000000"] {
            assert_eq!(
                parse(&["--rate", ok, "http://h/"])
                    .unwrap()
                    .rate
                    .to_string(),
                ok
            );
        }
        for bad in ["0", "1000001"] {
            assert_eq!(
                parse(&["--rate", bad, "http://h/"]).unwrap_err(),
                format!(
                    "error: invalid value '{bad}' for '--rate <RATE>': {bad} is not in 1..=1000000"
                )
            );
        }
    }

    #[test]
    fn max_in_flight_is_from_one_to_a_million() {
        for ok in ["1", "1000000"] {
            let args = parse(&["--max-in-flight", ok, "http://h/"]).unwrap();
            assert_eq!(args.max_in_flight.to_string(), ok);
        }
        for bad in ["0", "1000001"] {
            assert_eq!(
                parse(&["--max-in-flight", bad, "http://h/"]).unwrap_err(),
                format!(
                    "error: invalid value '{bad}' for '--max-in-flight <MAX_IN_FLIGHT>': \
                     {bad} is not in 1..=1000000"
                )
            );
        }
    }

    #[test]
    fn durations_are_a_whole_number_above_zero_and_a_unit() {
        let ms = |n| Ok(Duration::from_millis(n));
        assert_eq!(parse_duration("1ms"), ms(1));
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("30s"), ms(30_000));
        assert_eq!(parse_duration("5m"), ms(300_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        let refused = Err(DURATION_RULE.to_string());
        for bad in [
            "0ms",
            "0s",
            "10",
            "s",
            "",
            "1.5s",
            "-1s",
            "5x",
            "1 s",
            "1S",
            "99999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), refused, "{bad}");
        }
    }

    #[test]
    fn a_url_holds_at_most_what_an_http_uri_holds() {
        // 65,534 bytes, as http::Uri's limit; one more is refused, not sent.
        let longest = format!("http://h/{}", "a".repeat(65_534 - "http://h/".len()));
        assert_eq!(
            parse_url(&longest).map(|url| url.as_str().len()),
            Ok(65_534)
        );
        assert_eq!(
            parse_url(&format!("{longest}a")),
            Err("uri too long".to_string())
        );
    }

    #[test]
    fn urls_are_absolute_http() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/work?delay_ms=5").map(String::from),
            Ok("http://127.0.0.1:8080/work?delay_ms=5".to_string())
        );
        assert_eq!(
            parse_url("http://example.com").map(String::from),
            Ok("http://example.com/".to_string())
        );
        for bad in ["https://example.com", "ftp://example.com/"] {
            assert_eq!(parse_url(bad), Err(URL_RULE.to_string()), "{bad}");
        }
        assert_eq!(
            parse_url("127.0.0.1:8080/work"),
            Err(
                "relative URL without a base: expected e.g. http://127.0.0.1:8080/work".to_string()
            )
        );
    }
}
