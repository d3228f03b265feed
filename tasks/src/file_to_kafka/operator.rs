use std::{path::PathBuf, time::Instant};

use async_trait::async_trait;

use super::{FileToKafkaConfig, read::FileReader};
use crate::{
    Operator, TaskContext, TaskError, TaskResult,
    kafka::{self, Outgoing, Router, TopicSpec},
};

use super::read::FileRecord;

/// Reads the file a batch at a time and produces each batch, every record acknowledged before
/// the next batch is read. The result holds `records`, `topics` (count per topic),
/// `created_topics` and `elapsed_ms`. A retry sends the file again from its start.
pub(crate) struct FileToKafkaOperator {
    config: FileToKafkaConfig,
}

impl FileToKafkaOperator {
    pub(crate) fn new(config: FileToKafkaConfig) -> Self {
        Self { config }
    }

    /// Where a record goes. A line that is not UTF-8 (or JSON) has no value to evaluate:
    /// it can go only to a named topic, unkeyed.
    fn route(&self, router: &mut Router, record: FileRecord) -> Result<Outgoing, TaskError> {
        let config = &self.config;
        let at = |e: &dyn std::fmt::Display| {
            TaskError::Failed(format!(
                "{} line {}: {e}",
                config.path.display(),
                record.line
            ))
        };
        match (&record.value, &config.topic, &config.key) {
            (Some(value), _, _) => router
                .route(value, record.payload.clone())
                .map_err(|e| at(&e)),
            (None, TopicSpec::Name(topic), None) => Ok(Outgoing {
                topic: topic.clone(),
                key: None,
                payload: record.payload.into(),
            }),
            (None, _, _) => Err(at(
                &"not UTF-8 or JSON: its topic and key cannot be evaluated",
            )),
        }
    }
}

/// Reads the next batch on a blocking thread.
async fn next_batch(
    reader: FileReader,
    batch: usize,
    path: PathBuf,
) -> Result<(FileReader, Vec<FileRecord>), TaskError> {
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let records = reader.next_batch(batch, &path)?;
        Ok((reader, records))
    })
    .await
    .map_err(|e| TaskError::Failed(format!("reading the file stopped: {e}")))?
}

#[async_trait]
impl Operator for FileToKafkaOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let config = &self.config;
        let started = Instant::now();
        let brokers = ctx.connections.kafka_brokers(config.brokers.as_deref());
        let delivery = kafka::Delivery::new(
            &brokers,
            config.create_topics,
            config.partitions,
            config.delivery_timeout,
        );
        ctx.log(&format!(
            "Reading {} ({:?})",
            config.path.display(),
            config.format
        ));
        let mut reader = FileReader::open(&config.path, config.format)?;
        let mut delivered = kafka::Delivered::default();
        let mut router = Router::new(&config.topic, config.key.as_ref());
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let (next, records) = next_batch(reader, config.batch, config.path.clone()).await?;
            reader = next;
            if records.is_empty() {
                break;
            }
            let outgoing = records
                .into_iter()
                .map(|r| self.route(&mut router, r))
                .collect::<Result<Vec<_>, _>>()?;
            delivered.add(kafka::deliver(ctx, &delivery, &outgoing).await?);
        }
        let records = delivered.records();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        ctx.log(&format!(
            "Produced {records} records of {} to {brokers} in {elapsed_ms} ms",
            config.path.display()
        ));
        Ok(delivered.result(elapsed_ms))
    }
}
