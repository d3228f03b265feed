//! Ships a try's log lines to the shared database as they are written: lines gather for a
//! moment (one insert per batch, not per line) and go out in order, each batch at its byte
//! offset in the file, so the store holds a byte-exact prefix of the file at any time, at
//! most one batch window behind it. Closing the log ships what is left.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, task::JoinHandle};

use super::TryLogKey;
use crate::store::{LogKey, Store};

/// How long lines gather before they are shipped.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// The most bytes one chunk holds (a longer run is cut at a character boundary).
const MAX_CHUNK: usize = 256 * 1024;
/// How often a chunk the store refused is tried again before the rest is given up.
const ATTEMPTS: u32 = 5;

pub(super) struct Shipper {
    state: Arc<State>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    store: Store,
    key: TryLogKey,
    /// Lines written and not shipped yet, and the file offset where they start.
    pending: Mutex<(u64, String)>,
    wake: Notify,
    /// Cuts a batch window short: the try ended and waits for its last lines.
    closing: Notify,
    closed: AtomicBool,
}

impl Shipper {
    /// Ships the lines written after byte `from` of the file.
    pub fn start(store: Store, key: TryLogKey, from: u64) -> Self {
        let state = Arc::new(State {
            store,
            key,
            pending: Mutex::new((from, String::new())),
            wake: Notify::new(),
            closing: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let task = tokio::spawn(ship(state.clone()));
        Self {
            state,
            task: Mutex::new(Some(task)),
        }
    }

    /// Queues `line` (its newline included) behind the lines before it.
    pub fn push(&self, line: &str) {
        self.state
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .push_str(line);
        self.state.wake.notify_one();
    }

    /// No more lines: what is queued goes out in the background.
    pub fn close(&self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.wake.notify_one();
        self.state.closing.notify_one();
    }

    /// [`Shipper::close`], then waits until everything queued is in the store.
    pub async fn finish(&self) {
        self.close();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn ship(state: Arc<State>) {
    loop {
        let closed = state.closed.load(Ordering::SeqCst);
        if !closed {
            state.wake.notified().await;
            // Lines gather for a moment, unless the try ends: its end waits for its log.
            tokio::select! {
                _ = tokio::time::sleep(BATCH_WINDOW) => {}
                _ = state.closing.notified() => {}
            }
        }
        let closed = closed || state.closed.load(Ordering::SeqCst);
        let (start, text) = {
            let mut pending = state.pending.lock().unwrap_or_else(|e| e.into_inner());
            let start = pending.0;
            pending.0 += pending.1.len() as u64;
            (start, std::mem::take(&mut pending.1))
        };
        if !ship_text(&state, start, &text).await {
            return;
        }
        if closed && state.pending.lock().map_or(true, |p| p.1.is_empty()) {
            return;
        }
    }
}

/// Ships `text` from byte `start` in chunks; false when the store keeps refusing (the log
/// stays whole in the file; what follows would leave a gap, so nothing more is shipped).
async fn ship_text(state: &State, mut start: u64, mut text: &str) -> bool {
    let key = LogKey {
        dag_id: &state.key.dag_id,
        run_id: &state.key.run_id,
        task_id: &state.key.task_id,
        try_number: state.key.try_number,
    };
    while !text.is_empty() {
        let mut cut = text.len().min(MAX_CHUNK);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, rest) = text.split_at(cut);
        let mut attempt = 1;
        while let Err(error) = state.store.append_log_chunk(key, start, chunk).await {
            if attempt == ATTEMPTS {
                tracing::error!(%error, task_id = %state.key.task_id, "Cannot ship the task log to the metadata database; it stays in the worker's file");
                return false;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        start += chunk.len() as u64;
        text = rest;
    }
    true
}
