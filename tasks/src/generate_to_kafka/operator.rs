use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{GenerateToKafkaConfig, generate::Records};
use crate::{
    Operator, RecordError, TaskContext, TaskError, TaskResult,
    jq::{self, Val},
    kafka::{self, Outgoing, TopicPolicy},
};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Generates the run's records, routes each to its topic with its key, and produces them all;
/// succeeds once every record is acknowledged. The result holds `records`, `topics` (count
/// per topic), `created_topics`, `seed` and `elapsed_ms`.
pub struct GenerateToKafkaOperator {
    config: GenerateToKafkaConfig,
}

impl GenerateToKafkaOperator {
    pub fn new(config: GenerateToKafkaConfig) -> Self {
        Self { config }
    }

    fn outgoing(&self) -> Result<Vec<Outgoing>, TaskError> {
        let config = &self.config;
        let generators = config.generators()?;
        Records::new(generators, config.seed, chrono::Utc::now())
            .take(config.records as usize)
            .enumerate()
            .map(|(index, record)| {
                let payload = serde_json::to_vec(&record)
                    .map_err(|e| TaskError::Failed(format!("record {index}: {e}")))?;
                self.route(payload)
                    .map_err(|e| TaskError::Failed(format!("record {index}: {e}")))
            })
            .collect()
    }

    fn route(&self, payload: Vec<u8>) -> Result<Outgoing, RecordError> {
        let record: Val = jq::parse_json(&payload)?;
        let key = match &self.config.key {
            Some(filter) => match filter.one(record.clone())? {
                Val::Null => {
                    return Err(RecordError::NullKey {
                        field: "key",
                        code: filter.source().to_owned(),
                    });
                }
                value => Some(jq::as_text(&value)),
            },
            None => None,
        };
        Ok(Outgoing {
            topic: self.config.topic.topic_of(&record)?,
            key,
            payload,
        })
    }
}

#[async_trait]
impl Operator for GenerateToKafkaOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let config = &self.config;
        let started = Instant::now();
        let records = self.outgoing()?;
        ctx.log(&format!(
            "Generated {} records in {} ms{}",
            records.len(),
            started.elapsed().as_millis(),
            config
                .seed
                .map_or(String::new(), |seed| format!(" (seed {seed})"))
        ));
        let brokers = ctx.connections.kafka_brokers(config.brokers.as_deref());
        let policy = TopicPolicy {
            create: config.create_topics,
            partitions: config.partitions,
        };
        let created = kafka::ensure_topics(&brokers, &kafka::topics(&records), policy).await?;
        if !created.is_empty() {
            ctx.log(&format!("Created topics {}", created.join(", ")));
        }
        let delivery_timeout = config
            .delivery_timeout
            .map_or(DEFAULT_TIMEOUT, |t| t.as_duration());
        let producer = kafka::shared_producer(&brokers, delivery_timeout)?;
        let counts = tokio::select! {
            counts = kafka::produce_all(&producer, &records) => counts.inspect_err(|_| {
                kafka::forget_shared_state(&brokers, delivery_timeout);
            })?,
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        ctx.log(&format!(
            "Produced {} records to {brokers} in {elapsed_ms} ms",
            records.len()
        ));
        let mut result = TaskResult::new();
        result.insert("records".into(), records.len().into());
        result.insert(
            "topics".into(),
            serde_json::to_value(&counts).unwrap_or_default(),
        );
        result.insert("created_topics".into(), created.into());
        result.insert("seed".into(), config.seed.into());
        result.insert("elapsed_ms".into(), elapsed_ms.into());
        Ok(result)
    }
}
