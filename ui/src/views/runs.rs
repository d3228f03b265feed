use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Paging;

/// A run in a list or a grid column.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    pub run_id: String,
    pub state: String,
    pub run_type: String,
    pub logical_date: DateTime<Utc>,
    /// The version of the DAG's file the run was created with.
    pub dag_version_number: Option<i64>,
}

/// A DAG run; serialized in the shape of Airflow's `DAGRun` (see [`RunView`]'s `Serialize`).
#[derive(Debug, Clone)]
pub struct RunView {
    pub dag_id: String,
    pub run_id: String,
    pub state: String,
    pub run_type: String,
    pub logical_date: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// The version of the DAG's file the run was created with.
    pub dag_version_number: Option<i64>,
}

/// Airflow's `DAGRun`: its fields and types, `state` within Airflow's four (a `stopped` run
/// is `failed` there; `updraft_state` keeps the exact one). The data interval is the logical
/// date (Updraft runs have no interval of their own).
impl Serialize for RunView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut run = serializer.serialize_struct("DAGRun", 18)?;
        run.serialize_field("dag_id", &self.dag_id)?;
        run.serialize_field("dag_run_id", &self.run_id)?;
        run.serialize_field("state", airflow_run_state(&self.state))?;
        run.serialize_field("updraft_state", &self.state)?;
        run.serialize_field("run_type", &self.run_type)?;
        run.serialize_field("logical_date", &self.logical_date)?;
        run.serialize_field("execution_date", &self.logical_date)?;
        run.serialize_field("data_interval_start", &self.logical_date)?;
        run.serialize_field("data_interval_end", &self.logical_date)?;
        run.serialize_field("queued_at", &self.queued_at)?;
        run.serialize_field("start_date", &self.start_date)?;
        run.serialize_field("end_date", &self.end_date)?;
        run.serialize_field("last_scheduling_decision", &None::<DateTime<Utc>>)?;
        run.serialize_field("external_trigger", &(self.run_type == "manual"))?;
        run.serialize_field("conf", &self.conf)?;
        run.serialize_field("note", &None::<String>)?;
        run.serialize_field("dag_version_number", &self.dag_version_number)?;
        run.end()
    }
}

/// A run state among Airflow's `DagState` values.
fn airflow_run_state(state: &str) -> &str {
    match state {
        "stopped" => "failed",
        other => other,
    }
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

/// Filter, order and page of runs (Airflow's `GET /dags/{id}/dagRuns` parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunQuery {
    /// Runs in any of these states (the parameter repeats).
    pub state: Vec<String>,
    pub run_type: Option<String>,
    /// Rows of a page (a number that does not fit 32 bits answers 400 naming it).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// `execution_date`, `start_date`, `end_date`, `dag_run_id`, `dag_id` or `state`, with
    /// `-` first for largest first; none: the latest queued first.
    pub order_by: Option<String>,
    pub execution_date_gte: Option<DateTime<Utc>>,
    pub execution_date_lte: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    /// Accepted from Airflow's clients; every field is answered.
    pub fields: Vec<String>,
}

/// `POST /dags/~/dagRuns/list`: runs of several DAGs (Airflow's `ListDagRunsForm`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListDagRunsForm {
    pub order_by: Option<String>,
    pub page_offset: Option<u32>,
    pub page_limit: Option<u32>,
    /// Runs of these DAGs; empty: of every DAG.
    pub dag_ids: Vec<String>,
    pub states: Vec<String>,
    pub execution_date_gte: Option<DateTime<Utc>>,
    pub execution_date_lte: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
}

impl ListDagRunsForm {
    /// The DAG ids and the same filter as a [`RunQuery`].
    pub fn into_query(self) -> (Vec<String>, RunQuery) {
        let query = RunQuery {
            state: self.states,
            limit: Some(self.page_limit.unwrap_or(100)),
            offset: self.page_offset,
            order_by: self.order_by,
            execution_date_gte: self.execution_date_gte,
            execution_date_lte: self.execution_date_lte,
            start_date_gte: self.start_date_gte,
            start_date_lte: self.start_date_lte,
            end_date_gte: self.end_date_gte,
            end_date_lte: self.end_date_lte,
            ..RunQuery::default()
        };
        (self.dag_ids, query)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunList {
    pub dag_runs: Vec<RunView>,
    pub total_entries: usize,
}

/// A task instance; serialized in the shape of Airflow's `TaskInstance` (see its
/// `Serialize`).
#[derive(Debug, Clone)]
pub struct TaskInstanceView {
    pub dag_id: String,
    pub run_id: String,
    /// The run's logical date.
    pub logical_date: DateTime<Utc>,
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
    pub pid: Option<i64>,
    pub queue: String,
    /// Its pool, the slots it takes there, and its rank among the tries waiting for it.
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    /// Why an instance that may start has not: a full pool ("waiting for pool etl: 2 of 2
    /// slots used"), or its DAG's `max_active_tasks`.
    pub waiting_for: Option<String>,
    pub error: Option<String>,
    /// The result summary (what downstream templates see as `upstream.<task>`).
    pub result: Option<serde_json::Value>,
}

/// Airflow's `TaskInstance`: its fields and types (`duration` in seconds, `hostname` empty
/// before a try ran, no mapped tasks), and Updraft's `error` and
/// `result` besides.
impl Serialize for TaskInstanceView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut ti = serializer.serialize_struct("TaskInstance", 26)?;
        ti.serialize_field("task_id", &self.task_id)?;
        ti.serialize_field("task_display_name", &self.task_id)?;
        ti.serialize_field("dag_id", &self.dag_id)?;
        ti.serialize_field("dag_run_id", &self.run_id)?;
        ti.serialize_field("execution_date", &self.logical_date)?;
        ti.serialize_field("start_date", &self.start_date)?;
        ti.serialize_field("end_date", &self.end_date)?;
        let seconds = self.duration_ms.map(|ms| ms as f64 / 1000.0);
        ti.serialize_field("duration", &seconds)?;
        ti.serialize_field("state", &self.state)?;
        ti.serialize_field("try_number", &self.try_number)?;
        ti.serialize_field("map_index", &-1)?;
        ti.serialize_field("max_tries", &self.max_tries)?;
        ti.serialize_field("hostname", self.hostname.as_deref().unwrap_or(""))?;
        ti.serialize_field("unixname", "")?;
        ti.serialize_field("pool", &self.pool)?;
        ti.serialize_field("pool_slots", &self.pool_slots)?;
        ti.serialize_field("queue", &self.queue)?;
        ti.serialize_field("priority_weight", &self.priority_weight)?;
        ti.serialize_field("operator", &self.operator)?;
        ti.serialize_field("pid", &self.pid)?;
        ti.serialize_field("executor_config", "{}")?;
        ti.serialize_field("rendered_fields", &serde_json::Map::new())?;
        ti.serialize_field("note", &None::<String>)?;
        ti.serialize_field("error", &self.error)?;
        ti.serialize_field("result", &self.result)?;
        ti.serialize_field("duration_ms", &self.duration_ms)?;
        ti.end()
    }
}

/// Which task instances across runs, and which page: Airflow's `ListTaskInstanceForm` (the
/// body of `POST /dags/~/dagRuns/~/taskInstances/list`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListTaskInstanceForm {
    pub page_offset: Option<u32>,
    pub page_limit: Option<u32>,
    /// Each list: any of these; empty: no filter.
    pub dag_ids: Vec<String>,
    pub dag_run_ids: Vec<String>,
    pub task_ids: Vec<String>,
    pub state: Vec<String>,
    /// Task instances in any of these pools.
    pub pool: Vec<String>,
    pub queue: Vec<String>,
    /// Accepted from Airflow's clients: Updraft has one executor.
    pub executor: Vec<String>,
    /// Of the run's logical date.
    pub execution_date_gte: Option<DateTime<Utc>>,
    pub execution_date_lte: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration_gte: Option<f64>,
    pub duration_lte: Option<f64>,
}

/// The parameters of `GET /dags/{id}/dagRuns/{run}/taskInstances` (Airflow's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskInstanceQuery {
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    pub state: Vec<String>,
    pub pool: Vec<String>,
    pub queue: Vec<String>,
    pub executor: Vec<String>,
    pub execution_date_gte: Option<DateTime<Utc>>,
    pub execution_date_lte: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    pub duration_gte: Option<f64>,
    pub duration_lte: Option<f64>,
}

impl TaskInstanceQuery {
    /// The same selection within one run.
    pub fn within(self, dag_id: &str, run_id: &str) -> ListTaskInstanceForm {
        ListTaskInstanceForm {
            page_offset: self.offset,
            page_limit: self.limit,
            dag_ids: vec![dag_id.to_owned()],
            dag_run_ids: vec![run_id.to_owned()],
            task_ids: Vec::new(),
            state: self.state,
            pool: self.pool,
            queue: self.queue,
            executor: self.executor,
            execution_date_gte: self.execution_date_gte,
            execution_date_lte: self.execution_date_lte,
            start_date_gte: self.start_date_gte,
            start_date_lte: self.start_date_lte,
            end_date_gte: self.end_date_gte,
            end_date_lte: self.end_date_lte,
            duration_gte: self.duration_gte,
            duration_lte: self.duration_lte,
        }
    }
}

/// Airflow's `TaskInstanceCollection`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInstanceList {
    pub task_instances: Vec<TaskInstanceView>,
    pub total_entries: u64,
}

/// A run with all its task instances, in the DAG's task order.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub run: RunView,
    pub task_instances: Vec<TaskInstanceView>,
}

/// Which of a run's task instances its page shows: those in `state` (all when none), page
/// `page` (from 1) of `per_page` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowsWanted {
    pub state: Option<String>,
    pub page: usize,
    pub per_page: usize,
}

/// A page of a run's task instances, and what its page says of all of them.
#[derive(Debug, Clone)]
pub struct RunRows {
    pub run: RunView,
    /// Whether this process drives the run now (stop acts at once).
    pub is_active: bool,
    /// Whether the DAG file is the same now as when the run was created.
    pub dag_version_is_current: bool,
    /// The page's task instances, in the DAG's task order.
    pub task_instances: Vec<TaskInstanceView>,
    /// How many task instances are in each state, in order of first appearance.
    pub state_counts: Vec<(String, usize)>,
    /// How many the state selects, and which page of them this is (the last one when asked
    /// past it).
    pub selected: usize,
    pub paging: Paging,
    /// Whether any task of the run (on any page) is a stream.
    pub has_streams: bool,
    /// When the run's first try started and its last ended (now for one still running): the
    /// span of the page's timeline.
    pub first_start: Option<DateTime<Utc>>,
    pub last_end: Option<DateTime<Utc>>,
}

/// The DAG file's version a run was created with (read for the run's page alone: the other
/// readers of a run need none of it).
#[derive(Debug, Clone)]
pub struct RunDagVersion {
    pub number: i64,
    pub source: String,
    /// How the file now differs from it (a unified diff), when it does.
    pub diff: Option<String>,
}

/// A state a user may mark a task instance with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Success,
    Failed,
}
