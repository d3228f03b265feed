//! Server-sent events: a cap on the connections held open at once (in all and per client),
//! and text made fit for an event's `data` field.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use crate::{AppState, error::AppError};

/// Seconds a refused client is told to wait before it connects again.
const RETRY_AFTER_SECONDS: &str = "5";

/// The event streams open now: in all, and by client address.
pub(crate) struct SseSlots {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<String, usize>,
}

/// One open stream; dropping it (the stream ends or the client goes) frees its slot.
struct Slot {
    slots: Arc<SseSlots>,
    client: String,
}

impl SseSlots {
    pub(crate) fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            max_total,
            max_per_client,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `client`, or why there is none.
    fn take(self: &Arc<Self>, client: &str) -> Result<Slot, &'static str> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err("too many live connections to this server");
        }
        let mine = open.by_client.entry(client.to_owned()).or_default();
        if *mine >= self.max_per_client {
            return Err("too many live connections from your address");
        }
        *mine += 1;
        open.total += 1;
        Ok(Slot {
            slots: self.clone(),
            client: client.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.total -= 1;
        if let Some(mine) = open.by_client.get_mut(&self.client) {
            *mine -= 1;
            if *mine == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// Holds every `text/event-stream` response to a slot for as long as its body lives; beyond
/// the caps the client gets 503 with `Retry-After` (EventSource reconnects by itself).
pub(crate) async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
    let response = next.run(request).await;
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return response;
    }
    match state.sse_slots.take(&client) {
        Ok(slot) => {
            let (parts, body) = response.into_parts();
            let held = body.into_data_stream().map(move |chunk| {
                let _held = &slot;
                chunk
            });
            Response::from_parts(parts, Body::from_stream(held))
        }
        Err(reason) => {
            tracing::warn!(%client, reason, "Refused a live connection");
            let mut refused =
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
            refused.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            refused
        }
    }
}

/// Text made fit for an SSE `data` field: every line break kind (`\r\n`, a lone `\r`)
/// becomes `\n`, which the field splits on (axum refuses a `\r` in it with a panic, and a
/// partial can carry one from a Kafka record's group value).
pub(crate) fn data_text(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_break_kind_becomes_a_newline_and_sse_takes_it() {
        assert_eq!(data_text("a\r\nb\rc\nd"), "a\nb\nc\nd");
        assert!(matches!(data_text("plain"), Cow::Borrowed("plain")));
        // The data axum would refuse with a panic, made acceptable.
        let _ = axum::response::sse::Event::default().data(data_text("x\ry"));
    }

    #[test]
    fn slots_are_capped_in_all_and_per_client_and_freed_on_drop() {
        let slots = Arc::new(SseSlots::new(3, 2));
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(slots.take("a").err().unwrap().contains("your address"));
        let _b1 = slots.take("b").unwrap();
        assert!(slots.take("c").err().unwrap().contains("this server"));
        drop(a1);
        assert!(slots.take("a").is_ok(), "a dropped stream frees its slot");
    }
}
