//! DAG runs: the run page, trigger and stop through the API, clear and mark task instances.

use axum::{
    Extension, Form, Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize, de::IgnoredAny};

use super::{ApiJson, ApiQuery, back_to};
use crate::{
    AppState,
    auth::Principal,
    backend::BackendError,
    error::{AppError, PageError},
    html::{Page, PlainText},
    ids::{DagId, RunKey, TaskKey},
    views::{
        ListDagRunsForm, ListTaskInstanceForm, Mark, RunList, RunQuery, RunView, TaskInstanceList,
        TaskInstanceQuery, TaskInstanceView,
        pages::{Chrome, RunLive, RunLiveView, RunPage, RunPageQuery, VersionPanel},
    },
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/runs/{run_id}", get(run_page))
        .route("/dags/{dag_id}/runs/{run_id}/live", get(run_live))
        .route("/dags/{dag_id}/runs/{run_id}/source", get(run_source))
        .route("/dags/{dag_id}/runs/{run_id}/stop", post(stop))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear",
            post(clear),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            post(mark),
        )
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/dagRuns", get(api_list).post(api_trigger))
        .route("/dags/~/dagRuns/list", post(api_list_batch))
        .route(
            "/dags/~/dagRuns/~/taskInstances/list",
            post(api_task_instances_batch),
        )
        .route("/dags/{dag_id}/dagRuns/{run_id}", get(api_get))
        .route("/dags/{dag_id}/dagRuns/{run_id}/stop", post(api_stop))
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            get(api_task_instances),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            axum::routing::patch(api_mark),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/clear",
            post(api_clear),
        )
}

async fn run_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<RunPageQuery>,
) -> Result<Page<RunPage>, PageError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    let chrome = Chrome::new(&state, &principal, &format!("{dag_id} · {run_id}"));
    let rows = state
        .backend
        .run_rows(&key, &RunLiveView::wanted(&query))
        .await?;
    let live = RunLiveView::new(rows, &principal, query);
    let version = state.backend.run_dag_version(&key).await?;
    Ok(Page(RunPage {
        chrome,
        version: version.map(|v| VersionPanel::new(v, &dag_id, &live.base())),
        live,
    }))
}

/// The DAG file as the run was created, as plain text: the run page links it when it is too
/// long to show.
async fn run_source(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<PlainText, PageError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    match state.backend.run_dag_version(&key).await? {
        Some(version) => Ok(PlainText(version.source)),
        None => Err(BackendError::NotFound(format!(
            "run {run_id:?} of DAG {dag_id} was created before DAG versions were kept: its DAG file is not stored"
        ))
        .into()),
    }
}

async fn run_live(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<RunPageQuery>,
) -> Result<Page<RunLive>, PageError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    let rows = state
        .backend
        .run_rows(&key, &RunLiveView::wanted(&query))
        .await?;
    Ok(Page(RunLive {
        live: RunLiveView::new(rows, &principal, query),
    }))
}

fn run_path(key: &RunKey) -> String {
    format!("/dags/{}/runs/{}", key.dag_id, key.run_id)
}

async fn stop(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    state.backend.stop_run(&key, &principal.actor()).await?;
    Ok(back_to(Some(&run_path(&key)), "/dags").into_response())
}

#[derive(Deserialize)]
struct ClearForm {
    /// Present (checkbox) to clear the downstream tasks too.
    downstream: Option<String>,
}

async fn clear(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Form(form): Form<ClearForm>,
) -> Result<Response, PageError> {
    let key = TaskKey::parse(&dag_id, &run_id, &task_id)?;
    state
        .backend
        .clear_task(&key, form.downstream.is_some(), &principal.actor())
        .await?;
    Ok(back_to(Some(&run_path(&key.run)), "/dags").into_response())
}

#[derive(Deserialize)]
struct MarkForm {
    state: Mark,
}

async fn mark(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Form(form): Form<MarkForm>,
) -> Result<Response, PageError> {
    let key = TaskKey::parse(&dag_id, &run_id, &task_id)?;
    state
        .backend
        .mark_task(&key, form.state, &principal.actor())
        .await?;
    Ok(back_to(Some(&run_path(&key.run)), "/dags").into_response())
}

async fn api_list(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> Result<Json<RunList>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    Ok(Json(state.backend.runs(&dag_id, &query).await?))
}

/// `POST /dags/~/dagRuns/list`: runs of several DAGs, filtered and paged by the form.
async fn api_list_batch(
    State(state): State<AppState>,
    ApiJson(form): ApiJson<ListDagRunsForm>,
) -> Result<Json<RunList>, AppError> {
    let (dag_ids, query) = form.into_query();
    Ok(Json(state.backend.runs_of(&dag_ids, &query).await?))
}

/// Airflow's `DAGRun` as a trigger's body: `conf` (and a `note`, not kept). Its read-only
/// fields are ignored as Airflow ignores them; a run id, logical date or data interval of the
/// caller's choosing is refused (Updraft names and dates manual runs itself). A field that is
/// not `DAGRun`'s is refused naming it (a typo'd `config` would otherwise trigger without
/// its conf).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    conf: serde_json::Map<String, serde_json::Value>,
    dag_run_id: Option<String>,
    logical_date: Option<String>,
    execution_date: Option<String>,
    data_interval_start: Option<String>,
    data_interval_end: Option<String>,
    #[serde(rename = "note")]
    _note: Option<IgnoredAny>,
    #[serde(rename = "dag_id")]
    _dag_id: Option<IgnoredAny>,
    #[serde(rename = "start_date")]
    _start_date: Option<IgnoredAny>,
    #[serde(rename = "end_date")]
    _end_date: Option<IgnoredAny>,
    #[serde(rename = "last_scheduling_decision")]
    _last_scheduling_decision: Option<IgnoredAny>,
    #[serde(rename = "run_type")]
    _run_type: Option<IgnoredAny>,
    #[serde(rename = "state")]
    _state: Option<IgnoredAny>,
    #[serde(rename = "external_trigger")]
    _external_trigger: Option<IgnoredAny>,
}

async fn api_trigger(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> Result<Json<RunView>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    let chosen = [
        ("dag_run_id", &body.dag_run_id),
        ("logical_date", &body.logical_date),
        ("execution_date", &body.execution_date),
        ("data_interval_start", &body.data_interval_start),
        ("data_interval_end", &body.data_interval_end),
    ];
    if let Some((field, _)) = chosen.iter().find(|(_, value)| value.is_some()) {
        let detail = format!("{field}: Updraft names and dates manual runs itself; leave it out");
        return Err(AppError::new(axum::http::StatusCode::BAD_REQUEST, detail));
    }
    let run = state
        .backend
        .trigger(&dag_id, body.conf, &principal.actor())
        .await?;
    Ok(Json(run))
}

async fn api_get(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<Json<RunView>, AppError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    Ok(Json(state.backend.get_run(&key).await?))
}

async fn api_stop(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<Json<RunView>, AppError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    Ok(Json(
        state.backend.stop_run(&key, &principal.actor()).await?,
    ))
}

/// The task instances of a run, filtered and paged by Airflow's parameters (404 for a run
/// that does not exist).
async fn api_task_instances(
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TaskInstanceQuery>,
) -> Result<Json<TaskInstanceList>, AppError> {
    let key = RunKey::parse(&dag_id, &run_id)?;
    state.backend.get_run(&key).await?;
    let form = query.within(key.dag_id.as_str(), &key.run_id);
    Ok(Json(state.backend.find_task_instances(&form).await?))
}

/// `POST /dags/~/dagRuns/~/taskInstances/list`: task instances across DAGs and runs.
async fn api_task_instances_batch(
    State(state): State<AppState>,
    ApiJson(form): ApiJson<ListTaskInstanceForm>,
) -> Result<Json<TaskInstanceList>, AppError> {
    Ok(Json(state.backend.find_task_instances(&form).await?))
}

/// Airflow's `UpdateTaskInstance`. `dry_run` answers without marking when true; left out, the
/// task is marked (Airflow's default is a dry run: Updraft's API marked before it took the
/// field, and its callers send `new_state` alone).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkBody {
    new_state: Mark,
    #[serde(default)]
    dry_run: bool,
}

async fn api_mark(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<MarkBody>,
) -> Result<Json<TaskInstanceView>, AppError> {
    let key = TaskKey::parse(&dag_id, &run_id, &task_id)?;
    if !body.dry_run {
        state
            .backend
            .mark_task(&key, body.new_state, &principal.actor())
            .await?;
    }
    Ok(Json(state.backend.task_instance(&key).await?))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ClearBody {
    include_downstream: bool,
}

#[derive(Serialize)]
struct Cleared {
    task_ids: Vec<String>,
}

async fn api_clear(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<ClearBody>,
) -> Result<Json<Cleared>, AppError> {
    let key = TaskKey::parse(&dag_id, &run_id, &task_id)?;
    let task_ids = state
        .backend
        .clear_task(&key, body.include_downstream, &principal.actor())
        .await?;
    Ok(Json(Cleared { task_ids }))
}
