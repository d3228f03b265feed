//! The latest records of a topic, for people to look at (dead letters, a Kafka sink's
//! results): each partition read from `per_partition` records before its end.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
    message::Headers as _,
};

use super::base_config;
use crate::TaskError;

/// How long a read waits for records before answering with what it has.
const READ_LIMIT: Duration = Duration::from_secs(3);
/// A payload longer than this is cut (with `…`).
const MAX_PAYLOAD: usize = 4096;

/// One record as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct TailRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub payload: String,
    pub headers: BTreeMap<String, String>,
}

/// Up to `per_partition` of the newest records of each partition of `topic`, newest first.
/// A topic that does not exist has no records.
pub async fn tail(
    brokers: &str,
    topic: &str,
    per_partition: i64,
) -> Result<Vec<TailRecord>, TaskError> {
    let (owned_brokers, owned_topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || tail_blocking(&owned_brokers, &owned_topic, per_partition))
        .await
        .map_err(|e| TaskError::Failed(format!("reading {topic}: {e}")))?
}

fn tail_blocking(
    brokers: &str,
    topic: &str,
    per_partition: i64,
) -> Result<Vec<TailRecord>, TaskError> {
    let failed = |e: &dyn std::fmt::Display| TaskError::Failed(format!("reading {topic}: {e}"));
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", "updraft-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| failed(&e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), READ_LIMIT)
        .map_err(|e| failed(&e))?;
    let Some(partitions) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
    else {
        return Ok(Vec::new());
    };
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment
            .add_partition_offset(topic, *partition, Offset::OffsetTail(per_partition))
            .map_err(|e| failed(&e))?;
    }
    consumer.assign(&assignment).map_err(|e| failed(&e))?;
    let mut records = Vec::new();
    let mut at_end = 0;
    let started = Instant::now();
    while at_end < partitions.len() && started.elapsed() < READ_LIMIT {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(_)) => {}
            Some(Ok(message)) => records.push(record(&message)),
        }
    }
    records.sort_by_key(|r: &TailRecord| std::cmp::Reverse((r.timestamp_ms, r.offset)));
    Ok(records)
}

fn record(message: &rdkafka::message::BorrowedMessage<'_>) -> TailRecord {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut payload = text(message.payload().unwrap_or_default());
    if payload.len() > MAX_PAYLOAD {
        let mut cut = MAX_PAYLOAD;
        while !payload.is_char_boundary(cut) {
            cut -= 1;
        }
        payload.truncate(cut);
        payload.push('…');
    }
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), text(h.value.unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    TailRecord {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(text),
        payload,
        headers,
    }
}
