//! The open loop: request `i` is due at `start + i / rate` and leaves then,
//! whether or not earlier ones have answered, as wrk2 and k6's
//! constant-arrival-rate do; its latency counts from that due time, so a slow
//! server shows as latency, not as a lower rate (no coordinated omission).
use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use http_body_util::{BodyExt, Empty};
use hyper::{
    header::{HeaderValue, AUTHORIZATION},
    Request, Uri,
};
use hyper_util::client::legacy::{connect::HttpConnector, Client as LegacyClient};
use percent_encoding::percent_decode_str;
use reqwest::Url;
use tokio::{
    sync::{mpsc, Semaphore},
    time::{interval_at, sleep_until, Instant, MissedTickBehavior},
};

use super::summary::{ErrorKind, Outcome, Summary, Tally};

/// The HTTP/1.1 client: hyper-util's, with its keep-alive pool, as reqwest
/// uses underneath, without reqwest's layers (redirects, retries) that parse
/// each request's URL again.
pub type Client = LegacyClient<HttpConnector, Empty<&'static [u8]>>;

/// What the runner needs: where, how fast, how long, how many at once.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Taken in turn, each parsed once.
    pub targets: Vec<Target>,
    /// Longest a request may take, from connecting to the end of the body.
    pub timeout: Duration,
    /// Requests per second.
    pub rate: u32,
    /// How long to send; `None`: until `stop`.
    pub duration: Option<Duration>,
    /// Requests in flight at most; one due beyond it is dropped.
    pub max_in_flight: u32,
}

/// A URL as its requests go out: its URI without the user and password, and
/// the basic auth they stand for (`http://user:password@host/`), as curl and
/// reqwest send it.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    authorization: Option<HeaderValue>,
}

impl Target {
    /// The target of `url`, an http:// URL that `args` accepted.
    pub fn new(url: &Url) -> Self {
        let authorization = (!url.username().is_empty() || url.password().is_some()).then(|| {
            let mut credentials: Vec<u8> = percent_decode_str(url.username()).collect();
            credentials.push(b':');
            credentials.extend(percent_decode_str(url.password().unwrap_or_default()));
            let mut value =
                HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
                    .expect("base64 is a header value");
            value.set_sensitive(true);
            value
        });
        let mut bare = url.clone();
        // Cannot fail on an http:// URL with a host.
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        let uri = bare
            .as_str()
            .parse()
            .expect("args::parse_url checked that the URL is a valid URI");
        Self { uri, authorization }
    }
}

/// How far after the start request `index` is due at `rate` per second.
fn due_after(index: u64, rate: u32) -> Duration {
    let nanos = u128::from(index) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Requests due within `duration`: those with `index / rate < duration`.
pub fn scheduled(rate: u32, duration: Duration) -> u64 {
    let product = u128::from(rate) * duration.as_nanos();
    u64::try_from(product.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// Counters the scheduler writes and the status line reads.
#[derive(Debug, Default)]
struct Sent {
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// Runs `plan` with `client` until its duration ends or `stop` completes, waits
/// for the requests in flight (each bounded by the client's timeout), and
/// returns the summary. With `progress`, a status line goes to stderr each second.
pub async fn run(
    client: Client,
    plan: Plan,
    stop: impl Future<Output = ()>,
    progress: bool,
) -> Summary {
    let counters = Arc::new(Sent::default());
    let (outcomes, received) = mpsc::unbounded_channel();
    let start = Instant::now();
    let collector = tokio::spawn(collect(received, counters.clone(), start, progress));
    let end = send(&client, &plan, start, &counters, outcomes, stop).await;
    // Every request holds a sender: the channel closes when the last one ends.
    let tally = collector.await.expect("the collector does not panic");
    Summary::new(
        &tally,
        counters.sent.load(Ordering::Relaxed),
        counters.dropped.load(Ordering::Relaxed),
        end - start,
    )
}

/// Sends each request when it is due, until the schedule or `stop` ends it;
/// returns when the schedule ended (the end of the duration, or the stop).
async fn send(
    client: &Client,
    plan: &Plan,
    start: Instant,
    counters: &Sent,
    outcomes: mpsc::UnboundedSender<(Outcome, Duration)>,
    stop: impl Future<Output = ()>,
) -> Instant {
    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight as usize));
    let total = plan.duration.map(|duration| scheduled(plan.rate, duration));
    let targets = plan.targets.len() as u64;
    tokio::pin!(stop);
    let mut next: u64 = 0;
    loop {
        if let (Some(total), Some(duration)) = (total, plan.duration) {
            if next >= total {
                // The schedule ends with the duration, or later if sending fell
                // behind: then the achieved rate shows it.
                tokio::select! {
                    biased;
                    () = &mut stop => {}
                    () = sleep_until(start + duration) => {}
                }
                return Instant::now();
            }
        }
        tokio::select! {
            biased;
            () = &mut stop => return Instant::now(),
            () = sleep_until(start + due_after(next, plan.rate)) => {}
        }
        // Everything due by now leaves now: after a late wake-up several go at
        // once, each still timed from its own due time.
        let now = Instant::now();
        while total.is_none_or(|total| next < total) {
            let due = start + due_after(next, plan.rate);
            if due > now {
                break;
            }
            let target = plan.targets[(next % targets) as usize].clone();
            next += 1;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let (client, outcomes, timeout) = (client.clone(), outcomes.clone(), plan.timeout);
            tokio::spawn(async move {
                let outcome = request(&client, target, timeout).await;
                let latency = due.elapsed();
                // The slot frees even if this task is dropped: the permit is a guard.
                drop(permit);
                let _ = outcomes.send((outcome, latency));
            });
        }
    }
}

/// One GET, its body read to the end so that the connection returns to the
/// pool, within `timeout`.
async fn request(client: &Client, target: Target, timeout: Duration) -> Outcome {
    let mut request = Request::get(target.uri)
        .body(Empty::new())
        .expect("a GET of a parsed URI is a valid request");
    if let Some(authorization) = target.authorization {
        request.headers_mut().insert(AUTHORIZATION, authorization);
    }
    let exchange = async {
        let response = client.request(request).await.map_err(|err| {
            if err.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Other
            }
        })?;
        let status = response.status().as_u16();
        match response.into_body().collect().await {
            Ok(_) => Ok(status),
            Err(_) => Err(ErrorKind::Other),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) => Outcome::Status(status),
        Ok(Err(kind)) => Outcome::Error(kind),
        Err(_) => Outcome::Error(ErrorKind::Timeout),
    }
}

/// Tallies the outcomes until the last request has ended; with `progress`,
/// writes the last second's status line to stderr each second.
async fn collect(
    mut outcomes: mpsc::UnboundedReceiver<(Outcome, Duration)>,
    counters: Arc<Sent>,
    start: Instant,
    progress: bool,
) -> Tally {
    let mut total = Tally::default();
    let mut second = Tally::default();
    let mut ticks = interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sent_before = 0;
    loop {
        tokio::select! {
            outcome = outcomes.recv() => match outcome {
                Some((outcome, latency)) => {
                    total.record(outcome, latency);
                    if progress {
                        second.record(outcome, latency);
                    }
                }
                None => return total,
            },
            _ = ticks.tick(), if progress => {
                let sent = counters.sent.load(Ordering::Relaxed);
                let dropped = counters.dropped.load(Ordering::Relaxed);
                eprintln!("{}", second.status_line(start.elapsed(), sent, dropped, sent - sent_before));
                sent_before = sent;
                second = Tally::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_counts_each_due_time_before_the_end() {
        assert_eq!(scheduled(200, Duration::from_secs(10)), 2000);
        assert_eq!(scheduled(100, Duration::from_secs(2)), 200);
        // 3 per second for 1 s: due at 0, 1/3, 2/3; for 1.001 s, also at 1.
        assert_eq!(scheduled(3, Duration::from_secs(1)), 3);
        assert_eq!(scheduled(3, Duration::from_millis(1001)), 4);
        assert_eq!(scheduled(1, Duration::from_millis(1)), 1);
        assert_eq!(scheduled(1_000_000, Duration::from_millis(1)), 1000);
    }

    #[test]
    fn requests_are_due_at_even_intervals_without_drift() {
        assert_eq!(due_after(0, 3), Duration::ZERO);
        assert_eq!(due_after(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(due_after(3_000_000, 3), Duration::from_secs(1_000_000));
        assert_eq!(due_after(1, 1_000_000), Duration::from_micros(1));
    }
}
