use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{ConfigError, HumanDuration, checks, jq::JqFilter, kafka::TopicSpec};

/// `http_to_kafka` GETs a URL, picks records out of the response with jq, and produces each
/// one to the topic it routes to, keyed by a jq expression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToKafkaConfig {
    /// URL to GET.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one request; 30 s by default.
    #[serde(default)]
    pub request_timeout: Option<HumanDuration>,
    /// Retries of the request on connection errors, 5xx and 429 (honouring Retry-After).
    #[serde(default = "default_http_retries")]
    pub http_retries: u32,
    /// jq expression producing the records from the response; `.results[]` by default.
    #[serde(default = "default_records")]
    pub records: JqFilter,
    /// jq expression for each record's key (e.g. `.login.uuid`); records are unkeyed without it.
    #[serde(default)]
    pub key: Option<JqFilter>,
    /// The topic of each record: a topic name (`users`), or a jq expression giving one per
    /// record (`"users." + (.nat | ascii_downcase)`).
    pub topic: TopicSpec,
    /// Kafka bootstrap servers; `$UPDRAFT_KAFKA_BROKERS` or 127.0.0.1:9092 by default.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Create topics that do not exist (true by default).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Partitions of the topics this task creates.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How long a record may take to be acknowledged by the brokers; 30 s by default.
    #[serde(default)]
    pub delivery_timeout: Option<HumanDuration>,
    /// Pages to GET (1 by default: the URL as written). With more, page `n` is the URL with
    /// `page_param=n` set in its query, for n = 1..=pages; each page's records are all routed
    /// before any is produced, and the next page is fetched and routed while one is produced.
    #[serde(default = "default_pages")]
    pub pages: u32,
    /// The query parameter that numbers the pages (`page`, as randomuser.me's).
    #[serde(default = "default_page_param")]
    pub page_param: String,
}

impl HttpToKafkaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        checks::http_url("url", &self.url)?;
        checks::headers("headers", &self.headers)?;
        checks::partitions("partitions", self.partitions)?;
        checks::above_zero("request_timeout", self.request_timeout)?;
        checks::above_zero("delivery_timeout", self.delivery_timeout)?;
        if self.pages == 0 {
            return Err(ConfigError::new("pages", "must be at least 1"));
        }
        if self.page_param.is_empty() {
            return Err(ConfigError::new("page_param", "must not be empty"));
        }
        Ok(())
    }
}

fn default_pages() -> u32 {
    1
}

fn default_page_param() -> String {
    "page".into()
}

fn default_http_retries() -> u32 {
    3
}

fn default_records() -> JqFilter {
    JqFilter::compile(".results[]").expect("the default records filter compiles")
}

fn default_true() -> bool {
    true
}

fn default_partitions() -> i32 {
    3
}
