//! The log queue when stdout is not read: lines are dropped and counted,
//! requests do not wait, memory stays bounded, and one warning tells the
//! count once stdout is read again.
use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{scrape, Binary};

/// More request lines than the queue (16,384) and the pipe and write
/// buffers (64 KiB each, about 250 lines each) hold.
const REQUESTS: usize = 20_000;

/// VmRSS of `pid`, in bytes, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix(" kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// A field `name=N` of a log line.
fn field(line: &str, name: &str) -> u64 {
    line.split(' ')
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stdout_unread_lines_are_dropped_and_counted_and_requests_do_not_wait() {
    let (app, stdout) =
        Binary::start_with_stdout_unread(&["--max-delay-ms", "0", "--error-rate", "0"]);
    // Bounded: with a queue that blocks, requests wait for stdout forever.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = app.url("/work");
    let tasks = (0..8).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut answered = 0;
            for _ in 0..REQUESTS / 8 {
                match http.get(&url).send().await {
                    Ok(response) if response.status() == 200 => answered += 1,
                    // Stalled or failed: the rest would be too.
                    _ => break,
                }
            }
            answered
        }
    });
    let answered: usize = join_all(tasks).await.into_iter().sum();
    assert_eq!(answered, REQUESTS, "every request answered 200 in time");

    let rss = rss_bytes(app.pid());
    // Each /work line was logged before its answer was sent: all are
    // queued, written or dropped by now.
    let dropped = scrape(&http, &app.url("/metrics"))
        .await
        .value("myapp_log_lines_dropped_total") as u64;
    assert!(
        dropped > 0 && dropped < REQUESTS as u64,
        "dropped {dropped}"
    );
    // The queue holds at most 16,384 lines of about 250 bytes: a few MB
    // above the process's usual 10 to 20 MB.
    assert!(rss < 64 << 20, "RSS {rss} bytes with stdout unread");

    // Read again: the queued lines come out, then the one warning, which was
    // queued behind them when the first write went through.
    let (written, scrape_written, warning) = tokio::task::spawn_blocking(move || {
        let (mut written, mut scrape_written) = (0, false);
        for line in stdout.map_while(Result::ok) {
            if line.contains(" WARN myapp::telemetry::dropped: log lines were dropped") {
                return (written, scrape_written, line);
            }
            written += u64::from(line.contains(" path=/work "));
            scrape_written |= line.contains(" path=/metrics ");
        }
        panic!("no warning");
    })
    .await
    .unwrap();
    assert_eq!(
        written + dropped,
        REQUESTS as u64,
        "each /work line written or counted"
    );
    // The scrape's own line came after the count it answered: dropped too,
    // unless it found room.
    let total = dropped + u64::from(!scrape_written);
    assert_eq!(
        (field(&warning, "dropped"), field(&warning, "total")),
        (total, total)
    );
    app.signal("TERM");
    app.wait();
}
