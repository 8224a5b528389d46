//! Hostile input: random paths, methods, queries and headers; malformed and slow clients.
use std::time::Duration;

use futures_util::future::join_all;
use myapp::config::Config;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{work, Snapshot, TestServer};

/// Sends `request` on a new connection and returns the status of the answer
/// (0 if the server closed the connection without one).
async fn status_of(server: &TestServer, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    // The server may close before reading everything; what it sent is enough.
    let _ = stream.read_to_end(&mut answer).await;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .map_or(0, |code| code.parse().unwrap())
}

/// One hostile request of kind `i % 5` and the status it must get.
fn hostile_request(rng: &mut StdRng, i: usize) -> (Vec<u8>, u16) {
    let noise: String = (0..rng.random_range(1..40))
        .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
        .collect();
    let mut request = match i % 5 {
        // A path that does not exist, partly percent-encoded.
        0 => (
            format!("GET /{noise}/%41%2F{noise} HTTP/1.1\r\n").into_bytes(),
            404,
        ),
        // A percent-encoded path that does not decode to UTF-8: valid URI
        // syntax naming nothing, so 404 like any unknown path.
        1 if i % 10 == 6 => (
            format!("GET /work/%FF%C3%28{noise} HTTP/1.1\r\n").into_bytes(),
            404,
        ),
        // Raw bytes that are not UTF-8 in the request line (continuation bytes
        // alone never are).
        1 => {
            let mut line = b"GET /work/".to_vec();
            line.extend((0..8).map(|_| rng.random_range(0x80..=0xBFu8)));
            line.extend(b" HTTP/1.1\r\n");
            (line, 400)
        }
        // A method /work does not allow.
        2 => (
            format!("{} /work HTTP/1.1\r\n", noise.to_uppercase()).into_bytes(),
            405,
        ),
        // A random query string on /work: served, counted under its status.
        3 => (
            format!("GET /work?{noise}={noise}&%00=%FF HTTP/1.1\r\n").into_bytes(),
            200,
        ),
        // A header value longer than the 64 KiB head limit.
        _ => {
            let long = "x".repeat(70 * 1024 + rng.random_range(0..1024));
            (
                format!("GET /work HTTP/1.1\r\nX-Long: {long}\r\n").into_bytes(),
                431,
            )
        }
    };
    request
        .0
        .extend(b"Host: localhost\r\nConnection: close\r\n\r\n");
    request
}

/// Lines of the exposition that are samples, not comments: one per series.
fn series_count(text: &str) -> usize {
    text.lines().filter(|line| !line.starts_with('#')).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_requests_get_fitting_errors_and_add_no_series() {
    let server = TestServer::spawn(work(0, 0, 0.0), 5).await;
    let metrics_url = server.url("/metrics");
    let before = server
        .http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tasks = (0..8).map(|task| {
        let server = &server;
        async move {
            let mut rng = StdRng::seed_from_u64(task);
            let mut wrong = Vec::new();
            for i in 0..1250 {
                let (request, expected) = hostile_request(&mut rng, i);
                let status = status_of(server, &request).await;
                if status != expected {
                    wrong.push((
                        String::from_utf8_lossy(&request[..60.min(request.len())]).into_owned(),
                        status,
                    ));
                }
            }
            wrong
        }
    });
    let wrong: Vec<_> = join_all(tasks).await.into_iter().flatten().collect();
    assert!(
        wrong.is_empty(),
        "{} unfitting answers, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let after = server
        .http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        series_count(&after),
        series_count(&before),
        "before:\n{before}\nafter:\n{after}"
    );
    assert!(
        !after.contains("X-Long") && !after.contains("%41"),
        "no label comes from a request"
    );
    // Of the 10,000, the 2,000 random query strings on /work were served
    // and counted; the rest never reached /work.
    let (before, after) = (Snapshot::parse(before), Snapshot::parse(after));
    assert_eq!(after.processed("200") - before.processed("200"), 2000);
    assert_eq!(after.duration().count - before.duration().count, 2000);
}

/// Holds a connection that sends a request head one byte every 100 ms; returns
/// how long until the server cut it (bounded: gives up after 10 s).
async fn slowloris(server: &TestServer) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let head = b"GET /work HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
        .iter()
        .chain(b"a".repeat(200).iter())
        .copied()
        .collect::<Vec<_>>();
    for byte in head {
        if stream.write_all(&[byte]).await.is_err() {
            return Some(started.elapsed());
        }
        let mut buf = [0; 64];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            // EOF or an error: the server closed it.
            if matches!(read, Ok(0) | Err(_)) {
                return Some(started.elapsed());
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_slow_clients_are_cut_while_the_service_keeps_answering() {
    let mut config = Config::defaults();
    config.max_delay_ms = 0;
    config.error_rate = 0.0;
    config.header_timeout_secs = 1;
    let server = TestServer::start(config).await;
    let mut rng = StdRng::seed_from_u64(7);

    let slow: Vec<_> = (0..50).map(|_| slowloris(&server)).collect();
    // Concurrently: a truncated request line waits out the header timeout.
    let malformed_requests: Vec<Vec<u8>> = (0..200)
        .map(|i| match i % 4 {
            0 => (0..rng.random_range(1..512))
                .map(|_| rng.random())
                .collect(),
            1 => b"GET /wo".to_vec(),
            2 => b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
            _ => [
                b"GET /work HTTP/1.1\r\nX: ".as_slice(),
                &b"y".repeat(100_000),
                b"\r\n\r\n",
            ]
            .concat(),
        })
        .collect();
    let malformed = join_all(
        malformed_requests
            .iter()
            .map(|request| status_of(&server, request)),
    );
    let healthy = async {
        let mut answers = Vec::new();
        for _ in 0..20 {
            for path in ["/metrics", "/healthz", "/work"] {
                let response = server
                    .http
                    .get(server.url(path))
                    .send()
                    .await
                    .expect("answers");
                answers.push(response.status().as_u16());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answers
    };
    let (cut, statuses, answers) = tokio::join!(join_all(slow), malformed, healthy);

    assert_eq!(
        answers,
        vec![200; 60],
        "/metrics, /healthz and /work kept answering"
    );
    for (i, status) in statuses.iter().enumerate() {
        // Garbage and truncated lines get 400 or a close, the short body 405
        // (POST), the oversized head 431.
        let fitting: &[u16] = match i % 4 {
            0 => &[400, 0],
            1 => &[0, 400],
            2 => &[405],
            _ => &[431],
        };
        assert!(
            fitting.contains(status),
            "malformed request {i} got {status}"
        );
    }
    for elapsed in cut {
        let elapsed = elapsed.expect("a slow header sender is cut");
        // The sender writes and looks for the close every 100 ms.
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(1600)).contains(&elapsed),
            "cut after {elapsed:?}, not at the 1 s header timeout"
        );
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let mut config = Config::defaults();
    config.max_delay_ms = 0;
    config.error_rate = 0.0;
    config.header_timeout_secs = 1;
    let server = TestServer::start(config).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 1024];
    let read = stream.read(&mut buf).await.unwrap();
    assert!(buf[..read].starts_with(b"HTTP/1.1 200 OK"));
    let started = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("closed within 10 s");
    assert_eq!(
        closed.unwrap(),
        0,
        "EOF: the server closed the idle connection"
    );
    let idle = started.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(1600)).contains(&idle),
        "closed after {idle:?}, not at the 1 s header timeout"
    );
}

/// Sends a request whose head is `head_bytes` long in all and returns its status.
async fn status_of_head(server: &TestServer, head_bytes: usize) -> u16 {
    let start = b"GET /work HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    let end = b"\r\nConnection: close\r\n\r\n";
    let pad = b"p".repeat(head_bytes - start.len() - end.len());
    status_of(server, &[start.as_slice(), &pad, end].concat()).await
}

#[tokio::test]
async fn the_head_limit_is_64_kib() {
    let server = TestServer::spawn(work(0, 0, 0.0), 5).await;
    assert_eq!(status_of_head(&server, 63 * 1024).await, 200, "63 KiB");
    assert_eq!(status_of_head(&server, 65 * 1024).await, 431, "65 KiB");
}
