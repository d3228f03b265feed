//! The MongoDB sink: window documents, or records upserted by key, written with journaled
//! upserts at each flush; the watermark is kept beside them (`updraft_stream_state`).

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _};
use mongodb::{
    Collection,
    bson::{Bson, Document, doc},
    options::{Acknowledgment, CollectionOptions, WriteConcern},
};

use super::super::window_doc::iso;
use crate::{
    RecordError, TaskError,
    jq::{self, JqFilter, Val},
    mongo,
};

const STATE_COLLECTION: &str = "updraft_stream_state";
/// Upserts in flight at once during a flush.
const WRITE_CONCURRENCY: usize = 8;

pub(crate) struct MongoSink {
    collection: Collection<Document>,
    state: Collection<Document>,
    /// The `_id` of this task's document in the state collection: group and collection.
    state_id: String,
    /// `_id` of a record without windows.
    key: Option<JqFilter>,
    /// Records without windows waiting for the next flush, by `_id` as JSON.
    staged: HashMap<String, Document>,
}

impl MongoSink {
    pub(crate) async fn connect(
        uri: &str,
        database: &str,
        collection: &str,
        key: Option<JqFilter>,
        group_id: &str,
    ) -> Result<Self, TaskError> {
        let client = mongo::client(uri).await?;
        let db = client.database(database);
        // Journaled writes: a flush is acknowledged only once it is durable.
        let durable = CollectionOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Nodes(1))
                    .journal(true)
                    .build(),
            )
            .build();
        Ok(Self {
            collection: db.collection_with_options(collection, durable.clone()),
            state: db.collection_with_options(STATE_COLLECTION, durable),
            state_id: format!("{group_id}:{database}.{collection}"),
            key,
            staged: HashMap::new(),
        })
    }

    /// Stages records without windows for the next flush, each under its key.
    pub(crate) fn stage(&mut self, records: Vec<Val>) -> Result<usize, RecordError> {
        let key = self.key.as_ref().ok_or(RecordError::Unset("sink.key"))?;
        let mut staged = Vec::with_capacity(records.len());
        for record in records {
            let id = jq::to_json(&key.one(record.clone())?);
            if id.is_null() {
                return Err(RecordError::NullKey {
                    field: "sink.key",
                    code: key.source().to_owned(),
                });
            }
            let mut document = match mongodb::bson::to_bson(&jq::to_json(&record)) {
                Ok(Bson::Document(document)) => document,
                Ok(other) => return Err(RecordError::NotAnObject(other.to_string())),
                Err(e) => return Err(RecordError::Convert(e.to_string())),
            };
            let id_bson =
                mongodb::bson::to_bson(&id).map_err(|e| RecordError::Convert(e.to_string()))?;
            document.insert("_id", id_bson);
            staged.push((id.to_string(), document));
        }
        let count = staged.len();
        self.staged.extend(staged);
        Ok(count)
    }

    /// The stored window document `id`, if any.
    pub(crate) async fn load_window(&self, id: &str) -> Result<Option<Document>, TaskError> {
        self.collection
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| mongo::failed("loading a window", &e))
    }

    /// The upserts of `windows` and the staged records, then of `watermark_ms` when given
    /// (run by [`MongoWrite::run`], which needs nothing of the sink).
    pub(crate) fn prepare(
        &mut self,
        mut documents: Vec<Document>,
        watermark_ms: Option<i64>,
    ) -> MongoWrite {
        documents.extend(self.staged.drain().map(|(_, document)| document));
        MongoWrite {
            collection: self.collection.clone(),
            state: self.state.clone(),
            state_id: self.state_id.clone(),
            documents,
            watermark_ms,
        }
    }

    /// The watermark saved by the last flush of this group into this collection.
    pub(crate) async fn load_watermark(&self) -> Result<Option<i64>, TaskError> {
        let stored = self
            .state
            .find_one(doc! { "_id": &self.state_id })
            .await
            .map_err(|e| mongo::failed("loading the stream state", &e))?;
        Ok(stored.and_then(|d| d.get_i64("watermark_ms").ok()))
    }
}

/// One flush's writes, prepared by [`MongoSink::prepare`].
pub(crate) struct MongoWrite {
    collection: Collection<Document>,
    state: Collection<Document>,
    state_id: String,
    documents: Vec<Document>,
    watermark_ms: Option<i64>,
}

impl MongoWrite {
    /// Upserts the documents a few at a time, then saves the watermark; how many documents
    /// were written.
    pub(crate) async fn run(self) -> Result<usize, TaskError> {
        let count = self.documents.len();
        let collection = &self.collection;
        let results: Vec<(Bson, mongodb::results::UpdateResult)> =
            futures::stream::iter(self.documents)
                .map(|document| async move {
                    let id = document.get("_id").cloned().unwrap_or(Bson::Null);
                    collection
                        .replace_one(doc! { "_id": id.clone() }, document)
                        .upsert(true)
                        .await
                        .map(|result| (id, result))
                })
                .buffer_unordered(WRITE_CONCURRENCY)
                .try_collect()
                .await
                .map_err(|e| mongo::failed("writing results", &e))?;
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
        if let Some(watermark_ms) = self.watermark_ms {
            self.state
                .replace_one(
                    doc! { "_id": &self.state_id },
                    doc! { "_id": &self.state_id, "watermark_ms": watermark_ms, "watermark": iso(watermark_ms) },
                )
                .upsert(true)
                .await
                .map_err(|e| mongo::failed("saving the watermark", &e))?;
        }
        Ok(count)
    }
}
