use std::collections::BTreeMap;

use serde::Deserialize;

use super::generate::{Generator, parse_fields};
use crate::{ConfigError, HumanDuration, checks, jq::JqFilter, kafka::TopicSpec};

/// The most records one run generates.
pub(crate) const MAX_RECORDS: u64 = 1_000_000;

/// `generate_to_kafka` produces `records` simulated records a run, each field drawn by a
/// generator: `{ pick = [...], weights = [...] }`, `{ int = [low, high] }`,
/// `{ float = [low, high], decimals = 2 }`, `{ value = ... }`, `"uuid"`, `"now"`,
/// `"now_epoch"` or `"sequence"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateToKafkaConfig {
    /// Records per run.
    pub records: u64,
    /// Field name = generator.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// A topic name, or a jq expression giving each record's topic.
    pub topic: TopicSpec,
    /// jq expression for each record's key; unkeyed without it.
    #[serde(default)]
    pub key: Option<JqFilter>,
    /// The same seed draws the same records (`now` aside); random without it.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Kafka bootstrap servers; the orchestrator's default without it.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Create topics that do not exist (true by default).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Partitions of the topics this task creates.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How long a record may take to be acknowledged; 30 s by default.
    #[serde(default)]
    pub delivery_timeout: Option<HumanDuration>,
}

impl GenerateToKafkaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_RECORDS).contains(&self.records) {
            return Err(ConfigError::new(
                "records",
                format!("must be from 1 to {MAX_RECORDS}, got {}", self.records),
            ));
        }
        if self.fields.is_empty() {
            return Err(ConfigError::new("fields", "name at least one field"));
        }
        self.generators()?;
        checks::partitions("partitions", self.partitions)?;
        checks::above_zero("delivery_timeout", self.delivery_timeout)
    }

    /// The fields' generators, in name order.
    pub fn generators(&self) -> Result<Vec<(String, Generator)>, ConfigError> {
        parse_fields(&self.fields)
            .map_err(|(field, message)| ConfigError::new(format!("fields.{field}"), message))
    }
}

fn default_true() -> bool {
    true
}

fn default_partitions() -> i32 {
    3
}
