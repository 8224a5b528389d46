//! `--shutdown-delay-secs`: after the first signal `/readyz` answers 503 while
//! new connections are still served, so that a rolling update refuses nothing.
use std::{
    io::{ErrorKind, Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use myapp::config::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

use crate::helpers::{Binary, TestServer};

/// What one request on a connection of its own got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A complete answer: the status and a body of the announced length.
    Answered(u16, String),
    /// The connection was refused: nothing listens any more.
    Refused,
    /// The connection was reset before any byte of an answer: its handshake
    /// completed after the server's last accept, and the kernel reset it when
    /// the listener closed. Nothing was served; a client retries.
    ResetUnanswered,
    /// Anything else: a reset after part of an answer, a truncated answer.
    Failed(String),
}

/// `GET path` on a new connection to `address`, with `Connection: close`.
async fn get_on_a_new_connection(address: SocketAddr, path: &str) -> Outcome {
    let mut stream = match TcpStream::connect(address).await {
        Ok(stream) => stream,
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => return Outcome::Refused,
        Err(err) => return Outcome::Failed(format!("connect: {err}")),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let reset = |err: &std::io::Error| {
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        )
    };
    if let Err(err) = stream.write_all(request.as_bytes()).await {
        if reset(&err) {
            return Outcome::ResetUnanswered;
        }
        return Outcome::Failed(format!("write: {err}"));
    }
    let mut answer = Vec::new();
    if let Err(err) = stream.read_to_end(&mut answer).await {
        if reset(&err) && answer.is_empty() {
            return Outcome::ResetUnanswered;
        }
        return Outcome::Failed(format!("read: {err} after {} bytes", answer.len()));
    }
    parse_answer(&answer)
}

/// The status and body of a complete HTTP/1.1 answer with a `Content-Length`.
fn parse_answer(answer: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Failed(format!("no complete head: {text:?}"));
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    match (status, length) {
        (Some(status), Some(length)) if length == body.len() => {
            Outcome::Answered(status, body.to_string())
        }
        _ => Outcome::Failed(format!("incomplete answer: {text:?}")),
    }
}

/// Opens a new connection for `GET path` every `every` until `until`, each
/// on its own task; the handles give (when it was sent, what it got).
async fn clients(
    address: SocketAddr,
    path: &'static str,
    start: Instant,
    until: Instant,
    every: Duration,
) -> Vec<JoinHandle<(Duration, Outcome)>> {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut attempts = Vec::new();
    while Instant::now() < until {
        ticks.tick().await;
        attempts.push(tokio::spawn(async move {
            let sent = start.elapsed();
            (sent, get_on_a_new_connection(address, path).await)
        }));
    }
    attempts
}

async fn outcomes(attempts: Vec<JoinHandle<(Duration, Outcome)>>) -> Vec<(Duration, Outcome)> {
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_shutdown_delay_new_connections_are_served_and_readyz_is_503() {
    const DELAY: Duration = Duration::from_secs(2);
    // From `kill` to the server acting on it, or on the end of the delay;
    // generous, for a loaded machine.
    const REACTION: Duration = Duration::from_millis(500);
    let server = Binary::start(&[
        "--shutdown-delay-secs",
        "2",
        "--min-delay-ms",
        "50",
        "--max-delay-ms",
        "50",
        "--error-rate",
        "0",
    ]);
    let start = Instant::now();
    let signal_at = Duration::from_millis(300);
    let until = start + signal_at + DELAY + Duration::from_millis(1500);
    let every = Duration::from_millis(5);
    let work = tokio::spawn(clients(server.address, "/work", start, until, every));
    let readyz = tokio::spawn(clients(server.address, "/readyz", start, until, every));
    tokio::time::sleep_until((start + signal_at).into()).await;
    let signal_sent = start.elapsed();
    let server = tokio::task::spawn_blocking(move || {
        server.signal("TERM");
        server
    })
    .await
    .unwrap();
    let signalled = start.elapsed();
    let work = outcomes(work.await.unwrap()).await;
    let readyz = outcomes(readyz.await.unwrap()).await;
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");

    // The delay ends no earlier than DELAY after the signal was sent.
    let delay_over = signal_sent + DELAY;
    let work_answer = Outcome::Answered(200, r#"{"delay_ms":50}"#.to_string());
    let mut served_during_the_delay = 0;
    for (sent, outcome) in &work {
        if *sent < delay_over {
            assert_eq!(outcome, &work_answer, "/work sent at {sent:?}");
            served_during_the_delay += usize::from(*sent >= signal_sent);
        } else if *sent >= signalled + DELAY + REACTION {
            assert_eq!(outcome, &Outcome::Refused, "/work sent at {sent:?}");
        } else {
            // Around the end of the delay: answered in full, refused, or
            // reset unanswered as the listener closes; never cut short.
            assert!(
                [&work_answer, &Outcome::Refused, &Outcome::ResetUnanswered].contains(&outcome),
                "/work sent at {sent:?}: {outcome:?}"
            );
        }
    }
    let ready = Outcome::Answered(200, "ready".to_string());
    let shutting_down = Outcome::Answered(503, "shutting down".to_string());
    let mut unready = 0;
    for (sent, outcome) in &readyz {
        if *sent < signalled + REACTION {
            // Before the signal reached the server: ready, or already not.
            assert!(
                outcome == &ready || outcome == &shutting_down,
                "/readyz sent at {sent:?}: {outcome:?}"
            );
        } else if *sent < delay_over {
            assert_eq!(outcome, &shutting_down, "/readyz sent at {sent:?}");
            unready += 1;
        } else if *sent < signalled + DELAY + REACTION {
            assert!(
                [&shutting_down, &Outcome::Refused, &Outcome::ResetUnanswered].contains(&outcome),
                "/readyz sent at {sent:?}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, &Outcome::Refused, "/readyz sent at {sent:?}");
        }
    }
    // At one connection per 5 ms, the delay saw hundreds of each.
    assert!(
        served_during_the_delay > 100 && unready > 100,
        "{served_during_the_delay} /work served and {unready} /readyz answered 503 during the delay"
    );
    eprintln!(
        "delay {DELAY:?}: {served_during_the_delay} new /work connections served, \
         {unready} /readyz answered 503; {} /work and {} /readyz attempts in all",
        work.len(),
        readyz.len()
    );
    assert!(
        logs.contains(
            "shutdown delay: /readyz answers 503; still serving new connections delay_secs=2.0"
        ),
        "{logs}"
    );
    assert!(
        logs.contains("stopped after every in-flight request finished"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_second_sigterm_ends_the_shutdown_delay_at_once() {
    let server = Binary::start(&["--shutdown-delay-secs", "60"]);
    let readyz = server.url("/readyz");
    server.signal("TERM");
    let http = reqwest::Client::new();
    // Bounded: 250 tries, about 5 s.
    let mut status = 0;
    for _ in 0..250 {
        status = http.get(&readyz).send().await.unwrap().status().as_u16();
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 503, "the delay began");
    let started = Instant::now();
    server.signal("TERM");
    let wait = tokio::task::spawn_blocking(|| server.wait());
    let (status, logs) = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the second SIGTERM ends it long before the 60 s delay")
        .unwrap();
    eprintln!("exited {:?} after the second SIGTERM", started.elapsed());
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("second signal: stopping now"), "{logs}");
}

fn config(delay_secs: u64, work_ms: u64, timeout_secs: u64) -> Config {
    let mut config = Config::defaults();
    config.shutdown_delay_secs = delay_secs;
    config.min_delay_ms = work_ms;
    config.max_delay_ms = work_ms;
    config.error_rate = 0.0;
    config.shutdown_timeout_secs = Some(timeout_secs);
    config
}

/// Starts 3 `/work` requests of 2.5 s, begins shutdown with a 1 s delay and
/// `timeout_secs`, and returns the run's report and what the clients got.
async fn drain_after_a_delay(timeout_secs: u64) -> (usize, Vec<Result<u16, String>>) {
    let server = TestServer::start(config(1, 2500, timeout_secs)).await;
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let request = server.http.get(server.url("/work")).send();
            tokio::spawn(async move {
                request
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    server.wait_for_in_flight(3).await;
    server.shutdown.begin();
    let report = tokio::time::timeout(Duration::from_secs(20), server.run)
        .await
        .expect("the run ends")
        .unwrap();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    (report.cut_off, answers)
}

#[tokio::test]
async fn the_shutdown_timeout_counts_from_the_end_of_the_delay() {
    // 1 s delay + 2 s timeout: the 2.5 s requests finish (a timeout counted
    // from the signal would cut them off at 2 s).
    let (cut_off, answers) = drain_after_a_delay(2).await;
    assert_eq!(cut_off, 0);
    assert_eq!(answers, [Ok(200), Ok(200), Ok(200)]);
}

#[tokio::test]
async fn a_timeout_that_ends_before_the_requests_cuts_them_off_after_the_delay() {
    // 1 s delay + 1 s timeout: the drain ends at 2 s, before the 2.5 s requests.
    let (cut_off, answers) = drain_after_a_delay(1).await;
    assert_eq!(cut_off, 3);
    assert!(answers.iter().all(Result::is_err), "{answers:?}");
}

#[tokio::test]
async fn forcing_shutdown_during_the_delay_ends_it_at_once() {
    let server = TestServer::start(config(60, 30_000, 60)).await;
    crate::shutdown::forcing_cuts_off_two_waiting_requests(server).await;
}

#[tokio::test]
async fn connections_waiting_to_be_accepted_when_accepting_stops_are_served() {
    // On this current-thread runtime the server does not run until the test
    // awaits: these connections wait in the listen backlog, their requests
    // sent, when the server first sees that shutdown has begun.
    let server = TestServer::start(config(0, 0, 5)).await;
    let mut waiting: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server.address).unwrap();
            stream
                .write_all(b"GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();
    server.shutdown.begin();
    let report = server.run.await.unwrap();
    assert_eq!(report.cut_off, 0);
    for stream in &mut waiting {
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer).map_err(|e| e.to_string());
        assert_eq!(
            read.map(|_| parse_answer(&answer)),
            Ok(Outcome::Answered(200, r#"{"delay_ms":0}"#.to_string()))
        );
    }
}

#[tokio::test]
async fn a_connection_opened_before_accepting_stops_may_still_send_its_request() {
    let server = TestServer::start(config(0, 0, 5)).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    // Accepted, and silent when shutdown begins.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown.begin();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream
        .write_all(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(
        parse_answer(&answer),
        Outcome::Answered(200, r#"{"delay_ms":0}"#.to_string())
    );
    // read_to_end returned: the server closed the connection after answering.
    assert_eq!(server.run.await.unwrap().cut_off, 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_when_accepting_stops() {
    let server = TestServer::start(config(0, 0, 60)).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0; 1024];
    let read = stream.read(&mut answer).await.unwrap();
    assert_eq!(
        parse_answer(&answer[..read]),
        Outcome::Answered(200, "ok".to_string())
    );
    server.shutdown.begin();
    // Closed at once, well before the 60 s shutdown timeout or the 10 s
    // header timeout.
    let eof = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("closed at once")
        .unwrap();
    assert_eq!(eof, 0);
    assert_eq!(server.run.await.unwrap().cut_off, 0);
}
