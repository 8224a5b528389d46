//! The `process_*` metrics against what `/proc` and `getconf` say about this
//! process (the in-process app is this test process).
use std::{fs, process::Command};

use crate::helpers::{work, TestApp};

/// A value of `getconf`, e.g. `CLK_TCK`.
fn getconf(name: &str) -> f64 {
    let output = Command::new("getconf").arg(name).output().expect("getconf");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Field `n` of `/proc/self/stat`, numbered as proc(5) numbers them (1 is the
/// pid, 2 the command name in parentheses).
fn stat_field(n: usize) -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

/// utime + stime of `/proc/self/stat`, in seconds.
fn cpu_seconds() -> f64 {
    (stat_field(14) + stat_field(15)) / getconf("CLK_TCK")
}

/// The soft limit named `name` in `/proc/self/limits`, "unlimited" as the
/// largest u64 (what Go's procfs reads).
fn soft_limit(name: &str) -> f64 {
    let limits = fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|line| line.starts_with(name)).unwrap();
    match line[name.len()..].split_whitespace().next().unwrap() {
        "unlimited" => u64::MAX as f64,
        value => value.parse().unwrap(),
    }
}

/// A line of `/proc/self/status`, e.g. `Threads`.
fn status(name: &str) -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap();
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn cpu_seconds_are_fractional_and_what_proc_says_around_the_scrape() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    // Burn CPU until the total is between a quarter and three quarters past a
    // whole second: seconds rounded down to whole ones would then be at least
    // 0.25 s below what /proc says.
    let mut spins = 0u64;
    while !(0.25..0.75).contains(&cpu_seconds().fract()) {
        for i in 0..1_000_000u64 {
            spins = std::hint::black_box(spins.wrapping_add(i));
        }
    }
    // Read /proc just before and just after the scrape: the exposed value is
    // one of the readings in between (other tests may burn CPU meanwhile).
    let before = cpu_seconds();
    let exposed = app.scrape().await.value("process_cpu_seconds_total");
    let after = cpu_seconds();
    println!("/proc before {before}, exposed {exposed}, /proc after {after}");
    assert!(
        before <= exposed && exposed <= after,
        "exposed {exposed} not within /proc's {before}..={after}"
    );
}

#[tokio::test]
async fn start_time_and_limits_are_exactly_what_proc_says() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let scrape = app.scrape().await;
    let boot_time: f64 = fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .unwrap()
        .parse()
        .unwrap();
    let start_time = boot_time + stat_field(22) / getconf("CLK_TCK");
    // Exact to the clock tick: a collector that dropped the fraction fails
    // here, except in the one run in CLK_TCK (100) whose process happened to
    // start on a whole second, which no test can choose.
    println!("start time {start_time}");
    assert_eq!(scrape.value("process_start_time_seconds"), start_time);
    assert_eq!(
        scrape.value("process_max_fds"),
        soft_limit("Max open files")
    );
    assert_eq!(
        scrape.value("process_virtual_memory_max_bytes"),
        soft_limit("Max address space")
    );
}

#[tokio::test]
async fn memory_threads_and_fds_are_in_the_units_of_proc() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let read_proc = || {
        [
            (
                "process_resident_memory_bytes",
                stat_field(24) * getconf("PAGESIZE"),
            ),
            ("process_virtual_memory_bytes", stat_field(23)),
            ("process_threads", status("Threads")),
            (
                "process_open_fds",
                fs::read_dir("/proc/self/fd").unwrap().count() as f64,
            ),
        ]
    };
    // Other tests run in this process meanwhile (one opens thousands of
    // sockets): a scrape between two readings that differ by less than 5%
    // each, at the 20th try at the latest.
    let steady = |before: &[(&str, f64)], after: &[(&str, f64)]| {
        before
            .iter()
            .zip(after)
            .all(|((_, before), (_, after))| (before - after).abs() <= before * 0.05)
    };
    let mut tries = 0;
    let (expected, scrape) = loop {
        tries += 1;
        let before = read_proc();
        let scrape = app.scrape().await;
        let after = read_proc();
        if steady(&before, &after) || tries == 20 {
            break (after, scrape);
        }
    };
    // Within 25%, which a wrong unit (pages, kilobytes) is not.
    for (name, proc) in expected {
        let exposed = scrape.value(name);
        assert!(
            (exposed - proc).abs() <= proc * 0.25,
            "{name}: exposed {exposed}, /proc says {proc}"
        );
    }
}
