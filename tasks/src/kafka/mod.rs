//! Kafka plumbing shared by the operators: where the brokers are, clients with Updraft's
//! settings, and topics created on demand.

mod produce;
mod router;
mod tail;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{LazyLock, Mutex},
    time::Duration,
};

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer as _},
    error::RDKafkaErrorCode,
    producer::FutureProducer,
};

use crate::{
    TaskError,
    jq::{JqError, JqFilter, Val},
};

pub(crate) use produce::acknowledge;
pub use produce::{Delivered, Delivery, InFlight, Outgoing, deliver, send, topics};
pub use router::{RecordTopics, Router};
pub use tail::{TailRecord, tail};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "10000")
        .set("log_level", "3");
    config
}

/// An idempotent producer that waits for all in-sync replicas, compresses, and gives up on a
/// record after `delivery_timeout`.
pub fn producer(brokers: &str, delivery_timeout: Duration) -> Result<FutureProducer, TaskError> {
    base_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|e| {
            TaskError::Failed(format!("cannot create a Kafka producer for {brokers}: {e}"))
        })
}

/// Producers kept for the life of the process, one per brokers and delivery timeout.
static SHARED_PRODUCERS: LazyLock<Mutex<HashMap<(String, Duration), FutureProducer>>> =
    LazyLock::new(Mutex::default);

/// Topics seen to exist, per brokers: checked once per process, not on every call.
static KNOWN_TOPICS: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Mutex::default);

/// A [`producer`] shared by every task of the process with the same brokers and delivery
/// timeout. A warm producer has its connections, producer id and topic metadata: a fresh
/// one spent ~550 ms of a 5,000-record `http_to_kafka` call getting them (BENCHMARKS.md).
pub fn shared_producer(
    brokers: &str,
    delivery_timeout: Duration,
) -> Result<FutureProducer, TaskError> {
    let mut producers = SHARED_PRODUCERS
        .lock()
        .map_err(|_| TaskError::Failed("the shared Kafka producers are poisoned".into()))?;
    let key = (brokers.to_owned(), delivery_timeout);
    if let Some(producer) = producers.get(&key) {
        return Ok(producer.clone());
    }
    let created = producer(brokers, delivery_timeout)?;
    producers.insert(key, created.clone());
    Ok(created)
}

/// Forgets the shared producer and the known topics of `brokers` after a failed delivery:
/// the next task starts afresh (a producer in a fatal state, a deleted topic).
pub fn forget_shared_state(brokers: &str, delivery_timeout: Duration) {
    if let Ok(mut producers) = SHARED_PRODUCERS.lock() {
        producers.remove(&(brokers.to_owned(), delivery_timeout));
    }
    if let Ok(mut known) = KNOWN_TOPICS.lock() {
        known.retain(|(b, _)| b != brokers);
    }
}

fn all_known(brokers: &str, topics: &BTreeSet<String>) -> bool {
    KNOWN_TOPICS.lock().is_ok_and(|known| {
        topics
            .iter()
            .all(|t| known.contains(&(brokers.to_owned(), t.clone())))
    })
}

fn remember(brokers: &str, topics: &BTreeSet<String>) {
    if let Ok(mut known) = KNOWN_TOPICS.lock() {
        known.extend(topics.iter().map(|t| (brokers.to_owned(), t.clone())));
    }
}

/// How a task treats topics that do not exist yet.
#[derive(Debug, Clone, Copy)]
pub struct TopicPolicy {
    pub create: bool,
    pub partitions: i32,
}

/// Makes sure every topic in `topics` exists: creates the missing ones (with
/// `policy.partitions`), or fails naming them when creation is off. Fails clearly when no
/// broker answers. Topics once seen are not asked about again (see [`forget_shared_state`]).
pub async fn ensure_topics(
    brokers: &str,
    topics: &BTreeSet<String>,
    policy: TopicPolicy,
) -> Result<Vec<String>, TaskError> {
    if all_known(brokers, topics) {
        return Ok(Vec::new());
    }
    let created = check_and_create_topics(brokers, topics, policy).await?;
    remember(brokers, topics);
    Ok(created)
}

async fn check_and_create_topics(
    brokers: &str,
    topics: &BTreeSet<String>,
    policy: TopicPolicy,
) -> Result<Vec<String>, TaskError> {
    let existing = existing_topics(brokers).await?;
    let missing: Vec<&String> = topics.iter().filter(|t| !existing.contains(*t)).collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    if !policy.create {
        return Err(TaskError::Failed(format!(
            "topics {} do not exist on {brokers} and create_topics is off",
            join(&missing)
        )));
    }
    let admin: AdminClient<DefaultClientContext> = base_config(brokers)
        .create()
        .map_err(|e| TaskError::Failed(format!("cannot create a Kafka admin client: {e}")))?;
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| NewTopic::new(t, policy.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| TaskError::Failed(format!("creating topics on {brokers} failed: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TaskError::Failed(format!(
                    "cannot create topic {topic} on {brokers}: {code}"
                )));
            }
        }
    }
    Ok(missing.into_iter().cloned().collect())
}

/// The topics the brokers know; fails clearly when none answers.
pub async fn existing_topics(brokers: &str) -> Result<BTreeSet<String>, TaskError> {
    let config = base_config(brokers);
    let unreachable = |e: &dyn std::fmt::Display| {
        TaskError::Failed(format!(
            "cannot reach the Kafka brokers at {brokers} (within {}s): {e}",
            METADATA_TIMEOUT.as_secs()
        ))
    };
    // fetch_metadata blocks: run it off the async workers.
    let metadata = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create()?;
        client.fetch_metadata(None, METADATA_TIMEOUT)
    })
    .await
    .map_err(|e| unreachable(&e))?
    .map_err(|e| unreachable(&e))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_owned())
        .collect())
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a record has no topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Jq(#[from] JqError),
    #[error("topic {code:?} gave {value}, not a topic name")]
    NotATopic { code: String, value: String },
}

/// Where a record goes: one named topic, or a jq expression giving a topic per record.
#[derive(Debug, Clone)]
pub enum TopicSpec {
    Name(String),
    Expression(JqFilter),
}

impl TopicSpec {
    /// A legal topic name not starting with `.` (`users`, `users.us`) is that topic; anything
    /// else is a jq expression (`.topic`, `"users." + .nat`).
    pub fn parse(text: &str) -> Result<Self, JqError> {
        if is_topic_name(text) && !text.starts_with('.') {
            return Ok(Self::Name(text.to_owned()));
        }
        JqFilter::compile(text).map(Self::Expression)
    }

    /// The expression, when the topic is one.
    pub fn filter(&self) -> Option<&JqFilter> {
        match self {
            Self::Name(_) => None,
            Self::Expression(filter) => Some(filter),
        }
    }

    /// The topic of `record`.
    pub fn topic_of(&self, record: &Val) -> Result<String, TopicError> {
        match self {
            Self::Name(name) => Ok(name.clone()),
            Self::Expression(filter) => match filter.one(record.clone())? {
                Val::TStr(name) if is_topic_name(&String::from_utf8_lossy(&name)) => {
                    Ok(String::from_utf8_lossy(&name).into_owned())
                }
                other => Err(TopicError::NotATopic {
                    code: filter.source().to_owned(),
                    value: other.to_string(),
                }),
            },
        }
    }
}

impl<'de> serde::Deserialize<'de> for TopicSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(|error| {
            serde::de::Error::custom(format!(
                "{error} (a topic is a name of letters, digits, '.', '_' and '-', or a jq expression)"
            ))
        })
    }
}

/// Kafka's rule: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_names_or_expressions() {
        let record = crate::jq::from_json(&serde_json::json!({"nat": "FR", "name": "fr-users"}));
        for (spec, expected) in [
            ("users", "users"),
            ("all", "all"),
            (".name", "fr-users"),
            ("users.all", "users.all"),
            ("user-stats_v2", "user-stats_v2"),
            (r#""users." + (.nat | ascii_downcase)"#, "users.fr"),
            (r#""users.\(.nat)""#, "users.FR"),
        ] {
            let spec = TopicSpec::parse(spec).unwrap();
            assert_eq!(spec.topic_of(&record).unwrap(), expected);
        }
        let error = serde_json::from_value::<TopicSpec>(serde_json::json!("users | ("))
            .unwrap_err()
            .to_string();
        assert!(error.contains("topic is a name"), "{error}");
        let error = TopicSpec::parse(".nat | length")
            .unwrap()
            .topic_of(&record)
            .unwrap_err();
        assert!(matches!(error, TopicError::NotATopic { .. }), "{error}");
        assert!(error.to_string().contains("not a topic name"), "{error}");
    }
}
