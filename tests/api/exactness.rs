use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use futures_util::future::join_all;

use crate::helpers::{work, Snapshot, TestServer};

/// Checks one scrape: `_count` equals `+Inf`, buckets are cumulative.
fn assert_consistent(snapshot: &Snapshot) {
    let histogram = snapshot.duration();
    let inf = histogram.buckets.last().unwrap();
    assert_eq!(inf.0, f64::INFINITY);
    assert_eq!(inf.1, histogram.count, "torn histogram: +Inf != _count");
    assert!(
        histogram
            .buckets
            .windows(2)
            .all(|pair| pair[0].1 <= pair[1].1),
        "torn histogram: {:?}",
        histogram.buckets
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_requests_over_256_connections_scraped_every_100_ms_stay_exact() {
    let server = TestServer::spawn(work(0, 5, 0.5), 5).await;
    let before = server.scrape().await;
    let done = AtomicBool::new(false);
    let scraper = async {
        let mut scrapes = 0;
        let mut last = (
            before.processed("200"),
            before.processed("500"),
            before.duration().count,
        );
        while !done.load(Ordering::Relaxed) {
            let snapshot = server.scrape().await;
            assert_consistent(&snapshot);
            let now = (
                snapshot.processed("200"),
                snapshot.processed("500"),
                snapshot.duration().count,
            );
            assert!(
                now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2,
                "a counter went down: {last:?} -> {now:?}"
            );
            last = now;
            scrapes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        scrapes
    };
    let clients = async {
        let connections = (0..256).map(|i| {
            let (http, url) = (server.http.clone(), server.url("/work"));
            // 100,000 requests: 160 connections send 391, 96 send 390.
            let requests = 390 + usize::from(i < 160);
            tokio::spawn(async move {
                let mut seen = [0u64; 2];
                for _ in 0..requests {
                    match http
                        .get(&url)
                        .send()
                        .await
                        .expect("an answer")
                        .status()
                        .as_u16()
                    {
                        200 => seen[0] += 1,
                        500 => seen[1] += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                seen
            })
        });
        let seen = join_all(connections)
            .await
            .into_iter()
            .map(Result::unwrap)
            .fold([0, 0], |a, b| [a[0] + b[0], a[1] + b[1]]);
        done.store(true, Ordering::Relaxed);
        seen
    };
    let (scrapes, seen) = tokio::join!(scraper, clients);
    let after = server.scrape().await;
    assert_consistent(&after);
    assert_eq!(seen[0] + seen[1], 100_000);
    assert_eq!(after.processed("200") - before.processed("200"), seen[0]);
    assert_eq!(after.processed("500") - before.processed("500"), seen[1]);
    assert_eq!(after.duration().count - before.duration().count, 100_000);
    assert!(scrapes >= 3, "only {scrapes} scrapes ran during the load");
}
