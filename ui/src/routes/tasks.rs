//! Task logs: the log page, its live tail (SSE, resumable by byte offset), earlier parts on
//! demand, server-side search, and the raw file (with `Range`).

use std::convert::Infallible;

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::ApiQuery;
use crate::{
    AppState,
    auth::Principal,
    error::{AppError, PageError},
    html::Page,
    ids::{TaskKey, TryKey},
    views::{
        LogChunk, LogEvent, LogRange,
        pages::{Chrome, LogPage},
    },
};

/// Lines a log page opens on, and that each "earlier" step loads.
const PAGE_LINES: usize = 1000;
/// Search hits shown at most.
const MAX_MATCHES: usize = 500;

type TryPath = Path<(String, String, String, String)>;

pub(super) fn router() -> Router<AppState> {
    let base = "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}";
    Router::new()
        .route(base, get(latest_try))
        .route(&format!("{base}/logs/{{try}}"), get(log_page))
        .route(&format!("{base}/logs/{{try}}/chunk"), get(log_chunk))
        .route(&format!("{base}/logs/{{try}}/stream"), get(log_stream))
        .route(&format!("{base}/logs/{{try}}/raw"), get(raw_log))
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new().route(
        "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try}",
        get(api_log),
    )
}

/// Airflow's `get_log` parameters: `token` is where the previous answer stopped.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ApiLogQuery {
    full_content: Option<bool>,
    map_index: Option<i64>,
    token: Option<String>,
}

/// A try's log as Airflow answers it: JSON `{continuation_token, content}` (at most 4 MB from
/// `token`, the next token where it stopped) when the client accepts JSON, else the file as
/// text (`Range` honoured).
async fn api_log(
    State(state): State<AppState>,
    path: TryPath,
    ApiQuery(query): ApiQuery<ApiLogQuery>,
    request: Request,
) -> Response {
    let wants_json = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if !wants_json {
        return raw_log(State(state), path, request).await;
    }
    match log_json(&state, path, &query).await {
        Ok(json) => json.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn log_json(
    state: &AppState,
    path: TryPath,
    query: &ApiLogQuery,
) -> Result<Json<serde_json::Value>, AppError> {
    let key = try_key(path)?;
    if query.map_index.is_some_and(|i| i != -1) {
        let detail = "map_index: Updraft has no mapped tasks (-1 or leave it out)";
        return Err(AppError::new(StatusCode::NOT_FOUND, detail));
    }
    let from = match query
        .token
        .as_deref()
        .filter(|_| query.full_content != Some(true))
    {
        None | Some("") => 0,
        Some(token) => token.parse::<u64>().map_err(|_| {
            AppError::new(
                StatusCode::BAD_REQUEST,
                format!("token: {token:?} is not a continuation token of this log"),
            )
        })?,
    };
    let chunk = state
        .backend
        .read_log(&key, LogRange::After { offset: from })
        .await?;
    Ok(Json(serde_json::json!({
        "continuation_token": chunk.end.to_string(),
        "content": chunk.text,
    })))
}

fn try_key(Path((dag_id, run_id, task_id, try_number)): TryPath) -> Result<TryKey, AppError> {
    Ok(TryKey::parse(&dag_id, &run_id, &task_id, &try_number)?)
}

/// A task instance's page: its latest try's log.
async fn latest_try(
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
) -> Result<Redirect, PageError> {
    let key = TaskKey::parse(&dag_id, &run_id, &task_id)?;
    let ti = state.backend.task_instance(&key).await?;
    Ok(Redirect::to(&format!(
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{}",
        ti.try_number.max(1)
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LogPageQuery {
    /// Search the whole log for this text.
    q: Option<String>,
    /// Open at this byte offset (a line permalink).
    at: Option<u64>,
}

async fn log_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: TryPath,
    ApiQuery(query): ApiQuery<LogPageQuery>,
) -> Result<Page<LogPage>, PageError> {
    let key = try_key(path)?;
    let ti = state.backend.task_instance(&key.task).await?;
    let range = match query.at {
        Some(offset) => LogRange::From {
            offset,
            lines: PAGE_LINES,
        },
        None => LogRange::Tail { lines: PAGE_LINES },
    };
    let chunk = state.backend.read_log(&key, range).await?;
    let search = query.q.filter(|q| !q.trim().is_empty());
    let matches = match &search {
        Some(q) => Some(state.backend.search_log(&key, q, MAX_MATCHES).await?),
        None => None,
    };
    let title = format!(
        "{} · {} · try {}",
        key.task.run.dag_id, key.task.task_id, key.try_number
    );
    Ok(Page(LogPage::new(
        Chrome::new(&state, &principal, &title),
        key,
        &ti,
        chunk,
        search,
        matches,
        query.at,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkQuery {
    /// The lines just before this byte offset.
    before: u64,
    lines: Option<usize>,
}

/// Earlier lines, for the log page's "load earlier".
async fn log_chunk(
    State(state): State<AppState>,
    path: TryPath,
    ApiQuery(query): ApiQuery<ChunkQuery>,
) -> Result<Json<LogChunk>, AppError> {
    let key = try_key(path)?;
    let range = LogRange::Before {
        offset: query.before,
        lines: query.lines.unwrap_or(PAGE_LINES).min(10 * PAGE_LINES),
    };
    Ok(Json(state.backend.read_log(&key, range).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StreamQuery {
    /// Byte offset to start from when there is no `Last-Event-ID`.
    from: Option<u64>,
}

/// The live log: `lines` events whose id is the byte offset after them (a reconnect resumes
/// there through `Last-Event-ID`), then one `end` event once the try has ended.
async fn log_stream(
    State(state): State<AppState>,
    path: TryPath,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let key = try_key(path)?;
    let from = last_event_id(&headers).or(query.from).unwrap_or(0);
    let events = state.backend.follow_log(&key, from).await?.map(|event| {
        Ok(match event {
            LogEvent::Lines { text, end } => Event::default()
                .event("lines")
                .id(end.to_string())
                .data(crate::sse::data_text(&text)),
            LogEvent::End => Event::default().event("end").data("end of log"),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

pub(super) fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The log file as it is: plain text, `Range` honoured.
async fn raw_log(State(state): State<AppState>, path: TryPath, request: Request) -> Response {
    let key = match try_key(path) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let file = match state.backend.log_file(&key).await {
        Ok(file) => file,
        Err(error) => return AppError::from(error).into_response(),
    };
    let (parts, _) = request.into_parts();
    let request = Request::from_parts(parts, Body::empty());
    let mut response = match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let name = format!(
        "attachment; filename=\"{}-{}-{}.log\"",
        key.task.run.dag_id, key.task.task_id, key.try_number
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
