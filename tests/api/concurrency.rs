use std::collections::HashMap;

use futures_util::future::join_all;

use crate::helpers::{assert_histogram_grew, work, TestApp, TestServer};

fn tally(statuses: impl IntoIterator<Item = u16>) -> HashMap<u16, u64> {
    statuses
        .into_iter()
        .fold(HashMap::new(), |mut seen, status| {
            *seen.entry(status).or_default() += 1;
            seen
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_concurrent_requests_are_counted_exactly() {
    let app = TestApp::spawn(work(0, 20, 0.5)).await;
    let before = app.scrape().await;
    let responses = join_all((0..5000).map(|_| app.get("/work"))).await;
    let seen = tally(responses.iter().map(|r| r.0.status().as_u16()));
    let after = app.scrape().await;
    assert_eq!(seen.values().sum::<u64>(), 5000);
    assert_eq!(
        seen.keys().filter(|s| ![200, 500].contains(*s)).count(),
        0,
        "{seen:?}"
    );
    for status in [200, 500] {
        let grew = after.processed(&status.to_string()) - before.processed(&status.to_string());
        assert_eq!(grew, seen[&status], "status {status}");
    }
    assert_histogram_grew(&before, &after, 5000, 0, 20);
    assert_eq!(after.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_requests_over_250_connections_are_counted_exactly() {
    let server = TestServer::spawn(work(0, 20, 0.5), 5).await;
    let before = server.scrape().await;
    let clients = (0..250).map(|_| {
        let (http, url) = (server.http.clone(), server.url("/work"));
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..8 {
                let response = http.get(&url).send().await.expect("an answer");
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    });
    let statuses = join_all(clients).await.into_iter().flat_map(Result::unwrap);
    let seen = tally(statuses);
    let after = server.scrape().await;
    assert_eq!(seen.values().sum::<u64>(), 2000);
    for status in [200, 500] {
        let grew = after.processed(&status.to_string()) - before.processed(&status.to_string());
        assert_eq!(grew, seen[&status], "status {status}");
    }
    assert_histogram_grew(&before, &after, 2000, 0, 20);
}
