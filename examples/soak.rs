//! The soak test's client: drives a running myapp with a mix of traffic, then
//! checks that its resident memory, open file descriptors and
//! `tokio_alive_tasks` came back to their values after a warm-up.
//! `scripts/soak.sh` builds and starts the server and runs this.
//!
//! ```text
//! soak ADDRESS PID REQUESTS
//! ```
//!
//! The mix, by turns over 64 concurrent clients: 20 `/work` requests on one
//! keep-alive connection; one `/work` request on a new connection
//! (`Connection: close`); 5 requests for unknown paths (404) on one
//! connection; a scrape of `/metrics`; a `/work` request whose client leaves
//! before the answer; a request head cut off halfway. A tenth of `REQUESTS`
//! warms up; the rest runs in five rounds, each followed by a reading.
use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// Concurrent clients.
const CLIENTS: usize = 64;
/// Rounds after the warm-up, each followed by a reading.
const ROUNDS: u64 = 5;
/// How far the readings after the warm-up may drift from the one after it:
/// descriptors and tasks not at all (every connection is closed by then);
/// resident memory by this many KiB (allocator caches, the metrics' growing
/// label and buffer sizes).
const RSS_MARGIN_KIB: u64 = 4096;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(address), Some(pid), Some(requests)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|p| p.parse::<u32>().ok()),
        args.get(2).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: soak ADDRESS PID REQUESTS");
        return ExitCode::from(2);
    };
    let warm_up = requests / 10;
    let per_round = (requests - warm_up) / ROUNDS;
    let started = Instant::now();
    let sent = run(address, warm_up).await;
    let base = Reading::take(address, pid, sent, started).await;
    println!("{}", Reading::HEADER);
    println!("{base}  (after the warm-up)");
    let mut total = sent;
    let mut last = base;
    for _ in 0..ROUNDS {
        total += run(address, per_round).await;
        last = Reading::take(address, pid, total, started).await;
        println!("{last}");
    }
    let rss_grew = last.rss_kib.saturating_sub(base.rss_kib);
    let checks = [
        (
            "open fds",
            last.fds == base.fds,
            format!("{} -> {}", base.fds, last.fds),
        ),
        (
            "tokio_alive_tasks",
            last.tasks == base.tasks,
            format!("{} -> {}", base.tasks, last.tasks),
        ),
        (
            "resident memory",
            rss_grew <= RSS_MARGIN_KIB,
            format!(
                "{} KiB -> {} KiB (+{rss_grew} KiB, margin {RSS_MARGIN_KIB} KiB)",
                base.rss_kib, last.rss_kib
            ),
        ),
    ];
    let mut failed = false;
    for (what, ok, detail) in checks {
        println!("  {}  {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed |= !ok;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Sends at least `requests` requests over [`CLIENTS`] clients; returns how many.
async fn run(address: SocketAddr, requests: u64) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let turn = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (sent, turn) = (sent.clone(), turn.clone());
            tokio::spawn(async move {
                while sent.load(Ordering::Relaxed) < requests {
                    let n = visit(address, turn.fetch_add(1, Ordering::Relaxed))
                        .await
                        .unwrap_or_else(|err| panic!("{err}"));
                    sent.fetch_add(n, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client failed");
    }
    sent.load(Ordering::Relaxed)
}

/// One visit of the mix, chosen by `turn`; returns the requests it sent.
async fn visit(address: SocketAddr, turn: u64) -> Result<u64, String> {
    let mut stream = BufReader::new(
        TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?,
    );
    let expect = |want: u16, got: u16, path: &str| {
        if want == got {
            Ok(())
        } else {
            Err(format!("GET {path}: {got}, expected {want}"))
        }
    };
    match turn % 6 {
        0 => {
            for _ in 0..20 {
                let status = get(&mut stream, "/work", true).await?;
                if status != 200 && status != 500 {
                    return Err(format!("GET /work: {status}"));
                }
            }
            Ok(20)
        }
        1 => {
            let status = get(&mut stream, "/work", false).await?;
            if status != 200 && status != 500 {
                return Err(format!("GET /work: {status}"));
            }
            Ok(1)
        }
        2 => {
            for i in 0..5 {
                let path = format!("/soak/{turn}/{i}");
                expect(404, get(&mut stream, &path, true).await?, &path)?;
            }
            Ok(5)
        }
        3 => {
            expect(200, get(&mut stream, "/metrics", false).await?, "/metrics")?;
            Ok(1)
        }
        4 => {
            // Leaves before the answer: dropping the stream closes it.
            send(&mut stream, "/work", false).await?;
            Ok(1)
        }
        _ => {
            stream
                .get_mut()
                .write_all(b"GET /work HTTP/1.1\r\nHost: so")
                .await
                .map_err(|e| format!("write: {e}"))?;
            Ok(1)
        }
    }
}

async fn send(
    stream: &mut BufReader<TcpStream>,
    path: &str,
    keep_alive: bool,
) -> Result<(), String> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let request = format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: {connection}\r\n\r\n");
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))
}

/// Sends `GET path` and reads the whole answer; returns its status.
async fn get(
    stream: &mut BufReader<TcpStream>,
    path: &str,
    keep_alive: bool,
) -> Result<u16, String> {
    send(stream, path, keep_alive).await?;
    let mut line = String::new();
    let read = |e: std::io::Error| format!("GET {path}: read: {e}");
    stream.read_line(&mut line).await.map_err(read)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status line: {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        stream.read_line(&mut line).await.map_err(read)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| format!("GET {path}: no Content-Length"))?;
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.map_err(read)?;
    Ok(status)
}

/// What the server holds at one moment, read from /proc and its /metrics.
#[derive(Clone, Copy)]
struct Reading {
    requests: u64,
    elapsed: Duration,
    rss_kib: u64,
    fds: u64,
    tasks: u64,
}

impl Reading {
    const HEADER: &str = "requests  seconds  rss_kib  open_fds  tokio_alive_tasks";

    /// Reads once the server has closed every connection of the clients:
    /// when its descriptor count has not changed for half a second (at most
    /// 10 s). The scrape for the task count opens one more connection, the
    /// same one every time.
    async fn take(address: SocketAddr, pid: u32, requests: u64, started: Instant) -> Self {
        let mut fds = count_fds(pid);
        let mut steady = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = count_fds(pid);
            steady = if now == fds { steady + 1 } else { 0 };
            fds = now;
            if steady == 5 {
                break;
            }
        }
        let tasks = scrape_alive_tasks(address).await;
        Self {
            requests,
            elapsed: started.elapsed(),
            rss_kib: rss_kib(pid),
            fds,
            tasks,
        }
    }
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8}  {:>7.1}  {:>7}  {:>8}  {:>17}",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rss_kib,
            self.fds,
            self.tasks
        )
    }
}

fn count_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's /proc/PID/fd")
        .count() as u64
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the server's /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .expect("a VmRSS line")
}

async fn scrape_alive_tasks(address: SocketAddr) -> u64 {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
        .lines()
        .find_map(|line| line.strip_prefix("tokio_alive_tasks "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a tokio_alive_tasks sample")
}
