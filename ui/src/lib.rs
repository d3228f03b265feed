//! Updraft's web UI and REST API. For now: health and the DAG list as JSON; the pages come
//! with the web UI issue. The orchestrator implements [`Backend`]; this crate knows nothing
//! of the scheduler or the store.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;

/// A DAG as the UI shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DagView {
    pub dag_id: String,
    pub schedule: String,
    pub is_paused: bool,
    pub tasks: usize,
    pub file: String,
}

/// A file that did not load, with every problem in it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportErrorView {
    pub file: String,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DagList {
    pub dags: Vec<DagView>,
    pub import_errors: Vec<ImportErrorView>,
}

/// What the UI needs from the orchestrator.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn dags(&self) -> Result<DagList, BackendError>;
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Errors shown to clients as a generic message; the detail goes to the log.
pub struct AppError(BackendError);

impl From<BackendError> for AppError {
    fn from(error: BackendError) -> Self {
        Self(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "Request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": "internal error"})),
        )
            .into_response()
    }
}

type AppState = Arc<dyn Backend>;

pub fn router(backend: Arc<dyn Backend>) -> Router {
    Router::new()
        .route("/health", get(health))
        .nest("/api/v1", api_router())
        .with_state(backend)
}

fn api_router() -> Router<AppState> {
    Router::new().route("/dags", get(list_dags))
}

async fn health() -> &'static str {
    "ok"
}

async fn list_dags(State(backend): State<AppState>) -> Result<Json<DagList>, AppError> {
    Ok(Json(backend.dags().await?))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    struct Fixed(Result<DagList, String>);

    #[async_trait::async_trait]
    impl Backend for Fixed {
        async fn dags(&self) -> Result<DagList, BackendError> {
            self.0.clone().map_err(BackendError)
        }
    }

    async fn get_json(backend: Fixed, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = router(Arc::new(backend))
            .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn lists_dags_and_import_errors() {
        let list = DagList {
            dags: vec![DagView {
                dag_id: "a".into(),
                schedule: "@daily".into(),
                is_paused: false,
                tasks: 2,
                file: "dags/a.toml".into(),
            }],
            import_errors: vec![ImportErrorView {
                file: "dags/b.toml".into(),
                problems: vec!["2:1: dag: missing field `id`".into()],
            }],
        };
        let (status, body) = get_json(Fixed(Ok(list)), "/api/v1/dags").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["dags"][0]["dag_id"], "a");
        assert_eq!(
            body["import_errors"][0]["problems"][0],
            "2:1: dag: missing field `id`"
        );
    }

    #[tokio::test]
    async fn backend_errors_are_hidden_from_clients() {
        let (status, body) = get_json(Fixed(Err("password=hunter2".into())), "/api/v1/dags").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, serde_json::json!({"error": "internal error"}));
    }
}
