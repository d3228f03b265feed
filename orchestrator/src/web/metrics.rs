//! `GET /metrics`: Prometheus text exposition, behind an optional bearer token.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{executor::Executor, store::Store, telemetry};

#[derive(Clone)]
struct Scrape {
    store: Store,
    executor: Option<Executor>,
    token: Option<String>,
    public_read: bool,
}

/// The `/metrics` route (the process records observations from now on); with `token`,
/// a scrape must send `Authorization: Bearer <token>`; without one it is open only where
/// reading is public (`public_read`), as the UI's pages are.
pub fn router(
    store: Store,
    executor: Option<Executor>,
    token: Option<String>,
    public_read: bool,
) -> Router {
    telemetry::start_recording();
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape {
            store,
            executor,
            token: token.filter(|t| !t.is_empty()),
            public_read,
        })
}

async fn metrics(State(scrape): State<Scrape>, headers: HeaderMap) -> Response {
    if scrape.token.is_none() && !scrape.public_read {
        return (
            StatusCode::UNAUTHORIZED,
            "reading is private here (--public-read false): give serve --metrics-token and scrape with it\n",
        )
            .into_response();
    }
    if let Some(expected) = &scrape.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is needed for /metrics\n",
            )
                .into_response();
        }
    }
    match telemetry::render(&scrape.store, scrape.executor.as_ref()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "Cannot render /metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
