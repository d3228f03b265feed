//! Rows of the store and the states they hold.

use chrono::{DateTime, Utc};
use serde::Serialize;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> ::std::result::Result<Self, String> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}: expected one of {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;

text_enum!(
    /// The state of a DAG run.
    RunState { Queued => "queued", Running => "running", Success => "success", Failed => "failed", Stopped => "stopped" }
);

text_enum!(
    /// What created a DAG run.
    RunType { Scheduled => "scheduled", Manual => "manual", Backfill => "backfill" }
);

text_enum!(
    /// The state of a task instance.
    TiState {
        Scheduled => "scheduled",
        Queued => "queued",
        Running => "running",
        Success => "success",
        Failed => "failed",
        UpForRetry => "up_for_retry",
        UpstreamFailed => "upstream_failed",
        Skipped => "skipped",
    }
);

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Stopped)
    }
}

impl TiState {
    /// Done for good: nothing more will happen to the instance in this run.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::UpstreamFailed | Self::Skipped
        )
    }
}

/// A DAG run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct DagRunRow {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub run_type: RunType,
    pub state: RunState,
    pub conf: serde_json::Map<String, serde_json::Value>,
    pub queued_at: DateTime<Utc>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `host:pid` of the process driving the run.
    pub owner: Option<String>,
    /// The backfill that created the run.
    pub backfill_id: Option<i64>,
    /// The version of its DAG's file it was created with (None before versions were kept).
    pub dag_version_number: Option<i64>,
}

impl DagRunRow {
    pub fn key(&self) -> RunKey {
        RunKey {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
        }
    }
}

/// What is needed to create a DAG run.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub run_type: RunType,
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// `Some(owner)` creates the run already running and claimed by that owner.
    pub owner: Option<String>,
    /// The backfill creating it.
    pub backfill_id: Option<i64>,
    /// The version of its DAG's file it is created with.
    pub dag_version_number: Option<i64>,
}

impl NewRun {
    /// The logical date of a run created now: the current time to the microsecond, the
    /// precision the store keeps, so that a run id (`manual__2026-12-02T07:10:11.123456Z`)
    /// names the logical date exactly.
    pub fn logical_date_now() -> DateTime<Utc> {
        chrono::SubsecRound::trunc_subsecs(Utc::now(), 6)
    }

    /// Airflow-style run id: `<type>__<logical date>`.
    pub fn run_id_for(run_type: RunType, logical_date: DateTime<Utc>) -> String {
        format!(
            "{}__{}",
            run_type,
            logical_date.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    }
}

/// What a new run's task instance starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTaskInstance {
    pub task_id: String,
    pub max_tries: u32,
    pub queue: String,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
}

impl NewTaskInstance {
    /// Its row as [`super::Store::create_run`] writes it into the run `run`.
    pub fn into_row(self, run: &DagRunRow) -> TaskInstanceRow {
        TaskInstanceRow::scheduled(
            run.dag_id.clone(),
            run.run_id.clone(),
            self.task_id,
            self.max_tries,
            self.queue,
        )
    }
}

/// The pool of tasks that name none (Airflow's name and default size).
pub const DEFAULT_POOL: &str = "default_pool";

/// What a DAG's grid shows of a task instance: its state and latest try, by run and task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCellRow {
    pub run_id: String,
    pub task_id: String,
    pub state: TiState,
    pub try_number: u32,
}

/// What a run's page says of each task instance: its state and when its try ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummaryRow {
    pub task_id: String,
    pub state: TiState,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// A task instance as stored: one task in one DAG run, across its tries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInstanceRow {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub state: TiState,
    /// The number of the current (or last) try; 0 before the first.
    pub try_number: u32,
    pub max_tries: u32,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub hostname: Option<String>,
    pub pid: Option<i64>,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The result summary, for downstream templates.
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The queue whose workers may run it (`default` unless the DAG or task names one).
    pub queue: String,
    /// Who claimed its current try (the executor or worker's owner token): the fence of
    /// every write the try makes.
    pub claimed_by: Option<String>,
}

impl TaskInstanceRow {
    /// A task instance before its first try.
    pub fn scheduled(
        dag_id: String,
        run_id: String,
        task_id: String,
        max_tries: u32,
        queue: String,
    ) -> Self {
        Self {
            dag_id,
            run_id,
            task_id,
            state: TiState::Scheduled,
            try_number: 0,
            max_tries,
            start: None,
            end: None,
            duration_ms: None,
            hostname: None,
            pid: None,
            next_retry_at: None,
            result: None,
            error: None,
            queue,
            claimed_by: None,
        }
    }

    pub fn key(&self) -> TaskKey {
        TaskKey {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: self.task_id.clone(),
        }
    }
}

/// Filters, order and page for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<String>,
    /// Runs of any of these DAGs (with `dag_id`, of that one too); empty: no filter.
    pub dag_ids: Vec<String>,
    /// Runs in any of these states; empty: any state.
    pub states: Vec<RunState>,
    pub run_type: Option<RunType>,
    pub logical_date: TimeRange,
    pub start_date: TimeRange,
    pub end_date: TimeRange,
    /// The column to order by and whether newest (largest) first; None: the latest queued
    /// first.
    pub order_by: Option<(RunColumn, bool)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Filters and page for finding task instances across runs.
#[derive(Debug, Clone, Default)]
pub struct TiFilter {
    /// Each list: any of these; empty: no filter.
    pub dag_ids: Vec<String>,
    pub run_ids: Vec<String>,
    pub task_ids: Vec<String>,
    pub states: Vec<TiState>,
    pub queues: Vec<String>,
    pub pools: Vec<String>,
    /// Of the run's logical date.
    pub logical_date: TimeRange,
    pub start_date: TimeRange,
    pub end_date: TimeRange,
    /// Inclusive bounds of the duration, in milliseconds.
    pub duration_ms: (Option<i64>, Option<i64>),
    pub limit: i64,
    pub offset: i64,
}

/// Inclusive bounds of a time; open where None.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Whether it bounds nothing (every time is within it).
    pub fn is_open(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// A column runs can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunColumn {
    LogicalDate,
    StartDate,
    EndDate,
    RunId,
    DagId,
    State,
}

impl RunColumn {
    pub(super) fn sql(self) -> &'static str {
        match self {
            RunColumn::LogicalDate => "logical_date_us",
            RunColumn::StartDate => "start_us",
            RunColumn::EndDate => "end_us",
            RunColumn::RunId => "run_id",
            RunColumn::DagId => "dag_id",
            RunColumn::State => "state",
        }
    }
}

/// One DAG run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub dag_id: String,
    pub run_id: String,
}

/// One task instance: a task in a DAG run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
}
