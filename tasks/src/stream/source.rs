//! The Kafka side of a stream task: one consumer that assigns itself every partition of the
//! matching topics (no group membership, so no rebalances and no wait for a dead member's
//! session to expire after a crash), starting from the group's committed offsets.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, ConsumerContext, StreamConsumer},
};

use super::{StartFrom, StreamConfig, start_guard::fetch_from};
use crate::{ConfigError, Share, TaskError};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A source position: topic and partition.
pub(super) type Partition = (String, i32);

/// What librdkafka's statistics (every 2 s) last said of each partition.
#[derive(Default)]
struct Reported {
    /// High watermark minus the committed offset, by `topic/partition`.
    lag: BTreeMap<String, i64>,
    /// The next offset of each partition.
    high_watermarks: BTreeMap<Partition, i64>,
}

/// Keeps what librdkafka's statistics report.
pub(super) struct LagContext {
    reported: Arc<Mutex<Reported>>,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let mut reported = Reported::default();
        for (name, topic) in &statistics.topics {
            for (id, partition) in topic.partitions.iter().filter(|(id, _)| **id >= 0) {
                if partition.consumer_lag >= 0 {
                    reported
                        .lag
                        .insert(format!("{name}/{id}"), partition.consumer_lag);
                }
                if partition.hi_offset >= 0 {
                    reported
                        .high_watermarks
                        .insert((name.clone(), *id), partition.hi_offset);
                }
            }
        }
        if let Ok(mut current) = self.reported.lock() {
            *current = reported;
        }
    }
}

impl ConsumerContext for LagContext {}

/// Which topics a task reads: exact names, and `^regex` patterns; and which of their
/// partitions, when the task is one share of several.
struct TopicMatcher {
    names: BTreeSet<String>,
    patterns: Vec<regex::Regex>,
    share: Share,
}

impl TopicMatcher {
    fn new(topics: &[String], share: Share) -> Result<Self, TaskError> {
        let mut names = BTreeSet::new();
        let mut patterns = Vec::new();
        for topic in topics {
            if topic.starts_with('^') {
                patterns.push(regex::Regex::new(topic).map_err(|e| {
                    ConfigError::new("topics", format!("bad regular expression {topic:?}: {e}"))
                })?);
            } else {
                names.insert(topic.clone());
            }
        }
        Ok(Self {
            names,
            patterns,
            share,
        })
    }

    fn matches(&self, topic: &str) -> bool {
        self.names.contains(topic) || self.patterns.iter().any(|p| p.is_match(topic))
    }
}

pub(super) struct Source {
    pub consumer: Arc<StreamConsumer<LagContext>>,
    reported: Arc<Mutex<Reported>>,
    matcher: Arc<TopicMatcher>,
    assigned: BTreeSet<Partition>,
    start_from: StartFrom,
    brokers: String,
    /// Offsets kept by the sink with its results (SQL): where partitions start, instead of
    /// the group's offsets committed in Kafka.
    stored: Option<Arc<BTreeMap<Partition, i64>>>,
}

impl Source {
    /// A source starting from `stored` offsets when the sink keeps them, else from the
    /// group's committed offsets.
    pub(super) fn new(
        config: &StreamConfig,
        brokers: &str,
        stored: Option<BTreeMap<Partition, i64>>,
        share: Share,
    ) -> Result<Self, TaskError> {
        let reported = Arc::new(Mutex::new(Reported::default()));
        let consumer: StreamConsumer<LagContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match config.start_from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            )
            .set("statistics.interval.ms", "2000")
            // An idle fetch returns after at most 100 ms (librdkafka waits 500 ms by default,
            // and tansu holds a fetch that long even when records arrive meanwhile).
            .set("fetch.wait.max.ms", "100")
            .set("log_level", "3")
            .create_with_context(LagContext {
                reported: reported.clone(),
            })
            .map_err(|e| {
                TaskError::Failed(format!("cannot create a Kafka consumer for {brokers}: {e}"))
            })?;
        Ok(Self {
            consumer: Arc::new(consumer),
            reported,
            matcher: Arc::new(TopicMatcher::new(&config.topics, share)?),
            assigned: BTreeSet::new(),
            start_from: config.start_from,
            brokers: brokers.to_owned(),
            stored: stored.map(Arc::new),
        })
    }

    /// Assigns partitions of matching topics not assigned yet (new topics and partitions
    /// appear this way), each from its stored or committed offset; the partitions added,
    /// with the offset each resumes at (none for `start_from = "latest"` without one).
    pub(super) async fn refresh_assignment(
        &mut self,
    ) -> Result<Vec<(Partition, Option<i64>)>, TaskError> {
        let consumer = self.consumer.clone();
        let matcher = self.matcher.clone();
        let assigned = self.assigned.clone();
        let start_from = self.start_from;
        let brokers = self.brokers.clone();
        let stored = self.stored.clone();
        let added = tokio::task::spawn_blocking(move || {
            let new = new_partitions(&consumer, &matcher, &assigned, &brokers)?;
            if new.count() == 0 {
                return Ok(Vec::new());
            }
            let resume = match stored {
                Some(stored) => stored_offsets(&new, &stored)?,
                None => consumer
                    .committed_offsets(new, METADATA_TIMEOUT)
                    .map_err(|e| {
                        TaskError::Failed(format!(
                            "cannot read committed offsets from {brokers}: {e}"
                        ))
                    })?,
            };
            assign_from(&consumer, &resume, start_from)
        })
        .await
        .map_err(|e| TaskError::Failed(format!("assigning partitions: {e}")))??;
        self.assigned
            .extend(added.iter().map(|(partition, _)| partition.clone()));
        Ok(added)
    }

    pub(super) fn assigned(&self) -> usize {
        self.assigned.len()
    }

    /// Commits `positions` (the next offset to read per partition) when awaited; returns once
    /// the broker has acknowledged. Owns what it needs, so a flush can commit while the task
    /// reads on.
    pub(super) fn commit(
        &self,
        positions: &BTreeMap<Partition, i64>,
    ) -> impl Future<Output = Result<(), TaskError>> + Send + 'static {
        let mut offsets = TopicPartitionList::new();
        let listed = positions.iter().try_for_each(|((topic, partition), next)| {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| TaskError::Failed(format!("offsets: {e}")))
        });
        let consumer = self.consumer.clone();
        async move {
            listed?;
            tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
                .await
                .map_err(|e| TaskError::Failed(format!("commit: {e}")))?
                .map_err(|e| TaskError::Failed(format!("committing offsets failed: {e}")))
        }
    }

    /// Moves the next fetch of `partition` to `offset`.
    pub(super) async fn seek(&self, partition: &Partition, offset: i64) -> Result<(), TaskError> {
        let consumer = self.consumer.clone();
        let (topic, id) = partition.clone();
        tokio::task::spawn_blocking(move || {
            consumer.seek(&topic, id, Offset::Offset(offset), METADATA_TIMEOUT)
        })
        .await
        .map_err(|e| TaskError::Failed(format!("seek: {e}")))?
        .map_err(|e| {
            TaskError::Failed(format!(
                "cannot re-read {}/{} from offset {offset}: {e}",
                partition.0, partition.1
            ))
        })
    }

    /// The end of `partition` (its next offset) as last reported, if any.
    pub(super) fn high_watermark(&self, partition: &Partition) -> Option<i64> {
        self.reported
            .lock()
            .ok()
            .and_then(|reported| reported.high_watermarks.get(partition).copied())
    }

    /// Consumer lag per partition (high watermark minus the committed offset).
    pub(super) fn lag(&self) -> BTreeMap<String, i64> {
        self.reported
            .lock()
            .map(|reported| reported.lag.clone())
            .unwrap_or_default()
    }
}

/// The partitions of matching topics not in `assigned`.
fn new_partitions(
    consumer: &StreamConsumer<LagContext>,
    matcher: &TopicMatcher,
    assigned: &BTreeSet<Partition>,
    brokers: &str,
) -> Result<TopicPartitionList, TaskError> {
    let metadata = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| TaskError::Failed(format!("cannot read topics from {brokers}: {e}")))?;
    let mut new = TopicPartitionList::new();
    for topic in metadata.topics() {
        if topic.error().is_some() || !matcher.matches(topic.name()) {
            continue;
        }
        for partition in topic.partitions() {
            let key = (topic.name().to_owned(), partition.id());
            if !assigned.contains(&key) && matcher.share.owns(topic.name(), partition.id()) {
                new.add_partition(topic.name(), partition.id());
            }
        }
    }
    Ok(new)
}

/// `partitions` with the offsets `stored` holds (none where it holds none).
fn stored_offsets(
    partitions: &TopicPartitionList,
    stored: &BTreeMap<Partition, i64>,
) -> Result<TopicPartitionList, TaskError> {
    let mut resume = TopicPartitionList::new();
    for element in partitions.elements() {
        let key = (element.topic().to_owned(), element.partition());
        let offset = stored
            .get(&key)
            .map_or(Offset::Invalid, |next| Offset::Offset(*next));
        resume
            .add_partition_offset(element.topic(), element.partition(), offset)
            .map_err(|e| TaskError::Failed(format!("offsets: {e}")))?;
    }
    Ok(resume)
}

/// Assigns the partitions of `resume`, each from its offset (or where `start_from` says when
/// it has none); the partitions with the offset each resumes at.
fn assign_from(
    consumer: &StreamConsumer<LagContext>,
    resume: &TopicPartitionList,
    start_from: StartFrom,
) -> Result<Vec<(Partition, Option<i64>)>, TaskError> {
    let mut start = TopicPartitionList::new();
    let mut starts = Vec::new();
    for element in resume.elements() {
        let offset = match element.offset() {
            Offset::Offset(next) => Offset::Offset(next),
            // Offset 0 rather than "beginning": tansu can leave an offset query on an empty
            // partition unanswered, and the partition is then never read. When 0 is gone
            // (retention), auto.offset.reset=earliest moves to the first offset kept.
            _ => match start_from {
                StartFrom::Earliest => Offset::Offset(0),
                StartFrom::Latest => Offset::End,
            },
        };
        // A resumed offset is fetched from a little earlier: see `start_guard`.
        let committed = offset.to_raw().filter(|o| *o >= 0);
        let fetch = committed.map_or(offset, |c| Offset::Offset(fetch_from(c)));
        start
            .add_partition_offset(element.topic(), element.partition(), fetch)
            .map_err(|e| TaskError::Failed(format!("offsets: {e}")))?;
        starts.push(((element.topic().to_owned(), element.partition()), committed));
    }
    consumer
        .incremental_assign(&start)
        .map_err(|e| TaskError::Failed(format!("cannot assign partitions: {e}")))?;
    Ok(starts)
}
