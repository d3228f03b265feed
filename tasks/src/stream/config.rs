use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{HumanDuration, jq::JqFilter, kafka::TopicSpec};

/// `stream` consumes Kafka topics until its run stops: jq transforms, optional event-time
/// windows with aggregates, then a MongoDB or Kafka sink, exactly once into MongoDB.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Topics to consume; a name starting with `^` is a regular expression (`^users\..*`).
    pub topics: Vec<String>,
    /// Consumer group: where the committed offsets live.
    pub group_id: String,
    /// Kafka bootstrap servers; `$UPDRAFT_KAFKA_BROKERS` or 127.0.0.1:9092 by default.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Where a new group starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub start_from: StartFrom,
    /// jq expressions applied in order; each may drop a record (`select`), reshape it, or
    /// explode it into several (`.text | split(" ")[]`).
    #[serde(default)]
    pub transform: Vec<JqFilter>,
    /// Aggregate over event-time windows; records go to the sink as they are without it.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Where results go.
    pub sink: SinkConfig,
    /// Topic for records that cannot be parsed or evaluated (and late ones), with the reason
    /// and source position in headers.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// How often results are written and offsets committed; 1 s by default.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: HumanDuration,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

/// Tumbling windows (`size`), or sliding ones when `slide` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length, e.g. `1m`.
    pub size: HumanDuration,
    /// Distance between sliding window starts; tumbling windows when absent.
    #[serde(default)]
    pub slide: Option<HumanDuration>,
    /// jq expression for a record's event time (RFC 3339 text or seconds since the epoch);
    /// the Kafka record timestamp when absent.
    #[serde(default)]
    pub event_time: Option<JqFilter>,
    /// How far behind the newest event time a record may be before its window closes.
    #[serde(default)]
    pub allowed_lateness: HumanDuration,
    /// Group-by fields: name = jq expression.
    #[serde(default)]
    pub group_by: BTreeMap<String, JqFilter>,
    /// Aggregates: name = "count" or { sum | min | max | avg | count_distinct = jq }.
    pub aggregates: BTreeMap<String, AggregateSpec>,
}

/// One aggregate of a window.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateSpec {
    Count,
    Sum(JqFilter),
    Min(JqFilter),
    Max(JqFilter),
    Avg(JqFilter),
    CountDistinct(JqFilter),
}

/// Where a stream's results go.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Window documents, or records upserted by `key`.
    Mongodb {
        /// Connection string; `$UPDRAFT_MONGO_URI` or mongodb://127.0.0.1:27017 by default.
        #[serde(default)]
        uri: Option<String>,
        database: String,
        collection: String,
        /// jq expression for a record's `_id` (records without windows); required then.
        #[serde(default)]
        key: Option<JqFilter>,
    },
    /// Records (or window results, when they close) produced to a topic.
    Kafka {
        /// A topic name or a jq expression per record.
        topic: TopicSpec,
        /// jq expression for the record key.
        #[serde(default)]
        key: Option<JqFilter>,
    },
}

fn default_flush_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
