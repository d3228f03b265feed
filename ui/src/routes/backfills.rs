//! Backfills of a DAG: the form (plan, then start), pause, resume and cancel from the DAG
//! page, and `/api/v1/dags/{dag_id}/backfills` in the shape of Airflow 3's `/backfills`.

use axum::{
    Extension, Form, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
};
use serde::Deserialize;

use super::{ApiJson, back_to};
use crate::{
    AppState,
    auth::Principal,
    backend::BackendError,
    error::{AppError, PageError},
    html::Page,
    ids::DagId,
    views::{
        BackfillAction, BackfillList, BackfillPlanView, BackfillRequest, BackfillView,
        pages::{BackfillFormView, BackfillPage, Chrome},
    },
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/dags/{dag_id}/backfill",
            get(backfill_page).post(backfill_form),
        )
        .route(
            "/dags/{dag_id}/backfills/{backfill_id}/{action}",
            axum::routing::post(change_form),
        )
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/backfills", get(api_list).post(api_create))
        .route("/dags/{dag_id}/backfills/{backfill_id}", get(api_get))
        .route(
            "/dags/{dag_id}/backfills/{backfill_id}/{action}",
            put(api_change),
        )
}

/// The backfill form as posted: `preview` plans only.
#[derive(Debug, Deserialize)]
struct BackfillFields {
    from_date: String,
    to_date: String,
    #[serde(default)]
    reprocess_behavior: String,
    #[serde(default)]
    max_active_runs: String,
    #[serde(default)]
    conf: String,
    /// The "latest first" box: present when ticked.
    #[serde(default)]
    run_backwards: Option<String>,
    #[serde(default)]
    preview: Option<String>,
}

async fn backfill_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
) -> Result<Page<BackfillPage>, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let dag = state.backend.dag(&dag_id).await?;
    Ok(Page(BackfillPage {
        chrome: Chrome::new(&state, &principal, &format!("Backfill {dag_id}")),
        form: BackfillFormView::new(&dag),
        dag,
        plan: None,
    }))
}

/// Plans (Preview) or starts a backfill; back to the DAG page once started.
async fn backfill_form(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    Form(fields): Form<BackfillFields>,
) -> Result<Response, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let dag = state.backend.dag(&dag_id).await?;
    let mut form = BackfillFormView::new(&dag);
    form.from_date = fields.from_date.clone();
    form.to_date = fields.to_date.clone();
    form.reprocess_behavior = fields.reprocess_behavior.clone();
    form.max_active_runs = fields.max_active_runs.clone();
    form.conf = fields.conf.clone();
    form.run_backwards = fields.run_backwards.is_some();
    let dry_run = fields.preview.is_some();
    let mut plan = None;
    match form.request(dry_run) {
        Ok(request) => match state
            .backend
            .backfill(&dag_id, request, &principal.actor())
            .await
        {
            Ok(_) if !dry_run => {
                return Ok(
                    back_to(Some(&format!("/dags/{dag_id}#backfills")), "/dags").into_response()
                );
            }
            Ok(planned) => plan = Some(planned),
            Err(BackendError::Invalid { field, message }) => form.add_error(&field, message),
            Err(BackendError::Conflict(message)) => form.add_error("to_date", message),
            Err(other) => return Err(other.into()),
        },
        Err((field, message)) => form.add_error(&field, message),
    }
    let status = if form.has_errors() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = BackfillPage {
        chrome: Chrome::new(&state, &principal, &format!("Backfill {dag_id}")),
        form,
        dag,
        plan,
    };
    Ok((status, Page(page)).into_response())
}

/// Pause, resume (unpause) or cancel from the DAG page.
async fn change_form(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, backfill_id, action)): Path<(String, i64, String)>,
) -> Result<Response, PageError> {
    let dag_id = DagId::parse(&dag_id)?;
    let action = parse_action(&action)?;
    state
        .backend
        .change_backfill(&dag_id, backfill_id, action, &principal.actor())
        .await?;
    Ok(back_to(Some(&format!("/dags/{dag_id}#backfills")), "/dags").into_response())
}

fn parse_action(text: &str) -> Result<BackfillAction, BackendError> {
    match text {
        "pause" => Ok(BackfillAction::Pause),
        "unpause" | "resume" => Ok(BackfillAction::Unpause),
        "cancel" => Ok(BackfillAction::Cancel),
        other => Err(BackendError::NotFound(format!(
            "no backfill action {other:?}: use pause, unpause or cancel"
        ))),
    }
}

async fn api_list(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<BackfillList>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    let backfills = state.backend.backfills(&dag_id).await?;
    Ok(Json(BackfillList {
        total_entries: backfills.len(),
        backfills,
    }))
}

async fn api_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(dag_id): Path<String>,
    ApiJson(request): ApiJson<BackfillRequest>,
) -> Result<Json<BackfillPlanView>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    let plan = state
        .backend
        .backfill(&dag_id, request, &principal.actor())
        .await?;
    Ok(Json(plan))
}

async fn api_get(
    State(state): State<AppState>,
    Path((dag_id, backfill_id)): Path<(String, i64)>,
) -> Result<Json<BackfillView>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    state
        .backend
        .backfills(&dag_id)
        .await?
        .into_iter()
        .find(|b| b.id == backfill_id)
        .map(Json)
        .ok_or_else(|| {
            BackendError::NotFound(format!("DAG {dag_id} has no backfill {backfill_id}")).into()
        })
}

async fn api_change(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((dag_id, backfill_id, action)): Path<(String, i64, String)>,
) -> Result<Json<BackfillView>, AppError> {
    let dag_id = DagId::parse(&dag_id)?;
    let action = parse_action(&action)?;
    let backfill = state
        .backend
        .change_backfill(&dag_id, backfill_id, action, &principal.actor())
        .await?;
    Ok(Json(backfill))
}
