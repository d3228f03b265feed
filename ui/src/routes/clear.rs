//! `POST /api/v1/dags/{dag_id}/clearTaskInstances`: Airflow's way to run tasks of a finished
//! run again, on Updraft's clear.

use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use crate::{
    AppState,
    auth::Principal,
    error::AppError,
    ids::RunKey,
    views::{DagDetail, RunDetail},
};

pub(super) fn api_router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/clearTaskInstances", post(clear))
}

/// Airflow's `ClearTaskInstances`, with what Updraft does with each field: one run
/// (`dag_run_id`, required), its `task_ids` and with `include_downstream` the tasks below
/// them; `only_failed` (true unless false) keeps the failed and upstream-failed ones; a
/// `dry_run` (true unless false, as in Airflow) clears nothing and answers what it would.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearTaskInstances {
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    task_ids: Vec<String>,
    #[serde(default = "yes")]
    only_failed: bool,
    #[serde(default)]
    only_running: bool,
    dag_run_id: Option<String>,
    #[serde(default)]
    include_downstream: bool,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_future: bool,
    #[serde(default)]
    include_past: bool,
    #[serde(default)]
    include_subdags: bool,
    #[serde(default)]
    include_parentdag: bool,
    /// A cleared run is always queued again, whatever this says.
    #[serde(default, rename = "reset_dag_runs")]
    _reset_dag_runs: bool,
    start_date: Option<String>,
    end_date: Option<String>,
}

fn yes() -> bool {
    true
}

/// Airflow's `TaskInstanceReference`.
#[derive(Serialize)]
struct Reference {
    task_id: String,
    dag_id: String,
    dag_run_id: String,
    execution_date: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct References {
    task_instances: Vec<Reference>,
}

fn bad(detail: impl Into<String>) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, detail)
}

impl ClearTaskInstances {
    /// The run it names, or why it cannot be done here.
    fn run_key(&self, dag_id: &str) -> Result<RunKey, AppError> {
        let unsupported = [
            ("include_upstream", self.include_upstream),
            ("include_future", self.include_future),
            ("include_past", self.include_past),
            ("include_subdags", self.include_subdags),
            ("include_parentdag", self.include_parentdag),
            ("only_running", self.only_running),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(bad(format!(
                "{field}: not supported by Updraft (leave it false)"
            )));
        }
        if self.start_date.is_some() || self.end_date.is_some() {
            return Err(bad(
                "start_date, end_date: Updraft clears one run: name it with dag_run_id",
            ));
        }
        let Some(run_id) = self.dag_run_id.as_deref() else {
            return Err(bad("dag_run_id: Updraft clears one run: name it"));
        };
        if self.task_ids.is_empty() {
            return Err(bad("task_ids: name at least one task"));
        }
        Ok(RunKey::parse(dag_id, run_id)?)
    }
}

/// The task ids the body selects in the run: its tasks, with the ones below them if asked,
/// in the DAG's order, only the failed ones when `only_failed`.
fn selected(body: &ClearTaskInstances, dag: &DagDetail, run: &RunDetail) -> Vec<String> {
    let mut wanted: Vec<String> = body.task_ids.clone();
    if body.include_downstream {
        // Tasks come in a topological order: one pass finds everything below.
        for task in &dag.tasks {
            if task.upstream.iter().any(|up| wanted.contains(up)) && !wanted.contains(&task.task_id)
            {
                wanted.push(task.task_id.clone());
            }
        }
    }
    run.task_instances
        .iter()
        .filter(|ti| wanted.contains(&ti.task_id))
        .filter(|ti| !body.only_failed || matches!(ti.state.as_str(), "failed" | "upstream_failed"))
        .map(|ti| ti.task_id.clone())
        .collect()
}

async fn clear(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    ApiJson(body): ApiJson<ClearTaskInstances>,
) -> Result<Json<References>, AppError> {
    let run_key = body.run_key(&dag_id)?;
    let dag = state.backend.dag(&run_key.dag_id).await?;
    let run = state.backend.run(&run_key).await?;
    let chosen = selected(&body, &dag, &run);
    if !body.dry_run && !chosen.is_empty() {
        let actor = principal.actor();
        state.backend.clear_tasks(&run_key, &chosen, &actor).await?;
    }
    let task_instances = chosen
        .into_iter()
        .map(|task_id| Reference {
            task_id,
            dag_id: run_key.dag_id.to_string(),
            dag_run_id: run_key.run_id.clone(),
            execution_date: run.run.logical_date,
        })
        .collect();
    Ok(Json(References { task_instances }))
}
