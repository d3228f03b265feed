//! DAG versions: every new text of a DAG file (by its SHA-256) is a new version, numbered from
//! 1 per DAG, its text stored once however many runs use it (deflated, then base64 in a TEXT
//! column both engines take).

use std::io::{Read, Write};

use base64::Engine;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, StoreError, from_micros, to_micros};

/// One stored version of a DAG file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagVersionRow {
    pub dag_id: String,
    pub version_number: i64,
    pub source_hash: String,
    /// When it was first seen.
    pub created_at: DateTime<Utc>,
    /// Its text's length, and the bytes stored for it.
    pub source_bytes: i64,
    pub stored_bytes: i64,
}

fn deflate(text: &str) -> String {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(text.as_bytes());
    let bytes = encoder.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn inflate(stored: &str) -> Result<String> {
    let corrupt = |message: String| StoreError::Corrupt {
        table: "dag_versions",
        message,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut text = String::new();
    flate2::read::DeflateDecoder::new(bytes.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(text)
}

fn version_from_row(row: &sqlx::any::AnyRow) -> Result<DagVersionRow> {
    let stored: String = row.try_get("source_deflated")?;
    Ok(DagVersionRow {
        dag_id: row.try_get("dag_id")?,
        version_number: row.try_get("version_number")?,
        source_hash: row.try_get("source_hash")?,
        created_at: from_micros(row.try_get("created_at_us")?),
        source_bytes: row.try_get("source_bytes")?,
        stored_bytes: stored.len() as i64,
    })
}

impl Store {
    /// The number of the version of `dag_id` whose text is `source` (hash `source_hash`): the
    /// latest one if it has that hash, else a new one.
    pub async fn dag_version(&self, dag_id: &str, source_hash: &str, source: &str) -> Result<i64> {
        for _ in 0..3 {
            let latest = sqlx::query(
                "SELECT version_number, source_hash FROM dag_versions WHERE dag_id = $1
                 ORDER BY version_number DESC LIMIT 1",
            )
            .bind(dag_id)
            .fetch_optional(&self.pool)
            .await?;
            let next = match &latest {
                Some(row) if row.try_get::<String, _>("source_hash")? == source_hash => {
                    return Ok(row.try_get("version_number")?);
                }
                Some(row) => row.try_get::<i64, _>("version_number")? + 1,
                None => 1,
            };
            let inserted = sqlx::query(
                "INSERT INTO dag_versions (dag_id, version_number, source_hash, source_deflated, source_bytes, created_at_us)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dag_id, version_number) DO NOTHING",
            )
            .bind(dag_id)
            .bind(next)
            .bind(source_hash)
            .bind(deflate(source))
            .bind(source.len() as i64)
            .bind(to_micros(Utc::now()))
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                tracing::info!(dag_id, version = next, "New DAG version");
                return Ok(next);
            }
            // Another process stored that number first: look again.
        }
        Err(StoreError::Lost {
            what: format!("the next version number of DAG {dag_id}"),
            expected: "free".into(),
        })
    }

    /// The versions of a DAG, oldest first.
    pub async fn dag_versions(&self, dag_id: &str) -> Result<Vec<DagVersionRow>> {
        let rows = sqlx::query(
            "SELECT dag_id, version_number, source_hash, source_deflated, source_bytes, created_at_us
             FROM dag_versions WHERE dag_id = $1 ORDER BY version_number",
        )
        .bind(dag_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// The hash of one version of a DAG's text, without reading the text.
    pub async fn dag_version_hash(
        &self,
        dag_id: &str,
        version_number: i64,
    ) -> Result<Option<String>> {
        let hash = sqlx::query_scalar(
            "SELECT source_hash FROM dag_versions WHERE dag_id = $1 AND version_number = $2",
        )
        .bind(dag_id)
        .bind(version_number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(hash)
    }

    /// One version of a DAG and its text.
    pub async fn dag_version_source(
        &self,
        dag_id: &str,
        version_number: i64,
    ) -> Result<Option<(DagVersionRow, String)>> {
        let row = sqlx::query(
            "SELECT dag_id, version_number, source_hash, source_deflated, source_bytes, created_at_us
             FROM dag_versions WHERE dag_id = $1 AND version_number = $2",
        )
        .bind(dag_id)
        .bind(version_number)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text = inflate(&row.try_get::<String, _>("source_deflated")?)?;
        Ok(Some((version_from_row(&row)?, text)))
    }
}
