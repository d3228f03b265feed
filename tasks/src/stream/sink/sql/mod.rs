//! The SQL sinks (PostgreSQL, MySQL/MariaDB): window rows or records upserted by key into a
//! table created if missing. Exactly once the SQL way: each flush writes its rows, the next
//! source offset of every partition (`updraft_stream_offsets`) and the watermark
//! (`updraft_stream_watermarks`) in one transaction, and a new try resumes from the offsets
//! stored there, so the results and the position in the topics never disagree.

mod client;
mod dialect;
mod results;

use std::{
    collections::{BTreeMap, HashMap},
    sync::LazyLock,
};

use mongodb::bson::{Bson, Document, doc};

pub(crate) use self::client::{SqlPool, SqlValue};
pub(crate) use self::results::{read_records, window_rows, window_starts};
use self::{
    client::{ReadAs, Statement, failed},
    dialect::{Column, ColumnType, Dialect, TableSpec},
};
use super::Checkpoint;
use crate::{
    ConfigError, RecordError, TaskError,
    jq::{self, JqFilter, Val},
    stream::{AggregateSpec, SqlKind, WindowConfig, source::Partition},
};

const OFFSETS_TABLE: &str = "updraft_stream_offsets";
const WATERMARKS_TABLE: &str = "updraft_stream_watermarks";
/// Rows per `INSERT` (PostgreSQL takes 65,535 parameters per statement).
const ROWS_PER_STATEMENT: usize = 500;

/// What the results table holds.
enum Shape {
    /// A row per window and group: group-by columns as text, then the aggregates.
    Windows {
        group_by: Vec<String>,
        aggregates: Vec<Column>,
    },
    /// A row per key: the record as JSON.
    Records { key: JqFilter },
}

pub(crate) struct SqlSink {
    pool: SqlPool,
    dialect: Dialect,
    table: TableSpec,
    shape: Shape,
    group_id: String,
    /// Records without windows waiting for the next flush: JSON by key.
    staged: HashMap<String, String>,
}

impl SqlSink {
    /// Connects, and creates the results table and Updraft's two tables where missing.
    pub(crate) async fn connect(
        kind: SqlKind,
        url: &str,
        table: &str,
        key: Option<JqFilter>,
        window: Option<&WindowConfig>,
        group_id: &str,
    ) -> Result<Self, TaskError> {
        let pool = SqlPool::connect(kind, url).await?;
        let shape = match (window, key) {
            (Some(window), _) => Shape::Windows {
                group_by: window.group_by.keys().cloned().collect(),
                aggregates: window
                    .aggregates
                    .iter()
                    .map(|(name, spec)| Column::new(name, aggregate_type(spec)))
                    .collect(),
            },
            (None, Some(key)) => Shape::Records { key },
            (None, None) => {
                return Err(ConfigError::new("sink.key", "required without windows").into());
            }
        };
        let sink = Self {
            pool,
            dialect: Dialect(kind),
            table: results_table(table, &shape),
            shape,
            group_id: group_id.to_owned(),
            staged: HashMap::new(),
        };
        sink.create_tables().await?;
        Ok(sink)
    }

    async fn create_tables(&self) -> Result<(), TaskError> {
        for table in [&*OFFSETS, &*WATERMARKS, &self.table] {
            let create = Statement::new(self.dialect.create_table(table), Vec::new());
            self.pool
                .transaction(&[create])
                .await
                .map_err(|e| failed(&format!("creating table {}", table.name), &e))?;
            self.check_columns(table).await?;
        }
        Ok(())
    }

    /// Fails with a config error when `table` existed before without the columns needed.
    async fn check_columns(&self, table: &TableSpec) -> Result<(), TaskError> {
        let (sql, params) = self.dialect.columns_of(&table.name);
        let query = Statement::new(
            sql,
            params
                .into_iter()
                .map(|p| SqlValue::Text(Some(p)))
                .collect(),
        );
        let present: Vec<String> = self
            .pool
            .fetch(&query, &[ReadAs::Text])
            .await
            .map_err(|e| failed(&format!("reading the columns of {}", table.name), &e))?
            .into_iter()
            .filter_map(|row| match row.into_iter().next() {
                Some(SqlValue::Text(Some(name))) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let missing: Vec<&str> = table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| !present.contains(&name.to_ascii_lowercase()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ConfigError::new(
            "sink.table",
            format!(
                "table {} exists without the column(s) {}: it was made for another sink; drop it or name another table",
                table.name,
                missing.join(", ")
            ),
        )
        .into())
    }

    /// Stages records without windows for the next flush, each under its key.
    pub(crate) fn stage(&mut self, records: Vec<Val>) -> Result<usize, RecordError> {
        let Shape::Records { key } = &self.shape else {
            return Err(RecordError::Unset("sink.key"));
        };
        let mut staged = Vec::with_capacity(records.len());
        for record in records {
            let id = key.one(record.clone())?;
            if jq::to_json(&id).is_null() {
                return Err(RecordError::NullKey {
                    field: "sink.key",
                    code: key.source().to_owned(),
                });
            }
            staged.push((jq::as_text(&id), jq::to_json(&record).to_string()));
        }
        let count = staged.len();
        self.staged.extend(staged);
        Ok(count)
    }

    /// The stored window `id` as a window document (`_id`, `closed`, `_state`), if any.
    pub(crate) async fn load_window(&self, id: &str) -> Result<Option<Document>, TaskError> {
        let query = Statement::new(
            self.dialect
                .select(&self.table.name, &["closed", "updraft_state"], &["id"]),
            vec![SqlValue::Text(Some(id.to_owned()))],
        );
        let rows = self
            .pool
            .fetch(&query, &[ReadAs::Bool, ReadAs::Text])
            .await
            .map_err(|e| failed("loading a window", &e))?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let (closed, state) = match row.as_slice() {
            [SqlValue::Bool(closed), SqlValue::Text(Some(state))] => (*closed, state),
            other => {
                return Err(TaskError::Failed(format!(
                    "window {id} in {}: unexpected row {other:?}",
                    self.table.name
                )));
            }
        };
        let state: serde_json::Value = serde_json::from_str(state).map_err(|e| {
            TaskError::Failed(format!("window {id}: updraft_state is not JSON: {e}"))
        })?;
        let state = Bson::try_from(state)
            .map_err(|e| TaskError::Failed(format!("window {id}: updraft_state: {e}")))?;
        Ok(Some(doc! { "_id": id, "closed": closed, "_state": state }))
    }

    /// The transaction writing `windows`, the staged records, the offsets and the watermark
    /// (run by [`SqlWrite::run`], which needs nothing of the sink: the task reads on meanwhile).
    pub(crate) fn prepare(
        &mut self,
        windows: Vec<Document>,
        checkpoint: &Checkpoint,
    ) -> Result<SqlWrite, TaskError> {
        let mut rows = Vec::with_capacity(windows.len() + self.staged.len());
        for window in &windows {
            rows.push(self.window_row(window)?);
        }
        let now = chrono::Utc::now();
        rows.extend(self.staged.drain().map(|(key, record)| {
            vec![
                SqlValue::Text(Some(key)),
                SqlValue::Text(Some(record)),
                SqlValue::Time(now),
            ]
        }));
        let written = rows.len();
        let mut statements = self.upserts(&self.table, rows);
        if let Some(positions) = &checkpoint.positions {
            statements.extend(self.upserts(&OFFSETS, self.offset_rows(positions)));
            if let Some(watermark_ms) = checkpoint.watermark_ms {
                statements
                    .extend(self.upserts(&WATERMARKS, vec![self.watermark_row(watermark_ms)]));
            }
        }
        Ok(SqlWrite {
            pool: self.pool.clone(),
            statements,
            written,
            table: self.table.name.clone(),
        })
    }

    /// The next offset of every partition this group stored with its results here.
    pub(crate) async fn load_offsets(&self) -> Result<BTreeMap<Partition, i64>, TaskError> {
        let query = Statement::new(
            self.dialect.select(
                OFFSETS_TABLE,
                &["topic", "kafka_partition", "next_offset"],
                &["group_id", "sink_table"],
            ),
            self.stream_key(),
        );
        let rows = self
            .pool
            .fetch(&query, &[ReadAs::Text, ReadAs::Int, ReadAs::Int])
            .await
            .map_err(|e| failed("loading the stored offsets", &e))?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [
                    SqlValue::Text(Some(topic)),
                    SqlValue::Int(Some(partition)),
                    SqlValue::Int(Some(next)),
                ] => Some(((topic.clone(), *partition as i32), *next)),
                _ => None,
            })
            .collect())
    }

    /// The watermark saved by the last flush of this group into this table.
    pub(crate) async fn load_watermark(&self) -> Result<Option<i64>, TaskError> {
        let query = Statement::new(
            self.dialect.select(
                WATERMARKS_TABLE,
                &["watermark_ms"],
                &["group_id", "sink_table"],
            ),
            self.stream_key(),
        );
        let rows = self
            .pool
            .fetch(&query, &[ReadAs::Int])
            .await
            .map_err(|e| failed("loading the watermark", &e))?;
        Ok(rows.into_iter().find_map(|row| match row.as_slice() {
            [SqlValue::Int(watermark)] => *watermark,
            _ => None,
        }))
    }

    pub(crate) fn table(&self) -> &str {
        &self.table.name
    }

    fn stream_key(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(Some(self.group_id.clone())),
            SqlValue::Text(Some(self.table.name.clone())),
        ]
    }

    /// Multi-row upserts of `rows` into `table`, [`ROWS_PER_STATEMENT`] at a time.
    fn upserts(&self, table: &TableSpec, rows: Vec<Vec<SqlValue>>) -> Vec<Statement> {
        rows.chunks(ROWS_PER_STATEMENT)
            .map(|chunk| {
                Statement::new(
                    self.dialect.upsert(table, chunk.len()),
                    chunk.iter().flatten().cloned().collect(),
                )
            })
            .collect()
    }

    fn offset_rows(&self, positions: &BTreeMap<Partition, i64>) -> Vec<Vec<SqlValue>> {
        positions
            .iter()
            .map(|((topic, partition), next)| {
                let mut row = self.stream_key();
                row.extend([
                    SqlValue::Text(Some(topic.clone())),
                    SqlValue::Int(Some(i64::from(*partition))),
                    SqlValue::Int(Some(*next)),
                ]);
                row
            })
            .collect()
    }

    fn watermark_row(&self, watermark_ms: i64) -> Vec<SqlValue> {
        let mut row = self.stream_key();
        row.push(SqlValue::Int(Some(watermark_ms)));
        row.push(SqlValue::Time(time(watermark_ms)));
        row
    }

    /// A window document as a row of the results table, in its column order.
    fn window_row(&self, document: &Document) -> Result<Vec<SqlValue>, TaskError> {
        let Shape::Windows {
            group_by,
            aggregates,
        } = &self.shape
        else {
            return Err(TaskError::Failed(
                "window results for a table of records".into(),
            ));
        };
        let id = document.get_str("_id").unwrap_or_default();
        let state = document
            .get_document("_state")
            .map_err(|e| TaskError::Failed(format!("window {id}: {e}")))?;
        let state_ms = |key: &str| state.get_i64(key).unwrap_or_default();
        let mut row = vec![SqlValue::Text(Some(id.to_owned()))];
        row.extend(group_by.iter().map(|name| group_value(document.get(name))));
        row.push(SqlValue::Time(time(state_ms("start_ms"))));
        row.push(SqlValue::Time(time(state_ms("end_ms"))));
        row.extend(aggregates.iter().map(|column| match column.ty {
            ColumnType::BigInt => SqlValue::Int(document.get_i64(&column.name).ok()),
            _ => SqlValue::Float(document.get_f64(&column.name).ok()),
        }));
        row.push(SqlValue::Bool(document.get_bool("closed").unwrap_or(false)));
        let state = Bson::Document(state.clone()).into_relaxed_extjson();
        row.push(SqlValue::Text(Some(state.to_string())));
        Ok(row)
    }
}

/// A group-by value as text: strings as they are, other values as JSON, null as NULL.
fn group_value(value: Option<&Bson>) -> SqlValue {
    SqlValue::Text(match value {
        None | Some(Bson::Null) => None,
        Some(Bson::String(text)) => Some(text.clone()),
        Some(other) => Some(other.clone().into_relaxed_extjson().to_string()),
    })
}

fn time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The column type of an aggregate: counts are integers, the rest floats.
fn aggregate_type(spec: &AggregateSpec) -> ColumnType {
    match spec {
        AggregateSpec::Count | AggregateSpec::CountDistinct(_) => ColumnType::BigInt,
        _ => ColumnType::Double,
    }
}

fn results_table(name: &str, shape: &Shape) -> TableSpec {
    let columns = match shape {
        Shape::Windows {
            group_by,
            aggregates,
        } => {
            let mut columns = vec![Column::new("id", ColumnType::Key)];
            columns.extend(group_by.iter().map(|g| Column::new(g, ColumnType::Text)));
            columns.push(Column::new("window_start", ColumnType::Time));
            columns.push(Column::new("window_end", ColumnType::Time));
            columns.extend(aggregates.iter().cloned());
            columns.push(Column::new("closed", ColumnType::Bool));
            columns.push(Column::new("updraft_state", ColumnType::Text));
            columns
        }
        Shape::Records { .. } => vec![
            Column::new("key", ColumnType::Key),
            Column::new("record", ColumnType::Json),
            Column::new("updated_at", ColumnType::Time),
        ],
    };
    let primary_key = match shape {
        Shape::Windows { .. } => vec!["id"],
        Shape::Records { .. } => vec!["key"],
    };
    TableSpec {
        name: name.to_owned(),
        columns,
        primary_key,
    }
}

/// Updraft's table of the next offset per stream, table and partition.
static OFFSETS: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: OFFSETS_TABLE.into(),
    columns: vec![
        Column::new("group_id", ColumnType::Name),
        Column::new("sink_table", ColumnType::Name),
        Column::new("topic", ColumnType::Name),
        Column::new("kafka_partition", ColumnType::BigInt),
        Column::new("next_offset", ColumnType::BigInt),
    ],
    primary_key: vec!["group_id", "sink_table", "topic", "kafka_partition"],
});

/// Updraft's table of the watermark per stream and table.
static WATERMARKS: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: WATERMARKS_TABLE.into(),
    columns: vec![
        Column::new("group_id", ColumnType::Name),
        Column::new("sink_table", ColumnType::Name),
        Column::new("watermark_ms", ColumnType::BigInt),
        Column::new("watermark", ColumnType::Time),
    ],
    primary_key: vec!["group_id", "sink_table"],
});

/// One flush's transaction, prepared by [`SqlSink::prepare`].
pub(crate) struct SqlWrite {
    pool: SqlPool,
    statements: Vec<Statement>,
    /// Rows of results among the statements' rows.
    written: usize,
    table: String,
}

impl SqlWrite {
    /// Runs the transaction; how many rows of results it wrote.
    pub(crate) async fn run(self) -> Result<usize, TaskError> {
        if self.statements.is_empty() {
            return Ok(0);
        }
        self.pool.transaction(&self.statements).await.map_err(|e| {
            failed(
                &format!("writing {} rows to {}", self.written, self.table),
                &e,
            )
        })?;
        Ok(self.written)
    }
}
