//! Prometheus metrics (`/metrics`, text exposition format): histograms observed as things
//! happen (task tries, the scheduler's hand-off), and at each scrape the counts of runs and
//! task instances by DAG and state from the store and the live figures of running streams.

use std::sync::{
    LazyLock,
    atomic::{AtomicBool, Ordering},
};

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder, core::Collector,
};

use crate::{
    executor::Executor,
    store::{Store, StoreError},
};

/// The histograms, observed for the life of the process.
struct Observed {
    registry: Registry,
    task_duration: HistogramVec,
    handoff: HistogramVec,
}

static OBSERVED: LazyLock<Observed> = LazyLock::new(|| {
    let registry = Registry::new();
    let task_duration = HistogramVec::new(
        HistogramOpts::new(
            "updraft_task_duration_seconds",
            "Duration of task tries, by DAG, task and outcome (success, failed, retry)",
        )
        .buckets(vec![
            0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
        ]),
        &["dag_id", "task_id", "outcome"],
    )
    .expect("a valid histogram");
    let handoff = HistogramVec::new(
        HistogramOpts::new(
            "updraft_scheduler_handoff_seconds",
            "Time from a run being queued to its start by the executor, by DAG",
        )
        .buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
        ]),
        &["dag_id"],
    )
    .expect("a valid histogram");
    Observed {
        task_duration: registered(&registry, task_duration),
        handoff: registered(&registry, handoff),
        registry,
    }
});

/// Whether this process serves `/metrics`: a process that does not (`orchestrator run`)
/// observes nothing, since a histogram per task of a 20,000-task run took 17 MB.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// From now on, observations are recorded (the `/metrics` route does it when built).
pub fn start_recording() {
    RECORDING.store(true, Ordering::Relaxed);
}

fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// A try of `task_id` ended after `seconds` with `outcome` (success, failed, retry).
pub fn observe_try(dag_id: &str, task_id: &str, outcome: &str, seconds: f64) {
    if !recording() {
        return;
    }
    OBSERVED
        .task_duration
        .with_label_values(&[dag_id, task_id, outcome])
        .observe(seconds);
}

/// A queued run of `dag_id` was started `seconds` after it was queued.
pub fn observe_handoff(dag_id: &str, seconds: f64) {
    if !recording() {
        return;
    }
    OBSERVED
        .handoff
        .with_label_values(&[dag_id])
        .observe(seconds.max(0.0));
}

/// Every metric in the text exposition format.
pub async fn render(store: &Store, executor: Option<&Executor>) -> Result<String, StoreError> {
    let scraped = Registry::new();
    register_states(&scraped, store).await?;
    if let Some(executor) = executor {
        register_streams(&scraped, executor);
    }
    let mut families = OBSERVED.registry.gather();
    families.extend(scraped.gather());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut text)
        .map_err(|e| StoreError::Corrupt {
            table: "metrics",
            message: e.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Registers `collector` with `registry` and hands it back.
fn registered<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("each metric registers once per registry");
    collector
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge"),
    )
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter"),
    )
}

async fn register_states(registry: &Registry, store: &Store) -> Result<(), StoreError> {
    let runs = gauge(
        registry,
        "updraft_dag_runs",
        "DAG runs in the metadata database, by DAG and state",
        &["dag_id", "state"],
    );
    for (dag_id, state, count) in store.run_counts().await? {
        runs.with_label_values(&[&dag_id, &state]).set(count);
    }
    let instances = gauge(
        registry,
        "updraft_task_instances",
        "Task instances in the metadata database, by DAG and state",
        &["dag_id", "state"],
    );
    for (dag_id, state, count) in store.task_instance_counts().await? {
        instances.with_label_values(&[&dag_id, &state]).set(count);
    }
    Ok(())
}

/// The live figures of every stream try running in this process.
fn register_streams(registry: &Registry, executor: &Executor) {
    let labels = ["dag_id", "task_id"];
    type Figure = fn(&tasks::StreamMetrics) -> u64;
    let figures: [(Figure, &str, &str); 4] = [
        (
            |m| m.records_in,
            "updraft_stream_records_in_total",
            "Records a stream task read (this try)",
        ),
        (
            |m| m.records_out,
            "updraft_stream_records_out_total",
            "Records or documents a stream task wrote (this try)",
        ),
        (
            |m| m.dead_lettered,
            "updraft_stream_dead_lettered_total",
            "Records sent to the dead-letter topic (this try)",
        ),
        (
            |m| m.late,
            "updraft_stream_late_total",
            "Records whose windows had all closed (this try)",
        ),
    ];
    let totals =
        figures.map(|(figure, name, help)| (figure, counter(registry, name, help, &labels)));
    let flush_ms = gauge(
        registry,
        "updraft_stream_last_flush_milliseconds",
        "Duration of the stream task's last flush",
        &labels,
    );
    let lag = gauge(
        registry,
        "updraft_stream_lag",
        "Records not yet committed, by topic and partition",
        &["dag_id", "task_id", "topic", "partition"],
    );
    for (key, metrics) in executor.stream_metrics() {
        let task = [key.dag_id.as_str(), key.task_id.as_str()];
        for (figure, counter) in &totals {
            counter.with_label_values(&task).inc_by(figure(&metrics));
        }
        flush_ms
            .with_label_values(&task)
            .set(i64::try_from(metrics.last_flush_ms).unwrap_or(i64::MAX));
        for (partition, behind) in &metrics.lag {
            let (topic, id) = partition.rsplit_once('/').unwrap_or((partition, ""));
            lag.with_label_values(&[&key.dag_id, &key.task_id, topic, id])
                .set(*behind);
        }
    }
}
