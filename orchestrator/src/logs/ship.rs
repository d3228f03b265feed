//! Ships the tries' log lines to the shared database as they are written. One shipper per
//! process gathers the lines of every try for a moment and writes them in one transaction
//! (one INSERT per run of lines of a try, one NOTIFY for them all), in order, each run at its
//! byte offset in the try's file: the store holds a byte-exact prefix of each file, at most
//! one batch window behind it. A try's end flushes at once (its end is recorded only after
//! its log is in), taking along whatever other tries wrote meanwhile.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::TryLogKey;
use crate::store::{LogKey, Store};

/// How long lines gather before they are shipped (a try's end cuts it short).
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// The most bytes one chunk holds (a longer run is cut at a character boundary).
const MAX_CHUNK: usize = 256 * 1024;
/// How often a batch the store refused is tried again before it is given up.
const ATTEMPTS: u32 = 5;

enum Message {
    Lines {
        key: Arc<TryLogKey>,
        start: u64,
        text: String,
    },
    /// Answered once everything sent before it is in the store.
    Flush(oneshot::Sender<()>),
}

/// The process's shipper; cheap to clone.
#[derive(Clone)]
pub(super) struct Hub {
    sender: mpsc::UnboundedSender<Message>,
}

impl Hub {
    /// Starts shipping to `store` for the life of the process.
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(ship(store, receiver));
        Self { sender }
    }

    /// A try's shipper, for the lines written after byte `from` of its file.
    pub fn for_try(&self, key: TryLogKey, from: u64) -> Shipper {
        Shipper {
            hub: self.clone(),
            key: Arc::new(key),
            next: AtomicU64::new(from),
        }
    }
}

/// Ships one try's lines through the [`Hub`].
pub(super) struct Shipper {
    hub: Hub,
    key: Arc<TryLogKey>,
    /// The file offset of the next line.
    next: AtomicU64,
}

impl Shipper {
    /// Queues `line` (its newline included) behind the lines before it.
    pub fn push(&self, line: &str) {
        let start = self.next.fetch_add(line.len() as u64, Ordering::SeqCst);
        let _ = self.hub.sender.send(Message::Lines {
            key: self.key.clone(),
            start,
            text: line.to_owned(),
        });
    }

    /// Waits until every line queued so far is in the store.
    pub async fn finish(&self) {
        let (ack, done) = oneshot::channel();
        if self.hub.sender.send(Message::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

/// What one batch holds: runs of lines, and who waits for it.
#[derive(Default)]
struct Batch {
    runs: Vec<(Arc<TryLogKey>, u64, String)>,
    acks: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn take(&mut self, message: Message) {
        match message {
            Message::Flush(ack) => self.acks.push(ack),
            Message::Lines { key, start, text } => {
                // A try's next lines extend its last run.
                if let Some((last_key, last_start, last)) = self.runs.last_mut()
                    && *last_key == key
                    && *last_start + last.len() as u64 == start
                    && last.len() + text.len() <= MAX_CHUNK
                {
                    last.push_str(&text);
                    return;
                }
                self.runs.push((key, start, text));
            }
        }
    }
}

async fn ship(store: Store, mut receiver: mpsc::UnboundedReceiver<Message>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = Batch::default();
        batch.take(first);
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while batch.acks.is_empty() {
            tokio::select! {
                message = receiver.recv() => match message {
                    Some(message) => batch.take(message),
                    None => break,
                },
                _ = &mut window => break,
            }
        }
        while let Ok(message) = receiver.try_recv() {
            batch.take(message);
        }
        write(&store, &batch).await;
        for ack in batch.acks {
            let _ = ack.send(());
        }
    }
}

/// Writes a batch, trying again a few times; gives it up (the lines stay in the files) when
/// the store keeps refusing.
async fn write(store: &Store, batch: &Batch) {
    if batch.runs.is_empty() {
        return;
    }
    let chunks: Vec<(LogKey<'_>, u64, &str)> = batch
        .runs
        .iter()
        .flat_map(|(key, start, text)| chunks_of(key, *start, text))
        .collect();
    let mut attempt = 1;
    while let Err(error) = store.append_log_chunks(&chunks).await {
        if attempt == ATTEMPTS {
            tracing::error!(%error, chunks = chunks.len(), "Cannot ship task logs to the metadata database; they stay in the workers' files");
            return;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
}

/// A run of lines as chunks of at most [`MAX_CHUNK`] bytes, cut at character boundaries.
fn chunks_of<'a>(
    key: &'a TryLogKey,
    mut start: u64,
    mut text: &'a str,
) -> Vec<(LogKey<'a>, u64, &'a str)> {
    let log_key = LogKey {
        dag_id: &key.dag_id,
        run_id: &key.run_id,
        task_id: &key.task_id,
        try_number: key.try_number,
    };
    let mut chunks = Vec::new();
    while !text.is_empty() {
        let mut cut = text.len().min(MAX_CHUNK);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, rest) = text.split_at(cut);
        chunks.push((log_key, start, chunk));
        start += chunk.len() as u64;
        text = rest;
    }
    chunks
}
