use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RunBrief;

/// Filter and page of the DAG list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DagQuery {
    /// Part of a DAG id or a whole tag, case-insensitive.
    pub search: Option<String>,
    /// Rows of a page (a number that does not fit 32 bits answers 400 naming it).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A DAG in the list: what it is and how its recent runs went.
#[derive(Debug, Clone, Serialize)]
pub struct DagSummary {
    pub dag_id: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// As written (`*/5 * * * *`, `@continuous`); empty for manual-only DAGs.
    pub schedule: String,
    pub is_paused: bool,
    pub next_run: Option<DateTime<Utc>>,
    /// The latest runs, oldest first (at most 25).
    pub recent_runs: Vec<RunBrief>,
    pub tasks: usize,
    pub file: String,
}

impl DagSummary {
    pub fn last_run(&self) -> Option<&RunBrief> {
        self.recent_runs.last()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DagList {
    pub dags: Vec<DagSummary>,
    /// DAGs matching the filter, over all pages.
    pub total_entries: usize,
    pub import_errors: Vec<ImportErrorView>,
}

/// A file that did not load, with every problem in it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportErrorView {
    pub file: String,
    pub problems: Vec<ProblemView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemView {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

/// One DAG in full.
#[derive(Debug, Clone, Serialize)]
pub struct DagDetail {
    pub summary: DagSummary,
    pub timezone: String,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub params: Vec<ParamView>,
    /// Whether conf may hold keys that are not params.
    pub allow_extra_conf: bool,
    /// Tasks in a topological order.
    pub tasks: Vec<TaskNode>,
    /// The DAG file's text.
    pub source: String,
}

/// One param of a DAG and its default.
#[derive(Debug, Clone, Serialize)]
pub struct ParamView {
    pub name: String,
    /// JSON type of the default: string, integer, number, boolean, array, object, null.
    pub kind: String,
    pub default: serde_json::Value,
}

impl ParamView {
    /// The default as an input's value: strings bare, the rest as JSON.
    pub fn input_value(&self) -> String {
        match &self.default {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskNode {
    pub task_id: String,
    pub operator: String,
    pub upstream: Vec<String>,
    pub trigger_rule: String,
    pub retries: u32,
}

/// The grid of a DAG: its latest runs (oldest left) by its tasks.
#[derive(Debug, Clone, Serialize)]
pub struct GridView {
    pub dag_id: String,
    pub runs: Vec<RunBrief>,
    pub rows: Vec<GridRow>,
    /// Logical date (RFC 3339) to pass as `before` for the page of older runs, if any.
    pub older: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    pub task_id: String,
    /// One cell per run, in the order of `runs`.
    pub cells: Vec<GridCell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridCell {
    /// The task instance's state; None when the run has no such task.
    pub state: Option<String>,
    pub try_number: u32,
}
