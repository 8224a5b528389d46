//! Hostile input, round two (issue 22): late bodies, unread bodies, pipelined
//! requests left behind, torn gauges. Each test sends what an attacker would
//! over a real loopback socket and checks what the server did.
use std::time::Duration;

use myapp::config::Config;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{work, TestServer, TokenFile};

/// Everything the server sends on `stream` until it closes the connection,
/// as text; panics if it is still open after `bound`.
pub async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        read.is_ok(),
        "the connection is still open after {bound:?}; received so far: {answer:?}"
    );
    answer
}

/// The status codes of the answers in `text`, in order ("HTTP/1.1 200 OK" gives 200).
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .map(|(at, _)| text[at + 9..at + 12].parse().unwrap())
        .collect()
}

fn config_with_body_timeout(secs: u64) -> Config {
    let mut config = work(0, 0, 0.0);
    config.body_timeout_secs = secs;
    config
}

const LATE_BODY: &[u8] = b"PUT /admin/workload HTTP/1.1\r\nHost: x\r\n\
    Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

#[tokio::test]
async fn a_body_late_past_the_body_timeout_is_answered_408_and_the_connection_closed() {
    // The header timeout is far off: only the body deadline can end these.
    let mut config = config_with_body_timeout(1);
    config.header_timeout_secs = 60;
    let server = TestServer::start(config).await;
    let before = server
        .http
        .get(server.url("/admin/workload"))
        .send()
        .await
        .unwrap();
    let before: Value = before.json().await.unwrap();

    // Part of the body, then silence.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(LATE_BODY).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(statuses(&answer), [408], "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("the request body did not arrive within 1 s\n"),
        "{answer}"
    );

    // Expect: 100-continue, then nothing: told to go on, then cut.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(
            b"PUT /admin/workload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 20\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(statuses(&answer), [100, 408], "{answer}");

    // The other side: a body that arrives in pieces within the deadline is taken.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let body = br#"{"error_rate": 0.25}"#;
    stream
        .write_all(
            format!(
                "PUT /admin/workload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(&body[5..]).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(statuses(&answer), [200], "{answer}");
    let after: Value = server.settings().await;
    assert_eq!(before["error_rate"], 0.0);
    assert_eq!(after["error_rate"], 0.25, "only the whole body changed it");
}

#[tokio::test]
async fn a_late_body_does_not_hold_the_drain_up_to_the_shutdown_timeout() {
    let mut config = config_with_body_timeout(1);
    config.header_timeout_secs = 60;
    // A drain that ran to its timeout would end after 30 s and cut the request off.
    config.shutdown_timeout_secs = Some(30);
    let server = TestServer::start(config).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(
            b"PUT /admin/workload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 20\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    // The 100 Continue says that the request is in flight, reading its body.
    let mut head = [0; 25];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 100 Continue\r\n\r\n");
    server.shutdown.begin();
    // A hang guard only: the drain's end is proved by cut_off, 0 only when
    // the drain ended before the 30 s timeout.
    let report = tokio::time::timeout(Duration::from_secs(90), server.run)
        .await
        .expect("the drain ends")
        .unwrap();
    assert_eq!(
        report.cut_off, 0,
        "the drain ended with the body deadline: the late request was answered, not cut off at the shutdown timeout"
    );
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(statuses(&answer), [408], "{answer}");
}

/// A `PUT /admin/workload` head announcing a 200 MiB body.
fn huge_put(authorization: &str) -> Vec<u8> {
    format!(
        "PUT /admin/workload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         {authorization}Content-Length: {}\r\n\r\n",
        200 * 1024 * 1024
    )
    .into_bytes()
}

#[tokio::test]
async fn a_change_without_the_token_is_refused_before_its_body_is_read() {
    let token = TokenFile::new("hostile-admin", "t0ken-22");
    let mut config = work(0, 0, 0.0);
    config.metrics_token_file = Some(token.path.clone());
    let server = TestServer::start(config).await;

    // 200 MiB announced, none sent: the answer comes at once, without the body.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(&huge_put("")).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(statuses(&answer), [401], "{answer}");

    // A body that is not JSON, without the token: 401, not the parser's 400.
    let response = server
        .http
        .put(server.url("/admin/workload"))
        .header("Content-Type", "application/json")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        "a bearer token is required\n"
    );
    // With the token, the same body is read and refused as not JSON.
    let response = server
        .http
        .put(server.url("/admin/workload"))
        .header("Content-Type", "application/json")
        .bearer_auth("t0ken-22")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"error": "parse request payload error: expected value at line 1 column 1"})
    );
}

#[tokio::test]
async fn a_change_body_past_64_kib_is_answered_413_without_reading_the_rest() {
    let server = TestServer::start(work(0, 0, 0.0)).await;
    // 64 KiB and one byte of the 200 MiB announced: the answer comes without
    // the rest (all that was sent is read, so the close is a clean one).
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(&huge_put("")).await.unwrap();
    stream.write_all(&vec![b' '; 64 * 1024 + 1]).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(statuses(&answer), [413], "{answer}");
    assert!(
        answer.ends_with("the body is longer than 64 KiB, the most a change may take\n"),
        "{answer}"
    );

    // Sent whole, 64 KiB and one byte with a request behind it: the 413
    // closes the connection, so the rest is not read and the request behind
    // is not served.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let body = 64 * 1024 + 1;
    let mut sent = format!(
        "PUT /admin/workload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {body}\r\n\r\n{}",
        " ".repeat(body)
    )
    .into_bytes();
    sent.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(&sent).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(statuses(&answer), [413], "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );

    // Both sides of the limit: a change padded to exactly 64 KiB is taken,
    // one byte more is refused and changes nothing.
    let padded = |bytes: usize, error_rate: f64| {
        let change = format!(r#"{{"error_rate": {error_rate}}}"#);
        format!("{change}{}", " ".repeat(bytes - change.len()))
    };
    let put = |body: String| {
        server
            .http
            .put(server.url("/admin/workload"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let response = put(padded(64 * 1024, 0.5)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["error_rate"], 0.5);
    let response = put(padded(64 * 1024 + 1, 0.75)).await.unwrap();
    assert_eq!(response.status(), 413);
    let settings: Value = server.settings().await;
    assert_eq!(settings["error_rate"], 0.5);
}

/// Sends `n` pipelined `GET /work?delay_ms=300&fail=false` on one connection,
/// waits until the first is in flight, closes the connection 100 ms later,
/// and returns how many answers were counted 200 and 499 once the server has
/// shut down and drained (so nothing is in flight, nor can start, any more).
async fn pipelined_then_gone(n: usize) -> (u64, u64) {
    let server = TestServer::start(work(0, 0, 0.0)).await;
    let before = server.scrape().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let request = "GET /work?delay_ms=300&fail=false HTTP/1.1\r\nHost: x\r\n\r\n";
    stream
        .write_all(request.repeat(n).as_bytes())
        .await
        .unwrap();
    server.wait_for_in_flight(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    server.wait_for_in_flight(0).await;
    // The drain waits for every connection to end, a request still queued on
    // this one included; the bound only guards against a hang.
    server.shutdown.begin();
    let report = tokio::time::timeout(Duration::from_secs(60), server.run)
        .await
        .expect("the drain ends")
        .unwrap();
    assert_eq!(
        report.cut_off, 0,
        "the drain ended without cutting anything off"
    );
    // The metrics are process-wide: read in-process now that the server is gone.
    let after = crate::helpers::Snapshot::parse(
        prometheus::TextEncoder::new()
            .encode_to_string(&prometheus::gather())
            .unwrap(),
    );
    (
        after.processed("200") - before.processed("200"),
        after.processed("499") - before.processed("499"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_with_requests_pipelined_has_its_request_in_flight_counted_499() {
    // The request in flight when the client left is counted 499; those
    // queued behind it were never started, so nothing counts them, and no
    // answer that was never delivered counts 200.
    assert_eq!(pipelined_then_gone(2).await, (0, 1), "2 pipelined");
    assert_eq!(pipelined_then_gone(100).await, (0, 1), "100 pipelined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_of_a_client_that_stays_are_each_answered_and_counted_200() {
    let server = TestServer::start(work(0, 0, 0.0)).await;
    let before = server.scrape().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let request = "GET /work?delay_ms=50&fail=false HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = "GET /work?delay_ms=50&fail=false HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream
        .write_all(format!("{}{last}", request.repeat(2)).as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(statuses(&answer), [200, 200, 200], "{answer}");
    let after = server.wait_for_in_flight(0).await;
    assert_eq!(after.processed("200") - before.processed("200"), 3);
    assert_eq!(after.processed("499"), before.processed("499"));
}

/// The five workload gauges of a scrape, in the order of the settings' fields.
fn gauges(snapshot: &crate::helpers::Snapshot) -> [f64; 5] {
    [
        snapshot.value("myapp_workload_min_delay_seconds"),
        snapshot.value("myapp_workload_max_delay_seconds"),
        snapshot.value("myapp_workload_error_rate"),
        snapshot.value("myapp_workload_slow_rate"),
        snapshot.value("myapp_workload_slow_delay_seconds"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scrape_during_concurrent_changes_shows_the_five_gauges_of_one_change() {
    let mut config = work(0, 0, 0.0);
    config.delay_cap_ms = 10_000;
    let server = TestServer::start(config).await;
    // Twenty changes that differ from each other (and from the start) in every
    // field, and the gauges each must show, computed here in seconds.
    let changes: Vec<(Value, [f64; 5])> = (1..=20u32)
        .map(|i| {
            let i = f64::from(i);
            let (min, max, slow) = (i * 10.0, i * 10.0 + 5.0, i * 100.0);
            let (error, slow_rate) = (i / 40.0, i / 80.0);
            (
                json!({"min_delay_ms": min as u64, "max_delay_ms": max as u64,
                       "error_rate": error, "slow_rate": slow_rate,
                       "slow_delay_ms": slow as u64}),
                [min / 1000.0, max / 1000.0, error, slow_rate, slow / 1000.0],
            )
        })
        .collect();
    let mut allowed: Vec<[f64; 5]> = changes.iter().map(|(_, gauges)| *gauges).collect();
    allowed.push([0.0, 0.0, 0.0, 0.0, 5.0]);
    let putters = (0..2).map(|task| {
        let (server, changes) = (&server, &changes);
        async move {
            for round in 0..10 {
                for (change, _) in changes.iter().skip(task).step_by(2) {
                    let response = server
                        .http
                        .put(server.url("/admin/workload"))
                        .json(change)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200, "round {round}");
                }
            }
        }
    });
    let scrapers = (0..2).map(|_| async {
        let mut torn = Vec::new();
        for _ in 0..150 {
            let seen = gauges(&server.scrape().await);
            if !allowed.contains(&seen) {
                torn.push(seen);
            }
        }
        torn
    });
    let (_, torn) = tokio::join!(
        futures_util::future::join_all(putters),
        futures_util::future::join_all(scrapers)
    );
    let torn: Vec<_> = torn.into_iter().flatten().collect();
    assert!(
        torn.is_empty(),
        "{} scrapes mixed two changes, e.g. {:?}",
        torn.len(),
        &torn[..torn.len().min(5)]
    );
}
