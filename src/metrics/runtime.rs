//! The tokio runtime's gauges, the analog of Go's `go_*` metrics, read from
//! tokio's stable `Handle::metrics()` at each scrape.
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    IntGauge,
};
use tokio::runtime::Handle;

/// A collector of `tokio_workers`, `tokio_alive_tasks` and
/// `tokio_global_queue_depth` for the runtime that runs the scrape. Outside a
/// tokio runtime it collects nothing.
pub struct RuntimeCollector {
    workers: IntGauge,
    alive_tasks: IntGauge,
    global_queue_depth: IntGauge,
}

impl RuntimeCollector {
    /// The collector; register it in a registry.
    pub fn new() -> prometheus::Result<Self> {
        Ok(Self {
            workers: IntGauge::new(
                "tokio_workers",
                "Number of worker threads of the tokio runtime.",
            )?,
            alive_tasks: IntGauge::new(
                "tokio_alive_tasks",
                "Number of tasks alive in the tokio runtime.",
            )?,
            global_queue_depth: IntGauge::new(
                "tokio_global_queue_depth",
                "Number of tasks waiting in the tokio runtime's global queue.",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 3] {
        [&self.workers, &self.alive_tasks, &self.global_queue_depth]
    }
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(handle) = Handle::try_current() else {
            return Vec::new();
        };
        let metrics = handle.metrics();
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.workers.set(gauge(metrics.num_workers()));
        self.alive_tasks.set(gauge(metrics.num_alive_tasks()));
        self.global_queue_depth
            .set(gauge(metrics.global_queue_depth()));
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use prometheus::Registry;

    use super::*;

    fn values(registry: &Registry) -> Vec<(String, f64)> {
        registry
            .gather()
            .iter()
            .map(|family| {
                (
                    family.name().to_string(),
                    family.get_metric()[0].get_gauge().value(),
                )
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn the_gauges_describe_the_runtime_that_scrapes() {
        let registry = Registry::new();
        registry
            .register(Box::new(RuntimeCollector::new().unwrap()))
            .unwrap();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let parked = tokio::spawn(async move {
            started.send(()).unwrap();
            stopped.await
        });
        has_started.await.unwrap();
        let found = values(&registry);
        stop.send(()).unwrap();
        parked.await.unwrap().unwrap();
        // The test body is not a task (block_on runs it); the parked task is
        // alive and no longer queued.
        assert_eq!(
            found,
            [
                ("tokio_alive_tasks".to_string(), 1.0),
                ("tokio_global_queue_depth".to_string(), 0.0),
                ("tokio_workers".to_string(), 3.0),
            ]
        );
    }

    #[test]
    fn outside_a_runtime_nothing_is_collected() {
        let registry = Registry::new();
        registry
            .register(Box::new(RuntimeCollector::new().unwrap()))
            .unwrap();
        assert_eq!(values(&registry), []);
    }
}
