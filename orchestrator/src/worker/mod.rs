//! `orchestrator worker`: takes queued task instances of its queues from the shared
//! (PostgreSQL) metadata database and runs them with the same operators as `serve`.
//!
//! A claim is one transaction (`FOR UPDATE SKIP LOCKED`, so workers never wait on each
//! other) that also starts the try; a notification of a newly queued instance wakes the
//! worker, and a one-second poll covers a lost one. The worker heartbeats on its own row; when
//! a scheduler declared it lost (its heartbeat was too old), its tries have been taken over:
//! it cancels them (their writes are fenced by the claim anyway, and their child processes
//! are killed) and registers again. On shutdown it stops claiming, lets running tries finish
//! within the grace period and hands back the rest as `up_for_retry` without using a retry.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use tokio::{sync::watch, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    dag::DagBag,
    executor::{Dispatch, Executor, ExecutorConfig},
    logs::LogHub,
    store::{
        Claimant, PublishedMetrics, Store, StoreError, StoreEvent, TaskInstanceRow, TaskKey,
        TiState, WorkerRow, WorkerState,
    },
};

/// How often a worker looks for queued work without being told.
const POLL: Duration = Duration::from_secs(1);
/// How often a worker publishes its streams' live metrics.
const PUBLISH_METRICS: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "workers need a metadata database that processes share: use --db postgres://user@host:port/db (on SQLite one `orchestrator serve` runs every task)"
    )]
    NotShared,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a worker is and may do.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Shown as the hostname of its tries and in `workers list`.
    pub name: String,
    pub queues: Vec<String>,
    /// Tries running at once.
    pub slots: u32,
    pub heartbeat_interval: Duration,
    /// How long running tries get to finish on shutdown.
    pub grace_period: Duration,
    pub connections: Arc<tasks::Connections>,
    /// Variables of this process every shell task gets (`--env-passthrough`).
    pub env_passthrough: Arc<[String]>,
    /// Where its tries publish live metrics (a `serve`'s, for its local worker).
    pub live_metrics: Option<crate::executor::LiveMetrics>,
}

pub struct Worker {
    store: Store,
    bags: watch::Receiver<Arc<DagBag>>,
    logs: LogHub,
    config: WorkerConfig,
    runs: RunCache,
}

/// Why a registration ended.
enum Ended {
    Stopped,
    Lost,
}

impl Worker {
    pub fn new(
        store: Store,
        bags: watch::Receiver<Arc<DagBag>>,
        logs: LogHub,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            bags,
            logs,
            config,
            runs: RunCache::default(),
        }
    }

    /// Works until `shutdown`, then stops gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        if !self.store.is_shared() {
            return Err(WorkerError::NotShared);
        }
        self.store.listen_to_other_processes().await?;
        loop {
            match self.registration(&shutdown).await? {
                Ended::Stopped => return Ok(()),
                Ended::Lost => {
                    tracing::warn!(
                        worker = %self.config.name,
                        heartbeat = ?self.config.heartbeat_interval,
                        "Declared lost by the scheduler: its tries were taken over; registering again. \
                         If this worker was alive, the scheduler's --worker-timeout is shorter than a few \
                         of its heartbeats, or its heartbeats did not reach the database"
                    )
                }
            }
        }
    }

    /// One registration: a new worker id, claims and heartbeats until shutdown or loss.
    async fn registration(&self, shutdown: &CancellationToken) -> Result<Ended, WorkerError> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let worker_id = format!("{}-{}", self.config.name, &suffix[..12]);
        let executor = Executor::new(
            self.store.clone(),
            self.logs.clone(),
            ExecutorConfig {
                parallelism: self.config.slots.max(1) as usize,
                grace_period: self.config.grace_period,
                connections: self.config.connections.clone(),
                env_passthrough: self.config.env_passthrough.clone(),
                dispatch: Dispatch::InProcess,
                owner: Some(worker_id.clone()),
                live_metrics: self.config.live_metrics.clone(),
            },
        );
        self.store.register_worker(&self.row(&worker_id)).await?;
        tracing::info!(worker_id = %worker_id, queues = ?self.config.queues, slots = self.config.slots, "Worker registered");
        let claimant = Claimant {
            worker_id: &worker_id,
            name: &self.config.name,
            pid: std::process::id(),
        };
        let ended = self.work(&executor, &claimant, shutdown).await;
        if matches!(ended, Ok(Ended::Stopped)) {
            self.store
                .set_worker_state(&worker_id, WorkerState::Stopped)
                .await?;
            tracing::info!(worker_id = %worker_id, "Worker stopped");
        }
        ended
    }

    fn row(&self, worker_id: &str) -> WorkerRow {
        let now = Utc::now();
        WorkerRow {
            worker_id: worker_id.to_owned(),
            name: self.config.name.clone(),
            hostname: crate::executor::hostname(),
            queues: self.config.queues.clone(),
            slots: self.config.slots,
            running: 0,
            state: WorkerState::Active,
            started: now,
            heartbeat: now,
        }
    }

    async fn work(
        &self,
        executor: &Executor,
        claimant: &Claimant<'_>,
        shutdown: &CancellationToken,
    ) -> Result<Ended, WorkerError> {
        let mut events = self.store.subscribe();
        let mut tries: JoinSet<()> = JoinSet::new();
        let running = RunningTries::default();
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        let mut poll = tokio::time::interval(POLL);
        let mut publish = tokio::time::interval(PUBLISH_METRICS);
        let mut stopping: Option<Instant> = None;
        let mut claim = true;
        loop {
            if claim && stopping.is_none() {
                self.claim(executor, claimant, &mut tries, &running).await;
            }
            if stopping.is_some() && tries.is_empty() {
                return Ok(Ended::Stopped);
            }
            let grace_over =
                stopping.map_or_else(Instant::now, |since| since + self.config.grace_period);
            claim = tokio::select! {
                Some(_) = tries.join_next() => {
                    // Every other try that ended too: one claim for them all, not one each.
                    while tries.try_join_next().is_some() {}
                    true
                }
                event = events.recv() => match event {
                    Ok(StoreEvent::Task { state: TiState::Queued, .. }) | Err(_) => true,
                    Ok(StoreEvent::StopRequested { dag_id, run_id }) => {
                        running.stop_run(&dag_id, &run_id);
                        false
                    }
                    Ok(_) => false,
                },
                _ = poll.tick() => true,
                _ = publish.tick() => {
                    self.publish_metrics(executor, &running).await;
                    false
                }
                _ = heartbeat.tick() => {
                    let running_count = u32::try_from(tries.len()).unwrap_or(u32::MAX);
                    match self.store.heartbeat_worker(claimant.worker_id, running_count).await {
                        Ok(true) => {
                            self.stop_stopped_runs(claimant, &running).await;
                            false
                        }
                        Ok(false) => {
                            self.abandon(executor, &mut tries).await;
                            return Ok(Ended::Lost);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "Cannot record the worker's heartbeat");
                            false
                        }
                    }
                }
                _ = shutdown.cancelled(), if stopping.is_none() => {
                    tracing::info!(running = tries.len(), grace_period = ?self.config.grace_period, "Stopping: no more claims; running tries get the grace period");
                    stopping = Some(Instant::now());
                    self.store.set_worker_state(claimant.worker_id, WorkerState::Stopping).await?;
                    false
                }
                _ = tokio::time::sleep_until(grace_over), if stopping.is_some() && !executor.is_shutting_down() => {
                    tracing::warn!(running = tries.len(), "Grace period over: handing back the tries still running");
                    executor.shut_down();
                    false
                }
            };
        }
    }

    /// Publishes the live metrics of the streams this worker runs, for every `serve`'s pages.
    async fn publish_metrics(&self, executor: &Executor, running: &RunningTries) {
        let mine = running.keys();
        let tries: Vec<PublishedMetrics> = executor
            .stream_metrics()
            .into_iter()
            .filter(|(task, _)| mine.contains(task))
            .map(|(task, metrics)| PublishedMetrics { task, metrics })
            .collect();
        if let Err(error) = self.store.publish_task_metrics(&tries).await {
            tracing::warn!(%error, "Cannot publish the live metrics of running tries");
        }
    }

    /// Cancels the tries whose run was asked to stop (in case the notification was lost).
    async fn stop_stopped_runs(&self, claimant: &Claimant<'_>, running: &RunningTries) {
        match self.store.stopped_tries_of(claimant.worker_id).await {
            Ok(stopped) => {
                for task in stopped {
                    running.stop_run(&task.dag_id, &task.run_id);
                }
            }
            Err(error) => tracing::warn!(%error, "Cannot look for stopped runs"),
        }
    }

    /// Claims what the free slots can take and starts each try.
    async fn claim(
        &self,
        executor: &Executor,
        claimant: &Claimant<'_>,
        tries: &mut JoinSet<()>,
        running: &RunningTries,
    ) {
        let free = (self.config.slots as usize).saturating_sub(tries.len());
        // While busy, claim in batches (half the slots at a time): one claim transaction per
        // try would be the queue's limit. Idle, claim at once (a chain's next task).
        let batch = (self.config.slots as usize / 2).max(1);
        if !tries.is_empty() && free < batch {
            return;
        }
        let claimed = match self
            .store
            .claim_task_instances(claimant, &self.config.queues, free as u32)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "Cannot claim queued task instances");
                return;
            }
        };
        for ti in claimed {
            let (executor, store, bag) = (
                executor.clone(),
                self.store.clone(),
                self.bags.borrow().clone(),
            );
            let stop = executor.try_stop_token();
            let key = ti.key();
            running.insert(key.clone(), stop.clone());
            let running = running.clone();
            let runs = self.runs.clone();
            tries.spawn(async move {
                run_try(&executor, &store, &bag, ti, stop, runs).await;
                running.remove(&key);
            });
        }
    }

    /// This worker was declared lost: its tries belong to others now. Cancels them (killing
    /// their processes) and waits for them to end, within the grace period.
    async fn abandon(&self, executor: &Executor, tries: &mut JoinSet<()>) {
        executor.shut_down();
        let drained = tokio::time::timeout(self.config.grace_period, async {
            while tries.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tries.abort_all();
        }
    }
}

/// The runs of recent tries (a run's conf and logical date never change): one read per run,
/// not per try.
#[derive(Clone, Default)]
struct RunCache(Arc<Mutex<HashMap<(String, String), crate::store::DagRunRow>>>);

impl RunCache {
    /// Runs kept at most (then the cache starts over).
    const CAPACITY: usize = 1024;

    async fn get(
        &self,
        store: &Store,
        ti: &TaskInstanceRow,
    ) -> Result<Option<crate::store::DagRunRow>, StoreError> {
        let key = (ti.dag_id.clone(), ti.run_id.clone());
        if let Some(run) = self.lock().get(&key) {
            return Ok(Some(run.clone()));
        }
        let run = store.get_run(&ti.dag_id, &ti.run_id).await?;
        if let Some(run) = &run {
            let mut cache = self.lock();
            if cache.len() >= Self::CAPACITY {
                cache.clear();
            }
            cache.insert(key, run.clone());
        }
        Ok(run)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), crate::store::DagRunRow>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stop tokens of the tries running here, by task instance.
#[derive(Clone, Default)]
struct RunningTries(Arc<Mutex<HashMap<TaskKey, CancellationToken>>>);

impl RunningTries {
    fn insert(&self, key: TaskKey, stop: CancellationToken) {
        self.lock().insert(key, stop);
    }

    fn remove(&self, key: &TaskKey) {
        self.lock().remove(key);
    }

    fn keys(&self) -> std::collections::HashSet<TaskKey> {
        self.lock().keys().cloned().collect()
    }

    /// Cancels the tries of a run that was asked to stop (streams flush and commit first).
    fn stop_run(&self, dag_id: &str, run_id: &str) {
        for (key, stop) in self.lock().iter() {
            if key.dag_id == dag_id && key.run_id == run_id && !stop.is_cancelled() {
                tracing::info!(dag_id, run_id, task_id = %key.task_id, "Stopping a try: its run was stopped");
                stop.cancel();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskKey, CancellationToken>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs one claimed try: its DAG from this worker's folder, its run and its upstreams'
/// results from the store.
async fn run_try(
    executor: &Executor,
    store: &Store,
    bag: &DagBag,
    ti: TaskInstanceRow,
    stop: CancellationToken,
    runs: RunCache,
) {
    let Some(dag) = bag.get(&ti.dag_id) else {
        let error = format!("no DAG {:?} in this worker's DAGs folder", ti.dag_id);
        executor.fail_claimed_try(ti, error).await;
        return;
    };
    let run = match runs.get(store, &ti).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            let error = format!("the run {} no longer exists", ti.run_id);
            executor.fail_claimed_try(ti, error).await;
            return;
        }
        Err(error) => {
            executor.fail_claimed_try(ti, error.to_string()).await;
            return;
        }
    };
    let dag = crate::scheduler::dag_of_run(store, dag, &run).await;
    let upstream_results = match upstream_results(store, &dag, &ti).await {
        Ok(results) => results,
        Err(error) => {
            executor.fail_claimed_try(ti, error.to_string()).await;
            return;
        }
    };
    executor
        .run_claimed_try(&dag, &run, ti, upstream_results, stop)
        .await;
}

/// The result summaries of a task instance's upstreams (and only theirs).
async fn upstream_results(
    store: &Store,
    dag: &crate::dag::Dag,
    ti: &TaskInstanceRow,
) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    let upstream = dag
        .task(&ti.task_id)
        .map(|spec| spec.upstream.as_slice())
        .unwrap_or_default();
    if upstream.is_empty() {
        return Ok(serde_json::Map::new());
    }
    store.task_results(&ti.dag_id, &ti.run_id, upstream).await
}
