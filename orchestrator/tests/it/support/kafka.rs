//! The Kafka broker `scripts/test` starts (`UPDRAFT_KAFKA_BROKERS`): topics, producing,
//! reading back, and consumer-group offsets. Calls into rdkafka's blocking consumer run on a
//! blocking thread, never on an async test's own.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer as _},
    producer::{FutureProducer, FutureRecord},
};

use super::unique;

pub fn kafka_brokers() -> String {
    std::env::var("UPDRAFT_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("UPDRAFT_KAFKA_BROKERS is not set: start the broker with `eval \"$(scripts/kafka start)\"` or run the whole suite with scripts/test")
    })
}

pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_on(&kafka_brokers(), topic, partitions).await
}

pub async fn create_topic_on(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach Kafka at {brokers}: {e}: start it with `eval \"$(scripts/kafka start)\"`"
            )
        });
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// Produces (key, payload) pairs to `topic`, waits for every acknowledgement; the
/// (partition, offset) each record got.
pub async fn produce(topic: &str, records: &[(String, String)]) -> Vec<(i32, i64)> {
    produce_on(&kafka_brokers(), topic, records).await
}

/// [`produce`] on `brokers`; a record waits up to 2 minutes for a broker that is down.
pub async fn produce_on(
    brokers: &str,
    topic: &str,
    records: &[(String, String)],
) -> Vec<(i32, i64)> {
    produce_lingering(brokers, topic, records, 5).await
}

/// [`produce`] with the records of 200 ms in one batch per partition (up to 1 MB).
pub async fn produce_in_one_batch(topic: &str, records: &[(String, String)]) -> Vec<(i32, i64)> {
    produce_lingering(&kafka_brokers(), topic, records, 200).await
}

/// Produces one record with its Kafka timestamp set to `timestamp_ms` (the event time of a
/// stream that windows by Kafka time).
pub async fn produce_at(topic: &str, key: &str, payload: &str, timestamp_ms: i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .timestamp(timestamp_ms),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("producing to {topic} failed: {e}"));
}

async fn produce_lingering(
    brokers: &str,
    topic: &str,
    records: &[(String, String)],
    linger_ms: u32,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "120000")
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let sends = records.iter().map(|(key, payload)| {
        producer.send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(30),
        )
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|result| {
            let delivery =
                result.unwrap_or_else(|(e, _)| panic!("producing to {topic} failed: {e}"));
            (delivery.partition, delivery.offset)
        })
        .collect()
}

/// The end offset (last offset + 1) of every partition of `topic` the placements used.
pub fn ends_of_placements(topic: &str, placements: &[(i32, i64)]) -> BTreeMap<(String, i32), i64> {
    let mut ends = BTreeMap::new();
    for (partition, offset) in placements {
        let end = ends.entry((topic.to_owned(), *partition)).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: String,
    pub timestamp_ms: i64,
    pub headers: BTreeMap<String, String>,
}

/// Every record of `topics` from the beginning: reads until `expected` records arrived, or
/// fails after `limit`.
pub async fn consume_all(topics: &[String], expected: usize, limit: Duration) -> Vec<Consumed> {
    let topics = topics.to_vec();
    blocking(move || consume_all_blocking(&topics, expected, limit)).await
}

/// Runs rdkafka's blocking consumer calls off the test's async thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

fn consume_all_blocking(topics: &[String], expected: usize, limit: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A topic the task under test creates later is seen within a second, not 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).unwrap();
    let started = Instant::now();
    let mut records = Vec::new();
    while records.len() < expected {
        assert!(
            started.elapsed() < limit,
            "read {} of {expected} records of {topics:?} within {limit:?}",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            // A topic the task under test has not created yet.
            Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            )) => continue,
            Err(e) => panic!("consuming {topics:?}: {e}"),
        };
        use rdkafka::message::Headers as _;
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Consumed {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
            headers,
        });
    }
    records
}

/// The end offset (last offset + 1) of every partition the records were read from.
pub fn ends_of(records: &[Consumed]) -> BTreeMap<(String, i32), i64> {
    let mut ends = BTreeMap::new();
    for record in records {
        let end = ends
            .entry((record.topic.clone(), record.partition))
            .or_insert(0);
        *end = (*end).max(record.offset + 1);
    }
    ends
}

/// The committed offset of `group` on each partition in `ends` (0 when none); an error
/// (the broker restarting, say) for the caller's poll to retry.
pub async fn committed(group: &str, ends: &Ends) -> Result<Ends, String> {
    committed_on(&kafka_brokers(), group, ends).await
}

pub async fn committed_on(brokers: &str, group: &str, ends: &Ends) -> Result<Ends, String> {
    let (brokers, group, ends) = (brokers.to_owned(), group.to_owned(), ends.clone());
    blocking(move || committed_blocking(&brokers, &group, &ends)).await
}

/// End or committed offsets by (topic, partition).
pub type Ends = BTreeMap<(String, i32), i64>;

fn committed_blocking(brokers: &str, group: &str, ends: &Ends) -> Result<Ends, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .map_err(|e| e.to_string())?;
    let mut partitions = TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        partitions.add_partition(topic, *partition);
    }
    Ok(consumer
        .committed_offsets(partitions, Duration::from_secs(5))
        .map_err(|e| format!("committed offsets of {group}: {e}"))?
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            ((e.topic().to_owned(), e.partition()), offset)
        })
        .collect())
}

/// Commits `offset` (the next record to read) on `topic`/`partition` for `group`, as a
/// consumer that stopped there would have.
pub async fn commit(group: &str, topic: &str, partition: i32, offset: i64) {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    blocking(move || commit_blocking(&group, &topic, partition, offset)).await
}

fn commit_blocking(group: &str, topic: &str, partition: i32, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .unwrap_or_else(|e| panic!("committing {offset} on {topic}/{partition} for {group}: {e}"));
}

/// Total of (end offset - committed offset) of `group` over the partitions in `ends` (the
/// records not yet committed). tansu's ListOffsets answers are unreliable, so the ends come
/// from what the test produced or read.
pub async fn group_lag(group: &str, ends: &Ends) -> Result<i64, String> {
    group_lag_on(&kafka_brokers(), group, ends).await
}

pub async fn group_lag_on(brokers: &str, group: &str, ends: &Ends) -> Result<i64, String> {
    Ok(committed_on(brokers, group, ends)
        .await?
        .iter()
        .map(|(partition, next)| ends[partition] - next)
        .sum())
}
