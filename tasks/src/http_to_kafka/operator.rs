use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{HttpToKafkaConfig, fetch::get_with_retries, route};
use crate::{Operator, TaskContext, TaskError, TaskResult, kafka};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// GETs a URL and produces the selected records to Kafka; succeeds only once the brokers
/// have acknowledged every record. The result holds `records`, `topics` (count per topic),
/// `created_topics`, `status` and `elapsed_ms`.
pub struct HttpToKafkaOperator {
    config: HttpToKafkaConfig,
}

impl HttpToKafkaOperator {
    pub fn new(config: HttpToKafkaConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl Operator for HttpToKafkaOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let config = &self.config;
        let started = Instant::now();
        ctx.log(&format!("GET {}", config.url));
        let timeout = config
            .request_timeout
            .map_or(DEFAULT_TIMEOUT, |t| t.as_duration());
        let fetched = get_with_retries(
            &config.url,
            &config.headers,
            timeout,
            config.http_retries,
            ctx,
        )
        .await?;
        ctx.log(&format!(
            "Response {} ({} bytes, {} attempt(s))",
            fetched.status,
            fetched.body.len(),
            fetched.attempts
        ));
        let routing = config.clone();
        let body = fetched.body;
        let routing_started = Instant::now();
        let records = tokio::task::spawn_blocking(move || route::route(&routing, &body))
            .await
            .map_err(|e| TaskError::Failed(format!("routing records panicked: {e}")))?
            .map_err(|e| TaskError::Failed(e.to_string()))?;
        ctx.log(&format!(
            "Selected and routed {} records in {} ms",
            records.len(),
            routing_started.elapsed().as_millis()
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
            "Produced {} records to {brokers} in {elapsed_ms} ms: {}",
            records.len(),
            delivered
                .counts
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut result = delivered.result(elapsed_ms);
        result.insert("status".into(), fetched.status.into());
        Ok(result)
    }
}
