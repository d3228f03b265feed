use std::path::PathBuf;

use serde::Deserialize;

use crate::{ConfigError, HumanDuration, checks, jq::JqFilter, kafka::TopicSpec};

/// `file_to_kafka` streams a file into Kafka, a batch at a time: every line (as a JSON
/// string), every JSON line, or every CSV row (an object by the header's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileToKafkaConfig {
    /// The file; `{{ dag.folder }}` is the DAG file's folder.
    pub path: PathBuf,
    #[serde(default)]
    pub format: FileFormat,
    /// A topic name, or a jq expression giving each record's topic.
    pub topic: TopicSpec,
    /// jq expression for each record's key; unkeyed without it.
    #[serde(default)]
    pub key: Option<JqFilter>,
    /// Records read and produced at a time (10,000 by default).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Kafka bootstrap servers; the orchestrator's default without it.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Create topics that do not exist (true by default).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Partitions of the topics this task creates (1: the file's order is kept).
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How long a record may take to be acknowledged; 30 s by default.
    #[serde(default)]
    pub delivery_timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Each line is a record: a JSON string.
    #[default]
    Lines,
    /// Each non-blank line is a JSON record.
    Jsonl,
    /// A header line, then one record per row: an object of strings by column name.
    Csv,
}

impl FileToKafkaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        checks::not_blank("path", &self.path.to_string_lossy())?;
        if !(1..=1_000_000).contains(&self.batch) {
            return Err(ConfigError::new(
                "batch",
                format!("must be from 1 to 1000000, got {}", self.batch),
            ));
        }
        checks::partitions("partitions", self.partitions)?;
        checks::above_zero("delivery_timeout", self.delivery_timeout)
    }
}

fn default_batch() -> usize {
    10_000
}

fn default_true() -> bool {
    true
}

fn default_partitions() -> i32 {
    1
}
