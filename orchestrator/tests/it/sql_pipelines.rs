//! The two reference pipelines of `dags/` that end in PostgreSQL, on the real broker (tansu)
//! and database: word count (a text file, line by line, into words per minute) and server
//! status (simulated events into counts and average cpu per type and status per minute).
//! Each checks every row against what it computes from the records read back from the input
//! topic, with a bad record dead-lettered and the rest exact.

use crate::support;

use std::{collections::BTreeMap, time::Duration};

use orchestrator::{executor::RunOutcome, store::RunState};
use support::sql::{SqlDb, wait_for_sql_window_counts, window_rows};

/// The words of a line as the stream's `ascii_downcase | scan("[a-z]+")` finds them.
fn words(line: &str) -> Vec<String> {
    line.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn word_count_counts_every_word_of_the_sample_text_per_minute() {
    let ns = support::unique("words");
    let (dir, _store, executor) = support::harness().await;
    // The shipped sample text, and one line that is not UTF-8.
    let sample = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags/data/word_count.txt"),
    )
    .unwrap();
    let file = dir.path().join("text.txt");
    let mut text = sample.clone();
    text.extend_from_slice(b"caf\xe9 au lait, not UTF-8\n");
    std::fs::write(&file, &text).unwrap();
    let producer = support::repo_dag(
        "word_count.toml",
        &[
            (
                "\"{{ dag.folder }}/data/word_count.txt\"",
                &format!("\"{}\"", file.display()),
            ),
            ("topic = \"lines\"", &format!("topic = \"{ns}.lines\"")),
        ],
    );
    let counter = support::repo_dag(
        "word_counts.toml",
        &[
            ("[\"lines\"]", &format!("[\"{ns}.lines\"]")),
            ("\"word_counts.count_words\"", &format!("\"{ns}\"")),
            ("\"dlq.word_count\"", &format!("\"{ns}.dlq\"")),
            ("table = \"word_counts\"", &format!("table = \"{ns}\"")),
        ],
    );
    let (run, driver) = support::start_in_background(&executor, &counter).await;
    support::run_to_success(&producer, serde_json::json!({}), 2).await;

    // Every line is a record, blank ones included.
    let lines = String::from_utf8_lossy(&text).lines().count();
    let records =
        support::consume_all(&[format!("{ns}.lines")], 2 * lines, Duration::from_secs(60)).await;
    let mut truth = support::WindowCounts::new();
    let mut bad = 0;
    for record in &records {
        let Ok(line) = serde_json::from_str::<String>(&record.payload) else {
            bad += 1;
            continue;
        };
        for word in words(&line) {
            *truth
                .entry((record.timestamp_ms.div_euclid(60_000) * 60_000, word))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(bad, 2, "the non-UTF-8 line, sent by each run");
    assert!(truth.values().any(|n| *n >= 2), "words seen more than once");
    let pool = SqlDb::Postgres.pool().await;
    wait_for_sql_window_counts(
        SqlDb::Postgres,
        &pool,
        &ns,
        "word",
        "occurrences",
        &truth,
        Duration::from_secs(60),
    )
    .await;
    let dead = support::consume_all(&[format!("{ns}.dlq")], 2, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 2);
    for letter in &dead {
        assert_eq!(letter.headers["source_topic"], format!("{ns}.lines"));
        assert!(!letter.headers["error"].is_empty(), "{letter:?}");
    }
    let outcome = support::stop_and_wait(&executor, &run, driver).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_status_is_counted_and_averaged_per_type_and_status_per_minute() {
    let ns = support::unique("servers");
    let topic = format!("{ns}.status");
    let producer = support::repo_dag(
        "server_status.toml",
        &[("topic = \"server-status\"", &format!("topic = \"{topic}\""))],
    );
    let stats = support::repo_dag(
        "server_status_stats.toml",
        &[
            ("[\"server-status\"]", &format!("[\"{topic}\"]")),
            ("\"server_status_stats.aggregate\"", &format!("\"{ns}\"")),
            ("\"dlq.server_status\"", &format!("\"{ns}.dlq\"")),
            (
                "table = \"server_status_stats\"",
                &format!("table = \"{ns}\""),
            ),
        ],
    );
    let (_dir, _store, executor) = support::harness().await;
    let (run, driver) = support::start_in_background(&executor, &stats).await;
    support::run_to_success(&producer, serde_json::json!({}), 3).await;
    let bad = serde_json::json!({"server_id": "srv-99", "server_type": "web", "status": "running", "cpu": "high", "memory": 50.0, "timestamp": chrono::Utc::now().to_rfc3339()});
    support::produce(&topic, &[("srv-99".into(), bad.to_string())]).await;

    let records =
        support::consume_all(std::slice::from_ref(&topic), 61, Duration::from_secs(60)).await;
    // (minute, type, status) -> (events, sum of cpu)
    let mut truth: BTreeMap<(i64, String, String), (i64, f64)> = BTreeMap::new();
    for record in &records {
        let event: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        let Some(cpu) = event["cpu"].as_f64() else {
            continue;
        };
        let at = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let key = (
            at.div_euclid(60_000) * 60_000,
            event["server_type"].as_str().unwrap().to_owned(),
            event["status"].as_str().unwrap().to_owned(),
        );
        let entry = truth.entry(key).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += cpu;
    }
    assert_eq!(truth.values().map(|(n, _)| n).sum::<i64>(), 60);
    let pool = SqlDb::Postgres.pool().await;
    let read = || async {
        let rows = window_rows(
            SqlDb::Postgres,
            &pool,
            &ns,
            &["server_type", "status"],
            &["events"],
            &["avg_cpu"],
        )
        .await
        .unwrap_or_default();
        rows.iter()
            .map(|row| {
                let key = (
                    support::minute_of(row),
                    row.get_str("server_type").unwrap().to_owned(),
                    row.get_str("status").unwrap().to_owned(),
                );
                (
                    key,
                    (
                        row.get_i64("events").unwrap(),
                        row.get_f64("avg_cpu").unwrap(),
                    ),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let matches = |rows: &BTreeMap<(i64, String, String), (i64, f64)>| {
        rows.len() == truth.len()
            && truth.iter().all(|(key, (events, cpu))| {
                rows.get(key).is_some_and(|(n, avg)| {
                    n == events && (avg - cpu / *events as f64).abs() < 1e-9
                })
            })
    };
    support::eventually(
        "every (minute, type, status) row equal to the events read back",
        Duration::from_secs(60),
        || async { matches(&read().await) },
    )
    .await;
    let dead = support::consume_all(&[format!("{ns}.dlq")], 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].headers["error"].contains("not a number"),
        "{:?}",
        dead[0].headers
    );
    assert!(dead[0].payload.contains("srv-99"));
    let outcome = support::stop_and_wait(&executor, &run, driver).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Stopped));
}
