//! Records produced by a task that must all be acknowledged before it succeeds.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    message::Message as _,
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};

use super::{TopicPolicy, ensure_topics, forget_shared_state, shared_producer};
use crate::{TaskContext, TaskError, TaskResult};

/// One record ready to produce. The payload may be a slice of a larger answer it shares
/// (`Bytes`), so routing a page does not copy each record.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<String>,
    pub payload: bytes::Bytes,
}

/// How a producer task delivers: to which brokers, creating which topics, waiting how long.
pub struct Delivery<'a> {
    pub brokers: &'a str,
    pub topics: TopicPolicy,
    pub timeout: Duration,
}

impl<'a> Delivery<'a> {
    /// A producer task's settings: `create_topics` with `partitions`, a delivery timeout
    /// (30 s by default).
    pub fn new(
        brokers: &'a str,
        create_topics: bool,
        partitions: i32,
        timeout: Option<crate::HumanDuration>,
    ) -> Self {
        Self {
            brokers,
            topics: TopicPolicy {
                create: create_topics,
                partitions,
            },
            timeout: timeout.map_or(Duration::from_secs(30), |t| t.as_duration()),
        }
    }
}

/// What a delivery did: records acknowledged per topic, and the topics it created.
#[derive(Default)]
pub struct Delivered {
    pub counts: BTreeMap<String, u64>,
    pub created: Vec<String>,
}

impl Delivered {
    /// Adds a later delivery of the same task.
    pub fn add(&mut self, more: Delivered) {
        for (topic, count) in more.counts {
            *self.counts.entry(topic).or_insert(0) += count;
        }
        self.created.extend(more.created);
    }

    pub fn records(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The result of a producing task: `records`, `topics` (count per topic),
    /// `created_topics`, and `elapsed_ms`.
    pub fn result(&self, elapsed_ms: u64) -> TaskResult {
        let mut result = TaskResult::new();
        result.insert("records".into(), self.records().into());
        result.insert(
            "topics".into(),
            serde_json::to_value(&self.counts).unwrap_or_default(),
        );
        result.insert("created_topics".into(), self.created.clone().into());
        result.insert("elapsed_ms".into(), elapsed_ms.into());
        result
    }
}

/// Creates the missing topics, produces every record with the shared producer and waits for
/// every acknowledgement (or for `ctx` to be cancelled). A failed delivery drops the shared
/// producer, so the retry starts afresh.
pub async fn deliver(
    ctx: &TaskContext,
    delivery: &Delivery<'_>,
    records: &[Outgoing],
) -> Result<Delivered, TaskError> {
    send(ctx, delivery, records)
        .await?
        .acknowledged(ctx, delivery)
        .await
}

/// Records handed to the producer whose acknowledgements are still to come: a task may route
/// and send its next batch meanwhile. The default holds nothing and is acknowledged at once.
#[derive(Default)]
pub struct InFlight {
    acks: Vec<DeliveryFuture>,
    counts: BTreeMap<String, u64>,
    created: Vec<String>,
}

/// Creates the missing topics and hands every record to the shared producer, without
/// waiting for their acknowledgements ([`InFlight::acknowledged`]).
pub async fn send(
    ctx: &TaskContext,
    delivery: &Delivery<'_>,
    records: &[Outgoing],
) -> Result<InFlight, TaskError> {
    let counts = counts_per_topic(records);
    let names = counts.keys().cloned().collect();
    let created = ensure_topics(delivery.brokers, &names, delivery.topics).await?;
    if !created.is_empty() {
        ctx.log(&format!("Created topics {}", created.join(", ")));
    }
    let producer = shared_producer(delivery.brokers, delivery.timeout)?;
    let acks = tokio::select! {
        acks = enqueue(&producer, records) => acks.inspect_err(|_| {
            forget_shared_state(delivery.brokers, delivery.timeout);
        })?,
        _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
    };
    Ok(InFlight {
        acks,
        counts,
        created,
    })
}

impl InFlight {
    /// Waits for every acknowledgement (or for `ctx` to be cancelled); a record not
    /// acknowledged drops the shared producer, so the retry starts afresh.
    pub async fn acknowledged(
        self,
        ctx: &TaskContext,
        delivery: &Delivery<'_>,
    ) -> Result<Delivered, TaskError> {
        tokio::select! {
            acked = acknowledge(self.acks) => acked.inspect_err(|_| {
                forget_shared_state(delivery.brokers, delivery.timeout);
            })?,
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        }
        Ok(Delivered {
            counts: self.counts,
            created: self.created,
        })
    }
}

/// The distinct topics of `records`.
pub fn topics(records: &[Outgoing]) -> BTreeSet<String> {
    counts_per_topic(records).into_keys().collect()
}

/// How many of `records` go to each topic.
fn counts_per_topic(records: &[Outgoing]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for record in records {
        *counts.entry(&record.topic).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|(topic, n)| (topic.to_owned(), n))
        .collect()
}

/// Hands every record to `producer` (waiting while its queue is full); their deliveries.
async fn enqueue(
    producer: &FutureProducer,
    records: &[Outgoing],
) -> Result<Vec<DeliveryFuture>, TaskError> {
    let mut acks = Vec::with_capacity(records.len());
    for record in records {
        let mut message = FutureRecord::to(&record.topic).payload(&record.payload[..]);
        if let Some(key) = &record.key {
            message = message.key(key.as_bytes());
        }
        loop {
            match producer.send_result(message) {
                Ok(delivery) => {
                    acks.push(delivery);
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
    Ok(acks)
}

/// Waits for every delivery, in the order sent: acknowledgements come in about that order,
/// so the task wakes about once per batch rather than once per record.
pub(crate) async fn acknowledge(acks: Vec<DeliveryFuture>) -> Result<(), TaskError> {
    for ack in acks {
        match ack.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, message))) => {
                return Err(TaskError::Failed(format!(
                    "a record to {} was not acknowledged: {error}",
                    message.topic()
                )));
            }
            Err(_) => {
                return Err(TaskError::Failed(
                    "the producer shut down before every record was acknowledged".into(),
                ));
            }
        }
    }
    Ok(())
}
