//! Task logs shipped to the shared database (PostgreSQL), so that every `serve` reads the log
//! of a try whichever machine runs it. A chunk is a run of whole lines at its byte offset in
//! the try's log file on the worker: the chunks of a try tile that file from its first byte,
//! so offsets mean the same on every machine (a reconnecting follower resumes at its byte).

use sqlx::Row;

use super::{Result, Store, StoreEvent};

/// Names one try's log in the store.
#[derive(Debug, Clone, Copy)]
pub struct LogKey<'a> {
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub try_number: u32,
}

impl Store {
    /// Appends the bytes `text` of a try's log at byte `start`; notifies the other processes.
    pub async fn append_log_chunk(&self, key: LogKey<'_>, start: u64, text: &str) -> Result<()> {
        self.append_log_chunks(&[(key, start, text)]).await
    }

    /// Appends several chunks (of one try or several) in one transaction, up to
    /// [`CHUNKS_PER_STATEMENT`] in each statement; notifies the other processes once per try.
    pub async fn append_log_chunks(&self, chunks: &[(LogKey<'_>, u64, &str)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for part in chunks.chunks(CHUNKS_PER_STATEMENT) {
            insert_chunks(&mut tx, part).await?;
        }
        let mut events: Vec<StoreEvent> = Vec::new();
        for (key, _, _) in chunks {
            let event = StoreEvent::Log {
                dag_id: key.dag_id.to_owned(),
                run_id: key.run_id.to_owned(),
                task_id: key.task_id.to_owned(),
                try_number: key.try_number,
            };
            if !events.contains(&event) {
                events.push(event);
            }
        }
        self.notify_in(&mut tx, || events.clone()).await?;
        tx.commit().await?;
        for event in events {
            self.events.publish(event);
        }
        Ok(())
    }

    /// How many bytes of a try's log the store holds (0 for none).
    pub async fn log_size(&self, key: LogKey<'_>) -> Result<u64> {
        let row = sqlx::query(
            "SELECT MAX(end_offset) AS size FROM task_log_chunks
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4",
        )
        .bind(key.dag_id)
        .bind(key.run_id)
        .bind(key.task_id)
        .bind(i64::from(key.try_number))
        .fetch_one(&self.pool)
        .await?;
        Ok(row
            .try_get::<Option<i64>, _>("size")?
            .map_or(0, |size| size.max(0) as u64))
    }

    /// The bytes `start..start + len` of a try's log (fewer at its end), from the chunks that
    /// overlap them.
    pub async fn log_bytes(&self, key: LogKey<'_>, start: u64, len: usize) -> Result<Vec<u8>> {
        let end = start + len as u64;
        let rows = sqlx::query(
            "SELECT start_offset, text FROM task_log_chunks
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4
               AND end_offset > $5 AND start_offset < $6
             ORDER BY start_offset",
        )
        .bind(key.dag_id)
        .bind(key.run_id)
        .bind(key.task_id)
        .bind(i64::from(key.try_number))
        .bind(offset(start))
        .bind(offset(end))
        .fetch_all(&self.pool)
        .await?;
        let mut bytes = Vec::with_capacity(len);
        for row in rows {
            let chunk_start = row.try_get::<i64, _>("start_offset")?.max(0) as u64;
            let text: String = row.try_get("text")?;
            let text = text.as_bytes();
            let from = start.saturating_sub(chunk_start).min(text.len() as u64) as usize;
            let to = (end.saturating_sub(chunk_start)).min(text.len() as u64) as usize;
            bytes.extend_from_slice(&text[from..to]);
        }
        Ok(bytes)
    }
}

/// The most chunks one INSERT statement writes (7 parameters each).
const CHUNKS_PER_STATEMENT: usize = 64;

/// `INSERT ... SELECT FROM (VALUES ...)` of log chunks; rows with an empty DAG id are padding.
static INSERT_CHUNKS: super::bulk::BulkStatement = {
    use super::bulk::{BIGINT, TEXT};
    super::bulk::BulkStatement::new(
        &[TEXT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, TEXT],
        |values| {
            format!(
            "INSERT INTO task_log_chunks (dag_id, run_id, task_id, try_number, start_offset, end_offset, text)
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7
             FROM (VALUES {values}) AS v WHERE v.column1 <> '' ON CONFLICT DO NOTHING"
        )
        },
    )
};

/// Inserts `chunks` with one statement, padded to a power of two with rows the statement
/// leaves out (an empty DAG id), so a few statement texts serve every batch size.
async fn insert_chunks(
    conn: &mut sqlx::AnyConnection,
    chunks: &[(LogKey<'_>, u64, &str)],
) -> Result<()> {
    let rows = chunks.len().next_power_of_two();
    let dialect = super::bulk::Dialect::of(conn);
    let mut query = sqlx::query(INSERT_CHUNKS.text(dialect, rows));
    for (key, start, text) in chunks {
        query = query
            .bind(key.dag_id)
            .bind(key.run_id)
            .bind(key.task_id)
            .bind(i64::from(key.try_number))
            .bind(offset(*start))
            .bind(offset(start + text.len() as u64))
            .bind(*text);
    }
    for _ in chunks.len()..rows {
        query = query
            .bind("")
            .bind("")
            .bind("")
            .bind(0_i64)
            .bind(0_i64)
            .bind(0_i64)
            .bind("");
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

fn offset(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
