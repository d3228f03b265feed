//! The flush: windows the watermark passed are closed, changed documents written, produced
//! records acknowledged, the watermark saved, and only then the offsets committed.

use std::time::Instant;

use futures::{StreamExt as _, TryStreamExt as _};
use mongodb::bson::{Bson, Document, doc};
use rdkafka::message::OwnedHeaders;

use super::{StreamTask, WRITE_CONCURRENCY, collection_name, lateness_ms, mongo_error};
use crate::{
    TaskError, jq,
    stream::{SinkConfig, aggregate::iso, window::Watermark},
};

impl StreamTask<'_> {
    /// Writes every changed document, waits for every produced record, saves the
    /// watermark, and only then commits the offsets.
    pub(super) async fn flush(&mut self) -> Result<(), TaskError> {
        let started = Instant::now();
        self.close_windows()?;
        let written = self.write_documents().await?;
        for delivery in std::mem::take(&mut self.deliveries) {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(TaskError::Failed(format!(
                        "a produced record was not acknowledged: {e}"
                    )));
                }
                Err(_) => return Err(TaskError::Failed("the producer stopped".into())),
            }
        }
        self.save_watermark().await?;
        self.commit().await?;
        self.open.retain(|_, w| !w.closed);
        if written > 0 {
            self.counters.flushes += 1;
            self.counters.last_flush_docs = written;
            self.counters.last_flush_ms = started.elapsed().as_millis() as u64;
            self.counters.last_flush_at = Some(chrono::Utc::now().to_rfc3339());
        }
        Ok(())
    }

    /// Marks windows the watermark has passed as closed (written once more, then dropped
    /// from memory); with a Kafka sink, their results are produced now.
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
            if untouched {
                continue;
            }
            if let SinkConfig::Kafka { topic, .. } = &self.config.sink {
                let document = self.window_document(&id)?;
                let json = serde_json::to_string(
                    &mongodb::bson::Bson::Document(document).into_relaxed_extjson(),
                )
                .unwrap_or_default();
                let record = jq::parse_json(json.as_bytes()).map_err(TaskError::Failed)?;
                let topic = topic.topic_of(&record).map_err(TaskError::Failed)?;
                self.produce(&topic, Some(&id), json.as_bytes(), OwnedHeaders::new())?;
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
            .map_err(|e| TaskError::Failed(format!("window {id}: {e}")))
    }

    /// One upsert per changed document, a few at a time; how many were written.
    async fn write_documents(&mut self) -> Result<usize, TaskError> {
        let Some(collection) = self.collection.clone() else {
            self.dirty.clear();
            return Ok(0);
        };
        let mut documents: Vec<Document> = Vec::new();
        for id in &self.dirty {
            documents.push(self.window_document(id)?);
        }
        let window_docs = documents.len() as u64;
        documents.extend(self.raw.values().cloned());
        let count = documents.len();
        let results: Vec<(Bson, mongodb::results::UpdateResult)> = futures::stream::iter(documents)
            .map(|document| {
                let collection = collection.clone();
                async move {
                    let id = document.get("_id").cloned().unwrap_or(Bson::Null);
                    collection
                        .replace_one(doc! { "_id": id.clone() }, document)
                        .upsert(true)
                        .await
                        .map(|result| (id, result))
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await
            .map_err(|e| mongo_error("writing results", &e))?;
        // An upsert must have replaced or inserted its document; anything else means the
        // server dropped the write, and committing offsets now would lose records.
        if let Some((id, _)) = results
            .iter()
            .find(|(_, r)| r.matched_count == 0 && r.upserted_id.is_none())
        {
            return Err(TaskError::Failed(format!(
                "MongoDB acknowledged the upsert of {id} without writing it"
            )));
        }
        self.counters.records_out += window_docs;
        self.dirty.clear();
        self.raw.clear();
        Ok(count)
    }

    fn state_id(&self) -> String {
        format!(
            "{}:{}",
            self.config.group_id,
            collection_name(&self.config.sink)
        )
    }

    pub(super) async fn resume_watermark(&mut self) -> Result<(), TaskError> {
        let (Some(state), Some(_)) = (&self.state, &self.windows) else {
            return Ok(());
        };
        let stored = state
            .find_one(doc! { "_id": self.state_id() })
            .await
            .map_err(|e| mongo_error("loading the stream state", &e))?;
        if let Some(watermark) = stored.and_then(|d| d.get_i64("watermark_ms").ok()) {
            self.watermark = Watermark::resume(lateness_ms(self.config), Some(watermark));
        }
        Ok(())
    }

    async fn save_watermark(&self) -> Result<(), TaskError> {
        let (Some(state), Some(watermark)) = (&self.state, self.watermark.value()) else {
            return Ok(());
        };
        state
            .replace_one(
                doc! { "_id": self.state_id() },
                doc! { "_id": self.state_id(), "watermark_ms": watermark, "watermark": iso(watermark) },
            )
            .upsert(true)
            .await
            .map_err(|e| mongo_error("saving the watermark", &e))?;
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
