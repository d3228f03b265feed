//! The one stream of state changes that the DAG list, grid and run pages follow.

use std::convert::Infallible;

use axum::{
    Router,
    extract::{Query, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures::{Stream, StreamExt, stream};

use super::tasks::last_event_id;
use crate::{AppState, views::LiveEvent};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/live/events", get(events))
}

/// `state` events (JSON [`LiveEvent`], id = sequence number); after a reconnect the events
/// missed are replayed, or one `reset` event tells the page to reload what it shows.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct EventsQuery {
    /// The id to resume after when there is no `Last-Event-ID` (a page's first connection).
    after: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let after = last_event_id(&headers).or_else(|| query.after.and_then(|a| a.parse().ok()));
    let subscription = state.backend.live_events(after);
    let reset = subscription
        .gap
        .then(|| Event::default().event("reset").data("reload"));
    let events = stream::iter(reset)
        .chain(stream::iter(subscription.replay).map(state_event))
        .chain(subscription.stream.map(state_event))
        .map(Ok);
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn state_event(event: LiveEvent) -> Event {
    if event.kind == "reset" {
        return Event::default().event("reset").data("reload");
    }
    let data = serde_json::to_string(&event).unwrap_or_default();
    Event::default()
        .event("state")
        .id(event.seq.to_string())
        .data(data)
}
