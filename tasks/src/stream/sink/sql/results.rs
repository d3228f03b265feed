//! Reading a SQL sink's table back for the results page: the window starts, one window's
//! rows as JSON objects, or the newest records.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use super::{
    SqlPool, SqlValue,
    client::{ReadAs, Statement, failed},
    dialect::Dialect,
};
use crate::{
    TaskError,
    stream::{AggregateSpec, SqlKind, WindowConfig, window_doc::iso},
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

/// Window starts (RFC 3339, newest first, `limit` at most) and the rows of the window
/// starting at `window` (the newest when absent) as objects like window documents.
pub async fn read_windows(
    kind: SqlKind,
    url: &str,
    table: &str,
    spec: &WindowConfig,
    window: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Vec<serde_json::Value>), TaskError> {
    let pool = pool(kind, url).await?;
    let dialect = Dialect(kind);
    let starts_sql = format!(
        "SELECT DISTINCT window_start FROM {} ORDER BY window_start DESC LIMIT {limit}",
        dialect.quote(table)
    );
    let starts: Vec<chrono::DateTime<chrono::Utc>> = pool
        .fetch(&Statement::new(starts_sql, Vec::new()), &[ReadAs::Time])
        .await
        .map_err(|e| failed("reading window starts", &e))?
        .into_iter()
        .filter_map(|row| match row.first() {
            Some(SqlValue::Time(t)) => Some(*t),
            _ => None,
        })
        .collect();
    let windows: Vec<String> = starts.iter().map(|t| iso(t.timestamp_millis())).collect();
    let selected = match window.filter(|w| !w.is_empty()) {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.to_utc())
            .map_err(|e| TaskError::Failed(format!("window {text:?}: {e}")))?,
        None => match starts.first() {
            Some(newest) => *newest,
            None => return Ok((windows, Vec::new())),
        },
    };
    let group_by: Vec<&str> = spec.group_by.keys().map(String::as_str).collect();
    let aggregates: Vec<(&str, ReadAs)> = spec
        .aggregates
        .iter()
        .map(|(name, a)| {
            let read = match a {
                AggregateSpec::Count | AggregateSpec::CountDistinct(_) => ReadAs::Int,
                _ => ReadAs::Float,
            };
            (name.as_str(), read)
        })
        .collect();
    let mut columns: Vec<&str> = vec!["window_start", "window_end", "closed"];
    let mut reads = vec![ReadAs::Time, ReadAs::Time, ReadAs::Bool];
    columns.extend(&group_by);
    reads.extend(group_by.iter().map(|_| ReadAs::Text));
    columns.extend(aggregates.iter().map(|(name, _)| *name));
    reads.extend(aggregates.iter().map(|(_, read)| *read));
    let query = Statement::new(
        dialect.select(table, &columns, &["window_start"]),
        vec![SqlValue::Time(selected)],
    );
    let rows = pool
        .fetch(&query, &reads)
        .await
        .map_err(|e| failed("reading a window", &e))?;
    let documents = rows
        .into_iter()
        .map(|row| {
            let object: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(row)
                .map(|(name, value)| ((*name).to_owned(), json(value)))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect();
    Ok((windows, documents))
}

/// The newest `limit` records of a table of records, each as its JSON with `_id` (its key).
pub async fn read_records(
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
        dialect.quote(table)
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
