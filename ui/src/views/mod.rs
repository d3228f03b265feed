//! The view types the backend returns: serialized as they are by the JSON API and rendered by
//! the HTML pages.

mod audit;
mod backfills;
pub mod charts;
mod dags;
pub mod format;
mod graph;
mod live;
mod logs;
pub mod pages;
mod paging;
mod pools;
mod runs;
pub mod stream_pages;
pub mod streams;
mod users;
mod workers;

pub use audit::{EventLogList, EventLogQuery, EventLogView};
pub use backfills::{
    BackfillAction, BackfillDateView, BackfillList, BackfillPlanView, BackfillProgressView,
    BackfillRequest, BackfillView,
};
pub use dags::{
    DagDetail, DagList, DagQuery, DagSummary, DagVersionList, DagVersionView, GridCell, GridRow,
    GridView, ImportErrorView, ParamView, ProblemView, TaskNode,
};
pub use live::{LiveEvent, LiveSubscription};
pub use logs::{CutLine, LogChunk, LogEvent, LogMatch, LogRange};
pub use paging::Paging;
pub use pools::{PoolForm, PoolList, PoolView};
pub use runs::{
    ListDagRunsForm, ListTaskInstanceForm, Mark, RowsWanted, RunBrief, RunDagVersion, RunDetail,
    RunList, RunQuery, RunRows, RunView, TaskInstanceList, TaskInstanceQuery, TaskInstanceView,
};
pub use streams::{
    DeadLetterView, ResultRow, ResultsView, StreamDetail, StreamSample, StreamTick, StreamView,
};
pub use users::{Actor, Role, User};
pub use workers::{WorkerTry, WorkerView, WorkersView};

use serde::Serialize;

/// `GET /health`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    /// "healthy" when the metadata database answers and the scheduler beats.
    pub status: String,
    pub metadatabase: ComponentHealth,
    pub scheduler: SchedulerHealth,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchedulerHealth {
    pub status: String,
    /// Airflow's name for it.
    #[serde(rename = "latest_scheduler_heartbeat")]
    pub latest_heartbeat: Option<chrono::DateTime<chrono::Utc>>,
    /// Seconds since the latest heartbeat.
    pub heartbeat_age_seconds: Option<f64>,
    /// With several `serve` on one database: who holds the scheduler lease (`host:pid`).
    pub lease_holder: Option<String>,
    /// Whether this `serve` is the one scheduling (false: it stands by).
    pub schedules_here: bool,
}
