//! The process's `process_*` metrics, read from `/proc/self` at each scrape,
//! as Go's client_golang reports them on Linux: CPU time and start time in
//! fractional seconds, with Go's names and help texts. Unlike Go, whose
//! constant metrics carry no created time, `process_cpu_seconds_total` has
//! one: the process's start, when its CPU time was zero.
//!
//! It replaces the prometheus crate's `process` feature, whose collector
//! divides clock ticks by the tick rate as integers: its
//! `process_cpu_seconds_total` moves by whole seconds, so
//! `rate(process_cpu_seconds_total[1m])` reads 0 for a service that uses 5% of
//! a core, then a spike (tikv/rust-prometheus issues 451 and 560).
use std::time::{Duration, UNIX_EPOCH};

use procfs::process::{LimitValue, Process};
use prometheus::{
    core::{Collector, Desc},
    proto::{Counter, Gauge, Metric, MetricFamily, MetricType},
};
use prometheus_exposition::set_created;

/// `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`,
/// `process_virtual_memory_bytes`, `process_virtual_memory_max_bytes`,
/// `process_resident_memory_bytes`, `process_start_time_seconds` (all as Go
/// has them) and `process_threads` (as the crate had it) of this process.
/// A family whose source cannot be read is left out of that scrape, as Go
/// does without `ReportErrors`.
pub struct ProcessCollector {
    cpu: Desc,
    open_fds: Desc,
    max_fds: Desc,
    virtual_memory: Desc,
    virtual_memory_max: Desc,
    resident_memory: Desc,
    start_time: Desc,
    threads: Desc,
    /// `USER_HZ`, the unit of the times in `/proc/self/stat`.
    ticks_per_second: u32,
    page_size: f64,
    /// When the system booted, in seconds since the epoch (`btime` of
    /// `/proc/stat`); `None` when it could not be read.
    boot_time: Option<u64>,
}

impl ProcessCollector {
    /// The collector of the calling process; register it in a registry.
    pub fn new() -> prometheus::Result<Self> {
        let desc = |name: &str, help: &str| Desc::new(name.into(), help.into(), vec![], [].into());
        Ok(Self {
            cpu: desc(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )?,
            open_fds: desc("process_open_fds", "Number of open file descriptors.")?,
            max_fds: desc(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            )?,
            virtual_memory: desc(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )?,
            virtual_memory_max: desc(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
            )?,
            resident_memory: desc(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )?,
            start_time: desc(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            threads: desc("process_threads", "Number of OS threads in the process.")?,
            // 100 on Linux (USER_HZ), whatever the kernel's tick rate.
            ticks_per_second: procfs::ticks_per_second() as u32,
            page_size: procfs::page_size() as f64,
            boot_time: procfs::boot_time_secs().ok(),
        })
    }
}

/// A family of one unlabelled sample.
fn family(desc: &Desc, kind: MetricType, value: f64) -> MetricFamily {
    let mut metric = Metric::default();
    match kind {
        MetricType::COUNTER => metric.set_counter(Counter {
            value: Some(value),
            ..Default::default()
        }),
        _ => metric.set_gauge(Gauge {
            value: Some(value),
            ..Default::default()
        }),
    }
    let mut family = MetricFamily::default();
    family.set_name(desc.fq_name.clone());
    family.set_help(desc.help.clone());
    family.set_field_type(kind);
    family.mut_metric().push(metric);
    family
}

/// A limit as Go's procfs reads it: "unlimited" is the largest `u64`.
fn limit(value: LimitValue) -> f64 {
    match value {
        LimitValue::Unlimited => u64::MAX as f64,
        LimitValue::Value(value) => value as f64,
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![
            &self.cpu,
            &self.open_fds,
            &self.max_fds,
            &self.virtual_memory,
            &self.virtual_memory_max,
            &self.resident_memory,
            &self.start_time,
            &self.threads,
        ]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(process) = Process::myself() else {
            return Vec::new();
        };
        let mut families = Vec::with_capacity(8);
        if let Ok(stat) = process.stat() {
            let ticks_per_second = f64::from(self.ticks_per_second);
            let ticks = (stat.utime + stat.stime) as f64;
            let mut cpu = family(&self.cpu, MetricType::COUNTER, ticks / ticks_per_second);
            if let Some(boot_time) = self.boot_time {
                let since_boot = Duration::from_secs(stat.starttime) / self.ticks_per_second;
                let start = UNIX_EPOCH + Duration::from_secs(boot_time) + since_boot;
                set_created(&mut cpu.mut_metric()[0], start);
            }
            families.push(cpu);
            families.push(family(
                &self.virtual_memory,
                MetricType::GAUGE,
                stat.vsize as f64,
            ));
            families.push(family(
                &self.resident_memory,
                MetricType::GAUGE,
                stat.rss as f64 * self.page_size,
            ));
            if let Some(boot_time) = self.boot_time {
                families.push(family(
                    &self.start_time,
                    MetricType::GAUGE,
                    boot_time as f64 + stat.starttime as f64 / ticks_per_second,
                ));
            }
            families.push(family(
                &self.threads,
                MetricType::GAUGE,
                stat.num_threads as f64,
            ));
        }
        if let Ok(fds) = process.fd_count() {
            families.push(family(&self.open_fds, MetricType::GAUGE, fds as f64));
        }
        if let Ok(limits) = process.limits() {
            families.push(family(
                &self.max_fds,
                MetricType::GAUGE,
                limit(limits.max_open_files.soft_limit),
            ));
            families.push(family(
                &self.virtual_memory_max,
                MetricType::GAUGE,
                limit(limits.max_address_space.soft_limit),
            ));
        }
        families
    }
}
