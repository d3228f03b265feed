//! Pools: the Pools page and `/api/v1/pools` (Airflow's shape).

use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};

use super::ApiJson;
use crate::{
    AppState,
    auth::Principal,
    backend::BackendError,
    error::{AppError, PageError},
    html::Page,
    views::{
        PoolForm, PoolList, PoolView,
        pages::{Chrome, PoolsPage},
    },
};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/pools", get(pools_page))
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/pools", get(api_list).post(api_create))
        .route(
            "/pools/{name}",
            get(api_get).patch(api_patch).delete(api_delete),
        )
}

async fn pools_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Page<PoolsPage>, PageError> {
    Ok(Page(PoolsPage {
        chrome: Chrome::new(&state, &principal, "Pools"),
        pools: state.backend.pools().await?,
    }))
}

async fn api_list(State(state): State<AppState>) -> Result<Json<PoolList>, AppError> {
    let pools = state.backend.pools().await?;
    Ok(Json(PoolList {
        total_entries: pools.len(),
        pools,
    }))
}

async fn find(state: &AppState, name: &str) -> Result<PoolView, BackendError> {
    state
        .backend
        .pools()
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| BackendError::NotFound(format!("no pool {name:?}")))
}

async fn api_get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PoolView>, AppError> {
    Ok(Json(find(&state, &name).await?))
}

async fn api_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(form): ApiJson<PoolForm>,
) -> Result<Json<PoolView>, AppError> {
    let name = form
        .name
        .ok_or_else(|| BackendError::invalid("name", "a pool needs a name"))?;
    let slots = form
        .slots
        .ok_or_else(|| BackendError::invalid("slots", "a pool needs its slots"))?;
    let pool = state
        .backend
        .set_pool(
            &name,
            slots,
            form.description.as_deref(),
            &principal.actor(),
        )
        .await?;
    Ok(Json(pool))
}

/// Changes the slots and/or description of an existing pool.
async fn api_patch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(form): ApiJson<PoolForm>,
) -> Result<Json<PoolView>, AppError> {
    if form.name.as_ref().is_some_and(|n| *n != name) {
        return Err(BackendError::invalid("name", "a pool cannot be renamed").into());
    }
    let existing = find(&state, &name).await?;
    let pool = state
        .backend
        .set_pool(
            &name,
            form.slots.unwrap_or(existing.slots),
            form.description.as_deref(),
            &principal.actor(),
        )
        .await?;
    Ok(Json(pool))
}

async fn api_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    state.backend.delete_pool(&name, &principal.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
