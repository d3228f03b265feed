//! Records produced by a task that must all be acknowledged before it succeeds.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::{FutureProducer, FutureRecord},
};

use crate::TaskError;

/// One record ready to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

/// The distinct topics of `records`.
pub fn topics(records: &[Outgoing]) -> BTreeSet<String> {
    records.iter().map(|r| r.topic.clone()).collect()
}

/// Sends every record and waits for every acknowledgement; counts per topic.
pub async fn produce_all(
    producer: &FutureProducer,
    records: &[Outgoing],
) -> Result<BTreeMap<String, u64>, TaskError> {
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        let mut message = FutureRecord::to(&record.topic).payload(&record.payload);
        if let Some(key) = &record.key {
            message = message.key(key.as_bytes());
        }
        loop {
            match producer.send_result(message) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    message = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => {
                    return Err(TaskError::Failed(format!(
                        "cannot produce to {}: {error}",
                        record.topic
                    )));
                }
            }
        }
    }
    let mut counts = BTreeMap::new();
    for (delivery, record) in futures::future::join_all(pending)
        .await
        .into_iter()
        .zip(records)
    {
        match delivery {
            Ok(Ok(_)) => *counts.entry(record.topic.clone()).or_insert(0) += 1,
            Ok(Err((error, _))) => {
                return Err(TaskError::Failed(format!(
                    "a record to {} was not acknowledged: {error}",
                    record.topic
                )));
            }
            Err(_) => {
                return Err(TaskError::Failed(
                    "the producer shut down before every record was acknowledged".into(),
                ));
            }
        }
    }
    Ok(counts)
}
