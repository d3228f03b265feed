//! The live feed of the pages: the store's change feed numbered, with the latest events kept
//! so a page that reconnects gets what it missed (or is told to reload).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use tokio::sync::broadcast;
use ui::views::{LiveEvent, LiveSubscription};

use crate::store::{Store, StoreEvent};

/// Events kept for reconnecting pages.
const KEPT: usize = 2048;

#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Mutex<Kept>>,
    sender: broadcast::Sender<LiveEvent>,
}

struct Kept {
    next_seq: u64,
    events: VecDeque<LiveEvent>,
}

impl LiveHub {
    /// Starts numbering the store's events (a task that ends with the store's feed).
    pub fn start(store: &Store) -> Self {
        let hub = Self {
            inner: Arc::new(Mutex::new(Kept {
                next_seq: 1,
                events: VecDeque::with_capacity(KEPT),
            })),
            sender: broadcast::channel(4096).0,
        };
        let mut feed = store.subscribe();
        let publisher = hub.clone();
        tokio::spawn(async move {
            loop {
                match feed.recv().await {
                    Ok(event) => publisher.publish(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "Live page feed fell behind the store");
                        publisher.publish_reset();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers and keeps the event `make` gives (none: nothing for pages).
    fn push(&self, make: impl FnOnce(u64) -> Option<LiveEvent>) {
        let mut kept = self.lock();
        let Some(event) = make(kept.next_seq) else {
            return;
        };
        kept.next_seq += 1;
        if kept.events.len() == KEPT {
            kept.events.pop_front();
        }
        kept.events.push_back(event.clone());
        let _ = self.sender.send(event);
    }

    fn publish(&self, event: StoreEvent) {
        self.push(|seq| live_event(seq, event));
    }

    fn publish_reset(&self) {
        self.push(|seq| Some(reset_event(seq)));
    }

    /// The id of the latest event (0 before the first).
    pub fn latest_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Events after `after` still kept, then every new one.
    pub fn subscribe(&self, after: Option<u64>) -> LiveSubscription {
        let kept = self.lock();
        let receiver = self.sender.subscribe();
        let (replay, gap) = match after {
            None => (Vec::new(), false),
            Some(after) => {
                let oldest = kept.events.front().map_or(kept.next_seq, |e| e.seq);
                let replay = kept
                    .events
                    .iter()
                    .filter(|e| e.seq > after)
                    .cloned()
                    .collect();
                (
                    replay,
                    after.saturating_add(1) < oldest || after >= kept.next_seq,
                )
            }
        };
        drop(kept);
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let event = match receiver.recv().await {
                Ok(event) => event,
                // Fallen behind: the page reloads what it shows.
                Err(broadcast::error::RecvError::Lagged(_)) => reset_event(0),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((event, receiver))
        })
        .boxed();
        LiveSubscription {
            replay,
            gap,
            stream,
        }
    }
}

/// Tells pages to reload what they show (they missed events).
fn reset_event(seq: u64) -> LiveEvent {
    LiveEvent {
        seq,
        dag_id: String::new(),
        run_id: None,
        task_id: None,
        kind: "reset".into(),
        state: None,
        try_number: None,
    }
}

/// What a page hears of a store event; None for the events that are not the pages' (stop
/// requests are for drivers and workers, log chunks for log followers).
fn live_event(seq: u64, event: StoreEvent) -> Option<LiveEvent> {
    let event = match event {
        StoreEvent::Run {
            dag_id,
            run_id,
            state,
        } => LiveEvent {
            seq,
            dag_id,
            run_id: Some(run_id),
            task_id: None,
            kind: "run".into(),
            state: Some(state.to_string()),
            try_number: None,
        },
        StoreEvent::Task {
            dag_id,
            run_id,
            task_id,
            state,
            try_number,
        } => LiveEvent {
            seq,
            dag_id,
            run_id: Some(run_id),
            task_id: Some(task_id),
            kind: "task".into(),
            state: Some(state.to_string()),
            try_number: Some(try_number),
        },
        StoreEvent::Dag { dag_id, is_paused } => LiveEvent {
            seq,
            dag_id,
            run_id: None,
            task_id: None,
            kind: "dag".into(),
            state: Some(if is_paused { "paused" } else { "active" }.into()),
            try_number: None,
        },
        StoreEvent::Backfill {
            dag_id,
            backfill_id,
        } => LiveEvent {
            seq,
            dag_id,
            run_id: None,
            task_id: None,
            kind: "backfill".into(),
            state: Some(backfill_id.to_string()),
            try_number: None,
        },
        StoreEvent::StopRequested { .. } | StoreEvent::Log { .. } => return None,
    };
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resume_id_past_every_event_is_a_gap_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("u.db").display()))
            .await
            .unwrap();
        let hub = LiveHub::start(&store);
        let subscription = hub.subscribe(Some(u64::MAX));
        assert!(subscription.gap, "the page reloads");
        assert!(subscription.replay.is_empty());
    }
}
