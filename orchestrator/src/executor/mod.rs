//! The executor: drives DAG runs, moving task instances through their state machine the
//! moment their upstreams allow it, with retries, timeouts, slots and graceful shutdown.

mod backoff;
mod driver;
mod live_metrics;
mod pending;
mod remote;
mod runner;
mod slots;
mod trigger_rule;
mod writer;
mod zombies;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tasks::Connections;
use tokio_util::sync::CancellationToken;

pub use backoff::{retry_delay, stream_restart_delay};
pub use driver::RunOutcome;
pub use live_metrics::LiveMetrics;
pub use runner::build_operator;
pub use trigger_rule::{Decision, decide_for};
pub use zombies::{is_owner_alive, recover_lost_workers, recover_zombies};

use self::writer::StateWriter;
use crate::{
    logs::LogHub,
    store::{RunKey, Store, StoreError, TaskInstanceRow, TaskKey, TiState},
};

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Limits and identity of an executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Task instances running at once, over all DAGs.
    pub parallelism: usize,
    /// How long a cancelled task gets to stop before it is abandoned.
    pub grace_period: Duration,
    /// Where tasks connect when their config does not say.
    pub connections: Arc<Connections>,
    /// Variables of this process every shell task gets (`--env-passthrough`).
    pub env_passthrough: Arc<[String]>,
    /// How the tasks of the runs this executor drives reach a slot.
    pub dispatch: Dispatch,
    /// The token this executor writes as the owner of its runs and the claimant of its tries
    /// (a worker's id); `host:pid` when None.
    pub owner: Option<String>,
    /// Where its tries publish their live metrics (its own when None).
    pub live_metrics: Option<LiveMetrics>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            parallelism: 32,
            grace_period: Duration::from_secs(10),
            connections: Arc::default(),
            env_passthrough: Arc::new([]),
            dispatch: Dispatch::InProcess,
            owner: None,
            live_metrics: None,
        }
    }
}

/// How a driven run's queued task instances reach a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Run here, by this executor (one process: SQLite, `orchestrator run`).
    InProcess,
    /// Left `queued` in the metadata database for any worker of their queue to claim
    /// (PostgreSQL: `serve` with workers, its own local worker included).
    Queue,
}

/// Runs DAG runs; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    writer: StateWriter,
    logs: LogHub,
    config: ExecutorConfig,
    /// Process, DAG and pool slots of the tries run here, in one priority line.
    slots: slots::SlotLine,
    /// `host:pid` of this process, written on the runs it drives.
    owner: String,
    hostname: String,
    /// Fires on shutdown: running tasks are cancelled and recorded.
    shutdown: CancellationToken,
    /// Stop tokens of the runs in progress.
    active_runs: Mutex<HashMap<RunKey, CancellationToken>>,
    /// Live metrics of the tries running now.
    live_metrics: LiveMetrics,
}

impl Executor {
    pub fn new(store: Store, logs: LogHub, config: ExecutorConfig) -> Self {
        let hostname = hostname();
        let owner = config
            .owner
            .clone()
            .unwrap_or_else(|| format!("{hostname}:{}", std::process::id()));
        Self {
            inner: Arc::new(Inner {
                writer: StateWriter::start(store.clone(), owner.clone()),
                slots: slots::SlotLine::new(store.clone(), config.parallelism),
                store,
                logs,
                live_metrics: config.live_metrics.clone().unwrap_or_default(),
                config,
                owner,
                hostname,
                shutdown: CancellationToken::new(),
                active_runs: Mutex::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn logs(&self) -> &LogHub {
        &self.inner.logs
    }

    /// Where tasks connect when their config does not say.
    pub fn connections(&self) -> &tasks::Connections {
        &self.inner.config.connections
    }

    /// The token this executor holds runs and tries by (`host:pid` of this process unless
    /// configured).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    pub fn dispatch(&self) -> Dispatch {
        self.inner.config.dispatch
    }

    /// Tries this executor runs at once, across runs.
    pub fn parallelism(&self) -> usize {
        self.inner.config.parallelism.max(1)
    }

    /// Cancels every running task; drivers record their states and return.
    pub fn shut_down(&self) {
        self.inner.shutdown.cancel();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Asks a run in progress in this process to stop (its tasks are cancelled); false if the
    /// run is not driven here.
    pub fn stop_run(&self, run: &RunKey) -> bool {
        let runs = self
            .inner
            .active_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match runs.get(run) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// The runs this process drives now.
    pub fn active_runs(&self) -> Vec<RunKey> {
        self.inner
            .active_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The live figures of a stream task's running try, or None when no try of it runs in
    /// this process (or on a worker that publishes to it).
    pub fn stream_metrics_of(&self, task: &TaskKey) -> Option<tasks::StreamMetrics> {
        self.live_metrics()
            .get(task)
            .and_then(tasks::Metrics::stream)
    }

    /// The live figures of every stream try running in this process (or mirrored from
    /// workers).
    pub fn stream_metrics(&self) -> Vec<(TaskKey, tasks::StreamMetrics)> {
        self.inner.live_metrics.streams()
    }

    fn live_metrics(&self) -> std::sync::MutexGuard<'_, HashMap<TaskKey, tasks::Metrics>> {
        self.inner.live_metrics.lock()
    }

    /// The registry its tries publish their metrics to (to share with a local worker).
    pub fn live_metrics_registry(&self) -> LiveMetrics {
        self.inner.live_metrics.clone()
    }

    /// Publishes a try's metrics until the returned guard is dropped.
    fn publish_metrics(&self, key: TaskKey, metrics: tasks::Metrics) -> MetricsGuard {
        self.live_metrics().insert(key.clone(), metrics);
        MetricsGuard {
            executor: self.clone(),
            key,
        }
    }

    /// Moves a task instance through the store's state machine (which checks the edge, writes
    /// it fenced by this process's hold on the run or the try, and logs it), in a group commit
    /// with the moves made at the same moment; `ti` keeps its old state if the move fails.
    /// A start from `scheduled` passes through `queued` in the same write (both edges are
    /// checked and logged): a try whose slots are taken at once is never queued alone.
    async fn transition(&self, ti: &mut TaskInstanceRow, to: TiState) -> Result<(), ExecutorError> {
        let from = ti.state;
        let via = (from == TiState::Scheduled && to == TiState::Running).then_some(TiState::Queued);
        self.set_state(ti, to);
        if let Err(error) = self.inner.writer.save(ti.clone(), from, via).await {
            ti.state = from;
            return Err(error.into());
        }
        Ok(())
    }

    /// Moves the row in memory: its state, and its claim by this executor when it starts
    /// running.
    fn set_state(&self, ti: &mut TaskInstanceRow, to: TiState) {
        ti.state = to;
        if to == TiState::Running {
            ti.claimed_by = Some(self.inner.owner.clone());
        }
    }
}

/// A new try of `ti` begins now (before its move to running is written): its number, start,
/// host and process; its last try's end and retry time are cleared. Returns its start.
fn begin_try(ti: &mut TaskInstanceRow, hostname: &str) -> chrono::DateTime<chrono::Utc> {
    let started = chrono::Utc::now();
    ti.try_number += 1;
    ti.start = Some(started);
    ti.end = None;
    ti.duration_ms = None;
    // `error` stays: why the last try failed, until a try succeeds (the streams page shows
    // it for a restarted stream).
    ti.next_retry_at = None;
    ti.hostname = Some(hostname.to_owned());
    ti.pid = Some(i64::from(process_id()));
    started
}

/// This process's id, asked of the system once: glibc makes a system call of every `getpid`,
/// which was one per try.
fn process_id() -> u32 {
    static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ID.get_or_init(std::process::id)
}

/// This machine's host name (`localhost` when it has none).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Removes a try's metrics from the executor when the try ends.
struct MetricsGuard {
    executor: Executor,
    key: TaskKey,
}

impl Drop for MetricsGuard {
    fn drop(&mut self) {
        self.executor.live_metrics().remove(&self.key);
    }
}
