//! The Workers page and `GET /api/v1/workers`.

use axum::{Extension, Json, Router, extract::State, routing::get};

use crate::{
    AppState,
    auth::Principal,
    error::{AppError, PageError},
    html::Page,
    views::{
        WorkersView,
        pages::{Chrome, WorkersPage},
    },
};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/workers", get(page))
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new().route("/workers", get(api_list))
}

async fn page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Page<WorkersPage>, PageError> {
    Ok(Page(WorkersPage {
        chrome: Chrome::new(&state, &principal, "Workers"),
        view: state.backend.workers().await?,
    }))
}

async fn api_list(State(state): State<AppState>) -> Result<Json<WorkersView>, AppError> {
    Ok(Json(state.backend.workers().await?))
}
