//! Drives one DAG run: starts every task the moment its upstreams allow it (an event from the
//! finishing task, not a polling tick) and records the run's end.

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Decision, Executor, ExecutorError, decide, runner::Runner};
use crate::{
    dag::{Dag, TemplateContext},
    store::{DagRunRow, RunState, TaskInstanceRow, TiState},
};

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run ended in this state (recorded in the store).
    Finished(RunState),
    /// Shutdown came first: the run stays `running` and is resumed on the next start.
    Interrupted,
}

type TaskInstances = HashMap<String, TaskInstanceRow>;

impl Executor {
    /// Drives a run that this process owns (state `running`) until it ends or shutdown.
    pub async fn drive_run(
        &self,
        dag: Arc<Dag>,
        run: DagRunRow,
    ) -> Result<RunOutcome, ExecutorError> {
        let key = run.key();
        let stop = self.inner.shutdown.child_token();
        self.inner
            .active_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), stop.clone());
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, "Run started");
        let outcome = self.drive(&dag, &run, &stop).await;
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
    ) -> Result<RunOutcome, ExecutorError> {
        let mut tis: TaskInstances = self
            .store()
            .task_instances(&run.dag_id, &run.run_id)
            .await?
            .into_iter()
            .map(|ti| (ti.task_id.clone(), ti))
            .collect();
        let base = Arc::new(TemplateContext::for_run(
            dag,
            &run.run_id,
            run.logical_date,
            &run.conf,
        ));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<TaskInstanceRow>();
        let mut in_flight = 0usize;
        for ti in tis
            .values()
            .filter(|ti| matches!(ti.state, TiState::Queued | TiState::UpForRetry))
        {
            self.spawn_runner(dag, ti.clone(), &tis, &base, stop, &done_tx);
            in_flight += 1;
        }
        loop {
            if !stop.is_cancelled() {
                in_flight += self
                    .release_ready(dag, &mut tis, &base, stop, &done_tx)
                    .await?;
            }
            if in_flight == 0 {
                break;
            }
            let Some(ti) = done_rx.recv().await else {
                break;
            };
            in_flight -= 1;
            tis.insert(ti.task_id.clone(), ti);
        }
        if self.is_shutting_down() {
            return Ok(RunOutcome::Interrupted);
        }
        let state = if stop.is_cancelled() {
            self.skip_waiting(&mut tis).await?;
            RunState::Stopped
        } else {
            final_state(&tis)
        };
        self.store()
            .finish_run(&run.key(), self.owner(), state)
            .await?;
        Ok(RunOutcome::Finished(state))
    }

    /// Starts (or skips, or fails) every waiting task whose upstreams have decided its fate;
    /// returns how many runners it started. One pass in topological order cascades.
    async fn release_ready(
        &self,
        dag: &Arc<Dag>,
        tis: &mut TaskInstances,
        base: &Arc<TemplateContext>,
        stop: &CancellationToken,
        done_tx: &mpsc::UnboundedSender<TaskInstanceRow>,
    ) -> Result<usize, ExecutorError> {
        let mut changes: Vec<(TaskInstanceRow, TiState)> = Vec::new();
        for spec in &dag.tasks {
            let Some(ti) = tis
                .get(&spec.id)
                .filter(|ti| ti.state == TiState::Scheduled)
            else {
                continue;
            };
            let upstream: Vec<TiState> = spec
                .upstream
                .iter()
                .filter_map(|id| tis.get(id).map(|t| t.state))
                .collect();
            let next = match decide(spec.trigger_rule, &upstream) {
                Decision::Wait => continue,
                Decision::Run => TiState::Queued,
                Decision::Skip => TiState::Skipped,
                Decision::UpstreamFailed => TiState::UpstreamFailed,
            };
            let mut ti = ti.clone();
            if next != TiState::Queued {
                ti.end = Some(Utc::now());
            }
            // Later tasks of this pass decide on the new state (skips cascade in one pass).
            let mut decided = ti.clone();
            decided.state = next;
            tis.insert(spec.id.clone(), decided);
            changes.push((ti, next));
        }
        // Written together: the state writer commits them in one transaction.
        let written = futures::future::join_all(
            changes
                .iter_mut()
                .map(|(ti, next)| self.transition(ti, *next)),
        )
        .await;
        written.into_iter().collect::<Result<Vec<()>, _>>()?;
        let mut started = 0;
        for (ti, next) in changes {
            tis.insert(ti.task_id.clone(), ti.clone());
            if next == TiState::Queued {
                self.spawn_runner(dag, ti, tis, base, stop, done_tx);
                started += 1;
            }
        }
        Ok(started)
    }

    fn spawn_runner(
        &self,
        dag: &Arc<Dag>,
        ti: TaskInstanceRow,
        tis: &TaskInstances,
        base: &Arc<TemplateContext>,
        stop: &CancellationToken,
        done_tx: &mpsc::UnboundedSender<TaskInstanceRow>,
    ) {
        let Some(spec) = dag.task(&ti.task_id).cloned() else {
            tracing::warn!(dag_id = %ti.dag_id, task_id = %ti.task_id, "Task no longer in the DAG file; left as it is");
            let _ = done_tx.send(ti);
            return;
        };
        let upstream_results = tis
            .values()
            .filter_map(|t| t.result.clone().map(|r| (t.task_id.clone(), r)))
            .collect();
        let runner = Runner {
            executor: self.clone(),
            slots: self.dag_slots(&dag.id, dag.max_active_tasks),
            spec,
            base: base.clone(),
            upstream_results,
            stop: stop.clone(),
        };
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let ti = runner.run(ti).await;
            let _ = done_tx.send(ti);
        });
    }

    /// A stopped run: whatever has not started is skipped.
    async fn skip_waiting(&self, tis: &mut TaskInstances) -> Result<(), ExecutorError> {
        for ti in tis
            .values_mut()
            .filter(|ti| matches!(ti.state, TiState::Scheduled | TiState::Queued))
        {
            ti.end = Some(Utc::now());
            self.transition(ti, TiState::Skipped).await?;
        }
        Ok(())
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
