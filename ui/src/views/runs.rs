use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A run in a list or a grid column.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    pub run_id: String,
    pub state: String,
    pub run_type: String,
    pub logical_date: DateTime<Utc>,
}

/// A DAG run (the shape of Airflow's `DAGRun`).
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub dag_id: String,
    #[serde(rename = "dag_run_id")]
    pub run_id: String,
    pub state: String,
    pub run_type: String,
    pub logical_date: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub conf: serde_json::Map<String, serde_json::Value>,
}

impl RunView {
    pub fn duration_ms(&self) -> Option<i64> {
        let start = self.start_date?;
        let end = self.end_date.unwrap_or_else(Utc::now);
        Some((end - start).num_milliseconds())
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "success" | "failed" | "stopped")
    }
}

/// Filter and page of a DAG's runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunQuery {
    pub state: Option<String>,
    pub run_type: Option<String>,
    /// Rows of a page (a number that does not fit 32 bits answers 400 naming it).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunList {
    pub dag_runs: Vec<RunView>,
    pub total_entries: usize,
}

/// A task instance (the shape of Airflow's `TaskInstance`).
#[derive(Debug, Clone, Serialize)]
pub struct TaskInstanceView {
    pub task_id: String,
    pub operator: String,
    pub state: String,
    pub try_number: u32,
    pub max_tries: u32,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// The worker (or host) that ran its latest try.
    pub hostname: Option<String>,
    pub error: Option<String>,
    /// The result summary (what downstream templates see as `upstream.<task>`).
    pub result: Option<serde_json::Value>,
}

/// A run with its task instances, in the DAG's task order.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub run: RunView,
    pub task_instances: Vec<TaskInstanceView>,
    /// Whether this process drives the run now (stop acts at once).
    pub is_active: bool,
}

/// A state a user may mark a task instance with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Success,
    Failed,
}
