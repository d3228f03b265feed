//! Where a stream task's results go. Each sink stages what the loop hands it and makes it
//! durable at the flush, before the offsets are committed.

mod kafka;
mod mongodb;
pub(super) mod sql;

use std::collections::BTreeMap;

use ::mongodb::bson::Document;

use self::{
    kafka::KafkaSink,
    mongodb::{MongoSink, MongoWrite},
    sql::{SqlSink, SqlWrite},
};
use super::{SinkConfig, SqlKind, SqlSinkConfig, StreamConfig, outbox::Outbox, source::Partition};
use crate::{RecordError, TaskContext, TaskError, jq::Val};

/// Where a flush leaves the source: the next offset per partition and the watermark, when
/// records were handled since the last flush (`None`: nothing moved, nothing to save).
pub(super) struct Checkpoint {
    pub positions: Option<BTreeMap<Partition, i64>>,
    pub watermark_ms: Option<i64>,
}

async fn sql_sink(
    kind: SqlKind,
    sql: &SqlSinkConfig,
    config: &StreamConfig,
    ctx: &TaskContext,
) -> Result<SqlSink, TaskError> {
    SqlSink::connect(
        kind,
        &ctx.connections.sql_url(kind, sql.url.as_deref()),
        &sql.table,
        sql.key.clone(),
        config.window.as_ref(),
        &state_group(config, ctx),
    )
    .await
}

/// The group a sink keeps its state under (offsets, watermark): the task's own, or per share
/// of a split task (`<group_id>~<i>of<N>`), whose partitions and watermark are its own.
fn state_group(config: &StreamConfig, ctx: &TaskContext) -> String {
    format!("{}{}", config.group_id, ctx.share.id_suffix())
}

/// Why records could not be staged: theirs (the source record is dead-lettered) or the
/// sink's (the try fails, and its restart replays from the committed offsets).
pub(super) enum StageError {
    Record(RecordError),
    Sink(TaskError),
}

pub(super) enum Sink {
    Mongodb(MongoSink),
    Sql(SqlSink),
    Kafka(KafkaSink),
}

impl Sink {
    pub(super) async fn connect(
        config: &StreamConfig,
        ctx: &TaskContext,
    ) -> Result<Self, TaskError> {
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
                    &state_group(config, ctx),
                )
                .await?,
            ),
            SinkConfig::Postgres(sql) => {
                Self::Sql(sql_sink(SqlKind::Postgres, sql, config, ctx).await?)
            }
            SinkConfig::Mysql(sql) => Self::Sql(sql_sink(SqlKind::Mysql, sql, config, ctx).await?),
            SinkConfig::Kafka { topic, key } => {
                Self::Kafka(KafkaSink::new(topic.clone(), key.clone()))
            }
        })
    }

    /// Where the source resumes, when this sink keeps the offsets with its results (SQL);
    /// `None`: from the group's offsets committed in Kafka.
    pub(super) async fn stored_offsets(
        &self,
    ) -> Result<Option<BTreeMap<Partition, i64>>, TaskError> {
        match self {
            Self::Sql(sink) => sink.load_offsets().await.map(Some),
            Self::Mongodb(_) | Self::Kafka(_) => Ok(None),
        }
    }

    /// Where results go, for logs.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Mongodb(_) => "MongoDB".into(),
            Self::Sql(sink) => format!("table {}", sink.table()),
            Self::Kafka(_) => "Kafka".into(),
        }
    }

    /// Hands over records without windows; how many went out.
    pub(super) fn stage(
        &mut self,
        records: Vec<Val>,
        outbox: &mut Outbox,
    ) -> Result<usize, StageError> {
        match self {
            Self::Mongodb(sink) => sink.stage(records).map_err(StageError::Record),
            Self::Sql(sink) => sink.stage(records).map_err(StageError::Record),
            Self::Kafka(sink) => {
                let outgoing = sink.route(records).map_err(StageError::Record)?;
                sink.send(outgoing, outbox).map_err(StageError::Sink)
            }
        }
    }

    /// Whether window documents are stored here (and read back to resume), rather than
    /// produced once when they close.
    pub(super) fn stores_windows(&self) -> bool {
        matches!(self, Self::Mongodb(_) | Self::Sql(_))
    }

    /// The stored window document `id`, if this sink stores windows and has it.
    pub(super) async fn load_window(&self, id: &str) -> Result<Option<Document>, TaskError> {
        match self {
            Self::Mongodb(sink) => sink.load_window(id).await,
            Self::Sql(sink) => sink.load_window(id).await,
            Self::Kafka(_) => Ok(None),
        }
    }

    /// A window closed with results; true when the sink sent a record for it now.
    pub(super) fn window_closed(
        &self,
        id: &str,
        document: Document,
        outbox: &mut Outbox,
    ) -> Result<bool, TaskError> {
        match self {
            Self::Mongodb(_) | Self::Sql(_) => Ok(false),
            Self::Kafka(sink) => sink.window_closed(id, document, outbox).map(|()| true),
        }
    }

    /// What makes `windows` (changed window documents), staged records and `checkpoint`'s
    /// watermark durable (SQL: with the offsets, in one transaction), taken out of the sink so
    /// that it can run while the task reads on ([`SinkWrite::run`]).
    pub(super) fn prepare(
        &mut self,
        windows: Vec<Document>,
        checkpoint: &Checkpoint,
    ) -> Result<SinkWrite, TaskError> {
        Ok(match self {
            Self::Mongodb(sink) => SinkWrite::Mongodb(sink.prepare(
                windows,
                checkpoint.positions.as_ref().and(checkpoint.watermark_ms),
            )),
            Self::Sql(sink) => SinkWrite::Sql(sink.prepare(windows, checkpoint)?),
            Self::Kafka(_) => SinkWrite::Nothing,
        })
    }

    /// The watermark of the last flush, where the sink keeps one.
    pub(super) async fn load_watermark(&self) -> Result<Option<i64>, TaskError> {
        match self {
            Self::Mongodb(sink) => sink.load_watermark().await,
            Self::Sql(sink) => sink.load_watermark().await,
            Self::Kafka(_) => Ok(None),
        }
    }
}

/// One flush's writes to the sink, prepared by [`Sink::prepare`].
pub(super) enum SinkWrite {
    Mongodb(MongoWrite),
    Sql(SqlWrite),
    /// The sink's records went out through the outbox.
    Nothing,
}

impl SinkWrite {
    /// Makes the flush's documents or rows durable; how many were written.
    pub(super) async fn run(self) -> Result<usize, TaskError> {
        match self {
            Self::Mongodb(write) => write.run().await,
            Self::Sql(write) => write.run().await,
            Self::Nothing => Ok(0),
        }
    }
}
