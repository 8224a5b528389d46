use futures_util::future::join_all;

use crate::helpers::{work, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_in_flight_work_answers_503_with_retry_after_and_counts_it() {
    let mut settings = work(800, 800, 0.0);
    settings.max_in_flight = 5;
    let server = TestServer::spawn(settings, 5).await;
    let before = server.scrape().await;
    let admitted: Vec<_> = (0..5)
        .map(|_| tokio::spawn(server.http.get(server.url("/work")).send()))
        .collect();
    server.wait_for_in_flight(5).await;
    let shed = join_all((0..10).map(|_| server.http.get(server.url("/work")).send())).await;
    for response in shed {
        let response = response.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"error":"5 requests already in flight"}"#
        );
    }
    // While /work is saturated, the probes and the metrics still answer.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            server
                .http
                .get(server.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for request in admitted {
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }
    let after = server.scrape().await;
    assert_eq!(after.processed("503") - before.processed("503"), 10);
    assert_eq!(after.processed("200") - before.processed("200"), 5);
    assert_eq!(after.duration().count - before.duration().count, 15);
}
