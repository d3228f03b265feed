//! Drives one DAG run: starts every task the moment its upstreams allow it (an event from the
//! finishing task, not a polling tick) and records the run's end. A task starts here
//! ([`Dispatch::InProcess`]) or is left queued for a worker ([`Dispatch::Queue`]), whose moves
//! come back as store events; the task-instance rows in the store are the truth either way.

use std::{cmp::Reverse, collections::BinaryHeap, sync::Arc};

use chrono::Utc;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    Decision, Dispatch, Executor, ExecutorError, begin_try, decide_for,
    pending::PendingDecisions,
    remote::RemoteTries,
    runner::{Runner, RunnerDone},
    slots::{Need, SlotPermit},
};
use crate::{
    dag::{Dag, TaskSpec, TemplateContext},
    store::{
        DagRunRow, NewTaskInstance, RunState, StoreError, StoreEvent, TaskInstanceRow, TiState,
    },
};

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run ended in this state (recorded in the store).
    Finished(RunState),
    /// Shutdown came first: the run stays `running` and is resumed on the next start.
    Interrupted,
}

/// The run's task instances by id, each row boxed: a 20,000-task run's table holds 32,768
/// slots, and a slot of a row itself took 330 bytes where a box takes 8.
type TaskInstances = rustc_hash::FxHashMap<String, Box<TaskInstanceRow>>;

/// The most moves one release writes together (the state writer's batch).
const RELEASE_BATCH: usize = 512;

impl Executor {
    /// Drives a run that this process owns (state `running`) until it ends or shutdown.
    pub async fn drive_run(
        &self,
        dag: Arc<Dag>,
        run: DagRunRow,
    ) -> Result<RunOutcome, ExecutorError> {
        self.drive_run_of(dag, run, None).await
    }

    /// [`Executor::drive_run`] of a run this process has just created for itself with the
    /// task instances `created`: their rows are known without reading them back (a
    /// 20,000-task run read them in ~45 ms).
    pub async fn drive_created_run(
        &self,
        dag: Arc<Dag>,
        run: DagRunRow,
        created: Vec<NewTaskInstance>,
    ) -> Result<RunOutcome, ExecutorError> {
        self.drive_run_of(dag, run, Some(created)).await
    }

    /// Drives the run, listed among this process's active runs meanwhile.
    async fn drive_run_of(
        &self,
        dag: Arc<Dag>,
        run: DagRunRow,
        created: Option<Vec<NewTaskInstance>>,
    ) -> Result<RunOutcome, ExecutorError> {
        let key = run.key();
        let stop = self.inner.shutdown.child_token();
        self.inner
            .active_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), stop.clone());
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, "Run started");
        let outcome = self.drive(&dag, &run, &stop, created).await;
        self.inner
            .active_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, outcome = ?outcome, "Run ended");
        outcome
    }

    async fn drive(
        &self,
        dag: &Arc<Dag>,
        run: &DagRunRow,
        stop: &CancellationToken,
        created: Option<Vec<NewTaskInstance>>,
    ) -> Result<RunOutcome, ExecutorError> {
        // Tries left to the queue come back as store events: subscribed before reading the
        // rows, so no move of a worker falls between the two. Tries run here report back
        // directly, so an in-process drive hears nothing else.
        let mut events = (self.dispatch() == Dispatch::Queue).then(|| self.store().subscribe());
        let mut drive = RunDrive::start(self, dag, run, stop, created).await?;
        loop {
            if self.is_shutting_down() && self.dispatch() == Dispatch::Queue {
                return Ok(RunOutcome::Interrupted);
            }
            if !stop.is_cancelled() {
                drive.release_ready().await?;
            } else {
                drive.write_ends().await?;
                drive.stop_queued().await?;
            }
            if drive.in_flight() == 0 {
                break;
            }
            drive.wait(&mut events).await?;
        }
        // Tries that ended while shutdown interrupted the others.
        drive.write_ends().await?;
        if self.is_shutting_down() {
            return Ok(RunOutcome::Interrupted);
        }
        let state = if stop.is_cancelled() {
            drive.skip_waiting().await?;
            RunState::Stopped
        } else {
            final_state(&drive.tis)
        };
        self.store()
            .finish_run(&run.key(), self.owner(), state)
            .await?;
        Ok(RunOutcome::Finished(state))
    }
}

/// What woke a drive up.
enum Wake {
    /// A try run here ended (or was left to be resumed).
    Ran(Box<RunnerDone>),
    /// A task instance left to the queue moved (elsewhere) to this state in this try.
    Moved(String, TiState, u32),
    /// Re-read every queued instance: the poll, a due retry, missed events, a stop.
    Recheck,
    /// Someone asked the run to stop (from another process).
    StopAsked,
    Nothing,
}

/// One run being driven.
struct RunDrive<'a> {
    executor: &'a Executor,
    dag: &'a Arc<Dag>,
    run: &'a DagRunRow,
    stop: &'a CancellationToken,
    base: Arc<TemplateContext>,
    tis: TaskInstances,
    /// The tasks to look at in the next release.
    pending: PendingDecisions,
    done_tx: mpsc::UnboundedSender<RunnerDone>,
    done_rx: mpsc::UnboundedReceiver<RunnerDone>,
    /// Tries run here whose last move (from running) is not written yet: the next release
    /// writes them first, in the same commit as the moves they allow.
    unwritten_ends: Vec<TaskInstanceRow>,
    /// The pool slots of those tries, given back once their ends are written.
    unwritten_ends_slots: Vec<SlotPermit>,
    /// Runners started here and not yet back.
    in_process: usize,
    /// Queued instances to run here once a runner comes back: at most [`RunDrive::runners`]
    /// run at a time, so a 20,000-task run holds 20,000 rows, not 20,000 waiting runners.
    /// Served highest `priority_weight` first, then in the order they were queued.
    waiting: BinaryHeap<(i32, Reverse<u64>, String)>,
    /// How many instances have waited so far (the order among equal priorities).
    waited: u64,
    /// Instances decided to run here whose rows stay `scheduled` until their try takes its
    /// slots, as in Airflow (`queued` is a try handed on with its slots), in `waiting` or
    /// with a runner until it comes back: the line costs no write (a 20,000-task run wrote
    /// 20,000 moves to `queued` before its 33rd try could start), and nothing decides them
    /// again.
    held: rustc_hash::FxHashSet<String>,
    /// Instances left to the queue and not yet finished.
    remote: RemoteTries,
    stop_seen: bool,
    /// Whether the workers were told of the stop.
    stop_told: bool,
}

impl<'a> RunDrive<'a> {
    /// Takes the run's task instances (read, unless `created` says what they are) and starts
    /// again what was under way.
    async fn start(
        executor: &'a Executor,
        dag: &'a Arc<Dag>,
        run: &'a DagRunRow,
        stop: &'a CancellationToken,
        created: Option<Vec<NewTaskInstance>>,
    ) -> Result<Self, ExecutorError> {
        let mut tis = TaskInstances::default();
        if let Some(created) = created {
            tis.reserve(created.len());
            for new in created {
                let row = new.into_row(run);
                tis.insert(row.task_id.clone(), Box::new(row));
            }
        } else {
            // Each row goes into the table as it arrives (a list of 20,000 rows first held
            // 10 MB more at once).
            executor
                .store()
                .for_each_task_instance(&run.dag_id, &run.run_id, |ti| {
                    tis.insert(ti.task_id.clone(), Box::new(ti));
                })
                .await?;
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut drive = Self {
            base: Arc::new(TemplateContext::for_dag_run(dag, run)),
            executor,
            dag,
            run,
            stop,
            tis,
            pending: PendingDecisions::all(dag),
            done_tx,
            done_rx,
            unwritten_ends: Vec::new(),
            unwritten_ends_slots: Vec::new(),
            in_process: 0,
            waiting: BinaryHeap::new(),
            waited: 0,
            held: Default::default(),
            remote: RemoteTries::default(),
            stop_seen: false,
            stop_told: false,
        };
        let queue = executor.dispatch() == Dispatch::Queue;
        let under_way: Vec<String> = drive
            .tis
            .values()
            .filter(|ti| match ti.state {
                TiState::Queued | TiState::UpForRetry => true,
                // A worker's try goes on whoever drives the run.
                TiState::Running => queue,
                _ => false,
            })
            .map(|ti| ti.task_id.clone())
            .collect();
        for task_id in under_way {
            drive.dispatch(task_id);
        }
        drive.start_waiting();
        if queue && !drive.remote.is_empty() {
            drive.recheck_remote().await?;
        }
        Ok(drive)
    }

    fn in_flight(&self) -> usize {
        self.in_process + self.remote.len()
    }

    /// Starts (or skips, or fails) every waiting task whose upstreams have decided its fate.
    /// One pass in topological order cascades; the moves are written [`RELEASE_BATCH`] at a
    /// time (each batch one group commit), so a 20,000-task run's first release does not hold
    /// 20,000 moves and their pending writes at once.
    async fn release_ready(&mut self) -> Result<(), ExecutorError> {
        let dag = self.dag;
        loop {
            let mut changes = self.take_ends();
            while changes.len() < RELEASE_BATCH {
                let Some(position) = self.pending.next() else {
                    break;
                };
                let spec = &dag.tasks[position];
                if spec.parallelism > 1 {
                    for instance in spec.instance_ids() {
                        self.decide_one(spec, &instance, &mut changes);
                    }
                } else {
                    self.decide_one(spec, &spec.id, &mut changes);
                }
            }
            if changes.is_empty() {
                return Ok(());
            }
            self.write_released(changes).await?;
        }
    }

    /// The ends left to this drive, as moves from running.
    fn take_ends(&mut self) -> Vec<(TaskInstanceRow, TiState)> {
        self.unwritten_ends
            .drain(..)
            .map(|mut ti| {
                let end = ti.state;
                ti.state = TiState::Running;
                (ti, end)
            })
            .collect()
    }

    /// Writes the ends left to this drive now (a stopped run releases nothing to write them
    /// with).
    async fn write_ends(&mut self) -> Result<(), ExecutorError> {
        let ends = self.take_ends();
        if ends.is_empty() {
            return Ok(());
        }
        self.write_released(ends).await
    }

    /// Writes decided moves together (the state writer commits them in one transaction) and
    /// starts the queued ones; tries run here that cannot start at once wait in this drive's
    /// line with their rows left `scheduled`. Their downstreams were marked when decided
    /// (skips cascade in the same pass).
    async fn write_released(
        &mut self,
        mut changes: Vec<(TaskInstanceRow, TiState)>,
    ) -> Result<(), ExecutorError> {
        let started = self.start_at_once(&mut changes);
        // Their runners start now, each opening its log while the write commits; they run
        // their operators once it is durable.
        let mut start_written = Vec::with_capacity(started.len());
        for (at, permit) in started {
            let (written, wait) = oneshot::channel();
            let mut row = changes[at].0.clone();
            self.executor.set_state(&mut row, TiState::Running);
            self.spawn_runner(row, Some((permit, wait)));
            self.in_process += 1;
            start_written.push(written);
        }
        let held = self.take_held(&mut changes);
        let executor = self.executor;
        // A start decided here passes through queued in the same write.
        let written = futures::future::join_all(
            changes
                .iter_mut()
                .map(|(ti, next)| executor.transition(ti, *next)),
        )
        .await;
        let written = written.into_iter().collect::<Result<Vec<()>, _>>();
        for start in start_written {
            let _ = start.send(written.is_ok());
        }
        written?;
        // The ends taken into this write are durable: their pool slots go back.
        self.unwritten_ends_slots.clear();
        for ti in held {
            self.hold(ti);
        }
        for (ti, next) in changes {
            let task_id = ti.task_id.clone();
            if next == TiState::Queued {
                self.dispatch(task_id.clone());
            }
            self.tis.insert(task_id, Box::new(ti));
        }
        self.start_waiting();
        Ok(())
    }

    /// Takes out of `changes` the moves to `queued` that did not start at once and whose
    /// tries run here: they wait in this drive's line with their rows left `scheduled`
    /// ([`RunDrive::held`]).
    fn take_held(&self, changes: &mut Vec<(TaskInstanceRow, TiState)>) -> Vec<TaskInstanceRow> {
        if self.executor.dispatch() != Dispatch::InProcess {
            return Vec::new();
        }
        let (held, written): (Vec<_>, Vec<_>) = std::mem::take(changes)
            .into_iter()
            .partition(|(ti, next)| *next == TiState::Queued && ti.state == TiState::Scheduled);
        *changes = written;
        held.into_iter().map(|(ti, _)| ti).collect()
    }

    /// Puts a `scheduled` instance whose upstreams let it run in this drive's line.
    fn hold(&mut self, ti: TaskInstanceRow) {
        let task_id = ti.task_id.clone();
        self.held.insert(task_id.clone());
        self.dispatch(task_id.clone());
        self.tis.insert(task_id, Box::new(ti));
    }

    /// Turns the queued moves that can start at once into starts, highest priority first, so
    /// a task goes scheduled -> queued -> running in the same commit as the end that released
    /// it (one commit per hand-off, not two): when its tries run here, the run is not
    /// stopped, nothing of this drive waits, a runner is free and the try's slots are free
    /// without waiting (it never goes ahead of the line). Returns each start's position in
    /// `changes` and its slots.
    fn start_at_once(
        &self,
        changes: &mut [(TaskInstanceRow, TiState)],
    ) -> Vec<(usize, SlotPermit)> {
        let mut started = Vec::new();
        if self.executor.dispatch() != Dispatch::InProcess
            || self.stop.is_cancelled()
            || !self.waiting.is_empty()
            || self.in_process >= self.runners()
        {
            return started;
        }
        let mut queued: Vec<(usize, &TaskSpec)> = changes
            .iter()
            .enumerate()
            .filter(|(_, (_, next))| *next == TiState::Queued)
            .filter_map(|(at, (ti, _))| Some((at, self.dag.task(&ti.task_id)?)))
            .collect();
        queued.sort_by_key(|(at, spec)| (Reverse(spec.priority_weight), *at));
        let inner = &self.executor.inner;
        for (at, spec) in queued {
            let (ti, next) = &mut changes[at];
            if self.in_process + started.len() >= self.runners() {
                break;
            }
            let need = Need::of(
                spec,
                &ti.dag_id,
                self.dag.max_active_tasks,
                &self.base.logical_date,
            );
            let Some(permit) = inner.slots.try_acquire(&need) else {
                break;
            };
            begin_try(ti, &inner.hostname);
            *next = TiState::Running;
            started.push((at, permit));
        }
        started
    }

    /// Takes in the latest row of an instance; its downstreams are looked at again.
    fn record(&mut self, ti: TaskInstanceRow) {
        self.held.remove(&ti.task_id);
        self.pending.moved(&ti.task_id);
        self.tis.insert(ti.task_id.clone(), Box::new(ti));
    }

    /// Decides the instance `instance` of `spec` if it waits and its upstreams allow it.
    fn decide_one(
        &mut self,
        spec: &TaskSpec,
        instance: &str,
        changes: &mut Vec<(TaskInstanceRow, TiState)>,
    ) {
        let Some(ti) = self
            .tis
            .get(instance)
            .filter(|ti| ti.state == TiState::Scheduled && !self.held.contains(instance))
        else {
            return;
        };
        let next = match decide_for(spec, |id| self.tis.get(id).map(|t| t.state)) {
            Decision::Wait => return,
            Decision::Run => TiState::Queued,
            Decision::Skip => TiState::Skipped,
            Decision::UpstreamFailed => TiState::UpstreamFailed,
        };
        let mut ti = TaskInstanceRow::clone(ti);
        if next != TiState::Queued {
            ti.end = Some(Utc::now());
        }
        // Later tasks of this pass decide on the new state (skips cascade in one pass).
        let mut decided = ti.clone();
        decided.state = next;
        if next != TiState::Queued {
            self.pending.moved(instance);
        }
        self.tis.insert(instance.to_owned(), Box::new(decided));
        changes.push((ti, next));
    }

    /// A queued (or retrying, or running elsewhere) instance: left to the queue, or in line
    /// to run here ([`RunDrive::start_waiting`] starts it).
    fn dispatch(&mut self, task_id: String) {
        match self.executor.dispatch() {
            Dispatch::Queue => self.remote.insert(task_id),
            Dispatch::InProcess => {
                let priority = self.dag.task(&task_id).map_or(1, |t| t.priority_weight);
                self.waited += 1;
                self.waiting.push((priority, Reverse(self.waited), task_id));
            }
        }
    }

    /// The most runners of this run at once: twice what its slots let run, so that the next
    /// try already waits for a slot when one frees (a try waiting out its retry delay counts).
    fn runners(&self) -> usize {
        let slots = self
            .executor
            .parallelism()
            .min(self.dag.max_active_tasks as usize);
        slots.max(1) * 2
    }

    /// Starts waiting instances, highest priority first, while runners are free (not once
    /// the run stops: what waits is skipped then).
    fn start_waiting(&mut self) {
        if self.stop.is_cancelled() {
            return;
        }
        while self.in_process < self.runners() {
            let Some((_, _, task_id)) = self.waiting.pop() else {
                return;
            };
            if let Some(ti) = self.tis.get(&task_id).filter(|ti| match ti.state {
                TiState::Queued | TiState::UpForRetry => true,
                TiState::Scheduled => self.held.contains(&task_id),
                _ => false,
            }) {
                let ti = TaskInstanceRow::clone(ti);
                self.spawn_runner(ti, None);
                self.in_process += 1;
            }
        }
    }

    /// Runs `ti` here: from queued (or waiting for a retry), or from running with the slots
    /// `started` took for it and the word that its move to running is written.
    fn spawn_runner(
        &self,
        ti: TaskInstanceRow,
        started: Option<(SlotPermit, oneshot::Receiver<bool>)>,
    ) {
        let Some(spec) = self.dag.task(&ti.task_id).cloned() else {
            tracing::warn!(dag_id = %ti.dag_id, task_id = %ti.task_id, "Task no longer in the DAG file; left as it is");
            let _ = self.done_tx.send(RunnerDone {
                ti,
                end_unwritten: false,
                pool_permit: None,
            });
            return;
        };
        let (permit, start_written) = started.unzip();
        // Its upstreams' results only, as on a worker.
        let upstream_results = spec
            .upstream
            .iter()
            .filter_map(|id| {
                let result = self.tis.get(id)?.result.clone()?;
                Some((id.clone(), result))
            })
            .collect();
        let runner = Runner {
            executor: self.executor.clone(),
            max_active_tasks: self.dag.max_active_tasks,
            spec,
            base: self.base.clone(),
            upstream_results,
            stop: self.stop.clone(),
            defer_end: true,
            end_deferred: Default::default(),
            slots: std::sync::Mutex::new(permit),
            start_written: std::sync::Mutex::new(start_written),
        };
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let _ = done_tx.send(runner.run(ti).await);
        });
    }

    /// Waits for the next thing that can move the run on, and takes it in.
    async fn wait(
        &mut self,
        events: &mut Option<broadcast::Receiver<StoreEvent>>,
    ) -> Result<(), ExecutorError> {
        let watching = !self.remote.is_empty();
        let recheck_at = self.remote.next_check();
        let stop_unseen = watching && !self.stop_seen;
        let wake = tokio::select! {
            Some(done) = self.done_rx.recv() => Wake::Ran(Box::new(done)),
            event = next_event(events), if watching => self.classify(event),
            _ = tokio::time::sleep_until(recheck_at), if watching => Wake::Recheck,
            _ = self.stop.cancelled(), if stop_unseen => {
                self.stop_seen = true;
                Wake::Recheck
            }
        };
        self.take(wake).await?;
        // Take in every end and event already waiting too before the next release: one pass
        // (and one commit) for a burst of ends, not one per end.
        while let Ok(done) = self.done_rx.try_recv() {
            self.take(Wake::Ran(Box::new(done))).await?;
        }
        while let Some(Ok(event)) = events.as_mut().map(broadcast::Receiver::try_recv) {
            let wake = self.classify(Ok(event));
            self.take(wake).await?;
        }
        Ok(())
    }

    async fn take(&mut self, wake: Wake) -> Result<(), ExecutorError> {
        match wake {
            Wake::Ran(done) => {
                self.in_process -= 1;
                if done.end_unwritten {
                    self.unwritten_ends.push(done.ti.clone());
                    self.unwritten_ends_slots.extend(done.pool_permit);
                }
                self.record(done.ti);
                self.start_waiting();
            }
            // The end of a try elsewhere: its event says all the driver needs.
            Wake::Moved(task_id, state, try_number) if state.is_finished() => {
                if let Some(ti) = self.tis.get_mut(&task_id) {
                    ti.state = state;
                    ti.try_number = try_number;
                }
                self.pending.moved(&task_id);
                self.remote.remove(&task_id);
            }
            // A retry: its row says when.
            Wake::Moved(task_id, _, _) => {
                if let Some(ti) = self
                    .executor
                    .store()
                    .task_instance(&self.run.dag_id, &self.run.run_id, &task_id)
                    .await?
                {
                    self.take_in(ti).await?;
                }
            }
            Wake::Recheck => self.recheck_remote().await?,
            Wake::StopAsked => self.stop.cancel(),
            Wake::Nothing => {}
        }
        Ok(())
    }

    /// Whether a store event is a move of one of this run's queued instances that matters
    /// here (it ended, or waits for a retry).
    fn classify(&self, event: Result<StoreEvent, broadcast::error::RecvError>) -> Wake {
        match event {
            Ok(StoreEvent::Task {
                dag_id,
                run_id,
                task_id,
                state,
                try_number,
            }) if (state.is_finished() || state == TiState::UpForRetry)
                && dag_id == self.run.dag_id
                && run_id == self.run.run_id
                && self.remote.contains(&task_id) =>
            {
                Wake::Moved(task_id, state, try_number)
            }
            Ok(StoreEvent::StopRequested { dag_id, run_id })
                if dag_id == self.run.dag_id && run_id == self.run.run_id =>
            {
                Wake::StopAsked
            }
            Ok(_) => Wake::Nothing,
            Err(_) => Wake::Recheck,
        }
    }

    /// Re-reads the run's rows for every instance left to the queue (one query), and whether
    /// the run was asked to stop (in case its notification was lost).
    async fn recheck_remote(&mut self) -> Result<(), ExecutorError> {
        if !self.stop.is_cancelled()
            && self
                .executor
                .store()
                .stop_requested(&self.run.key())
                .await?
        {
            self.stop.cancel();
        }
        let rows = self
            .executor
            .store()
            .task_instances(&self.run.dag_id, &self.run.run_id)
            .await?;
        for ti in rows {
            if self.remote.contains(&ti.task_id) {
                self.take_in(ti).await?;
            }
        }
        Ok(())
    }

    /// Takes in the row of an instance left to the queue: done, due for its retry, or not yet.
    async fn take_in(&mut self, mut ti: TaskInstanceRow) -> Result<(), ExecutorError> {
        let task_id = ti.task_id.clone();
        match ti.state {
            TiState::UpForRetry if self.stop.is_cancelled() => {
                ti.end = Some(Utc::now());
                self.executor.transition(&mut ti, TiState::Failed).await?;
            }
            TiState::UpForRetry => match ti.next_retry_at.filter(|at| *at > Utc::now()) {
                Some(at) => self.remote.retry_at(&task_id, at),
                None => self.executor.transition(&mut ti, TiState::Queued).await?,
            },
            _ => {}
        }
        if ti.state.is_finished() {
            self.remote.remove(&task_id);
        }
        self.record(ti);
        Ok(())
    }

    /// A stopped run: what no worker has claimed yet is skipped (a claim that came first
    /// runs on, and is waited for).
    async fn stop_queued(&mut self) -> Result<(), ExecutorError> {
        if !self.stop_told && !self.remote.is_empty() {
            // The workers running its tries cancel them.
            self.executor
                .store()
                .request_run_stop(&self.run.key())
                .await?;
            self.stop_told = true;
        }
        let queued: Vec<TaskInstanceRow> = self
            .tis
            .values()
            .filter(|ti| ti.state == TiState::Queued && self.remote.contains(&ti.task_id))
            .map(|ti| TaskInstanceRow::clone(ti))
            .collect();
        for mut ti in queued {
            ti.end = Some(Utc::now());
            match self.executor.transition(&mut ti, TiState::Skipped).await {
                Ok(()) => {
                    self.remote.remove(&ti.task_id);
                    self.record(ti);
                }
                // A worker claimed it first: it runs on, and is waited for.
                Err(ExecutorError::Store(StoreError::Lost { .. })) => {
                    if let Some(claimed) = self.tis.get_mut(&ti.task_id) {
                        claimed.state = TiState::Running;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// A stopped run: whatever has not started is skipped.
    async fn skip_waiting(&mut self) -> Result<(), ExecutorError> {
        for ti in self
            .tis
            .values_mut()
            .filter(|ti| matches!(ti.state, TiState::Scheduled | TiState::Queued))
        {
            ti.end = Some(Utc::now());
            self.executor.transition(ti, TiState::Skipped).await?;
        }
        Ok(())
    }
}

/// The next store event, or never without a subscription.
async fn next_event(
    events: &mut Option<broadcast::Receiver<StoreEvent>>,
) -> Result<StoreEvent, broadcast::error::RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// Success when every task instance finished without failing.
fn final_state(tis: &TaskInstances) -> RunState {
    let failed = tis.values().any(|ti| {
        matches!(ti.state, TiState::Failed | TiState::UpstreamFailed) || !ti.state.is_finished()
    });
    if failed {
        RunState::Failed
    } else {
        RunState::Success
    }
}
