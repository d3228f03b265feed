//! Backfills for the web UI and the REST API: the commands the CLI runs, in the views' shapes.

use ui::{
    BackendResult, DagId,
    views::{
        Actor, BackfillAction, BackfillDateView, BackfillPlanView, BackfillProgressView,
        BackfillRequest, BackfillView,
    },
};

use super::{WebBackend, command_error, internal};
use crate::{commands, store::BackfillRow};

impl WebBackend {
    pub(super) async fn plan_backfill(
        &self,
        dag_id: &DagId,
        request: BackfillRequest,
        actor: &Actor,
    ) -> BackendResult<BackfillPlanView> {
        let dag = self.dag(dag_id)?;
        let dry_run = request.dry_run;
        let outcome = commands::backfill(&self.store, &dag, request, actor)
            .await
            .map_err(command_error)?;
        let dates: Vec<BackfillDateView> = outcome
            .dates
            .into_iter()
            .map(|date| BackfillDateView {
                logical_date: date.logical_date,
                action: if date.skip.is_some() { "skip" } else { "run" }.into(),
                reason: date.skip,
            })
            .collect();
        Ok(BackfillPlanView {
            dry_run,
            total_entries: dates.len(),
            runs: dates.iter().filter(|d| d.reason.is_none()).count(),
            dates,
            backfill: outcome.backfill.map(backfill_view),
        })
    }

    pub(super) async fn dag_backfills(&self, dag_id: &DagId) -> BackendResult<Vec<BackfillView>> {
        let backfills = self
            .store
            .backfills_of(dag_id.as_str())
            .await
            .map_err(internal)?;
        Ok(backfills.into_iter().map(backfill_view).collect())
    }

    pub(super) async fn change_dag_backfill(
        &self,
        dag_id: &DagId,
        backfill_id: i64,
        action: BackfillAction,
        actor: &Actor,
    ) -> BackendResult<BackfillView> {
        let backfill = commands::change_backfill(
            &self.store,
            backfill_id,
            Some(dag_id.as_str()),
            action,
            actor,
        )
        .await
        .map_err(command_error)?;
        Ok(backfill_view(backfill))
    }
}

fn backfill_view(backfill: BackfillRow) -> BackfillView {
    let p = backfill.progress;
    BackfillView {
        state: backfill.state().into(),
        id: backfill.id,
        dag_id: backfill.dag_id,
        from_date: backfill.from,
        to_date: backfill.to,
        dag_run_conf: backfill.conf,
        is_paused: backfill.is_paused,
        reprocess_behavior: backfill.reprocess,
        max_active_runs: backfill.max_active_runs,
        run_backwards: backfill.run_backwards,
        created_at: backfill.created_at,
        completed_at: backfill.completed_at,
        created_by: backfill.created_by,
        progress: BackfillProgressView {
            total: p.total,
            queued: p.queued,
            running: p.running,
            success: p.success,
            failed: p.failed,
            stopped: p.stopped,
        },
    }
}
