use std::time::Instant;

use async_trait::async_trait;

use super::{GenerateToKafkaConfig, generate::Records};
use crate::{
    Operator, RecordError, TaskContext, TaskError, TaskResult,
    jq::{self, Val},
    kafka::{self, Outgoing, Router},
};

/// Generates the run's records, routes each to its topic with its key, and produces them all;
/// succeeds once every record is acknowledged. The result holds `records`, `topics` (count
/// per topic), `created_topics`, `seed` and `elapsed_ms`.
pub(crate) struct GenerateToKafkaOperator {
    config: GenerateToKafkaConfig,
}

impl GenerateToKafkaOperator {
    pub(crate) fn new(config: GenerateToKafkaConfig) -> Self {
        Self { config }
    }

    /// The run's records, generated and routed on a blocking thread: CPU work kept off the
    /// async runtime (which `orchestrator run` drives on one thread).
    async fn generated(&self) -> Result<Vec<Outgoing>, TaskError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || outgoing(&config))
            .await
            .map_err(|e| TaskError::Failed(format!("generating the records stopped: {e}")))?
    }
}

fn outgoing(config: &GenerateToKafkaConfig) -> Result<Vec<Outgoing>, TaskError> {
    let generators = config.generators()?;
    let mut router = Router::new(&config.topic, config.key.as_ref());
    Records::new(generators, config.seed, chrono::Utc::now())
        .take(config.records as usize)
        .enumerate()
        .map(|(index, record)| {
            let payload = serde_json::to_vec(&record)
                .map_err(|e| TaskError::Failed(format!("record {index}: {e}")))?;
            route(&mut router, payload)
                .map_err(|e| TaskError::Failed(format!("record {index}: {e}")))
        })
        .collect()
}

fn route(router: &mut Router, payload: Vec<u8>) -> Result<Outgoing, RecordError> {
    let record: Val = jq::parse_json(&payload)?;
    router.route(&record, payload)
}

#[async_trait]
impl Operator for GenerateToKafkaOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let config = &self.config;
        let started = Instant::now();
        let records = self.generated().await?;
        ctx.log(&format!(
            "Generated {} records in {} ms{}",
            records.len(),
            started.elapsed().as_millis(),
            config
                .seed
                .map_or(String::new(), |seed| format!(" (seed {seed})"))
        ));
        let brokers = ctx.connections.kafka_brokers(config.brokers.as_deref());
        let delivery = kafka::Delivery::new(
            &brokers,
            config.create_topics,
            config.partitions,
            config.delivery_timeout,
        );
        let delivered = kafka::deliver(ctx, &delivery, &records).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        ctx.log(&format!(
            "Produced {} records to {brokers} in {elapsed_ms} ms",
            records.len()
        ));
        let mut result = delivered.result(elapsed_ms);
        result.insert("seed".into(), config.seed.into());
        Ok(result)
    }
}
