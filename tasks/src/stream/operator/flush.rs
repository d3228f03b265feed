//! The flush, in two halves. On the task's loop, windows the watermark passed are closed and
//! what the flush makes durable is taken out of the task: changed documents, staged records,
//! produced records' acknowledgements, the offsets and the watermark. A spawned [`Writing`]
//! then waits for the acknowledgements, writes, and only then commits the offsets, while the
//! loop reads on. A flush first waits for the one before it, so flushes end in order.

use std::time::Instant;

use mongodb::bson::Document;
use tokio::task::JoinHandle;

use super::{StreamTask, lateness_ms};
use crate::{
    TaskError,
    stream::{
        metrics::publish_flush,
        sink::{Checkpoint, SinkWrite},
        window::Watermark,
    },
};

/// A flush being written while the task reads on; aborted when dropped (the try failed).
pub(super) struct Writing {
    handle: JoinHandle<Result<Written, TaskError>>,
    started: Instant,
    /// Whether the flush commits offsets that moved.
    moved: bool,
    /// Window documents among what it writes: records out once written.
    window_docs: u64,
}

/// What a flush wrote: documents or rows, and produced records acknowledged.
pub(super) struct Written {
    documents: usize,
    produced: usize,
}

impl Writing {
    /// Waits for the flush's end.
    pub(super) async fn join(&mut self) -> Result<Written, TaskError> {
        (&mut self.handle)
            .await
            .map_err(|e| TaskError::Failed(format!("a flush stopped: {e}")))?
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Waits for the flush being written; never, when there is none.
pub(super) async fn written(writing: &mut Option<Writing>) -> Result<Written, TaskError> {
    match writing {
        Some(writing) => writing.join().await,
        None => std::future::pending().await,
    }
}

impl StreamTask<'_> {
    /// Waits for the flush before (if still writing), then starts this one: every produced
    /// record (dead letters, Kafka results) acknowledged, every changed document written
    /// with the watermark (and, into SQL, the offsets), and only then the offsets committed
    /// to Kafka. [`StreamTask::flushed`] waits for its end.
    pub(super) async fn flush(&mut self) -> Result<(), TaskError> {
        self.flushed().await?;
        let started = Instant::now();
        self.close_windows()?;
        let acks = self.outbox.take();
        let moved = self.uncommitted;
        let (write, window_docs) = self.prepare_write(moved)?;
        let commit = moved.then(|| self.source.commit(&self.positions));
        self.uncommitted = false;
        self.open.retain(|_, w| !w.closed);
        let handle = tokio::spawn(async move {
            let produced = acks.all().await?;
            let documents = write.run().await?;
            if let Some(commit) = commit {
                commit.await?;
            }
            Ok(Written {
                documents,
                produced,
            })
        });
        self.writing = Some(Writing {
            handle,
            started,
            moved,
            window_docs,
        });
        Ok(())
    }

    /// Waits for the flush being written, if any, and counts it.
    pub(super) async fn flushed(&mut self) -> Result<(), TaskError> {
        if let Some(writing) = &mut self.writing {
            let written = writing.join().await?;
            self.count_flush(written);
        }
        Ok(())
    }

    /// Counts the flush that just ended (`writing` holds it) in the metrics.
    pub(super) fn count_flush(&mut self, written: Written) {
        let Some(writing) = self.writing.take() else {
            return;
        };
        self.counters.records_out += writing.window_docs;
        let total = written.documents + written.produced;
        // A flush that wrote, produced or moved offsets counts; an idle one does not.
        if total > 0 || writing.moved {
            self.counters.flushes += 1;
            self.counters.last_flush_docs = total;
            self.counters.last_flush_ms = writing.started.elapsed().as_millis() as u64;
            self.counters.last_flush_at = Some(chrono::Utc::now().to_rfc3339());
            publish_flush(&self.counters, &self.metrics);
        }
    }

    /// Marks windows the watermark has passed as closed (written once more, then dropped
    /// from memory); a sink that does not store windows gets their results now.
    fn close_windows(&mut self) -> Result<(), TaskError> {
        let closing: Vec<String> = self
            .open
            .iter()
            .filter(|(_, w)| !w.closed && self.watermark.closes(w.end_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in closing {
            let Some(window) = self.open.get_mut(&id) else {
                continue;
            };
            window.closed = true;
            let untouched = window.accumulators.is_empty();
            self.dirty.insert(id.clone());
            if untouched || self.sink.stores_windows() {
                continue;
            }
            let document = self.window_document(&id)?;
            if self.sink.window_closed(&id, document, &mut self.outbox)? {
                self.counters.records_out += 1;
            }
        }
        Ok(())
    }

    fn window_document(&self, id: &str) -> Result<Document, TaskError> {
        let window = self
            .config
            .window
            .as_ref()
            .ok_or_else(|| TaskError::Failed(format!("window {id} without window config")))?;
        self.open
            .get(id)
            .ok_or_else(|| TaskError::Failed(format!("window {id} vanished")))?
            .to_document(&window.aggregates)
            .map_err(|e| TaskError::Failed(e.to_string()))
    }

    /// The writes of the changed window documents (where the sink stores them), the staged
    /// records and the checkpoint (with the offsets when they `moved`), and how many window
    /// documents they write.
    fn prepare_write(&mut self, moved: bool) -> Result<(SinkWrite, u64), TaskError> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut windows = Vec::new();
        if self.sink.stores_windows() {
            for id in &dirty {
                windows.push(self.window_document(id)?);
            }
        }
        let window_docs = windows.len() as u64;
        let checkpoint = Checkpoint {
            positions: moved.then(|| self.positions.clone()),
            watermark_ms: self.windows.and(self.watermark.value()),
        };
        let write = self.sink.prepare(windows, &checkpoint)?;
        Ok((write, window_docs))
    }

    pub(super) async fn resume_watermark(&mut self) -> Result<(), TaskError> {
        if self.windows.is_none() {
            return Ok(());
        }
        if let Some(watermark) = self.sink.load_watermark().await? {
            self.watermark = Watermark::resume(lateness_ms(self.config), Some(watermark));
        }
        Ok(())
    }
}
