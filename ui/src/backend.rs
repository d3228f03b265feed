//! What the UI needs from the orchestrator: queries, commands and live streams. The
//! orchestrator implements [`Backend`]; this crate knows nothing of the store or the scheduler.

use futures::stream::BoxStream;

use crate::{
    ids::{DagId, RunKey, TaskKey, TryKey},
    views::{
        Actor, BackfillAction, BackfillPlanView, BackfillRequest, BackfillView, DagDetail, DagList,
        DagQuery, DagSummary, DagVersionView, EventLogList, EventLogQuery, GridView, HealthView,
        ImportErrorView, ListTaskInstanceForm, LiveSubscription, LogChunk, LogEvent, LogMatch,
        LogRange, Mark, Paging, PoolView, ResultsView, RowsWanted, RunDagVersion, RunDetail,
        RunList, RunQuery, RunRows, RunView, StreamDetail, StreamTick, StreamView,
        TaskInstanceList, TaskInstanceView, User, WorkersView,
    },
};

/// Why a backend call failed; the UI answers 404, 409, 422 or 500 (with a generic body).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the current state refuses it (e.g. stopping a finished run).
    #[error("{0}")]
    Conflict(String),
    /// User input is wrong: `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Anything else; logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// The orchestrator as the UI sees it. `actor` is who a command acts for; each command is
/// kept in the audit log with it.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    // Queries.
    async fn dags(&self, query: &DagQuery) -> BackendResult<DagList>;
    async fn dag(&self, dag_id: &DagId) -> BackendResult<DagDetail>;
    /// The latest `limit` runs before the logical date `before` (RFC 3339), by task: the rows
    /// of the page `task_paging` of the DAG's tasks.
    async fn grid(
        &self,
        dag_id: &DagId,
        before: Option<&str>,
        limit: usize,
        task_paging: Paging,
    ) -> BackendResult<GridView>;
    /// Runs of the DAG (NotFound when it has neither a file nor runs).
    async fn runs(&self, dag_id: &DagId, query: &RunQuery) -> BackendResult<RunList>;
    /// Runs of any of `dag_ids` (of every DAG when empty).
    async fn runs_of(&self, dag_ids: &[String], query: &RunQuery) -> BackendResult<RunList>;
    /// A run with every task instance.
    async fn run(&self, run: &RunKey) -> BackendResult<RunDetail>;
    /// A run and the page `wanted` of its task instances, for its page.
    async fn run_rows(&self, run: &RunKey, wanted: &RowsWanted) -> BackendResult<RunRows>;
    /// A run alone (a 20,000-task run's task instances took ~80 ms to read).
    async fn get_run(&self, run: &RunKey) -> BackendResult<RunView>;
    /// One task instance (NotFound when the run or the task is not there).
    async fn task_instance(&self, task: &TaskKey) -> BackendResult<TaskInstanceView>;
    /// The DAG file's version `run` was created with, and how the file differs now (None for
    /// a run made before versions were kept).
    async fn run_dag_version(&self, run: &RunKey) -> BackendResult<Option<RunDagVersion>>;
    /// A page of the task instances the form selects, across runs.
    async fn find_task_instances(
        &self,
        form: &ListTaskInstanceForm,
    ) -> BackendResult<TaskInstanceList>;
    async fn import_errors(&self) -> BackendResult<Vec<ImportErrorView>>;
    /// The workers of a shared metadata database and who holds the scheduler lease.
    async fn workers(&self) -> BackendResult<WorkersView>;
    async fn health(&self) -> HealthView;

    // Logs of one try.
    async fn read_log(&self, key: &TryKey, range: LogRange) -> BackendResult<LogChunk>;
    /// Lines holding `query` (case-insensitive), at most `limit`.
    async fn search_log(
        &self,
        key: &TryKey,
        query: &str,
        limit: usize,
    ) -> BackendResult<Vec<LogMatch>>;
    /// The log from byte `from` on, live until the try ends ([`LogEvent::End`]).
    async fn follow_log(
        &self,
        key: &TryKey,
        from: u64,
    ) -> BackendResult<BoxStream<'static, LogEvent>>;
    /// The path of the log file, for raw downloads (checked against known tries).
    async fn log_file(&self, key: &TryKey) -> BackendResult<std::path::PathBuf>;

    // Commands (the CLI calls the same ones).
    async fn trigger(
        &self,
        dag_id: &DagId,
        conf: serde_json::Map<String, serde_json::Value>,
        actor: &Actor,
    ) -> BackendResult<RunView>;
    async fn set_paused(
        &self,
        dag_id: &DagId,
        paused: bool,
        actor: &Actor,
    ) -> BackendResult<DagSummary>;
    /// Clears a task instance (and its downstream ones) so they run again; the ids cleared.
    async fn clear_task(
        &self,
        task: &TaskKey,
        downstream: bool,
        actor: &Actor,
    ) -> BackendResult<Vec<String>>;
    /// Clears exactly these task instances of a finished run in one step; the ids cleared.
    async fn clear_tasks(
        &self,
        run: &RunKey,
        task_ids: &[String],
        actor: &Actor,
    ) -> BackendResult<Vec<String>>;
    async fn mark_task(&self, task: &TaskKey, mark: Mark, actor: &Actor) -> BackendResult<()>;
    /// Plans a backfill of a cron DAG and, unless dry, queues its runs.
    async fn backfill(
        &self,
        dag_id: &DagId,
        request: BackfillRequest,
        actor: &Actor,
    ) -> BackendResult<BackfillPlanView>;
    /// Every pool, by name.
    async fn pools(&self) -> BackendResult<Vec<PoolView>>;
    /// Creates a pool or changes its slots and description.
    async fn set_pool(
        &self,
        name: &str,
        slots: i64,
        description: Option<&str>,
        actor: &Actor,
    ) -> BackendResult<PoolView>;
    async fn delete_pool(&self, name: &str, actor: &Actor) -> BackendResult<()>;
    /// The stored versions of a DAG's file, oldest first.
    async fn dag_versions(&self, dag_id: &DagId) -> BackendResult<Vec<DagVersionView>>;
    /// The backfills of a DAG, newest first.
    async fn backfills(&self, dag_id: &DagId) -> BackendResult<Vec<BackfillView>>;
    /// Pauses, resumes or cancels a backfill of the DAG.
    async fn change_backfill(
        &self,
        dag_id: &DagId,
        backfill_id: i64,
        action: BackfillAction,
        actor: &Actor,
    ) -> BackendResult<BackfillView>;
    /// Stops a run (streams flush and commit first).
    async fn stop_run(&self, run: &RunKey, actor: &Actor) -> BackendResult<RunView>;

    // Streams running in this process.
    async fn streams(&self) -> BackendResult<Vec<StreamView>>;
    /// One running stream task with its latest dead letters; NotFound when it is not running.
    async fn stream(&self, task: &TaskKey) -> BackendResult<StreamDetail>;
    /// What a stream task's sink holds; `window` picks a window by its start.
    async fn results(&self, task: &TaskKey, window: Option<&str>) -> BackendResult<ResultsView>;
    /// A tick a second with every running stream's flush count, for the live pages.
    fn stream_ticks(&self) -> BoxStream<'static, StreamTick>;

    // Live state changes, resuming after event `after`.
    fn live_events(&self, after: Option<u64>) -> LiveSubscription;
    /// The id of the latest live event: a page rendered now follows the stream from there.
    fn live_seq(&self) -> u64;

    // Users.
    async fn authenticate(&self, username: &str, password: &str) -> BackendResult<Option<User>>;
    async fn user_for_token(&self, token: &str) -> BackendResult<Option<User>>;
    /// The user as the store has it now (a role change counts at their next request); None
    /// once deleted (a session of theirs ends at its next request).
    async fn user(&self, username: &str) -> BackendResult<Option<User>>;

    // The audit log.
    /// Keeps an event the UI alone sees (sign-in, sign-out, a refused request); `detail` is
    /// a JSON object of what it was about.
    async fn audit(&self, actor: &Actor, event: &str, detail: serde_json::Value);
    async fn event_logs(&self, query: &EventLogQuery) -> BackendResult<EventLogList>;
}
