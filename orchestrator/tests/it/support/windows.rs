//! Expected window contents: synthetic users with event times, the stream DAG that counts
//! them per minute, country and gender, and the check of every window document against counts
//! computed here from the records.

use std::collections::BTreeMap;

use mongodb::bson::Document;

use super::mongo::{float, int, try_all_documents};

/// Counts by (window start in ms, group value).
pub type WindowCounts = BTreeMap<(i64, String), i64>;

/// Waits (`limit` at most) until the window documents of `collection` hold exactly `truth`:
/// the `count` field of each document by its window start and its `group` field.
pub async fn wait_for_window_counts(
    collection: &mongodb::Collection<Document>,
    group: &str,
    count: &str,
    truth: &WindowCounts,
    limit: std::time::Duration,
) {
    wait_for_counts(
        &format!("{count} by {group} in {}", collection.name()),
        truth,
        limit,
        || async {
            let documents = try_all_documents(collection).await.ok()?;
            Some(counts_of(&documents, group, count))
        },
    )
    .await
}

/// Waits (`limit` at most) until `read` gives exactly `truth` (`None`: not readable now, ask
/// again); on timeout, fails naming `what` and the first counts that differ.
pub async fn wait_for_counts<F, Fut>(
    what: &str,
    truth: &WindowCounts,
    limit: std::time::Duration,
    mut read: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<WindowCounts>>,
{
    let started = std::time::Instant::now();
    let mut last = WindowCounts::new();
    loop {
        if let Some(counts) = read().await {
            if counts == *truth {
                return;
            }
            last = counts;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}: (window, group, found, expected) differ at {:?}",
            differences(&last, truth)
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A window and group, with its count found and expected.
type Difference = ((i64, String), Option<i64>, Option<i64>);

/// Up to 10 windows and groups whose counts differ.
fn differences(found: &WindowCounts, expected: &WindowCounts) -> Vec<Difference> {
    let keys: std::collections::BTreeSet<_> = found.keys().chain(expected.keys()).collect();
    keys.into_iter()
        .filter(|k| found.get(*k) != expected.get(*k))
        .take(10)
        .map(|k| (k.clone(), found.get(k).copied(), expected.get(k).copied()))
        .collect()
}

/// The `count` field of window documents by window start and their `group` field.
pub fn counts_of(documents: &[Document], group: &str, count: &str) -> WindowCounts {
    documents
        .iter()
        .map(|d| {
            let key = (
                minute_of(d),
                d.get_str(group).unwrap_or_default().to_owned(),
            );
            (key, int(d, count))
        })
        .collect()
}

/// Reads as many window results from `topic` as `truth` has windows and groups (60 s at
/// most) and checks their counts against it; the records, for further checks.
pub async fn assert_kafka_window_counts(
    topic: &str,
    group: &str,
    count: &str,
    truth: &WindowCounts,
) -> Vec<super::Consumed> {
    let closed = super::consume_all(
        &[topic.to_owned()],
        truth.len(),
        std::time::Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        counts_of_records(&closed, group, count),
        *truth,
        "the windows produced to {topic}"
    );
    closed
}

/// [`counts_of`] for window results a Kafka sink produced, one JSON document per record;
/// fails on a window and group produced twice.
fn counts_of_records(records: &[super::Consumed], group: &str, count: &str) -> WindowCounts {
    let documents: Vec<Document> = records
        .iter()
        .map(|r| {
            let value: serde_json::Value = serde_json::from_str(&r.payload)
                .unwrap_or_else(|e| panic!("a window result that is not JSON ({e}): {r:?}"));
            mongodb::bson::to_document(&value).unwrap()
        })
        .collect();
    let counts = counts_of(&documents, group, count);
    assert_eq!(
        counts.len(),
        documents.len(),
        "a window and group produced twice: {records:?}"
    );
    counts
}

/// Synthetic users: id, country, gender, age and an event time `ts` (seconds) 6 ms apart.
pub fn synthetic_users(count: usize, base_seconds: i64) -> Vec<(String, String)> {
    const COUNTRIES: &[&str] = &["France", "Germany", "Brazil", "India", "Norway", "Spain"];
    (0..count)
        .map(|i| {
            let record = serde_json::json!({
                "id": i,
                "country": COUNTRIES[i % COUNTRIES.len()],
                "gender": if i % 7 < 3 { "female" } else { "male" },
                "age": 18 + (i * 31) % 60,
                "ts": base_seconds as f64 + i as f64 * 0.006,
            });
            (i.to_string(), record.to_string())
        })
        .collect()
}

/// A stream task over `topic` counting users and summing ages per minute of `ts`.
pub fn stats_dag_source(ns: &str, topic: &str, extra: &str) -> String {
    format!(
        r#"[dag]
id = "{ns}"
schedule = "@continuous"
start_date = "2026-01-01T00:00:00Z"

[[task]]
id = "stats"
operator = "stream"
topics = ["{topic}"]
group_id = "{ns}"
flush_interval = "500ms"
{extra}
[task.window]
size = "1m"
event_time = ".ts"
allowed_lateness = "1h"
group_by = {{ country = ".country", gender = ".gender" }}
aggregates = {{ users = "count", total_age = {{ sum = ".age" }}, avg_age = {{ avg = ".age" }} }}
[task.sink]
kind = "mongodb"
database = "{ns}"
collection = "stats"
"#
    )
}

/// `source` (a stream DAG whose `[task.sink]` table comes last) with `sink` as its sink.
pub fn with_sink(source: &str, sink: &str) -> String {
    let head = &source[..source.find("[task.sink]").expect("a [task.sink] table")];
    format!("{head}[task.sink]\n{sink}")
}

/// Checks every window document against the records it should hold.
pub fn assert_exact(documents: &[Document], records: &[serde_json::Value]) {
    let mut truth: BTreeMap<(i64, String, String), (i64, f64)> = BTreeMap::new();
    for record in records {
        let minute =
            ((record["ts"].as_f64().unwrap() * 1000.0).round() as i64).div_euclid(60_000) * 60_000;
        let key = (
            minute,
            record["country"].as_str().unwrap().to_owned(),
            record["gender"].as_str().unwrap().to_owned(),
        );
        let entry = truth.entry(key).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += record["age"].as_f64().unwrap();
    }
    let mut seen = 0;
    for document in documents {
        let key = (
            minute_of(document),
            document.get_str("country").unwrap().to_owned(),
            document.get_str("gender").unwrap().to_owned(),
        );
        let Some((count, sum)) = truth.get(&key) else {
            panic!("a document no record belongs to: {document}");
        };
        assert_eq!(int(document, "users"), *count, "users in {document}");
        assert_eq!(
            float(document, "total_age"),
            *sum,
            "total_age in {document}"
        );
        seen += 1;
    }
    assert_eq!(seen, truth.len(), "one document per window and group");
}

/// The start of a window document's window, in ms.
pub fn minute_of(document: &Document) -> i64 {
    let start = document.get_str("window_start").unwrap();
    chrono::DateTime::parse_from_rfc3339(start)
        .unwrap()
        .timestamp_millis()
}
