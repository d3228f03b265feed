//! The Kafka broker and MongoDB server the streaming tests use, and small clients for them.
//! `scripts/test` starts both; a test fails (never skips) and says how when one is missing.

#![allow(dead_code)]

pub mod private;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::TryStreamExt as _;
use mongodb::bson::Document;
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer as _},
    producer::{FutureProducer, FutureRecord},
};

pub fn kafka_brokers() -> String {
    std::env::var("UPDRAFT_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("UPDRAFT_KAFKA_BROKERS is not set: start the broker with `eval \"$(scripts/kafka start)\"` or run the whole suite with scripts/test")
    })
}

pub fn mongo_uri() -> String {
    std::env::var("UPDRAFT_MONGO_URI").unwrap_or_else(|_| {
        panic!("UPDRAFT_MONGO_URI is not set: start MongoDB (nx-27017) with `eval \"$(scripts/mongo start)\"` or run the whole suite with scripts/test")
    })
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn mongo(database: &str) -> mongodb::Database {
    let uri = mongo_uri();
    let client = mongodb::Client::with_uri_str(format!(
        "{uri}/?serverSelectionTimeoutMS=5000&retryWrites=false"
    ))
    .await
    .unwrap_or_else(|e| panic!("bad UPDRAFT_MONGO_URI {uri}: {e}"));
    let db = client.database(database);
    db.list_collection_names().await.unwrap_or_else(|e| {
        panic!("MongoDB at {uri} does not answer ({e}): start it with `eval \"$(scripts/mongo start)\"`")
    });
    db
}

/// The `users` counts of every window document in `collection`, summed.
pub async fn users_counted(collection: &mongodb::Collection<Document>) -> i64 {
    all_documents(collection)
        .await
        .iter()
        .map(|d| int(d, "users"))
        .sum()
}

pub async fn all_documents(collection: &mongodb::Collection<Document>) -> Vec<Document> {
    collection
        .find(Document::new())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
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
pub fn consume_all(topics: &[String], expected: usize, limit: Duration) -> Vec<Consumed> {
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

/// The committed offset of `group` on each partition in `ends` (0 when none).
pub fn committed(group: &str, ends: &BTreeMap<(String, i32), i64>) -> BTreeMap<(String, i32), i64> {
    committed_on(&kafka_brokers(), group, ends)
}

pub fn committed_on(
    brokers: &str,
    group: &str,
    ends: &BTreeMap<(String, i32), i64>,
) -> BTreeMap<(String, i32), i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        partitions.add_partition(topic, *partition);
    }
    consumer
        .committed_offsets(partitions, Duration::from_secs(5))
        .unwrap()
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            ((e.topic().to_owned(), e.partition()), offset)
        })
        .collect()
}

/// Commits `offset` (the next record to read) on `topic`/`partition` for `group`, as a
/// consumer that stopped there would have.
pub fn commit(group: &str, topic: &str, partition: i32, offset: i64) {
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
pub fn group_lag(group: &str, ends: &BTreeMap<(String, i32), i64>) -> i64 {
    group_lag_on(&kafka_brokers(), group, ends)
}

pub fn group_lag_on(brokers: &str, group: &str, ends: &BTreeMap<(String, i32), i64>) -> i64 {
    committed_on(brokers, group, ends)
        .iter()
        .map(|(partition, next)| ends[partition] - next)
        .sum()
}

/// Waits until `check` holds, polling every 200 ms; fails naming `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Synthetic users: id, country, gender, age and an event time `ts` (seconds) 6 ms apart.
pub fn synthetic_users(count: usize, base_seconds: i64) -> Vec<(String, String)> {
    const COUNTRIES: &[&str] = &["France", "Germany", "Brazil", "India", "Norway", "Spain"];
    (0..count)
        .map(|i| {
            let record = serde_json::json!({
                "id": i,
                "country": COUNTRIES[i % COUNTRIES.len()],
                "gender": if i % 7 < 3 { "female" } else { "male" },
                "age": 18 + (i * 31) % 60,
                "ts": base_seconds as f64 + i as f64 * 0.006,
            });
            (i.to_string(), record.to_string())
        })
        .collect()
}

/// A stream task over `topic` counting users and summing ages per minute of `ts`.
pub fn stats_dag_source(ns: &str, topic: &str, extra: &str) -> String {
    format!(
        r#"[dag]
id = "{ns}"
schedule = "@continuous"
start_date = "2026-01-01T00:00:00Z"

[[task]]
id = "stats"
operator = "stream"
topics = ["{topic}"]
group_id = "{ns}"
flush_interval = "500ms"
{extra}
[task.window]
size = "1m"
event_time = ".ts"
allowed_lateness = "1h"
group_by = {{ country = ".country", gender = ".gender" }}
aggregates = {{ users = "count", total_age = {{ sum = ".age" }}, avg_age = {{ avg = ".age" }} }}
[task.sink]
kind = "mongodb"
database = "{ns}"
collection = "stats"
"#
    )
}

/// Checks every window document against the records it should hold.
pub fn assert_exact(documents: &[Document], records: &[serde_json::Value]) {
    let mut truth: BTreeMap<(i64, String, String), (i64, f64)> = BTreeMap::new();
    for record in records {
        let minute =
            ((record["ts"].as_f64().unwrap() * 1000.0).round() as i64).div_euclid(60_000) * 60_000;
        let key = (
            minute,
            record["country"].as_str().unwrap().to_owned(),
            record["gender"].as_str().unwrap().to_owned(),
        );
        let entry = truth.entry(key).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += record["age"].as_f64().unwrap();
    }
    let mut seen = 0;
    for document in documents {
        let key = (
            minute_of(document),
            document.get_str("country").unwrap().to_owned(),
            document.get_str("gender").unwrap().to_owned(),
        );
        let Some((count, sum)) = truth.get(&key) else {
            panic!("a document no record belongs to: {document}");
        };
        assert_eq!(int(document, "users"), *count, "users in {document}");
        assert_eq!(
            float(document, "total_age"),
            *sum,
            "total_age in {document}"
        );
        seen += 1;
    }
    assert_eq!(seen, truth.len(), "one document per window and group");
}

/// The start of a window document's window, in ms.
pub fn minute_of(document: &Document) -> i64 {
    let start = document.get_str("window_start").unwrap();
    chrono::DateTime::parse_from_rfc3339(start)
        .unwrap()
        .timestamp_millis()
}

/// An integer field, whatever width the server stored it with.
pub fn int(document: &Document, key: &str) -> i64 {
    match document.get(key) {
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        Some(mongodb::bson::Bson::Double(n)) if n.fract() == 0.0 => *n as i64,
        other => panic!("{key} is {other:?} in {document}"),
    }
}

/// A number field as f64.
pub fn float(document: &Document, key: &str) -> f64 {
    match document.get(key) {
        Some(mongodb::bson::Bson::Double(n)) => *n,
        Some(mongodb::bson::Bson::Int64(n)) => *n as f64,
        Some(mongodb::bson::Bson::Int32(n)) => f64::from(*n),
        other => panic!("{key} is {other:?} in {document}"),
    }
}
