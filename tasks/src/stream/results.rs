//! What a stream task has produced, read back for people: the windows of a window sink with
//! their aggregates by group, or the latest records of a sink without windows.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt as _;
use mongodb::{
    Collection,
    bson::{Bson, Document, doc},
    options::FindOptions,
};

use super::{SinkConfig, SqlKind, SqlSinkConfig, StreamConfig, WindowConfig, sink};
use crate::{Connections, TaskError, kafka, mongo};

/// The most windows offered in the window selector.
const MAX_WINDOWS: usize = 60;
/// The most records shown for a sink without windows.
const MAX_RECORDS: i64 = 50;
/// Records read back from a Kafka window sink per partition.
const KAFKA_WINDOW_RECORDS: i64 = 5_000;

#[derive(Debug, Clone, PartialEq)]
pub enum StreamResults {
    Windows(WindowResults),
    Records(RecordResults),
}

/// One window of a window sink: a row per group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowResults {
    /// `window_start` of the windows written so far, newest first.
    pub windows: Vec<String>,
    /// The window shown (the newest unless asked for another).
    pub selected: Option<String>,
    pub window_end: Option<String>,
    pub group_by: Vec<String>,
    pub aggregates: Vec<String>,
    /// The aggregate the rows are sorted by (largest first): the first `count`, else the
    /// first by name.
    pub primary: usize,
    pub rows: Vec<WindowRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    pub group: Vec<serde_json::Value>,
    pub values: Vec<serde_json::Value>,
    pub closed: bool,
}

/// The latest records of a sink without windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordResults {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// Reads the results of `config`'s sink; `window` picks a window by its `window_start`.
pub async fn read_results(
    config: &StreamConfig,
    connections: &Connections,
    window: Option<&str>,
) -> Result<StreamResults, TaskError> {
    match (&config.sink, &config.window) {
        (
            SinkConfig::Mongodb {
                uri,
                database,
                collection,
                ..
            },
            Some(spec),
        ) => {
            let collection =
                mongo_collection(connections, uri.as_deref(), database, collection).await?;
            mongo_windows(&collection, spec, window)
                .await
                .map(StreamResults::Windows)
        }
        (
            SinkConfig::Mongodb {
                uri,
                database,
                collection,
                ..
            },
            None,
        ) => {
            let collection =
                mongo_collection(connections, uri.as_deref(), database, collection).await?;
            mongo_records(&collection).await.map(StreamResults::Records)
        }
        (SinkConfig::Postgres(sql), spec) => {
            sql_results(SqlKind::Postgres, sql, spec.as_ref(), connections, window).await
        }
        (SinkConfig::Mysql(sql), spec) => {
            sql_results(SqlKind::Mysql, sql, spec.as_ref(), connections, window).await
        }
        (SinkConfig::Kafka { topic, .. }, window_spec) => {
            let kafka::TopicSpec::Name(topic) = topic else {
                return Err(TaskError::Failed(
                    "results of a sink whose topic is an expression are in many topics: read them with a consumer".into(),
                ));
            };
            let brokers = connections.kafka_brokers(config.brokers.as_deref());
            let per_partition = if window_spec.is_some() {
                KAFKA_WINDOW_RECORDS
            } else {
                MAX_RECORDS
            };
            let records = kafka::tail(&brokers, topic, per_partition).await?;
            let documents = records
                .iter()
                .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.payload).ok());
            Ok(match window_spec {
                Some(spec) => {
                    StreamResults::Windows(shape_windows(latest_by_id(documents), spec, window))
                }
                None => StreamResults::Records(shape_records(
                    documents.take(MAX_RECORDS as usize).collect(),
                )),
            })
        }
    }
}

async fn sql_results(
    kind: SqlKind,
    sql: &SqlSinkConfig,
    spec: Option<&WindowConfig>,
    connections: &Connections,
    window: Option<&str>,
) -> Result<StreamResults, TaskError> {
    let url = connections.sql_url(kind, sql.url.as_deref());
    let Some(spec) = spec else {
        let records = sink::sql::read_records(kind, &url, &sql.table, MAX_RECORDS as usize).await?;
        return Ok(StreamResults::Records(shape_records(records)));
    };
    let windows = sink::sql::window_starts(kind, &url, &sql.table, MAX_WINDOWS).await?;
    let selected = pick(&windows, window);
    let documents = match &selected {
        None => Vec::new(),
        Some(start) => sink::sql::window_rows(kind, &url, &sql.table, spec, start).await?,
    };
    Ok(StreamResults::Windows(window_results(
        windows, selected, documents, spec,
    )))
}

async fn mongo_collection(
    connections: &Connections,
    uri: Option<&str>,
    database: &str,
    collection: &str,
) -> Result<Collection<Document>, TaskError> {
    let client = mongo::shared_client(&connections.mongo_uri(uri)).await?;
    Ok(client.database(database).collection(collection))
}

async fn mongo_windows(
    collection: &Collection<Document>,
    spec: &WindowConfig,
    window: Option<&str>,
) -> Result<WindowResults, TaskError> {
    let starts = collection
        .distinct("window_start", doc! {})
        .await
        .map_err(|e| mongo::failed("reading results", &e))?;
    let windows = newest_first(starts.iter().filter_map(|b| b.as_str().map(str::to_owned)));
    let selected = pick(&windows, window);
    let documents: Vec<serde_json::Value> = match &selected {
        None => Vec::new(),
        Some(start) => {
            let stored = collection
                .find(doc! { "window_start": start })
                .await
                .map_err(|e| mongo::failed("reading results", &e))?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(|e| mongo::failed("reading results", &e))?;
            // A task of several shares wrote a document per share: read what they hold together.
            super::window_doc::merge_shares(stored, &spec.aggregates)
                .map_err(|e| TaskError::Failed(format!("reading results: {e}")))?
                .into_iter()
                .map(|mut d| {
                    d.remove("_state");
                    Bson::Document(d).into_relaxed_extjson()
                })
                .collect()
        }
    };
    Ok(window_results(windows, selected, documents, spec))
}

/// The rows of the `selected` window's documents, with the windows to choose from (the
/// selected one listed even when it is older than the newest [`MAX_WINDOWS`]).
fn window_results(
    mut windows: Vec<String>,
    selected: Option<String>,
    documents: Vec<serde_json::Value>,
    spec: &WindowConfig,
) -> WindowResults {
    if let Some(start) = &selected
        && !windows.contains(start)
    {
        windows.insert(0, start.clone());
    }
    let mut results = shape_rows(documents, spec);
    results.windows = windows;
    results.selected = selected;
    results
}

/// Distinct window starts, newest first, [`MAX_WINDOWS`] at most.
fn newest_first(starts: impl Iterator<Item = String>) -> Vec<String> {
    let distinct: BTreeSet<String> = starts.collect();
    distinct.into_iter().rev().take(MAX_WINDOWS).collect()
}

/// The requested window if there is one, else the newest.
fn pick(windows: &[String], window: Option<&str>) -> Option<String> {
    window
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .or_else(|| windows.first().cloned())
}

async fn mongo_records(collection: &Collection<Document>) -> Result<RecordResults, TaskError> {
    let newest = FindOptions::builder()
        .sort(doc! { "$natural": -1 })
        .limit(MAX_RECORDS)
        .build();
    let documents = collection
        .find(doc! {})
        .with_options(newest)
        .await
        .map_err(|e| mongo::failed("reading results", &e))?
        .try_collect::<Vec<Document>>()
        .await
        .map_err(|e| mongo::failed("reading results", &e))?;
    Ok(shape_records(
        documents
            .into_iter()
            .map(|d| Bson::Document(d).into_relaxed_extjson())
            .collect(),
    ))
}

/// The newest version of each window document (a Kafka sink sends a window once it closes;
/// a replay may send it again).
fn latest_by_id(documents: impl Iterator<Item = serde_json::Value>) -> Vec<serde_json::Value> {
    let mut by_id = BTreeMap::new();
    // Newest first: keep the first seen.
    for document in documents {
        let id = document
            .get("_id")
            .map(|v| v.to_string())
            .unwrap_or_default();
        by_id.entry(id).or_insert(document);
    }
    by_id.into_values().collect()
}

fn shape_windows(
    documents: Vec<serde_json::Value>,
    spec: &WindowConfig,
    window: Option<&str>,
) -> WindowResults {
    let start_of = |d: &serde_json::Value| {
        d.get("window_start")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let windows = newest_first(documents.iter().filter_map(start_of));
    let selected = pick(&windows, window);
    let in_window = documents
        .into_iter()
        .filter(|d| start_of(d).is_some() && start_of(d) == selected)
        .collect();
    window_results(windows, selected, in_window, spec)
}

/// The rows of one window's documents, largest primary aggregate first.
fn shape_rows(documents: Vec<serde_json::Value>, spec: &WindowConfig) -> WindowResults {
    let group_by: Vec<String> = spec.group_by.keys().cloned().collect();
    let aggregates: Vec<String> = spec.aggregates.keys().cloned().collect();
    let primary = spec
        .aggregates
        .values()
        .position(|a| matches!(a, super::AggregateSpec::Count))
        .unwrap_or(0);
    let window_end = documents.iter().find_map(|d| {
        d.get("window_end")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    let field =
        |d: &serde_json::Value, name: &str| d.get(name).cloned().unwrap_or(serde_json::Value::Null);
    let mut rows: Vec<WindowRow> = documents
        .iter()
        .map(|d| WindowRow {
            group: group_by.iter().map(|g| field(d, g)).collect(),
            values: aggregates.iter().map(|a| field(d, a)).collect(),
            closed: d.get("closed").and_then(|v| v.as_bool()).unwrap_or(false),
        })
        .collect();
    let measure = |row: &WindowRow| {
        row.values
            .get(primary)
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::MIN)
    };
    rows.sort_by(|a, b| measure(b).total_cmp(&measure(a)));
    WindowResults {
        windows: Vec::new(),
        selected: None,
        window_end,
        group_by,
        aggregates,
        primary,
        rows,
    }
}

/// A table of records: the columns in the order first seen (`_id` first), at most 12.
fn shape_records(documents: Vec<serde_json::Value>) -> RecordResults {
    let mut columns: Vec<String> = Vec::new();
    for document in &documents {
        for key in document.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(key) && columns.len() < 12 {
                columns.push(key.clone());
            }
        }
    }
    if let Some(at) = columns.iter().position(|c| c == "_id") {
        let id = columns.remove(at);
        columns.insert(0, id);
    }
    let rows = documents
        .iter()
        .map(|d| {
            columns
                .iter()
                .map(|c| d.get(c).cloned().unwrap_or(serde_json::Value::Null))
                .collect()
        })
        .collect();
    RecordResults { columns, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WindowConfig {
        serde_json::from_value(serde_json::json!({
            "size": "1m",
            "group_by": {"country": ".country"},
            "aggregates": {"users": "count", "avg_age": {"avg": ".age"}},
        }))
        .unwrap()
    }

    #[test]
    fn windows_newest_first_rows_by_the_first_aggregate() {
        let doc = |start: &str, country: &str, users: i64, id: &str| serde_json::json!({"_id": id, "window_start": start, "window_end": "e", "country": country, "users": users, "avg_age": 30.5, "closed": true});
        let documents = vec![
            doc("2026-01-01T00:01:00.000Z", "France", 3, "a"),
            doc("2026-01-01T00:00:00.000Z", "France", 9, "b"),
            doc("2026-01-01T00:01:00.000Z", "Spain", 7, "c"),
        ];
        let results = shape_windows(documents.clone(), &spec(), None);
        assert_eq!(
            results.windows,
            ["2026-01-01T00:01:00.000Z", "2026-01-01T00:00:00.000Z"]
        );
        assert_eq!(
            results.selected.as_deref(),
            Some("2026-01-01T00:01:00.000Z")
        );
        // Aggregates in name order; rows by the count, largest first.
        assert_eq!(results.aggregates, ["avg_age", "users"]);
        assert_eq!(results.primary, 1);
        let countries: Vec<&str> = results
            .rows
            .iter()
            .map(|r| r.group[0].as_str().unwrap())
            .collect();
        assert_eq!(countries, ["Spain", "France"]);
        let older = shape_windows(documents, &spec(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(older.rows.len(), 1);
        assert_eq!(older.rows[0].values[1], 9);
    }

    #[test]
    fn the_newest_copy_of_a_window_wins() {
        let documents = vec![
            serde_json::json!({"_id": "x", "users": 2}),
            serde_json::json!({"_id": "x", "users": 1}),
        ];
        let latest = latest_by_id(documents.into_iter());
        assert_eq!(latest, [serde_json::json!({"_id": "x", "users": 2})]);
    }

    #[test]
    fn records_put_the_id_first() {
        let records = shape_records(vec![
            serde_json::json!({"name": "a", "_id": 1}),
            serde_json::json!({"name": "b", "_id": 2, "extra": true}),
        ]);
        assert_eq!(records.columns, ["_id", "name", "extra"]);
        assert_eq!(
            records.rows[1],
            [
                serde_json::json!(2),
                serde_json::json!("b"),
                serde_json::json!(true)
            ]
        );
    }
}
