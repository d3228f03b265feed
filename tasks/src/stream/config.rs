use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::{ConfigError, HumanDuration, checks, jq::JqFilter, kafka::TopicSpec};

/// Names a window document uses for itself: group-by fields and aggregates cannot take them.
pub(crate) const RESERVED_FIELDS: &[&str] =
    &["_id", "window_start", "window_end", "closed", "_state"];

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

impl AggregateSpec {
    /// The expression the aggregate reads; none for `count`.
    pub fn filter(&self) -> Option<&JqFilter> {
        match self {
            Self::Count => None,
            Self::Sum(f) | Self::Min(f) | Self::Max(f) | Self::Avg(f) | Self::CountDistinct(f) => {
                Some(f)
            }
        }
    }
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
    /// Window rows, or records upserted by `key`, in a PostgreSQL table; the rows and the
    /// source offsets are written in one transaction at each flush.
    Postgres(SqlSinkConfig),
    /// The same in MySQL or MariaDB.
    Mysql(SqlSinkConfig),
    /// Records (or window results, when they close) produced to a topic.
    Kafka {
        /// A topic name or a jq expression per record.
        topic: TopicSpec,
        /// jq expression for the record key.
        #[serde(default)]
        key: Option<JqFilter>,
    },
}

/// A table in a SQL database: created if missing, with a column per group-by field and per
/// aggregate (plus `id`, `window_start`, `window_end`, `closed`, `updraft_state`), or
/// `key` and `record` (JSON) for records without windows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSinkConfig {
    /// Connection URL; `--postgres-url` / `--mysql-url` (`$UPDRAFT_POSTGRES_URL`,
    /// `$UPDRAFT_MYSQL_URL`) by default.
    #[serde(default)]
    pub url: Option<String>,
    /// Table name: letters, digits and `_`.
    pub table: String,
    /// jq expression for a record's primary key (records without windows); required then.
    #[serde(default)]
    pub key: Option<JqFilter>,
}

/// Column names a SQL window table uses for itself.
const SQL_RESERVED_COLUMNS: &[&str] = &[
    "id",
    "key",
    "record",
    "window_start",
    "window_end",
    "closed",
    "updraft_state",
];

impl StreamConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.topics.is_empty() {
            return Err(ConfigError::new(
                "topics",
                "name at least one topic (or a ^regex)",
            ));
        }
        for (i, topic) in self.topics.iter().enumerate() {
            validate_topic(&format!("topics[{i}]"), topic)?;
        }
        checks::not_blank("group_id", &self.group_id)?;
        checks::above_zero("flush_interval", Some(self.flush_interval))?;
        if let Some(topic) = &self.dead_letter_topic {
            checks::not_blank("dead_letter_topic", topic)?;
        }
        if let Some(window) = &self.window {
            window.validate()?;
        }
        self.sink.validate(self.window.as_ref())
    }
}

/// A topic name, or a `^regex` that compiles.
fn validate_topic(field: &str, topic: &str) -> Result<(), ConfigError> {
    checks::not_blank(field, topic)?;
    if topic.starts_with('^') {
        regex::Regex::new(topic).map_err(|e| {
            // The syntax error is drawn over several lines; its last line says what is wrong.
            let text = e.to_string();
            let reason = text.lines().last().unwrap_or_default();
            let reason = reason.trim_start_matches("error: ");
            ConfigError::new(field, format!("bad regular expression {topic:?}: {reason}"))
        })?;
    }
    Ok(())
}

impl WindowConfig {
    /// The names a window's results carry, with the table naming each (`group_by` or
    /// `aggregates`).
    fn output_names(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let group_by = self.group_by.keys().map(|k| ("group_by", k));
        group_by.chain(self.aggregates.keys().map(|k| ("aggregates", k)))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let size = self.size.as_duration();
        if size.as_millis() == 0 {
            return Err(ConfigError::new("window.size", "must be at least 1ms"));
        }
        if let Some(slide) = self.slide
            && (slide.as_duration().as_millis() == 0 || slide.as_duration() > size)
        {
            return Err(ConfigError::new(
                "window.slide",
                format!("must be between 1ms and window.size ({})", self.size),
            ));
        }
        if self.aggregates.is_empty() {
            return Err(ConfigError::new(
                "window.aggregates",
                "name at least one aggregate",
            ));
        }
        let mut names = HashSet::new();
        for (table, name) in self.output_names() {
            if RESERVED_FIELDS.contains(&name.as_str()) || !names.insert(name) {
                return Err(ConfigError::new(
                    format!("window.{table}.{name}"),
                    format!(
                        "the name is reserved or used twice (group_by and aggregates share one namespace; reserved: {})",
                        RESERVED_FIELDS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl SinkConfig {
    fn validate(&self, window: Option<&WindowConfig>) -> Result<(), ConfigError> {
        let windowed = window.is_some();
        match self {
            Self::Mongodb {
                database,
                collection,
                key,
                ..
            } => {
                checks::not_blank("sink.database", database)?;
                checks::not_blank("sink.collection", collection)?;
                if key.is_none() && !windowed {
                    return Err(ConfigError::new(
                        "sink.key",
                        "a MongoDB sink without windows upserts records by a key: set key (a jq expression)",
                    ));
                }
                Ok(())
            }
            Self::Postgres(sql) | Self::Mysql(sql) => sql.validate(window),
            Self::Kafka { .. } => Ok(()),
        }
    }
}

/// Which SQL database a sink writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    Postgres,
    Mysql,
}

impl SqlSinkConfig {
    fn validate(&self, window: Option<&WindowConfig>) -> Result<(), ConfigError> {
        sql_table_name("sink.table", &self.table)?;
        let Some(window) = window else {
            if self.key.is_none() {
                return Err(ConfigError::new(
                    "sink.key",
                    "a SQL sink without windows upserts records by a key: set key (a jq expression)",
                ));
            }
            return Ok(());
        };
        for (table, name) in window.output_names() {
            let field = format!("window.{table}.{name}");
            sql_identifier(&field, name)?;
            if SQL_RESERVED_COLUMNS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "a SQL sink's table uses this column itself (reserved: {})",
                        SQL_RESERVED_COLUMNS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A name usable as a SQL table or column without quoting surprises: `[A-Za-z_][A-Za-z0-9_]*`,
/// 63 characters at most (PostgreSQL's limit).
fn sql_identifier(field: &str, name: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 63 {
        return Err(ConfigError::new(
            field,
            format!(
                "{name:?} is not a SQL name: use letters, digits and _, not starting with a digit, 63 at most"
            ),
        ));
    }
    Ok(())
}

/// A table name: `name`, or `schema.name` (in MySQL the schema is a database), each part a
/// SQL name.
fn sql_table_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 {
        return Err(ConfigError::new(
            field,
            format!("{name:?} is not a table name: use name or schema.name"),
        ));
    }
    parts
        .iter()
        .try_for_each(|part| sql_identifier(field, part))
}

fn default_flush_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
