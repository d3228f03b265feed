//! The flush: windows the watermark passed are closed, changed documents written, produced
//! records acknowledged, the watermark saved, and only then the offsets committed.

use std::time::Instant;

use mongodb::bson::Document;

use super::{StreamTask, lateness_ms};
use crate::{
    TaskError,
    stream::{metrics::publish_flush, sink::Checkpoint, window::Watermark},
};

impl StreamTask<'_> {
    /// Waits for every produced record (dead letters, Kafka results), writes every changed
    /// document with the watermark (and, into SQL, the offsets), and only then commits the
    /// offsets to Kafka.
    pub(super) async fn flush(&mut self) -> Result<(), TaskError> {
        let started = Instant::now();
        self.close_windows()?;
        let produced = self.outbox.acknowledged().await?;
        let written = self.write_documents().await?;
        let moved = self.uncommitted;
        self.commit().await?;
        self.open.retain(|_, w| !w.closed);
        // A flush that wrote, produced or moved offsets counts; an idle one does not.
        if written + produced > 0 || moved {
            self.counters.flushes += 1;
            self.counters.last_flush_docs = written + produced;
            self.counters.last_flush_ms = started.elapsed().as_millis() as u64;
            self.counters.last_flush_at = Some(chrono::Utc::now().to_rfc3339());
            publish_flush(&self.counters, &self.metrics);
        }
        Ok(())
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

    /// Hands the changed window documents (where the sink stores them) and the staged
    /// records to the sink; how many documents it wrote.
    async fn write_documents(&mut self) -> Result<usize, TaskError> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut windows = Vec::new();
        if self.sink.stores_windows() {
            for id in &dirty {
                windows.push(self.window_document(id)?);
            }
        }
        let window_docs = windows.len() as u64;
        let checkpoint = Checkpoint {
            positions: self.uncommitted.then_some(&self.positions),
            watermark_ms: self.windows.and(self.watermark.value()),
        };
        let written = match self.sink.write(windows, &checkpoint).await {
            Ok(written) => written,
            Err(error) => {
                // Kept for the next flush of this try; a failed try starts over anyway.
                self.dirty = dirty;
                return Err(error);
            }
        };
        self.counters.records_out += window_docs;
        Ok(written)
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

    async fn commit(&mut self) -> Result<(), TaskError> {
        if !self.uncommitted {
            return Ok(());
        }
        self.source.commit(&self.positions).await?;
        self.uncommitted = false;
        Ok(())
    }
}
