use std::time::Duration;

use myapp::telemetry::capture_logs;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::helpers::{work, TestServer};

#[tokio::test]
async fn a_request_abandoned_by_its_client_is_counted_once_as_499_and_logged_with_its_request() {
    let server = TestServer::spawn(work(500, 500, 0.0), 5).await;
    // Once the server is ours: no other test's app logs meanwhile.
    let (logs, _default) = capture_logs(tracing::Level::INFO);
    let before = server.scrape().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let peer = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /work HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    server.wait_for_in_flight(1).await;
    drop(stream);
    let after = server.wait_for_in_flight(0).await;
    assert_eq!(after.processed("499") - before.processed("499"), 1);
    assert_eq!(after.processed("200"), before.processed("200"));
    assert_eq!(after.processed("500"), before.processed("500"));
    let (b, a) = (before.duration(), after.duration());
    assert_eq!(a.count - b.count, 1);
    // Timed until the client left, before the 500 ms sleep ended.
    assert!(a.sum - b.sum < 0.5, "timed {} s", a.sum - b.sum);
    // Still exactly once, long after the sleep would have ended.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.scrape().await.duration().count, a.count);
    // Its only line (a request gone has no request line) names the request.
    let logs = logs.text();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("/work")).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let expected = format!(
        " INFO request{{method=GET path=/work remote_addr={peer}}}: myapp::request_metrics: \
         client closed the connection before the answer; counted as 499 elapsed="
    );
    assert!(lines[0].contains(&expected), "want {expected}\n{logs}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_counts_them() {
    let server = TestServer::spawn(work(300, 300, 0.0), 5).await;
    let before = server.scrape().await;
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let request = server.http.get(server.url("/work")).send();
            tokio::spawn(async move {
                let response = request.await.expect("a complete response");
                (
                    response.status(),
                    response.text().await.expect("a complete body"),
                )
            })
        })
        .collect();
    server.wait_for_in_flight(50).await;
    server.shutdown.begin();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, r#"{"delay_ms":300}"#)
        );
    }
    let report = server.run.await.unwrap();
    assert_eq!(report.cut_off, 0);
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "no connection is accepted after shutdown"
    );
    // The server is gone; the metrics are process-wide and still readable.
    let after = &crate::helpers::registered().requests;
    assert_eq!(after.count(200) - before.processed("200"), 50);
    assert_eq!(
        after.duration.get_sample_count() - before.duration().count,
        50
    );
    assert_eq!(after.in_flight.get(), 0);
}

#[tokio::test]
async fn shutdown_timeout_cuts_off_and_reports_the_requests_in_flight() {
    let server = TestServer::spawn(work(30_000, 30_000, 0.0), 1).await;
    let before = server.scrape().await;
    let requests: Vec<_> = (0..3)
        .map(|_| tokio::spawn(server.http.get(server.url("/work")).send()))
        .collect();
    server.wait_for_in_flight(3).await;
    server.shutdown.begin();
    let report = tokio::time::timeout(Duration::from_secs(10), server.run)
        .await
        .expect("the 1 s shutdown timeout ends the run")
        .unwrap();
    assert_eq!(report.cut_off, 3);
    for request in requests {
        assert!(
            request.await.unwrap().is_err(),
            "a cut-off request gets no answer"
        );
    }
    // Cut off, but not lost: each is counted once, as 499.
    let after = &crate::helpers::registered().requests;
    assert_eq!(after.count(499) - before.processed("499"), 3);
    assert_eq!(after.in_flight.get(), 0);
}

#[tokio::test]
async fn forcing_shutdown_ends_the_drain_at_once() {
    let server = TestServer::spawn(work(30_000, 30_000, 0.0), 60).await;
    forcing_cuts_off_two_waiting_requests(server).await;
}

/// With two 30 s requests waiting on `server`, whose shutdown waits 60 s
/// (a delay or a drain), forcing the shutdown ends its run within 10 s and
/// cuts both off.
pub async fn forcing_cuts_off_two_waiting_requests(server: TestServer) {
    let requests: Vec<_> = (0..2)
        .map(|_| tokio::spawn(server.http.get(server.url("/work")).send()))
        .collect();
    server.wait_for_in_flight(2).await;
    server.shutdown.begin();
    server.shutdown.force();
    let report = tokio::time::timeout(Duration::from_secs(10), server.run)
        .await
        .expect("forcing ends the run well before the 60 s wait")
        .unwrap();
    assert_eq!(report.cut_off, 2);
    for request in requests {
        assert!(request.await.unwrap().is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_thousand_requests_in_flight_answers_and_counts_every_one() {
    let server = TestServer::spawn(work(1500, 1500, 0.0), 30).await;
    let before = server.scrape().await;
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let request = server.http.get(server.url("/work")).send();
            tokio::spawn(async move {
                let response = request.await.expect("a complete response");
                (
                    response.status().as_u16(),
                    response.text().await.expect("a complete body"),
                )
            })
        })
        .collect();
    server.wait_for_in_flight(1000).await;
    assert_eq!(crate::helpers::registered().requests.in_flight.get(), 1000);
    server.shutdown.begin();
    for request in requests {
        assert_eq!(
            request.await.unwrap(),
            (200, r#"{"delay_ms":1500}"#.to_string())
        );
    }
    assert_eq!(server.run.await.unwrap().cut_off, 0);
    let after = &crate::helpers::registered().requests;
    assert_eq!(after.count(200) - before.processed("200"), 1000);
    assert_eq!(after.in_flight.get(), 0);
}
