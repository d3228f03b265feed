//! One module per resource, each with its page and `/api/v1` handlers side by side.

mod audit;
mod backfills;
mod clear;
mod dags;
mod live;
mod pools;
mod runs;
mod session;
mod streams;
mod tasks;
mod workers;

use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, State},
    response::Redirect,
    routing::get,
};

use crate::{AppState, assets, error::AppError, views::HealthView};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dags") }))
        .route("/health", get(health))
        .route("/static/{name}", get(assets::serve))
        .merge(session::router())
        .merge(audit::router())
        .merge(dags::router())
        .merge(backfills::router())
        .merge(runs::router())
        .merge(tasks::router())
        .merge(live::router())
        .merge(streams::router())
        .merge(workers::router())
        .merge(pools::router())
        .nest("/api/v1", api_router())
}

fn api_router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .merge(audit::api_router())
        .merge(clear::api_router())
        .merge(dags::api_router())
        .merge(backfills::api_router())
        .merge(runs::api_router())
        .merge(tasks::api_router())
        .merge(streams::api_router())
        .merge(workers::api_router())
        .merge(pools::api_router())
        .fallback(|| async {
            AppError::new(axum::http::StatusCode::NOT_FOUND, "no such API endpoint")
        })
}

/// Airflow's `VersionInfo`: Updraft's version (`git_version` unknown).
async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "git_version": null,
    }))
}

async fn health(State(state): State<AppState>) -> Json<HealthView> {
    Json(state.backend.health().await)
}

/// `Json` whose rejections answer `{status, title, detail}`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub(crate) struct ApiJson<T>(pub T);

/// `Query` whose rejections answer `{type, title, status, detail}`; a repeated parameter
/// (`state=a&state=b`) fills a list, as Airflow's clients send them.
#[derive(FromRequestParts)]
#[from_request(via(axum_extra::extract::Query), rejection(AppError))]
pub(crate) struct ApiQuery<T>(pub T);

/// Where a form goes back to: a path of this site from the `next` field, else `fallback`.
pub(crate) fn back_to(next: Option<&str>, fallback: &str) -> Redirect {
    match next {
        Some(path) if is_local_path(path) => Redirect::to(path),
        _ => Redirect::to(fallback),
    }
}

/// Whether a redirect to `path` stays on this site: one leading `/`, then not `/` or `\`
/// (browsers read `//host` and `/\host` as another host), and no backslash or control
/// character anywhere (browsers drop tabs and newlines, so `/<TAB>/host` becomes `//host`).
fn is_local_path(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(|rest| !rest.starts_with(['/', '\\']))
        && !path.chars().any(|c| c == '\\' || c.is_control())
}
