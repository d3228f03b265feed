//! Running streams and their results: pages whose live part the server renders and pushes
//! over SSE (each second for the figures, on each flush for the results), and the JSON API.

use std::{convert::Infallible, sync::Arc};

use askama::Template as _;
use axum::{
    Extension, Json, Router,
    extract::{Path, Query, State},
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures::{Stream, StreamExt, future};
use serde::Deserialize;

use super::ApiQuery;
use crate::{
    AppState,
    auth::Principal,
    error::{AppError, PageError},
    html::Page,
    ids::TaskKey,
    views::{
        ResultsView, StreamDetail, StreamView,
        pages::Chrome,
        stream_pages::{
            ResultsLive, ResultsPage, ResultsPartial, StreamPage, StreamsLive, StreamsPage,
            StreamsPartial,
        },
    },
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/streams", get(streams_page))
        .route("/streams/events", get(streams_events))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/stream",
            get(stream_page),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/results",
            get(results_page),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/results/events",
            get(results_events),
        )
}

pub(super) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/streams", get(api_streams))
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/stream",
            get(api_stream),
        )
        .route(
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/results",
            get(api_results),
        )
}

type TaskPath = Path<(String, String, String)>;

fn task_key(Path((dag_id, run_id, task_id)): TaskPath) -> Result<TaskKey, AppError> {
    Ok(TaskKey::parse(&dag_id, &run_id, &task_id)?)
}

/// One stream, when the SSE stream is for a task's page.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct StreamFilter {
    dag_id: Option<String>,
    run_id: Option<String>,
    task_id: Option<String>,
}

impl StreamFilter {
    fn keeps(&self, stream: &StreamView) -> bool {
        let matches =
            |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        matches(&self.dag_id, &stream.dag_id)
            && matches(&self.run_id, &stream.run_id)
            && matches(&self.task_id, &stream.task_id)
    }

    fn single(&self) -> bool {
        self.task_id.is_some()
    }
}

/// Window and measure of a results page.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct ResultsQuery {
    window: Option<String>,
    measure: Option<usize>,
}

async fn streams_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Page<StreamsPage>, PageError> {
    let streams = state.backend.streams().await?;
    Ok(Page(StreamsPage {
        chrome: Chrome::new(&state, &principal, "Streams"),
        live: StreamsLive::new(streams, false),
    }))
}

/// Every second, the streams partial (all streams, or the one of the filter), rendered once
/// per tick and filter for every viewer.
async fn streams_events(
    State(state): State<AppState>,
    Query(filter): Query<StreamFilter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sampled = state
        .backend
        .stream_ticks()
        .filter(|tick| future::ready(tick.sampled));
    let events = sampled.then(move |tick| {
        let (state, filter) = (state.clone(), filter.clone());
        async move {
            let key = format!(
                "streams?{:?}/{:?}/{:?}",
                filter.dag_id, filter.run_id, filter.task_id
            );
            let render = || async {
                let streams = state.backend.streams().await.ok()?;
                let kept = streams.into_iter().filter(|s| filter.keeps(s)).collect();
                let partial = StreamsPartial {
                    live: StreamsLive::new(kept, filter.single()),
                };
                rendered(partial.render())
            };
            let html = state.shared_renders.get(&key, tick.seq, render).await?;
            Some(html_event(&html))
        }
    });
    Sse::new(events.filter_map(future::ready).map(Ok)).keep_alive(KeepAlive::default())
}

fn rendered(result: askama::Result<String>) -> Option<Arc<str>> {
    result
        .map_err(|error| tracing::error!(%error, "Cannot render a live partial"))
        .ok()
        .map(Arc::from)
}

fn html_event(html: &str) -> Event {
    Event::default()
        .event("html")
        .data(crate::sse::data_text(html))
}

async fn stream_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: TaskPath,
) -> Result<Page<StreamPage>, PageError> {
    let key = task_key(path)?;
    let detail = state.backend.stream(&key).await?;
    let title = format!("{} · {} stream", key.run.dag_id, key.task_id);
    Ok(Page(StreamPage::new(
        Chrome::new(&state, &principal, &title),
        detail,
    )))
}

async fn results_of(
    state: &AppState,
    key: &TaskKey,
    query: &ResultsQuery,
) -> Result<ResultsView, AppError> {
    let mut results = state
        .backend
        .results(key, query.window.as_deref().filter(|w| !w.is_empty()))
        .await?;
    if let Some(measure) = query.measure.filter(|m| *m < results.aggregates.len()) {
        results.measure = measure;
        results
            .rows
            .sort_by(|a, b| b.number(measure).total_cmp(&a.number(measure)));
    }
    Ok(results)
}

async fn results_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: TaskPath,
    Query(query): Query<ResultsQuery>,
) -> Result<Page<ResultsPage>, PageError> {
    let key = task_key(path)?;
    let results = results_of(&state, &key, &query).await?;
    let title = format!("{} · {} results", key.run.dag_id, key.task_id);
    Ok(Page(ResultsPage {
        chrome: Chrome::new(&state, &principal, &title),
        latest: query.window.as_deref().is_none_or(str::is_empty),
        live: ResultsLive::new(results),
    }))
}

/// The results partial, pushed each time the task has flushed since the last push: the sink
/// is read and the partial rendered once per flush, window and measure for every viewer.
async fn results_events(
    State(state): State<AppState>,
    path: TaskPath,
    Query(query): Query<ResultsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let key = task_key(path)?;
    let name = format!("{}/{}/{}", key.run.dag_id, key.run.run_id, key.task_id);
    let shared_key = format!("results/{name}?{:?}/{:?}", query.window, query.measure);
    let mut pushed: Option<u64> = None;
    let ticks = state.backend.stream_ticks().filter_map(move |tick| {
        let flushes = tick.flushes.get(&name).copied();
        let changed = flushes.is_some() && flushes != pushed;
        if changed {
            pushed = flushes;
        }
        // Every viewer gets the same ticks: the tick's number names the moment of the read.
        future::ready(changed.then_some(tick.seq))
    });
    let events = ticks.then(move |seq| {
        let (state, key, query) = (state.clone(), key.clone(), query.clone());
        let shared_key = shared_key.clone();
        async move {
            let render = || async {
                let results = results_of(&state, &key, &query).await.ok()?;
                let live = ResultsLive::new(results);
                rendered(ResultsPartial { live }.render())
            };
            let html = state.shared_renders.get(&shared_key, seq, render).await?;
            Some(html_event(&html))
        }
    });
    Ok(Sse::new(events.filter_map(future::ready).map(Ok)).keep_alive(KeepAlive::default()))
}

async fn api_streams(State(state): State<AppState>) -> Result<Json<Vec<StreamView>>, AppError> {
    Ok(Json(state.backend.streams().await?))
}

async fn api_stream(
    State(state): State<AppState>,
    path: TaskPath,
) -> Result<Json<StreamDetail>, AppError> {
    let key = task_key(path)?;
    Ok(Json(state.backend.stream(&key).await?))
}

async fn api_results(
    State(state): State<AppState>,
    path: TaskPath,
    ApiQuery(query): ApiQuery<ResultsQuery>,
) -> Result<Json<ResultsView>, AppError> {
    let key = task_key(path)?;
    Ok(Json(results_of(&state, &key, &query).await?))
}
