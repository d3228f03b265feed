//! Where a stream task's results go. Each sink stages what the loop hands it and makes it
//! durable at the flush, before the offsets are committed.

mod kafka;
mod mongodb;

use ::mongodb::bson::Document;

use self::{kafka::KafkaSink, mongodb::MongoSink};
use super::{SinkConfig, StreamConfig, outbox::Outbox};
use crate::{RecordError, TaskContext, TaskError, jq::Val};

/// Why records could not be staged: theirs (the source record is dead-lettered) or the
/// sink's (the try fails, and its restart replays from the committed offsets).
pub enum StageError {
    Record(RecordError),
    Sink(TaskError),
}

pub enum Sink {
    Mongodb(MongoSink),
    Kafka(KafkaSink),
}

impl Sink {
    pub async fn connect(config: &StreamConfig, ctx: &TaskContext) -> Result<Self, TaskError> {
        Ok(match &config.sink {
            SinkConfig::Mongodb {
                uri,
                database,
                collection,
                key,
            } => Self::Mongodb(
                MongoSink::connect(
                    &ctx.connections.mongo_uri(uri.as_deref()),
                    database,
                    collection,
                    key.clone(),
                    &config.group_id,
                )
                .await?,
            ),
            SinkConfig::Kafka { topic, key } => {
                Self::Kafka(KafkaSink::new(topic.clone(), key.clone()))
            }
        })
    }

    /// Hands over records without windows; how many went out.
    pub fn stage(&mut self, records: Vec<Val>, outbox: &mut Outbox) -> Result<usize, StageError> {
        match self {
            Self::Mongodb(sink) => sink.stage(records).map_err(StageError::Record),
            Self::Kafka(sink) => {
                let outgoing = sink.route(records).map_err(StageError::Record)?;
                sink.send(outgoing, outbox).map_err(StageError::Sink)
            }
        }
    }

    /// Whether window documents are stored here (and read back to resume), rather than
    /// produced once when they close.
    pub fn stores_windows(&self) -> bool {
        matches!(self, Self::Mongodb(_))
    }

    /// The stored window document `id`, if this sink stores windows and has it.
    pub async fn load_window(&self, id: &str) -> Result<Option<Document>, TaskError> {
        match self {
            Self::Mongodb(sink) => sink.load_window(id).await,
            Self::Kafka(_) => Ok(None),
        }
    }

    /// A window closed with results; true when the sink sent a record for it now.
    pub fn window_closed(
        &self,
        id: &str,
        document: Document,
        outbox: &mut Outbox,
    ) -> Result<bool, TaskError> {
        match self {
            Self::Mongodb(_) => Ok(false),
            Self::Kafka(sink) => sink.window_closed(id, document, outbox).map(|()| true),
        }
    }

    /// Makes `windows` (changed window documents) and staged records durable; how many
    /// documents were written.
    pub async fn write(&mut self, windows: Vec<Document>) -> Result<usize, TaskError> {
        match self {
            Self::Mongodb(sink) => sink.write(windows).await,
            Self::Kafka(_) => Ok(0),
        }
    }

    /// The watermark of the last flush, where the sink keeps one.
    pub async fn load_watermark(&self) -> Result<Option<i64>, TaskError> {
        match self {
            Self::Mongodb(sink) => sink.load_watermark().await,
            Self::Kafka(_) => Ok(None),
        }
    }

    pub async fn save_watermark(&self, watermark_ms: i64) -> Result<(), TaskError> {
        match self {
            Self::Mongodb(sink) => sink.save_watermark(watermark_ms).await,
            Self::Kafka(_) => Ok(()),
        }
    }
}
