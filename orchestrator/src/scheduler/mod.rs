//! The scheduler: turns schedules into DAG runs and starts queued runs.
//!
//! A one-second heartbeat from tokio-cron-scheduler drives the schedules; which logical dates
//! are due is computed by [`crate::dag::due_logical_dates`] in each DAG's timezone (the
//! heartbeat itself is timezone-free: tokio-cron-scheduler 0.15 fixes a job's UTC offset when
//! the job is created, which would shift runs by an hour after a DST change). Runs queued by
//! other processes (CLI, REST) are picked up by a 200 ms poll of the store; the tasks of a run
//! are handed off by events inside the executor, not by either loop.

mod heartbeat;
mod runs;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

pub use heartbeat::Heartbeat;

/// What stops the scheduler loop or one of its passes.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the scheduler's clock: {0}")]
    Clock(#[from] tokio_cron_scheduler::JobSchedulerError),
}
pub use runs::{dag_of_run, dag_version, new_manual_run, parse_conf};

use crate::{
    dag::{CronWindow, Dag, DagBag, Schedule, due_logical_dates, next_fire},
    executor::{Executor, recover_lost_workers, recover_zombies},
    store::{LeaseAttempt, NewRun, RunState, RunType},
};

/// Every this many scheduling passes (seconds), runs left by dead drivers are looked for.
const ZOMBIE_SCAN_TICKS: u64 = 10;

/// How often runs queued by other processes are looked for.
const QUEUED_POLL: Duration = Duration::from_millis(200);

/// Whether `dag_id.task_id` is a supervised stream (restarted whatever its tries).
fn is_stream_task(bag: &DagBag, dag_id: &str, task_id: &str) -> bool {
    bag.get(dag_id)
        .and_then(|dag| dag.task(task_id).map(|t| t.is_stream()))
        .unwrap_or(false)
}

pub struct Scheduler {
    executor: Executor,
    bags: watch::Receiver<Arc<DagBag>>,
    /// When each DAG without a start_date was first seen: its schedule starts there.
    first_seen: HashMap<String, DateTime<Utc>>,
    /// The next fire time of each cron DAG, so quiet ticks touch no database.
    next_due: HashMap<String, DateTime<Utc>>,
    drivers: JoinSet<()>,
    heartbeat: Heartbeat,
    /// With workers: how old a worker's heartbeat may get before its tries are taken over.
    worker_timeout: Option<Duration>,
    /// With several `serve` on one database: how long the scheduler lease lasts unrenewed.
    lease_ttl: Option<Duration>,
    /// Whether this process holds the lease (always true without one).
    scheduling: bool,
    /// Scheduling passes so far.
    ticks: u64,
}

impl Scheduler {
    pub fn new(executor: Executor, bags: watch::Receiver<Arc<DagBag>>) -> Self {
        Self {
            executor,
            bags,
            first_seen: HashMap::new(),
            next_due: HashMap::new(),
            drivers: JoinSet::new(),
            heartbeat: Heartbeat::default(),
            worker_timeout: None,
            lease_ttl: None,
            scheduling: true,
            ticks: 0,
        }
    }

    /// Schedules only while holding the scheduler lease (renewed every second, lasting `ttl`):
    /// one `serve` of several schedules, the others stand by and take over when it expires.
    pub fn with_lease(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self.scheduling = false;
        self
    }

    /// Takes over the tries of workers silent for longer than `timeout` (on every tick).
    pub fn with_worker_timeout(mut self, timeout: Duration) -> Self {
        self.worker_timeout = Some(timeout);
        self
    }

    /// Beats `heartbeat` on every scheduling pass (for `/health`).
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Schedules until `shutdown` fires, then stops the executor and waits for the runs in
    /// progress to record their state (at most the grace period plus a margin).
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), SchedulerError> {
        let (tick_tx, mut ticks) = mpsc::channel::<()>(1);
        let mut heartbeat = JobScheduler::new().await?;
        heartbeat
            .add(Job::new_async("* * * * * *", move |_, _| {
                let tick_tx = tick_tx.clone();
                Box::pin(async move {
                    let _ = tick_tx.try_send(());
                })
            })?)
            .await?;
        heartbeat.start().await?;
        self.sync_dags().await;
        if self.lease_ttl.is_none() {
            self.resume_zombie_runs().await;
        }
        self.schedule_due().await;
        let mut poll = tokio::time::interval(QUEUED_POLL);
        loop {
            tokio::select! {
                _ = ticks.recv() => self.schedule_due().await,
                _ = poll.tick() => self.start_queued().await,
                Ok(()) = self.bags.changed() => self.sync_dags().await,
                Some(_) = self.drivers.join_next() => self.start_queued().await,
                _ = shutdown.cancelled() => break,
            }
        }
        tracing::info!(
            runs = self.drivers.len(),
            "Shutting down: cancelling running tasks"
        );
        let _ = heartbeat.shutdown().await;
        self.executor.shut_down();
        let drained = tokio::time::timeout(grace + Duration::from_secs(5), async {
            while self.drivers.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!("Some tasks did not stop within the grace period");
        }
        // Given up once the drivers are done, so the next holder finds the runs left alone.
        if self.lease_ttl.is_some() && self.scheduling {
            let store = self.executor.store();
            if let Err(error) = store.release_scheduler_lease(self.executor.owner()).await {
                tracing::warn!(%error, "Cannot give up the scheduler lease");
            }
        }
        Ok(())
    }

    async fn sync_dags(&mut self) {
        let bag = self.bags.borrow_and_update().clone();
        self.next_due.clear();
        let rows: Vec<(String, String, String)> = bag
            .dags
            .values()
            .map(|d| {
                (
                    d.id.clone(),
                    d.file.display().to_string(),
                    d.schedule.as_text(),
                )
            })
            .collect();
        if let Err(error) = self.executor.store().sync_dags(&rows).await {
            tracing::error!(%error, "Cannot record the DAGs in the store");
        }
        // A changed file is a new version from now on, run or not.
        for dag in bag.dags.values() {
            if let Err(error) = dag_version(self.executor.store(), dag).await {
                tracing::error!(dag_id = %dag.id, %error, "Cannot record the DAG's version");
            }
        }
        for error in &bag.errors {
            tracing::warn!(file = %error.file.display(), problems = error.problems.len(), "Import error: {error}");
        }
    }

    /// Renews or takes the scheduler lease; on taking it, adopts the runs its last holder
    /// drove (their workers' tries go on).
    async fn hold_lease(&mut self) {
        let Some(ttl) = self.lease_ttl else {
            return;
        };
        let store = self.executor.store().clone();
        let owner = self.executor.owner().to_owned();
        match store.acquire_scheduler_lease(&owner, ttl).await {
            Ok(LeaseAttempt::Renewed) => {}
            Ok(LeaseAttempt::Taken { from }) => {
                tracing::info!(
                    previous = from.as_deref().unwrap_or("none"),
                    "Took the scheduler lease: this serve schedules"
                );
                self.scheduling = true;
                self.resume_zombie_runs().await;
                if let Some(previous) = from {
                    self.adopt_runs_of(&previous).await;
                }
            }
            Ok(LeaseAttempt::HeldBy(holder)) => {
                if self.scheduling {
                    tracing::warn!(holder = %holder, "Lost the scheduler lease: standing by");
                }
                self.scheduling = false;
            }
            Err(error) => tracing::warn!(%error, "Cannot renew the scheduler lease"),
        }
    }

    async fn adopt_runs_of(&mut self, previous: &str) {
        let store = self.executor.store().clone();
        let runs = match store.runs_owned_by(previous).await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::error!(%error, "Cannot read the runs of the last scheduler");
                return;
            }
        };
        for run in runs {
            match store
                .adopt_run(
                    &run.dag_id,
                    &run.run_id,
                    Some(previous),
                    self.executor.owner(),
                )
                .await
            {
                Ok(true) => {
                    tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, previous, "Driving a run of the last scheduler");
                    self.spawn_driver(crate::store::DagRunRow {
                        owner: Some(self.executor.owner().to_owned()),
                        ..run
                    });
                }
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "Cannot adopt a run of the last scheduler"),
            }
        }
    }

    async fn take_over_lost_workers(&self) {
        let Some(timeout) = self.worker_timeout else {
            return;
        };
        let bag = self.bags.borrow().clone();
        let is_stream = |dag_id: &str, task_id: &str| is_stream_task(&bag, dag_id, task_id);
        if let Err(error) = recover_lost_workers(&self.executor, timeout, is_stream).await {
            tracing::error!(%error, "Cannot take over the tries of lost workers");
        }
    }

    async fn resume_zombie_runs(&mut self) {
        let bag = self.bags.borrow().clone();
        let is_stream = |dag_id: &str, task_id: &str| is_stream_task(&bag, dag_id, task_id);
        match recover_zombies(&self.executor, is_stream).await {
            Ok(runs) => {
                for run in runs {
                    tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, "Resuming a run left by a dead process");
                    self.spawn_driver(run);
                }
            }
            Err(error) => tracing::error!(%error, "Cannot recover zombie task instances"),
        }
    }

    fn spawn_driver(&mut self, run: crate::store::DagRunRow) {
        let Some(dag) = self.bags.borrow().get(&run.dag_id) else {
            let store = self.executor.store().clone();
            let owner = self.executor.owner().to_owned();
            tracing::error!(dag_id = %run.dag_id, run_id = %run.run_id, "The run's DAG is not in the DAGs folder: the run fails");
            self.drivers.spawn(async move {
                if let Err(error) = store.finish_run(&run.key(), &owner, RunState::Failed).await {
                    tracing::error!(%error, "Cannot fail the run");
                }
            });
            return;
        };
        let executor = self.executor.clone();
        self.drivers.spawn(async move {
            let dag = dag_of_run(executor.store(), dag, &run).await;
            if let Err(error) = executor.drive_run(dag, run).await {
                tracing::error!(%error, "A run stopped on an error");
            }
        });
    }

    /// Starts queued runs while their DAG is unpaused and under max_active_runs.
    async fn start_queued(&mut self) {
        if !self.scheduling {
            return;
        }
        if let Err(error) = self.try_start_queued().await {
            tracing::error!(%error, "Cannot start queued runs");
        }
    }

    /// Starts queued runs oldest first while their DAG is unpaused: a DAG's own runs under
    /// its `max_active_runs`, a backfill's under the backfill's (so a backfill never delays
    /// the scheduled runs), none of a paused backfill.
    async fn try_start_queued(&mut self) -> Result<(), SchedulerError> {
        let store = self.executor.store().clone();
        let backfills = store.unfinished_backfills().await?;
        let queued = store.startable_queued_runs(&backfills).await?;
        if queued.is_empty() {
            return Ok(());
        }
        let paused = store.paused_dags().await?;
        let mut running = store.running_run_counts().await?;
        for run in queued {
            if paused.contains(&run.dag_id) {
                continue;
            }
            let limit = match run.backfill_id {
                Some(id) => match backfills.get(&id) {
                    Some(backfill) if !backfill.is_paused => backfill.max_active_runs,
                    _ => continue,
                },
                None => self
                    .bags
                    .borrow()
                    .get(&run.dag_id)
                    .map_or(1, |d| d.max_active_runs),
            };
            let active = running
                .entry((run.dag_id.clone(), run.backfill_id))
                .or_default();
            if *active >= limit
                || !store
                    .claim_run(&run.dag_id, &run.run_id, self.executor.owner())
                    .await?
            {
                continue;
            }
            *active += 1;
            let waited = (Utc::now() - run.queued_at).num_microseconds().unwrap_or(0);
            crate::telemetry::observe_handoff(&run.dag_id, waited as f64 / 1e6);
            self.spawn_driver(run);
        }
        Ok(())
    }

    /// Marks completed the backfills whose runs have all ended.
    async fn complete_backfills(&self) {
        match self.executor.store().complete_finished_backfills().await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(backfill_id = id, "Backfill completed");
                }
            }
            Err(error) => tracing::warn!(%error, "Cannot complete finished backfills"),
        }
    }

    async fn schedule_due(&mut self) {
        self.heartbeat.beat();
        self.hold_lease().await;
        if !self.scheduling {
            return;
        }
        self.take_over_lost_workers().await;
        // Runs whose driver died after this process started (another serve on this host
        // that went away after handing over the lease) are adopted on a later tick.
        self.ticks += 1;
        if self.ticks.is_multiple_of(ZOMBIE_SCAN_TICKS) {
            self.resume_zombie_runs().await;
        }
        if let Err(error) = self.try_schedule_due().await {
            tracing::error!(%error, "Scheduling pass failed");
        }
        self.complete_backfills().await;
    }

    async fn try_schedule_due(&mut self) -> Result<(), SchedulerError> {
        let bag = self.bags.borrow().clone();
        let paused = self.executor.store().paused_dags().await?;
        // To the microsecond: `@once` and `@continuous` runs are dated now.
        let now = NewRun::logical_date_now();
        for dag in bag.dags.values() {
            if paused.contains(&dag.id) {
                self.stop_continuous_runs(dag);
                continue;
            }
            let first_seen = *self.first_seen.entry(dag.id.clone()).or_insert(now);
            let start = dag.start_date.unwrap_or(first_seen);
            match &dag.schedule {
                Schedule::Manual => {}
                Schedule::Once => {
                    if now >= start
                        && self
                            .executor
                            .store()
                            .last_scheduled_date(&dag.id)
                            .await?
                            .is_none()
                    {
                        self.create_scheduled_run(dag, start).await?;
                    }
                }
                Schedule::Continuous => {
                    if self.executor.store().unfinished_run_count(&dag.id).await? == (0, 0) {
                        self.create_scheduled_run(dag, now).await?;
                    }
                }
                Schedule::Cron { cron, .. } => {
                    if self.next_due.get(&dag.id).is_some_and(|next| now < *next) {
                        continue;
                    }
                    let last = self.executor.store().last_scheduled_date(&dag.id).await?;
                    let window = CronWindow {
                        start_date: start,
                        end_date: dag.end_date,
                        last_logical: last,
                        catchup: dag.catchup,
                    };
                    let due = due_logical_dates(cron, dag.timezone, window, now);
                    for logical_date in &due {
                        self.create_scheduled_run(dag, *logical_date).await?;
                    }
                    let after = due
                        .last()
                        .copied()
                        .or(last)
                        .unwrap_or(start - chrono::Duration::seconds(1));
                    let next =
                        next_fire(cron, dag.timezone, after).unwrap_or(DateTime::<Utc>::MAX_UTC);
                    self.next_due.insert(dag.id.clone(), next);
                }
            }
        }
        Ok(())
    }

    async fn create_scheduled_run(
        &self,
        dag: &Dag,
        logical_date: DateTime<Utc>,
    ) -> Result<(), SchedulerError> {
        let dag_version_number = Some(dag_version(self.executor.store(), dag).await?);
        let new = NewRun {
            dag_id: dag.id.clone(),
            run_id: NewRun::run_id_for(RunType::Scheduled, logical_date),
            logical_date,
            run_type: RunType::Scheduled,
            conf: serde_json::Map::new(),
            owner: None,
            backfill_id: None,
            dag_version_number,
        };
        if self
            .executor
            .store()
            .create_run(&new, &dag.new_task_instances())
            .await?
            .is_some()
        {
            tracing::info!(dag_id = %dag.id, run_id = %new.run_id, "Scheduled a run");
        }
        Ok(())
    }

    /// Pausing a `@continuous` DAG stops its active run.
    fn stop_continuous_runs(&self, dag: &Dag) {
        if !matches!(dag.schedule, Schedule::Continuous) {
            return;
        }
        for run in self
            .executor
            .active_runs()
            .into_iter()
            .filter(|run| run.dag_id == dag.id)
        {
            if self.executor.stop_run(&run) {
                tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, "Stopping the continuous run of a paused DAG");
            }
        }
    }
}
