use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use tokio_util::sync::CancellationToken;

/// Where a task writes its log lines (the orchestrator writes them to the try's log file and
/// to live subscribers).
pub trait LogSink: Send + Sync {
    fn line(&self, line: &str);
}

/// Live metrics of a running try, read by the executor and the UI: a stream's figures once
/// it is known to be a stream, nothing for other tasks.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    stream: Arc<Mutex<Option<StreamMetrics>>>,
}

impl Metrics {
    /// Changes the stream's figures (a try that calls this is a stream from then on).
    pub fn update_stream(&self, change: impl FnOnce(&mut StreamMetrics)) {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        change(stream.get_or_insert_with(StreamMetrics::default));
    }

    /// The stream's figures now; None for a try that is no stream.
    pub fn stream(&self) -> Option<StreamMetrics> {
        self.stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The live figures of a stream try: counters since its start, rates over the last second,
/// its consumer lag and its last flush. Stored as JSON by workers for every `serve` to read
/// (fields added later default when an older worker's copy lacks them).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StreamMetrics {
    /// The worker running the try (its hostname, or its `--name`).
    pub worker: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    pub records_in_per_s: f64,
    pub records_out_per_s: f64,
    /// Records whose windows had all closed.
    pub late: u64,
    pub dead_lettered: u64,
    /// Records read again after a restart and skipped (already counted before it).
    pub replayed_skipped: u64,
    pub flushes: u64,
    /// RFC 3339.
    pub last_flush_at: Option<String>,
    pub last_flush_docs: u64,
    pub last_flush_ms: u64,
    /// Records not yet committed, in all and by `topic/partition`.
    pub lag_total: i64,
    pub lag: BTreeMap<String, i64>,
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
    /// Which share of its input this instance of the task owns (`parallelism` > 1).
    pub share: Share,
    /// Names of the orchestrator's environment variables every shell command gets besides
    /// its own `env_passthrough` (`--env-passthrough`; never an `UPDRAFT_*` name).
    pub env_passthrough: Arc<[String]>,
}

/// One of `count` instances of a task that split their input: instance `index` owns the
/// partitions [`Share::owns`] gives it, the same ones whatever else the topics hold, so its
/// sink state is its own (merged when read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: u32,
    pub count: u32,
}

impl Default for Share {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Share {
    pub fn is_whole(&self) -> bool {
        self.count <= 1
    }

    /// Whether this share reads `partition` of `topic`: the topic's partitions are dealt
    /// round-robin from a start fixed by the topic's name (FNV-1a), so a topic's partitions
    /// spread evenly and adding topics moves none.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        if self.is_whole() {
            return true;
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in topic.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let slot = hash.wrapping_add(u64::from(partition.unsigned_abs())) % u64::from(self.count);
        slot == u64::from(self.index)
    }

    /// What this share adds to the ids of its sink state (`~0of2`); empty for a whole task.
    pub fn id_suffix(&self) -> String {
        if self.is_whole() {
            String::new()
        } else {
            format!("~{}of{}", self.index, self.count)
        }
    }
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
    fn shares_split_partitions_disjointly_and_evenly() {
        let shares: Vec<Share> = (0..3).map(|index| Share { index, count: 3 }).collect();
        for topic in ["users.fr", "users.us", "a"] {
            let mut per_share = [0; 3];
            for partition in 0..12 {
                let owners: Vec<usize> = (0..3)
                    .filter(|i| shares[*i].owns(topic, partition))
                    .collect();
                assert_eq!(owners.len(), 1, "{topic}/{partition}: {owners:?}");
                per_share[owners[0]] += 1;
            }
            assert_eq!(per_share, [4, 4, 4], "{topic}");
        }
        assert!(Share::default().owns("any", 7));
        assert_eq!(Share::default().id_suffix(), "");
        assert_eq!(shares[1].id_suffix(), "~1of3");
    }

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
