//! The DAG list, one DAG's page (grid, graph, runs, source), pause and trigger.

use axum::{
    Extension, Form, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use super::{ApiJson, ApiQuery, back_to};
use crate::{
    AppState,
    auth::Principal,
    backend::BackendError,
    error::{AppError, PageError},
    html::{Page, PlainText},
    ids::DagId,
    views::{
        DagDetail, DagList, DagQuery, DagSummary, DagVersionList, ImportErrorView, Paging,
        RunQuery,
        pages::{
            Chrome, DagLive, DagLiveView, DagPage, DagRows, DagRowsView, DagsPage,
            GRID_TASKS_PER_PAGE, ImportErrorsPage, SourceText, TriggerForm, TriggerPage,
        },
    },
};

/// Runs in the grid and the run history by default.
const GRID_RUNS: usize = 25;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(list_page))
        .route("/dags/rows", get(list_rows))
        .route("/import-errors", get(import_errors_page))
        .route("/dags/{dag_id}", get(dag_page))
        .route("/dags/{dag_id}/live", get(dag_live))
        .route("/dags/{dag_id}/source", get(dag_source))
        .route("/dags/{dag_id}/pause", axum::routing::post(pause))
        .route("/dags/{dag_id}/trigger", get(trigger_page).post(trigger))
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(api_list))
        .route("/dags/{dag_id}", get(api_get).patch(api_patch))
        .route("/dags/{dag_id}/dagVersions", get(api_versions))
        .route("/importErrors", get(api_import_errors))
}

async fn list_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<DagQuery>,
) -> Result<Page<DagsPage>, PageError> {
    let chrome = Chrome::new(&state, &principal, "DAGs");
    let list = state.backend.dags(&query).await?;
    Ok(Page(DagsPage {
        chrome,
        rows: DagRowsView::new(list, &query, &principal),
    }))
}

/// The rows of the list alone, swapped in by the page when a state changes.
async fn list_rows(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<DagQuery>,
) -> Result<Page<DagRows>, PageError> {
    let list = state.backend.dags(&query).await?;
    Ok(Page(DagRows {
        rows: DagRowsView::new(list, &query, &principal),
    }))
}

async fn import_errors_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Page<ImportErrorsPage>, PageError> {
    Ok(Page(ImportErrorsPage {
        chrome: Chrome::new(&state, &principal, "Import errors"),
        errors: state.backend.import_errors().await?,
    }))
}

/// What the DAG page shows: the grid page, the selected run, the history filters.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct DagPageQuery {
    /// Show runs before this logical date (RFC 3339) in the grid.
    pub before: Option<String>,
    /// The run whose states colour the graph.
    pub run: Option<String>,
    pub state: Option<String>,
    pub run_type: Option<String>,
    pub offset: Option<u32>,
    /// The page of the grid's task rows, from 1.
    pub task_page: Option<usize>,
}

async fn dag_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    ApiQuery(query): ApiQuery<DagPageQuery>,
) -> Result<Page<DagPage>, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let chrome = Chrome::new(&state, &principal, &dag_id.to_string());
    let mut detail = state.backend.dag(&dag_id).await?;
    let live = dag_live_view(&state, &principal, &detail, query).await?;
    let source = SourceText {
        text: std::mem::take(&mut detail.source),
        href: format!("/dags/{dag_id}/source"),
    };
    Ok(Page(DagPage {
        chrome,
        source,
        dag: detail,
        live,
    }))
}

/// The DAG file's text as plain text: its page links it when it is too long to show.
async fn dag_source(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<PlainText, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    Ok(PlainText(state.backend.dag(&dag_id).await?.source))
}

async fn dag_live(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    ApiQuery(query): ApiQuery<DagPageQuery>,
) -> Result<Page<DagLive>, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let detail = state.backend.dag(&dag_id).await?;
    let live = dag_live_view(&state, &principal, &detail, query).await?;
    Ok(Page(DagLive { live }))
}

async fn dag_live_view(
    state: &AppState,
    principal: &Principal,
    detail: &DagDetail,
    query: DagPageQuery,
) -> Result<DagLiveView, BackendError> {
    let dag_id = DagId::parse(&detail.summary.dag_id)?;
    let task_paging = Paging::of(detail.tasks.len(), GRID_TASKS_PER_PAGE, query.task_page);
    let grid = state
        .backend
        .grid(&dag_id, query.before.as_deref(), GRID_RUNS, task_paging)
        .await?;
    let run_query = RunQuery {
        state: query
            .state
            .clone()
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
        run_type: query.run_type.clone().filter(|s| !s.is_empty()),
        limit: Some(GRID_RUNS as u32),
        offset: query.offset,
        ..RunQuery::default()
    };
    let history = state.backend.runs(&dag_id, &run_query).await?;
    let selected = query
        .run
        .clone()
        .or_else(|| grid.runs.last().map(|r| r.run_id.clone()));
    let mut live = DagLiveView::new(
        detail,
        grid,
        history,
        run_query,
        selected,
        query.before,
        principal,
    );
    live.backfills = state.backend.backfills(&dag_id).await?;
    Ok(live)
}

#[derive(Deserialize)]
struct PauseForm {
    paused: bool,
    next: Option<String>,
}

async fn pause(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    Form(form): Form<PauseForm>,
) -> Result<Response, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    state
        .backend
        .set_paused(&dag_id, form.paused, &principal.actor())
        .await?;
    Ok(back_to(form.next.as_deref(), &format!("/dags/{dag_id}")).into_response())
}

async fn trigger_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
) -> Result<Page<TriggerPage>, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let dag = state.backend.dag(&dag_id).await?;
    Ok(Page(TriggerPage {
        chrome: Chrome::new(&state, &principal, &format!("Trigger {dag_id}")),
        form: TriggerForm::defaults(&dag),
        dag,
    }))
}

/// The trigger form: `param.<name>` fields and the `conf` JSON editor.
async fn trigger(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let dag = state.backend.dag(&dag_id).await?;
    let mut form = TriggerForm::submitted(&dag, &fields);
    if let Some(conf) = form.conf() {
        match state
            .backend
            .trigger(&dag_id, conf, &principal.actor())
            .await
        {
            Ok(run) => {
                let to = format!("/dags/{dag_id}/runs/{}", run.run_id);
                return Ok(back_to(Some(&to), "/dags").into_response());
            }
            Err(BackendError::Invalid { field, message }) => form.add_error(&field, message),
            Err(other) => return Err(other.into()),
        }
    }
    let page = TriggerPage {
        chrome: Chrome::new(&state, &principal, &format!("Trigger {dag_id}")),
        form,
        dag,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Page(page)).into_response())
}

async fn api_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DagQuery>,
) -> Result<Json<DagList>, AppError> {
    Ok(Json(state.backend.dags(&query).await?))
}

async fn api_versions(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<DagVersionList>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    let dag_versions = state.backend.dag_versions(&dag_id).await?;
    Ok(Json(DagVersionList {
        total_entries: dag_versions.len(),
        dag_versions,
    }))
}

async fn api_get(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<DagDetail>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    Ok(Json(state.backend.dag(&dag_id).await?))
}

/// Airflow's `DAG` as a PATCH body: `is_paused` is the one field that can change (the others
/// are read-only there and ignored, as Airflow ignores them).
#[derive(Deserialize)]
struct DagPatch {
    is_paused: Option<bool>,
}

/// `update_mask`: the fields the PATCH changes (Airflow's; only `is_paused` here).
#[derive(Deserialize, Default)]
#[serde(default)]
struct PatchQuery {
    update_mask: Option<String>,
}

async fn api_patch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    ApiQuery(query): ApiQuery<PatchQuery>,
    ApiJson(patch): ApiJson<DagPatch>,
) -> Result<Json<DagSummary>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    let masked = query.update_mask.as_deref().unwrap_or("is_paused");
    if let Some(other) = masked.split(',').map(str::trim).find(|f| *f != "is_paused") {
        let detail = format!("update_mask: {other:?} cannot change; only is_paused can");
        return Err(AppError::new(StatusCode::BAD_REQUEST, detail));
    }
    let Some(is_paused) = patch.is_paused else {
        let detail = "is_paused: the body needs it (the one field that can change)";
        return Err(AppError::new(StatusCode::BAD_REQUEST, detail));
    };
    let summary = state
        .backend
        .set_paused(&dag_id, is_paused, &principal.actor())
        .await?;
    Ok(Json(summary))
}

#[derive(serde::Serialize)]
struct ImportErrorList {
    import_errors: Vec<ImportErrorView>,
    total_entries: usize,
}

async fn api_import_errors(
    State(state): State<AppState>,
) -> Result<Json<ImportErrorList>, AppError> {
    let import_errors = state.backend.import_errors().await?;
    Ok(Json(ImportErrorList {
        total_entries: import_errors.len(),
        import_errors,
    }))
}
