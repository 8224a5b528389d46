//! Spawns the app in-process or as the real binary, and reads its metrics.
use std::{
    io::{BufRead, BufReader, Lines},
    net::SocketAddr,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    thread::JoinHandle,
};

use myapp::{
    config::Config,
    metrics::{self, Registered},
    server::{metrics_token::MetricsToken, shutdown::Shutdown},
    startup::{app, AppState, Application},
};
use poem::{
    endpoint::BoxEndpoint,
    test::{TestClient, TestResponse},
    EndpointExt,
};
use prometheus_parse::{Sample, Scrape, Value};
use tokio::sync::{Mutex, MutexGuard};

/// The metrics are process-wide, so the tests that read their deltas take turns.
static METRICS_IN_USE: Mutex<()> = Mutex::const_new(());

/// The default configuration with this workload (and a delay cap that allows it).
pub fn work(min_delay_ms: u64, max_delay_ms: u64, error_rate: f64) -> Config {
    let mut config = Config::defaults();
    config.min_delay_ms = min_delay_ms;
    config.max_delay_ms = max_delay_ms;
    config.error_rate = error_rate;
    config.delay_cap_ms = config.delay_cap_ms.max(max_delay_ms);
    config
}

/// The app in-process, driven through poem's `TestClient`.
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static>>,
    pub state: AppState,
    _metrics_in_use: MutexGuard<'static, ()>,
}

/// The metrics every app of this process records into: those the first one
/// registered in the default registry.
pub fn registered() -> &'static Registered {
    let config = Config::defaults();
    metrics::init(&config.buckets.0, config.native_histogram_bucket_factor)
}

impl TestApp {
    pub async fn spawn(config: Config) -> Self {
        Self::spawn_with_token(config, None).await
    }

    /// The app with `/metrics` and `/admin/*` behind `token`, if any.
    pub async fn spawn_with_token(config: Config, token: Option<MetricsToken>) -> Self {
        let metrics_in_use = METRICS_IN_USE.lock().await;
        let metrics = metrics::init(&config.buckets.0, config.native_histogram_bucket_factor);
        let mut state = AppState::new(&config, Shutdown::default(), metrics);
        state.metrics_token = token;
        Self {
            client: TestClient::new(app(&state).boxed()),
            state,
            _metrics_in_use: metrics_in_use,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.client.get(path).send().await
    }

    pub async fn scrape(&self) -> Snapshot {
        let response = self.get("/metrics").await;
        response.assert_status_is_ok();
        Snapshot::parse(response.0.into_body().into_string().await.unwrap())
    }
}

/// The app in-process on a real loopback socket.
pub struct TestServer {
    pub address: SocketAddr,
    pub shutdown: Shutdown,
    pub run: tokio::task::JoinHandle<myapp::server::ShutdownReport>,
    pub http: reqwest::Client,
    _metrics_in_use: MutexGuard<'static, ()>,
}

impl TestServer {
    /// Starts with `config` and this shutdown timeout.
    pub async fn spawn(mut config: Config, shutdown_timeout_secs: u64) -> Self {
        config.shutdown_timeout_secs = Some(shutdown_timeout_secs);
        Self::start(config).await
    }

    /// Starts with `config`, on a free loopback port.
    pub async fn start(mut config: Config) -> Self {
        let metrics_in_use = METRICS_IN_USE.lock().await;
        config.listen = "127.0.0.1:0".parse().unwrap();
        let shutdown = Shutdown::default();
        let application = Application::build(&config, shutdown.clone())
            .await
            .expect("app builds");
        Self {
            address: application.address(),
            shutdown,
            run: tokio::spawn(application.run()),
            http: reqwest::Client::new(),
            _metrics_in_use: metrics_in_use,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn scrape(&self) -> Snapshot {
        scrape(&self.http, &self.url("/metrics")).await
    }

    pub async fn wait_for_in_flight(&self, n: i64) -> Snapshot {
        wait_for_in_flight(&self.http, &self.url("/metrics"), n).await
    }

    /// The settings in force, as `GET /admin/workload` answers them.
    pub async fn settings(&self) -> serde_json::Value {
        self.http
            .get(self.url("/admin/workload"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// GETs `url` and parses it as the text exposition format.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Snapshot {
    let response = http.get(url).send().await.expect("scrape answers");
    assert_eq!(response.status(), 200);
    Snapshot::parse(response.text().await.unwrap())
}

/// Scrapes `metrics_url` until exactly `n` `/work` requests are in flight, and
/// returns that scrape (bounded: 250 tries, about 5 s).
pub async fn wait_for_in_flight(http: &reqwest::Client, metrics_url: &str, n: i64) -> Snapshot {
    for _ in 0..250 {
        let snapshot = scrape(http, metrics_url).await;
        if snapshot.in_flight() == n {
            return snapshot;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never saw {n} requests in flight");
}

/// One scrape of `/metrics`, parsed.
pub struct Snapshot(Scrape);

/// The latency histogram in one scrape.
#[derive(Debug)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    /// (upper bound, cumulative count), in exposition order, ending with +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn bucket(&self, le: f64) -> u64 {
        self.buckets
            .iter()
            .find(|(bound, _)| *bound == le)
            .unwrap_or_else(|| panic!("no bucket le={le}"))
            .1
    }
}

impl Snapshot {
    pub fn parse(text: String) -> Self {
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_string())))
            .expect("the exposition parses");
        Self(scrape)
    }

    fn sample(&self, name: &str, label: Option<(&str, &str)>) -> Option<&Sample> {
        self.0.samples.iter().find(|sample| {
            sample.metric == name
                && label.is_none_or(|(key, value)| sample.labels.get(key) == Some(value))
        })
    }

    /// `promhttp_metric_handler_requests_total{code}`, 0 when the series is absent.
    pub fn scrapes(&self, code: &str) -> u64 {
        self.number(
            "promhttp_metric_handler_requests_total",
            Some(("code", code)),
        )
        .unwrap_or(0.0) as u64
    }

    /// The value of the unlabelled counter or gauge `name`.
    pub fn value(&self, name: &str) -> f64 {
        self.number(name, None)
            .unwrap_or_else(|| panic!("no sample {name}"))
    }

    /// Every sample whose name starts with `prefix`, as (name, labels, value)
    /// text, sorted: for comparing two scrapes.
    pub fn samples(&self, prefix: &str) -> Vec<String> {
        let mut samples: Vec<String> = self
            .0
            .samples
            .iter()
            .filter(|sample| sample.metric.starts_with(prefix))
            .map(|sample| {
                // Sorted: the parser keeps labels in a hash map.
                let mut labels: Vec<_> = sample.labels.iter().collect();
                labels.sort();
                format!("{} {labels:?} {:?}", sample.metric, sample.value)
            })
            .collect();
        samples.sort();
        samples
    }

    fn number(&self, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        match self.sample(name, label)?.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            ref other => panic!("{name} is not a number: {other:?}"),
        }
    }

    /// The value of the sample `name` with these labels (and maybe others).
    pub fn labelled(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = self
            .0
            .samples
            .iter()
            .find(|sample| {
                sample.metric == name
                    && labels
                        .iter()
                        .all(|(key, value)| sample.labels.get(key) == Some(*value))
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
        match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{name} is not a number: {other:?}"),
        }
    }

    /// `myapp_processed_ops_total{status}`, 0 when the series is absent.
    pub fn processed(&self, status: &str) -> u64 {
        self.number("myapp_processed_ops_total", Some(("status", status)))
            .unwrap_or(0.0) as u64
    }

    pub fn in_flight(&self) -> i64 {
        self.number("myapp_requests_in_flight", None)
            .expect("in-flight gauge") as i64
    }

    pub fn duration(&self) -> Histogram {
        let name = "myapp_request_duration_seconds";
        let Value::Histogram(ref buckets) = self.sample(name, None).expect("histogram").value
        else {
            panic!("{name} is not a histogram")
        };
        Histogram {
            count: self.number(&format!("{name}_count"), None).unwrap() as u64,
            sum: self.number(&format!("{name}_sum"), None).unwrap(),
            buckets: buckets
                .iter()
                .map(|bucket| (bucket.less_than, bucket.count as u64))
                .collect(),
        }
    }
}

/// Checks what `n` more requests with delays drawn uniformly from the whole
/// milliseconds in `[min_ms, max_ms]` did to the histogram: count and +Inf
/// grew by `n`, buckets stay cumulative, and the sum grew by at least the sum
/// of the draws' mean less 6 standard deviations (a request lasts at least its
/// delay) and at most `n * (max + slack)`, where `slack` bounds the time spent
/// outside the sleep (scheduling, the middleware).
pub fn assert_histogram_grew(
    before: &Snapshot,
    after: &Snapshot,
    n: u64,
    min_ms: u64,
    max_ms: u64,
) {
    let slack_secs = 0.25;
    let (before, after) = (before.duration(), after.duration());
    assert_eq!(after.count - before.count, n, "_count delta");
    let inf = |h: &Histogram| h.buckets.last().map(|&(le, c)| (le, c)).unwrap();
    assert_eq!(inf(&after).0, f64::INFINITY);
    assert_eq!(inf(&after).1 - inf(&before).1, n, "+Inf bucket delta");
    assert_eq!(inf(&after).1, after.count, "+Inf equals _count");
    assert!(
        after.buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "buckets are cumulative: {:?}",
        after.buckets
    );
    let sum = after.sum - before.sum;
    let (n, min, max) = (n as f64, min_ms as f64, max_ms as f64);
    let mean = (min + max) / 2.0;
    let variance = ((max - min + 1.0).powi(2) - 1.0) / 12.0;
    let (low, high) = (
        (n * mean - 6.0 * (n * variance).sqrt()) / 1000.0,
        n * (max / 1000.0 + slack_secs),
    );
    assert!(
        sum >= low && sum <= high,
        "_sum delta {sum} not in [{low}, {high}]"
    );
}

/// The real binary, started on a free loopback port.
pub struct Binary {
    child: Child,
    pub address: SocketAddr,
    /// Where `/metrics` is served: `address`, or the `--metrics-listen` one.
    pub metrics_address: SocketAddr,
    logs: Option<JoinHandle<String>>,
    /// The lines up to the "listening" one.
    seen: String,
}

pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_myapp"));
    command.env_clear().env("RUST_LOG", "info");
    command
}

impl Binary {
    /// Starts `myapp --listen 127.0.0.1:0 ARGS` and waits for its "listening" line.
    pub fn start(args: &[&str]) -> Self {
        let mut command = binary();
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        Self::spawn(command)
    }

    /// Starts the binary as [`Binary::start`] does, under `ulimit -Sn soft`: the
    /// soft open-file limit that systemd and containerd give services.
    pub fn start_with_soft_open_file_limit(soft: u64, args: &[&str]) -> Self {
        let mut command = Command::new("/bin/sh");
        command
            .env_clear()
            .env("RUST_LOG", "info")
            .args(["-c", r#"ulimit -Sn "$0" && exec "$@""#, &soft.to_string()])
            .args([env!("CARGO_BIN_EXE_myapp"), "--listen", "127.0.0.1:0"])
            .args(args);
        Self::spawn(command)
    }

    pub fn spawn(command: Command) -> Self {
        let (mut binary, lines) = Self::spawn_unread(command);
        binary.logs = Some(std::thread::spawn(move || {
            lines
                .map_while(Result::ok)
                .fold(String::new(), |logs, line| logs + &line + "\n")
        }));
        binary
    }

    /// Starts as [`Binary::start`] does, but reads none of its stdout past
    /// the "listening" line: the caller reads the lines, or leaves stdout a
    /// pipe that nobody reads. [`Binary::wait`] then returns the lines up to
    /// the "listening" one only.
    pub fn start_with_stdout_unread(args: &[&str]) -> (Self, Lines<BufReader<ChildStdout>>) {
        let mut command = binary();
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        Self::spawn_unread(command)
    }

    fn spawn_unread(mut command: Command) -> (Self, Lines<BufReader<ChildStdout>>) {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = String::new();
        let (address, metrics_address) = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("exited before listening; logs:\n{seen}"))
                .unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if let Some(addresses) = listening_addresses(&line) {
                break addresses;
            }
        };
        let binary = Self {
            child,
            address,
            metrics_address,
            logs: None,
            seen,
        };
        (binary, lines)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The process id (`exec` keeps the shell's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A URL on the port that serves `/metrics`.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics_address)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and everything it logged.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let logs = self
            .logs
            .take()
            .map(|logs| logs.join().unwrap())
            .unwrap_or_default();
        (status, std::mem::take(&mut self.seen) + &logs)
    }
}

/// The addresses (public, metrics) in the start-up "listening" line, in
/// either log format.
fn listening_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let (address, metrics_address) =
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
            let fields = &json["fields"];
            if fields["message"] != "listening" {
                return None;
            }
            (
                fields["address"].as_str()?.to_string(),
                fields["metrics_address"].as_str()?.to_string(),
            )
        } else {
            if !line.contains(" listening ") {
                return None;
            }
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .map(str::to_string)
            };
            (field("address=")?, field("metrics_address=")?)
        };
    Some((address.parse().ok()?, metrics_address.parse().ok()?))
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages of a length-delimited protobuf exposition.
pub fn decode_protobuf(body: &[u8]) -> Vec<prometheus::proto::MetricFamily> {
    let mut input = protobuf::CodedInputStream::from_bytes(body);
    let mut families = Vec::new();
    while !input.eof().expect("readable") {
        families.push(input.read_message().expect("a MetricFamily"));
    }
    families
}

/// A token file, removed when dropped.
pub struct TokenFile {
    pub path: std::path::PathBuf,
    /// The token as `--metrics-token-file` reads it.
    pub token: MetricsToken,
}

impl TokenFile {
    /// Writes `token` and a newline to a fresh file named after `name`.
    pub fn new(name: &str, token: &str) -> Self {
        let path = std::env::temp_dir().join(format!("myapp-test-{}-{name}", std::process::id()));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        let token = MetricsToken::read(&path).expect("a good token file");
        Self { path, token }
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
