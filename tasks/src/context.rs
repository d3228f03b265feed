use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Where a task writes its log lines (the orchestrator writes them to the try's log file and
/// to live subscribers).
pub trait LogSink: Send + Sync {
    fn line(&self, line: &str);
}

/// Live metrics of a running task (records in/out, lag, ...), read by the executor and the UI.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    values: Arc<Mutex<serde_json::Map<String, serde_json::Value>>>,
}

impl Metrics {
    pub fn set(&self, name: &str, value: impl Into<serde_json::Value>) {
        if let Ok(mut values) = self.values.lock() {
            values.insert(name.to_owned(), value.into());
        }
    }

    pub fn snapshot(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .lock()
            .map(|values| values.clone())
            .unwrap_or_default()
    }
}

/// Where tasks connect when their own config does not say: read once by the binary (from
/// `UPDRAFT_KAFKA_BROKERS` and `UPDRAFT_MONGO_URI`) and handed to every try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    /// Kafka bootstrap servers, `host:port,...`.
    pub kafka_brokers: String,
    /// MongoDB connection string.
    pub mongo_uri: String,
    /// PostgreSQL URL of SQL sinks that do not name theirs.
    pub postgres_url: String,
    /// MySQL or MariaDB URL of SQL sinks that do not name theirs.
    pub mysql_url: String,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            kafka_brokers: "127.0.0.1:9092".into(),
            mongo_uri: "mongodb://127.0.0.1:27017".into(),
            postgres_url: "postgres://127.0.0.1:5432/updraft".into(),
            mysql_url: "mysql://127.0.0.1:3306/updraft".into(),
        }
    }
}

impl Connections {
    /// A task's own `brokers` setting when it has one, else the default.
    pub fn kafka_brokers(&self, configured: Option<&str>) -> String {
        non_blank(configured)
            .unwrap_or(&self.kafka_brokers)
            .to_owned()
    }

    /// A task's own `uri` setting when it has one, else the default.
    pub fn mongo_uri(&self, configured: Option<&str>) -> String {
        non_blank(configured).unwrap_or(&self.mongo_uri).to_owned()
    }

    /// A SQL sink's own `url` when it has one, else the default of its kind.
    pub fn sql_url(&self, kind: crate::stream::SqlKind, configured: Option<&str>) -> String {
        let default = match kind {
            crate::stream::SqlKind::Postgres => &self.postgres_url,
            crate::stream::SqlKind::Mysql => &self.mysql_url,
        };
        non_blank(configured).unwrap_or(default).to_owned()
    }
}

fn non_blank(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

/// What an operator gets for one try.
#[derive(Clone)]
pub struct TaskContext {
    /// Fires when the try must stop: timeout, shutdown, or the run being stopped.
    pub cancel: CancellationToken,
    /// The try's log.
    pub log: Arc<dyn LogSink>,
    /// Live metrics of the try.
    pub metrics: Metrics,
    /// Default brokers and servers.
    pub connections: Arc<Connections>,
}

impl TaskContext {
    pub fn log(&self, line: &str) {
        self.log.line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_setting_wins_over_the_default() {
        let defaults = Connections {
            kafka_brokers: "k:1".into(),
            mongo_uri: "mongodb://m:2".into(),
            postgres_url: "postgres://p/db".into(),
            mysql_url: "mysql://q/db".into(),
        };
        assert_eq!(defaults.kafka_brokers(Some("own:9")), "own:9");
        assert_eq!(defaults.kafka_brokers(None), "k:1");
        assert_eq!(defaults.kafka_brokers(Some(" ")), "k:1");
        assert_eq!(defaults.mongo_uri(Some("mongodb://h:1")), "mongodb://h:1");
        assert_eq!(defaults.mongo_uri(None), "mongodb://m:2");
        use crate::stream::SqlKind;
        assert_eq!(defaults.sql_url(SqlKind::Postgres, None), "postgres://p/db");
        assert_eq!(defaults.sql_url(SqlKind::Mysql, Some("")), "mysql://q/db");
        assert_eq!(
            defaults.sql_url(SqlKind::Mysql, Some("mysql://own/x")),
            "mysql://own/x"
        );
    }
}
