use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Paging, RunBrief};

/// Filter and page of the DAG list (the page's `search`, and Airflow's `GET /dags` parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DagQuery {
    /// Part of a DAG id or a whole tag, case-insensitive.
    pub search: Option<String>,
    /// Rows of a page (a number that does not fit 32 bits answers 400 naming it).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// `dag_id` (the default) or `-dag_id`.
    pub order_by: Option<String>,
    /// DAGs with any of these tags (the parameter repeats).
    pub tags: Vec<String>,
    pub paused: Option<bool>,
    /// Part of a DAG id, case-insensitive.
    pub dag_id_pattern: Option<String>,
    /// Accepted from Airflow's clients: every DAG of the folder is active.
    pub only_active: Option<bool>,
    /// Accepted from Airflow's clients; every field is answered.
    pub fields: Vec<String>,
}

/// A DAG in the list: what it is and how its recent runs went; serialized in the shape of
/// Airflow's `DAG` (see its `Serialize`).
#[derive(Debug, Clone)]
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

/// Airflow's `DAG`: tags as `{name}` objects, the schedule as a `CronExpression` (null when
/// manual), the file as `fileloc`; and Updraft's `schedule`, `recent_runs`, `task_count`
/// besides.
impl Serialize for DagSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        #[derive(Serialize)]
        struct Tag<'a> {
            name: &'a str,
        }
        #[derive(Serialize)]
        struct CronExpression<'a> {
            __type: &'static str,
            value: &'a str,
        }
        let tags: Vec<Tag> = self.tags.iter().map(|name| Tag { name }).collect();
        let schedule_interval = (!self.schedule.is_empty()).then(|| CronExpression {
            __type: "CronExpression",
            value: &self.schedule,
        });
        let mut dag = serializer.serialize_struct("DAG", 22)?;
        dag.serialize_field("dag_id", &self.dag_id)?;
        dag.serialize_field("dag_display_name", &self.dag_id)?;
        dag.serialize_field("root_dag_id", &None::<String>)?;
        dag.serialize_field("is_paused", &self.is_paused)?;
        dag.serialize_field("is_active", &true)?;
        dag.serialize_field("is_subdag", &false)?;
        dag.serialize_field("fileloc", &self.file)?;
        dag.serialize_field("file_token", &self.file)?;
        dag.serialize_field("owners", &[] as &[&str])?;
        dag.serialize_field("description", &self.description)?;
        dag.serialize_field("schedule_interval", &schedule_interval)?;
        dag.serialize_field("timetable_description", &self.schedule_text())?;
        dag.serialize_field("tags", &tags)?;
        dag.serialize_field("has_import_errors", &false)?;
        dag.serialize_field("next_dagrun", &self.next_run)?;
        dag.serialize_field("next_dagrun_create_after", &self.next_run)?;
        dag.serialize_field("schedule", &self.schedule)?;
        dag.serialize_field("recent_runs", &self.recent_runs)?;
        dag.serialize_field("task_count", &self.tasks)?;
        dag.end()
    }
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

/// A file that did not load, with every problem in it; serialized with Airflow's
/// `ImportError` fields besides (see its `Serialize`).
#[derive(Debug, Clone)]
pub struct ImportErrorView {
    pub file: String,
    /// When the file was last written (when its errors appeared).
    pub modified: DateTime<Utc>,
    pub problems: Vec<ProblemView>,
}

/// Airflow's `ImportError` (`import_error_id` is stable per file name, `stack_trace` lists the
/// problems one per line), and Updraft's `file` and `problems`.
impl Serialize for ImportErrorView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // FNV-1a of the file name, kept to 31 bits (an integer every client reads).
        let id = self
            .file
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
            })
            & 0x7fff_ffff;
        let stack_trace: Vec<String> = self
            .problems
            .iter()
            .map(|p| format!("{}: {}", self.file, p.message))
            .collect();
        let mut error = serializer.serialize_struct("ImportError", 6)?;
        error.serialize_field("import_error_id", &id)?;
        error.serialize_field("timestamp", &self.modified)?;
        error.serialize_field("filename", &self.file)?;
        error.serialize_field("stack_trace", &stack_trace.join("\n"))?;
        error.serialize_field("file", &self.file)?;
        error.serialize_field("problems", &self.problems)?;
        error.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemView {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

/// One DAG in full: Airflow's `DAG` fields at the top (as `GET /dags/{id}` answers them) and
/// the details besides.
#[derive(Debug, Clone, Serialize)]
pub struct DagDetail {
    #[serde(flatten)]
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
    /// Which page of the DAG's tasks `rows` are.
    pub task_paging: Paging,
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

/// One stored version of a DAG's file (`GET /api/v1/dags/{dag_id}/dagVersions`).
#[derive(Debug, Clone, Serialize)]
pub struct DagVersionView {
    pub dag_id: String,
    pub version_number: i64,
    /// SHA-256 of its text.
    pub source_hash: String,
    /// When it was first seen.
    pub created_at: DateTime<Utc>,
    /// Its text's length, and what storing it takes (deflated).
    pub source_bytes: i64,
    pub stored_bytes: i64,
    /// Whether it is the DAG file now.
    pub is_current: bool,
}

/// `GET /api/v1/dags/{dag_id}/dagVersions`: oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct DagVersionList {
    pub dag_versions: Vec<DagVersionView>,
    pub total_entries: usize,
}
