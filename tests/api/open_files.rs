//! The open-file limit: raised from a soft 1024 to the hard limit at start-up.
use crate::helpers::{scrape, wait_for_in_flight, Binary};

/// The soft and hard "Max open files" of process `pid` ("self" for this
/// one), as /proc shows them.
fn open_file_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    // "Max open files            1024                 20000                files"
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].parse().unwrap(), fields[4].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_soft_limit_of_1024_the_binary_serves_3000_waiting_requests() {
    const REQUESTS: usize = 3000;
    let (_, hard) = open_file_limits("self");
    assert!(
        hard > 2 * REQUESTS as u64,
        "a hard limit of {hard} leaves no room for {REQUESTS} connections"
    );
    // This test's client holds 3,000 sockets too.
    rlimit::increase_nofile_limit(hard).unwrap();
    let server = Binary::start_with_soft_open_file_limit(
        1024,
        &[
            "--min-delay-ms",
            "5000",
            "--max-delay-ms",
            "5000",
            "--error-rate",
            "0",
        ],
    );
    assert_eq!(open_file_limits(&server.pid().to_string()), (hard, hard));
    let http = reqwest::Client::new();
    let metrics = server.url("/metrics");
    assert_eq!(
        scrape(&http, &metrics).await.value("process_max_fds"),
        hard as f64
    );
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let request = http.get(server.url("/work")).send();
            tokio::spawn(async move {
                let response = request.await.expect("a complete response");
                (
                    response.status().as_u16(),
                    response.text().await.expect("a complete body"),
                )
            })
        })
        .collect();
    // All waiting at once: each answers after 5 s.
    let waiting = wait_for_in_flight(&http, &metrics, REQUESTS as i64).await;
    let open = waiting.value("process_open_fds");
    assert!(
        open > REQUESTS as f64 && open < hard as f64,
        "{open} descriptors open with {REQUESTS} connections"
    );
    for request in requests {
        assert_eq!(
            request.await.unwrap(),
            (200, r#"{"delay_ms":5000}"#.to_string())
        );
    }
    server.signal("TERM");
    let (status, logs) = tokio::task::spawn_blocking(|| server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    let logged = format!("open_files_limit={hard}");
    assert!(
        logs.split_whitespace().any(|field| field == logged),
        "{logs}"
    );
    assert!(!logs.contains("failed to accept"), "{logs}");
    eprintln!("{REQUESTS} requests waiting at once, {open} descriptors open, limit {hard}");
}
