//! Reading a SQL sink's table back for the results page: the window starts, one window's
//! rows as JSON objects, or the newest records.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use super::{
    SqlPool, SqlValue, aggregate_type,
    client::{ReadAs, Statement, failed},
    dialect::{ColumnType, Dialect},
};
use crate::{
    TaskError,
    stream::{SqlKind, WindowConfig, window_doc::iso},
};

/// Pools by URL, shared by every read of the results page.
async fn pool(kind: SqlKind, url: &str) -> Result<SqlPool, TaskError> {
    static POOLS: OnceLock<Mutex<HashMap<String, SqlPool>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    if let Some(pool) = pools.lock().ok().and_then(|p| p.get(url).cloned()) {
        return Ok(pool);
    }
    let pool = SqlPool::connect(kind, url).await?;
    if let Ok(mut pools) = pools.lock() {
        pools.insert(url.to_owned(), pool.clone());
    }
    Ok(pool)
}

/// The distinct window starts of `table` (RFC 3339), newest first, `limit` at most.
pub(crate) async fn window_starts(
    kind: SqlKind,
    url: &str,
    table: &str,
    limit: usize,
) -> Result<Vec<String>, TaskError> {
    let sql = format!(
        "SELECT DISTINCT window_start FROM {} ORDER BY window_start DESC LIMIT {limit}",
        Dialect(kind).quote_table(table)
    );
    let rows = pool(kind, url)
        .await?
        .fetch(&Statement::new(sql, Vec::new()), &[ReadAs::Time])
        .await
        .map_err(|e| failed("reading window starts", &e))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.first() {
            Some(SqlValue::Time(t)) => Some(iso(t.timestamp_millis())),
            _ => None,
        })
        .collect())
}

/// The rows of the window starting at `start` (RFC 3339) as objects like window documents.
pub(crate) async fn window_rows(
    kind: SqlKind,
    url: &str,
    table: &str,
    spec: &WindowConfig,
    start: &str,
) -> Result<Vec<serde_json::Value>, TaskError> {
    let start = chrono::DateTime::parse_from_rfc3339(start)
        .map_err(|e| TaskError::Failed(format!("window {start:?}: {e}")))?
        .to_utc();
    let mut columns: Vec<&str> = vec![
        "id",
        "updraft_state",
        "window_start",
        "window_end",
        "closed",
    ];
    let mut reads = vec![
        ReadAs::Text,
        ReadAs::Text,
        ReadAs::Time,
        ReadAs::Time,
        ReadAs::Bool,
    ];
    for name in spec.group_by.keys() {
        columns.push(name);
        reads.push(ReadAs::Text);
    }
    for (name, aggregate) in &spec.aggregates {
        columns.push(name);
        reads.push(match aggregate_type(aggregate) {
            ColumnType::BigInt => ReadAs::Int,
            _ => ReadAs::Float,
        });
    }
    let query = Statement::new(
        Dialect(kind).select(table, &columns, &["window_start"]),
        vec![SqlValue::Time(start)],
    );
    let rows = pool(kind, url)
        .await?
        .fetch(&query, &reads)
        .await
        .map_err(|e| failed("reading a window", &e))?;
    let documents = rows
        .into_iter()
        .map(|row| window_document(&columns, row))
        .collect::<Result<Vec<_>, _>>()?;
    // A task of several shares wrote a row per share: read what they hold together.
    let merged = crate::stream::merge_shares(documents, &spec.aggregates)
        .map_err(|e| TaskError::Failed(format!("reading a window: {e}")))?;
    Ok(merged
        .into_iter()
        .map(|mut document| {
            document.remove("_state");
            document.remove("_id");
            mongodb::bson::Bson::Document(document).into_relaxed_extjson()
        })
        .collect())
}

/// A window row as the window document it stands for (`id` as `_id`, `updraft_state` as
/// `_state`), so the shares of a split task merge as MongoDB's do.
fn window_document(
    columns: &[&str],
    row: Vec<SqlValue>,
) -> Result<mongodb::bson::Document, TaskError> {
    let mut document = mongodb::bson::Document::new();
    for (name, value) in columns.iter().zip(row) {
        let value = match (*name, json(value)) {
            ("id", id) => {
                document.insert("_id", id.as_str().unwrap_or_default());
                continue;
            }
            ("updraft_state", serde_json::Value::String(state)) => {
                let state: serde_json::Value = serde_json::from_str(&state).map_err(|e| {
                    TaskError::Failed(format!("a window's updraft_state is not JSON: {e}"))
                })?;
                document.insert("_state", to_bson(state)?);
                continue;
            }
            (_, value) => to_bson(value)?,
        };
        document.insert(*name, value);
    }
    Ok(document)
}

fn to_bson(value: serde_json::Value) -> Result<mongodb::bson::Bson, TaskError> {
    mongodb::bson::Bson::try_from(value)
        .map_err(|e| TaskError::Failed(format!("reading a window: {e}")))
}

/// The newest `limit` records of a table of records, each as its JSON with `_id` (its key).
pub(crate) async fn read_records(
    kind: SqlKind,
    url: &str,
    table: &str,
    limit: usize,
) -> Result<Vec<serde_json::Value>, TaskError> {
    let pool = pool(kind, url).await?;
    let dialect = Dialect(kind);
    let record = match kind {
        SqlKind::Postgres => "record::text",
        SqlKind::Mysql => "record",
    };
    let sql = format!(
        "SELECT {}, {record} FROM {} ORDER BY updated_at DESC LIMIT {limit}",
        dialect.quote("key"),
        dialect.quote_table(table)
    );
    let rows = pool
        .fetch(
            &Statement::new(sql, Vec::new()),
            &[ReadAs::Text, ReadAs::Text],
        )
        .await
        .map_err(|e| failed("reading records", &e))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut values = row.into_iter().map(json);
            let key = values.next().unwrap_or_default();
            let record = match values.next() {
                Some(serde_json::Value::String(text)) => {
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                }
                _ => serde_json::Value::Null,
            };
            let mut object = match record {
                serde_json::Value::Object(object) => object,
                other => serde_json::Map::from_iter([("record".to_owned(), other)]),
            };
            object.insert("_id".into(), key);
            serde_json::Value::Object(object)
        })
        .collect())
}

fn json(value: SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Text(text) => text.map_or(serde_json::Value::Null, serde_json::Value::String),
        SqlValue::Int(n) => n.map_or(serde_json::Value::Null, Into::into),
        SqlValue::Float(x) => x.map_or(serde_json::Value::Null, Into::into),
        SqlValue::Bool(b) => b.into(),
        SqlValue::Time(t) => iso(t.timestamp_millis()).into(),
    }
}
