//! The audit log: every write, who made it, when, from where and what.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, filter::Conditions, from_micros, to_micros};

/// An entry to keep.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Who: a user name, or the OS user for the CLI.
    pub owner: String,
    /// From where: the client's address, `cli`, or unknown.
    pub source: Option<String>,
    /// What kind: `trigger`, `pause`, `clear`, `sign_in`, `user_add`, ...
    pub event: String,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub try_number: Option<i64>,
    /// What else: a JSON object.
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(owner: &str, source: Option<&str>, event: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            source: source.map(str::to_owned),
            event: event.to_owned(),
            detail: serde_json::json!({}),
            ..Self::default()
        }
    }

    pub fn about_dag(mut self, dag_id: &str) -> Self {
        self.dag_id = Some(dag_id.to_owned());
        self
    }

    pub fn about_run(self, dag_id: &str, run_id: &str) -> Self {
        let mut entry = self.about_dag(dag_id);
        entry.run_id = Some(run_id.to_owned());
        entry
    }

    pub fn about_task(self, dag_id: &str, run_id: &str, task_id: &str) -> Self {
        let mut entry = self.about_run(dag_id, run_id);
        entry.task_id = Some(task_id.to_owned());
        entry
    }

    /// `detail` must be a JSON object.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A kept entry.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub entry: AuditEntry,
}

/// Which entries, newest or oldest first, and which page.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub event: Option<String>,
    pub owner: Option<String>,
    pub newest_first: bool,
    pub limit: u32,
    pub offset: u32,
}

impl AuditFilter {
    /// The set filters (an empty value filters nothing).
    fn conditions(&self) -> Conditions {
        let filters = [
            ("dag_id", &self.dag_id),
            ("run_id", &self.run_id),
            ("task_id", &self.task_id),
            ("event", &self.event),
            ("owner", &self.owner),
        ];
        let mut conditions = Conditions::default();
        for (column, value) in filters {
            conditions.any_of(column, value.iter().filter(|v| !v.is_empty()).cloned());
        }
        conditions
    }
}

impl Store {
    /// Keeps an entry.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at_us, owner, source, event, dag_id, run_id, task_id, try_number, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(to_micros(Utc::now()))
        .bind(&entry.owner)
        .bind(&entry.source)
        .bind(&entry.event)
        .bind(&entry.dag_id)
        .bind(&entry.run_id)
        .bind(&entry.task_id)
        .bind(entry.try_number)
        .bind(entry.detail.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A page of entries and how many match in all.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<(Vec<AuditRow>, u64)> {
        let conditions = filter.conditions();
        let clause = conditions.clause();
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM audit_log{clause}");
        let total: i64 = conditions
            .bind(sqlx::query(sqlx::AssertSqlSafe(count_sql)))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let page_sql = format!(
            "SELECT id, at_us, owner, source, event, dag_id, run_id, task_id, try_number, detail
             FROM audit_log{clause} ORDER BY id {order} LIMIT {} OFFSET {}",
            filter.limit, filter.offset
        );
        let rows = conditions
            .bind(sqlx::query(sqlx::AssertSqlSafe(page_sql)))
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(audit_row).collect::<Result<_>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

fn audit_row(row: &sqlx::any::AnyRow) -> Result<AuditRow> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditRow {
        id: row.try_get("id")?,
        at: from_micros(row.try_get("at_us")?),
        entry: AuditEntry {
            owner: row.try_get("owner")?,
            source: row.try_get("source")?,
            event: row.try_get("event")?,
            dag_id: row.try_get("dag_id")?,
            run_id: row.try_get("run_id")?,
            task_id: row.try_get("task_id")?,
            try_number: row.try_get("try_number")?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        },
    })
}
