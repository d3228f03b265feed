//! The databases of the SQL sinks (PostgreSQL and MariaDB, started by `scripts/test`), read
//! back through sqlx's `Any` driver: window rows as documents shaped like MongoDB's, so the
//! same checks apply.

use mongodb::bson::{Bson, Document};
use sqlx::{AnyPool, Row as _};

/// The two databases a SQL sink writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDb {
    Postgres,
    Mysql,
}

impl SqlDb {
    /// `kind` in a DAG file's sink.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    pub fn url(self) -> String {
        let (var, script) = match self {
            Self::Postgres => ("UPDRAFT_TEST_POSTGRES_URL", "postgres"),
            Self::Mysql => ("UPDRAFT_TEST_MYSQL_URL", "mariadb"),
        };
        std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set: run the tests with scripts/test, or `eval \"$(scripts/{script} start)\"` first")
        })
    }

    pub async fn pool(self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()))
    }

    /// `window_start` in ms since the epoch, in this dialect.
    fn start_ms(self) -> &'static str {
        match self {
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM window_start) * 1000 AS BIGINT)",
            Self::Mysql => "CAST(UNIX_TIMESTAMP(window_start) * 1000 AS SIGNED)",
        }
    }
}

/// The rows of a table written by [`super::stats_dag_source`]'s stream (users and their
/// total age by country and gender), as documents for [`super::assert_exact`].
pub async fn stats_rows(db: SqlDb, pool: &AnyPool, table: &str) -> Vec<Document> {
    window_rows(
        db,
        pool,
        table,
        &["country", "gender"],
        &["users"],
        &["total_age"],
    )
    .await
    .unwrap_or_else(|e| panic!("reading the rows of {table}: {e}"))
}

/// The rows of a window table as documents: `window_start` (RFC 3339), the text columns
/// `groups`, the integer columns `counts` and the float columns `sums`.
pub async fn window_rows(
    db: SqlDb,
    pool: &AnyPool,
    table: &str,
    groups: &[&str],
    counts: &[&str],
    sums: &[&str],
) -> Result<Vec<Document>, sqlx::Error> {
    let columns: Vec<&str> = groups.iter().chain(counts).chain(sums).copied().collect();
    let sql = format!(
        "SELECT {} AS start_ms, {} FROM {table}",
        db.start_ms(),
        columns.join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let start: i64 = row.try_get("start_ms")?;
            let mut document = Document::new();
            document.insert(
                "window_start",
                chrono::DateTime::from_timestamp_millis(start)
                    .unwrap_or_default()
                    .to_rfc3339(),
            );
            for name in groups {
                let value: Option<String> = row.try_get(*name)?;
                document.insert(*name, value.map_or(Bson::Null, Bson::String));
            }
            for name in counts {
                document.insert(*name, row.try_get::<i64, _>(*name)?);
            }
            for name in sums {
                document.insert(*name, row.try_get::<f64, _>(*name)?);
            }
            Ok(document)
        })
        .collect()
}

/// The sum of an integer column (0 when the table is empty or missing).
pub async fn total(db: SqlDb, pool: &AnyPool, table: &str, column: &str) -> i64 {
    let cast = match db {
        SqlDb::Postgres => "BIGINT",
        SqlDb::Mysql => "SIGNED",
    };
    let sql = format!("SELECT CAST(COALESCE(SUM({column}), 0) AS {cast}) FROM {table}");
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Waits (`limit` at most) until the rows of window table `table` hold exactly `truth`: the
/// integer column `count` by window start and the text column `group`.
pub async fn wait_for_sql_window_counts(
    db: SqlDb,
    pool: &AnyPool,
    table: &str,
    group: &str,
    count: &str,
    truth: &super::WindowCounts,
    limit: std::time::Duration,
) {
    super::wait_for_counts(
        &format!("{count} by {group} in {table}"),
        truth,
        limit,
        || async {
            let rows = window_rows(db, pool, table, &[group], &[count], &[])
                .await
                .ok()?;
            Some(super::counts_of(&rows, group, count))
        },
    )
    .await
}

/// The sink section of a DAG file writing into `table` of `db`.
pub fn sql_sink(db: SqlDb, table: &str) -> String {
    format!(
        "kind = \"{}\"\nurl = \"{}\"\ntable = \"{table}\"\n",
        db.kind(),
        db.url()
    )
}
