//! The Audit page and `GET /api/v1/eventLogs` (admins only: see `auth::required_role`).

use axum::{Extension, Json, Router, extract::State, http::StatusCode, routing::get};

use super::ApiQuery;
use crate::{
    AppState,
    auth::Principal,
    error::{AppError, PageError},
    html::Page,
    views::{
        EventLogList, EventLogQuery,
        pages::{AuditPage, Chrome},
    },
};

/// Rows of a page of the Audit page.
const PAGE_ROWS: u32 = 50;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/audit", get(page))
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new().route("/eventLogs", get(api_list))
}

/// A query parameter that cannot be used answers 400 naming it, as a malformed one does.
fn check(query: &EventLogQuery) -> Result<(), AppError> {
    query
        .newest_first()
        .map(|_| ())
        .map_err(|message| AppError::new(StatusCode::BAD_REQUEST, message))
}

async fn page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(mut query): ApiQuery<EventLogQuery>,
) -> Result<Page<AuditPage>, PageError> {
    check(&query)?;
    query.limit = Some(query.limit.unwrap_or(PAGE_ROWS).min(500));
    query.order_by.get_or_insert_with(|| "-event_log_id".into());
    let list = state.backend.event_logs(&query).await?;
    Ok(Page(AuditPage {
        chrome: Chrome::new(&state, &principal, "Audit log"),
        list,
        query,
    }))
}

async fn api_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventLogQuery>,
) -> Result<Json<EventLogList>, AppError> {
    check(&query)?;
    Ok(Json(state.backend.event_logs(&query).await?))
}
