//! The SQL sinks on the real databases (PostgreSQL, MariaDB) and broker (tansu): window rows
//! exact after a stop and a restart that must resume from the offsets stored with the rows
//! (Kafka's committed offsets are rewound to prove it), records upserted by key, and a clear
//! error for a table made for another sink.

use crate::support;

use std::{sync::Arc, time::Duration};

use orchestrator::{dag::Dag, executor::RunOutcome, store::RunState};
use support::sql::{SqlDb, sql_sink, stats_rows, total};

const BATCH: usize = 3_000;

/// The users-per-minute stream of the crash test, into table `ns` of `db`.
fn stats_dag(db: SqlDb, ns: &str, topic: &str) -> Arc<Dag> {
    support::dag(&support::with_sink(
        &support::stats_dag_source(ns, topic, ""),
        &sql_sink(db, ns),
    ))
}

/// Checks every window row of `table` against the synthetic users `records`.
async fn assert_rows_exact(
    db: SqlDb,
    pool: &sqlx::AnyPool,
    table: &str,
    records: &[(String, String)],
) {
    let rows = stats_rows(db, pool, table).await;
    let values: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, payload)| serde_json::from_str(payload).unwrap())
        .collect();
    support::assert_exact(&rows, &values);
}

async fn windows_are_exact_across_a_restart(db: SqlDb) {
    let ns = support::unique("sqlw");
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 3).await;
    let records = support::synthetic_users(2 * BATCH, 1_700_000_000);
    let mut placements = support::produce(&topic, &records[..BATCH]).await;
    let dag = stats_dag(db, &ns, &topic);
    let (_dir, store, executor) = support::harness().await;
    let pool = db.pool().await;
    let counted = |expected: usize| {
        let (pool, ns) = (pool.clone(), ns.clone());
        move || {
            let (pool, ns) = (pool.clone(), ns.clone());
            async move { total(db, &pool, &ns, "users").await == expected as i64 }
        }
    };

    let (run, driver) = support::start_in_background(&executor, &dag).await;
    support::eventually(
        "the first batch in SQL",
        Duration::from_secs(60),
        counted(BATCH),
    )
    .await;
    support::stop_and_wait(&executor, &run, driver).await;

    // Kafka's committed offsets go back to 0: a sink that resumed from them would count the
    // first batch twice. The offsets stored with the rows say where to go on.
    for partition in 0..3 {
        support::commit(&ns, &topic, partition, 0).await;
    }
    placements.extend(support::produce(&topic, &records[BATCH..]).await);
    let (run, driver) = support::start_in_background(&executor, &dag).await;
    support::eventually(
        "both batches in SQL",
        Duration::from_secs(60),
        counted(2 * BATCH),
    )
    .await;
    // One more flush with nothing new must not change a row.
    tokio::time::sleep(Duration::from_secs(2)).await;
    support::stop_and_wait(&executor, &run, driver).await;
    let second = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .remove(0);
    // From Kafka's offsets it would read both batches (6,000). tansu re-delivers part of a
    // partition read from inside it (the window rows' own offsets skip those records), so
    // the count is not exactly 3,000.
    let records_in = second.result.as_ref().unwrap()["records_in"]
        .as_u64()
        .unwrap();
    assert!(
        (BATCH as u64..2 * BATCH as u64).contains(&records_in),
        "the second run resumed from the stored offsets, not Kafka's: {records_in} records in"
    );

    assert_rows_exact(db, &pool, &ns, &records).await;
    let ends = support::ends_of_placements(&topic, &placements);
    let stored: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT topic, kafka_partition, next_offset FROM updraft_stream_offsets WHERE group_id = '{ns}' ORDER BY kafka_partition"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(String, i64, i64)> = ends
        .iter()
        .map(|((topic, partition), end)| (topic.clone(), i64::from(*partition), *end))
        .collect();
    assert_eq!(stored, expected, "the offsets stored with the rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_windows_are_exact_and_resume_from_stored_offsets() {
    windows_are_exact_across_a_restart(SqlDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_windows_are_exact_and_resume_from_stored_offsets() {
    windows_are_exact_across_a_restart(SqlDb::Mysql).await;
}

/// Records without windows: a row per key, the newest version of the record.
async fn records_are_upserted_by_key(db: SqlDb) {
    let ns = support::unique("sqlk");
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 2).await;
    let records: Vec<(String, String)> = (0..200)
        .map(|i| {
            let id = i % 100;
            let record = serde_json::json!({"id": format!("u{id}"), "version": i / 100, "name": format!("user {id}")});
            (id.to_string(), record.to_string())
        })
        .collect();
    // Versions 0 then 1 of each key, each key on one partition: the newest is produced last.
    support::produce_in_one_batch(&topic, &records[..100]).await;
    support::produce_in_one_batch(&topic, &records[100..]).await;
    let dag = support::dag(&format!(
        r#"[dag]
id = "{ns}"
[[task]]
id = "users"
operator = "stream"
topics = ["{topic}"]
group_id = "{ns}"
flush_interval = "300ms"
[task.sink]
kind = "{}"
table = "{ns}"
key = ".id"
"#,
        db.kind()
    ));
    let (_dir, _store, executor) = support::harness().await;
    let (run, driver) = support::start_in_background(&executor, &dag).await;
    let pool = db.pool().await;
    let as_text = match db {
        SqlDb::Postgres => "CAST(record AS TEXT)",
        SqlDb::Mysql => "CAST(record AS CHAR)",
    };
    let sql = format!(
        "SELECT {q}key{q}, {as_text} FROM {ns}",
        q = if db == SqlDb::Mysql { "`" } else { "\"" }
    );
    let read = || {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move {
            sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap_or_default()
        }
    };
    support::eventually(
        "the newest version of 100 keys",
        Duration::from_secs(60),
        || async {
            let rows = read().await;
            rows.len() == 100
                && rows.iter().all(|(_, record)| {
                    record.contains("\"version\": 1") || record.contains("\"version\":1")
                })
        },
    )
    .await;
    support::stop_and_wait(&executor, &run, driver).await;
    for (key, record) in read().await {
        let record: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert_eq!(record["id"], key);
        assert_eq!(record["name"], format!("user {}", &key[1..]));
        assert_eq!(record["version"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_records_are_upserted_by_key() {
    records_are_upserted_by_key(SqlDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_records_are_upserted_by_key() {
    records_are_upserted_by_key(SqlDb::Mysql).await;
}

/// A table that exists without the columns the sink writes fails the task at once (a config
/// error: no retry), naming the table and the missing columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_made_for_another_sink_is_a_config_error() {
    let db = SqlDb::Postgres;
    let ns = support::unique("sqlbad");
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 1).await;
    let pool = db.pool().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {ns} (id TEXT PRIMARY KEY, country TEXT)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let dag = support::dag(&support::with_sink(
        &support::stats_dag_source(&ns, &topic, "retries = 3"),
        &sql_sink(db, &ns),
    ));
    let (_dir, store, executor) = support::harness().await;
    let run = support::start_run(&executor, &dag, serde_json::json!({})).await;
    let outcome = support::drive_to_end(&executor, &dag, &run, Duration::from_secs(60)).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Failed));
    let stats = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(stats.try_number, 1, "a config error is not retried");
    let error = stats.error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "table {ns} exists without the column(s) gender, window_start"
        )),
        "{error}"
    );
}

/// A `schema.table` sink (a database on MySQL) creates and fills its table there, and the
/// results page reads it back from there.
async fn windows_land_in_the_named_schema(db: SqlDb, schema: &str, ns: &str) {
    let table = format!("{schema}.{ns}");
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 1).await;
    let records = support::synthetic_users(BATCH, 1_700_000_000);
    support::produce(&topic, &records).await;
    let dag = support::dag(&support::with_sink(
        &support::stats_dag_source(ns, &topic, ""),
        &sql_sink(db, &table),
    ));
    let pool = db.pool().await;
    let (_dir, _store, executor) = support::harness().await;
    let (run, driver) = support::start_in_background(&executor, &dag).await;
    support::eventually("the batch in SQL", Duration::from_secs(60), || {
        let (pool, table) = (pool.clone(), table.clone());
        async move { total(db, &pool, &table, "users").await == BATCH as i64 }
    })
    .await;
    support::stop_and_wait(&executor, &run, driver).await;

    let tables: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(COUNT(*) AS {}) FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name = '{ns}'",
        if db == SqlDb::Postgres { "BIGINT" } else { "SIGNED" }
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 1, "table {ns} in schema {schema}");
    assert_rows_exact(db, &pool, &table, &records).await;

    let config: tasks::stream::StreamConfig = serde_json::from_value(serde_json::json!({
        "topics": [topic],
        "group_id": ns,
        "window": {"size": "1m", "group_by": {"country": ".country"}, "aggregates": {"users": "count"}},
        "sink": {"kind": db.kind(), "url": db.url(), "table": table},
    }))
    .unwrap();
    let results = tasks::stream::read_results(&config, &Default::default(), None)
        .await
        .unwrap();
    let tasks::stream::StreamResults::Windows(windows) = results else {
        panic!("window results: {results:?}");
    };
    assert!(
        !windows.windows.is_empty() && !windows.rows.is_empty(),
        "{windows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_tables_may_live_in_a_schema() {
    let ns = support::unique("sqlschema");
    let pool = SqlDb::Postgres.pool().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {ns}_s")))
        .execute(&pool)
        .await
        .unwrap();
    windows_land_in_the_named_schema(SqlDb::Postgres, &format!("{ns}_s"), &ns).await;
}

/// On MariaDB the test user may only use its own database, so the qualified name is that
/// database's: the lookups still go through the qualified path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_tables_may_be_named_with_their_database() {
    let ns = support::unique("sqlschema");
    windows_land_in_the_named_schema(SqlDb::Mysql, "updraft", &ns).await;
}
