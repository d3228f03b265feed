//! The audit log: every write, who made it, when, from where and what.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, from_micros, to_micros};

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
    /// ` WHERE ...` over the set filters, numbered from `$1`, and their values in order.
    fn where_clause(&self) -> (String, Vec<&str>) {
        let filters = [
            ("dag_id", &self.dag_id),
            ("run_id", &self.run_id),
            ("task_id", &self.task_id),
            ("event", &self.event),
            ("owner", &self.owner),
        ];
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (column, value) in filters {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                values.push(value);
                clauses.push(format!("{column} = ${}", values.len()));
            }
        }
        let clause = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (clause, values)
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
        let (clause, values) = filter.where_clause();
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM audit_log{clause}");
        let mut count = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for value in &values {
            count = count.bind(*value);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT id, at_us, owner, source, event, dag_id, run_id, task_id, try_number, detail
             FROM audit_log{clause} ORDER BY id {order} LIMIT {} OFFSET {}",
            filter.limit, filter.offset
        );
        let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql));
        for value in &values {
            page = page.bind(*value);
        }
        let rows = page.fetch_all(&self.pool).await?;
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
