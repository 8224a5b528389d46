//! The seed's design without a web framework, shared by the peers of
//! `scripts/bench.sh` (`benches/peers/*`): the flags of `benches/go-seed` and
//! what its `GET /work` does. Each peer only wires [`work`] into its framework
//! and adds the framework's metrics layer.
use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use rand::Rng;
use serde::Serialize;

/// The Content-Type of every `/work` answer, byte for byte myapp's.
pub const JSON: &str = "application/json; charset=utf-8";

/// go-seed's flags, and `--no-metrics`.
#[derive(Debug, Parser)]
pub struct Args {
    /// Address to listen on (port 0 works).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Shortest simulated work, ms.
    #[arg(long, default_value_t = 0)]
    pub min_delay_ms: u64,
    /// Longest simulated work, ms (included).
    #[arg(long, default_value_t = 2000)]
    pub max_delay_ms: u64,
    /// Share of /work answers that are 500.
    #[arg(long, default_value_t = 0.5)]
    pub error_rate: f64,
    /// No metrics layer and no /metrics: the uninstrumented variant.
    #[arg(long)]
    pub no_metrics: bool,
}

impl Args {
    /// The command line's flags; exits with go-seed's message when they are out of range.
    pub fn from_command_line() -> Self {
        let args = Self::parse();
        if args.max_delay_ms < args.min_delay_ms || !(0.0..=1.0).contains(&args.error_rate) {
            eprintln!("need 0 <= --min-delay-ms <= --max-delay-ms and 0 <= --error-rate <= 1");
            std::process::exit(2);
        }
        args
    }
}

/// One `/work` answer: 500 when `failed`, else 200, with `body` as [`JSON`].
pub struct Answer {
    /// The draw said to fail.
    pub failed: bool,
    /// `{"delay_ms":N}`, or `{"delay_ms":N,"error":"simulated failure"}`.
    pub body: String,
}

#[derive(Serialize)]
struct Body {
    delay_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// `GET /work`: waits a random time in [min, max] ms and fails at the rate, as go-seed does.
pub async fn work(args: &Args) -> Answer {
    let (delay_ms, failed) = {
        let mut rng = rand::rng();
        (
            rng.random_range(args.min_delay_ms..=args.max_delay_ms),
            rng.random::<f64>() < args.error_rate,
        )
    };
    // tokio rounds a sleep up to its next 1 ms tick: as myapp and Go's
    // time.Sleep(0), no delay means no wait.
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let body = Body {
        delay_ms,
        error: failed.then_some("simulated failure"),
    };
    Answer {
        failed,
        body: serde_json::to_string(&body).expect("a struct of a number and a string serializes"),
    }
}
