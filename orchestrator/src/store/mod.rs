//! The metadata store: DAGs, DAG runs and task instances in SQLite (default) or PostgreSQL,
//! through one sqlx `Any` pool so both engines run the same SQL.

mod audit;
mod backfills;
mod bulk;
mod dag_versions;
mod dags;
mod events;
mod filter;
mod lease;
mod log_chunks;
mod migrations;
mod models;
mod notify;
mod pools;
mod runs;
mod task_instances;
mod task_metrics;
mod transitions;
mod urls;
mod users;
mod workers;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
};

pub use audit::{AuditEntry, AuditFilter, AuditRow};
pub use backfills::{BackfillLimit, BackfillProgress, BackfillRow, NewBackfill};
pub use dag_versions::DagVersionRow;
pub use dags::DagRow;
pub use events::StoreEvent;
pub use lease::{LeaseAttempt, LeaseHolder};
pub use log_chunks::LogKey;
pub use models::{
    DEFAULT_POOL, DagRunRow, GridCellRow, NewRun, NewTaskInstance, RunColumn, RunFilter, RunKey,
    RunState, RunType, TaskInstanceRow, TaskKey, TaskSummaryRow, TiFilter, TiState, TimeRange,
};
pub use pools::PoolRow;
pub use runs::{RunChange, RunEffect};
pub use task_instances::{Fence, TiChange};
pub use task_metrics::PublishedMetrics;
pub use transitions::{run_can_transition, task_can_transition};
pub use urls::{password_of_url, redact_urls};
pub use users::{ApiTokenRow, UserRow};
pub use workers::{Claimant, WorkerRow, WorkerState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://<file> or postgres://user@host:port/db")]
    UnsupportedUrl(String),
    #[error("cannot connect to the metadata database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("metadata database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the metadata store writer has stopped")]
    Closed,
    /// A transition found the row changed under it: another state, or its run adopted by
    /// another process.
    #[error("{what} is no longer {expected}: another process took it over or changed it")]
    Lost { what: String, expected: String },
    /// A move the state machine does not allow (a bug, or a command on the wrong state).
    #[error("{what} cannot move from {from} to {to}")]
    IllegalTransition {
        what: String,
        from: String,
        to: String,
    },
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A handle on the metadata database and its change feed; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    events: events::EventFeed,
    /// PostgreSQL: where other processes share this database.
    remote: Option<Remote>,
}

/// What a handle on a shared (PostgreSQL) database needs to hear the other processes.
#[derive(Clone, Debug)]
struct Remote {
    url: String,
    /// Tells this handle's notifications from the others'.
    origin: String,
    /// Whether a listener already republishes into this handle's feed.
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Store {
    /// Connects (creating a SQLite file if needed) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, is_sqlite) = normalize_url(url)?;
        let options = AnyConnectOptions::from_str(&url).map_err(|source| StoreError::Connect {
            url: url.clone(),
            source,
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 8 })
            // A SQLite file cannot drop a connection: a ping before each use was a
            // round trip to the connection's thread in every transaction.
            .test_before_acquire(!is_sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(&url),
                source,
            })?;
        let remote = (!is_sqlite).then(|| Remote {
            url: url.clone(),
            origin: uuid::Uuid::new_v4().simple().to_string(),
            listening: Default::default(),
        });
        let store = Self {
            pool,
            events: events::EventFeed::new(),
            remote,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied; safe to run concurrently and repeatedly.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        migrations::apply(&self.pool).await
    }

    /// Every state change committed through this handle (or its clones) from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether other processes may share this database (PostgreSQL): workers, standby
    /// schedulers and the queue need it.
    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pool connection one writer keeps across its writes
/// ([`Store::transition_task_instances_held`]). SQLite drops a
/// connection's whole page cache when another connection has written since it last read, so
/// a writer that took whichever connection was idle (sqlx hands out the least recently used)
/// read ~9 pages back from the WAL on every hand-off of a chain.
#[derive(Default)]
pub struct HeldConnection(Option<sqlx::pool::PoolConnection<sqlx::Any>>);

/// `sqlite://file` gets `mode=rwc` so the file is created on first use.
fn normalize_url(url: &str) -> Result<(String, bool)> {
    if url.starts_with("sqlite:") {
        let url = if url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        Ok((url, true))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((url.to_owned(), false))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    redact_urls(url).into_owned()
}

/// Timestamps are stored as microseconds since the Unix epoch (BIGINT on both engines).
pub fn to_micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(
            normalize_url("sqlite://a.db").unwrap(),
            ("sqlite://a.db?mode=rwc".into(), true)
        );
        assert_eq!(
            normalize_url("sqlite://a.db?mode=ro").unwrap().0,
            "sqlite://a.db?mode=ro"
        );
        assert!(!normalize_url("postgres://u@h/db").unwrap().1);
        assert!(matches!(
            normalize_url("mysql://x"),
            Err(StoreError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://me:secret@host:5432/db"),
            "postgres://me:***@host:5432/db"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }
}
