//! The orchestrator behind the web UI: implements [`ui::Backend`] over the store, the DAGs
//! folder, the logs and (under `serve`) the executor. Commands go through [`crate::commands`],
//! as the CLI's do.

mod backfills;
mod live;
mod logs;
mod metrics;
mod stream_backend;
mod streams;
mod views;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use tokio::sync::watch;
use ui::{
    BackendError, BackendResult, DagId, RunKey as UiRunKey, TaskKey as UiTaskKey, TryKey,
    views::{
        Actor, EventLogList, EventLogQuery, ListTaskInstanceForm, TaskInstanceList,
        TaskInstanceView,
    },
    views::{
        ComponentHealth, DagDetail, DagList, DagQuery, DagSummary, GridView, HealthView,
        ImportErrorView, LiveSubscription, LogChunk, LogEvent, LogMatch, LogRange, Mark, Paging,
        ResultsView, RowsWanted, RunDagVersion, RunDetail, RunList, RunQuery, RunRows, RunView,
        SchedulerHealth, StreamDetail, StreamTick, StreamView, User, WorkersView,
    },
};

pub use self::live::LiveHub;
pub use self::metrics::router as metrics_router;
use self::views::{
    dag_detail, dag_summary, event_log_view, grid_rows, import_error_view, run_view,
};
use crate::{
    audit,
    commands::{self, CommandError},
    dag::{Dag, DagBag},
    executor::Executor,
    logs::{LogHub, LogSource, TryLogKey},
    scheduler::Heartbeat,
    store::{
        AuditFilter, DagRunRow, RunColumn, RunFilter, RunKey, Store, TaskKey, TiFilter, TiState,
        TimeRange,
    },
    users,
};

/// Runs shown as small squares in the DAG list.
const RECENT_RUNS: i64 = 25;
/// The most DAGs on one page of the list.
const MAX_PAGE: usize = 500;
/// A heartbeat older than this makes the scheduler unhealthy.
const HEARTBEAT_LIMIT: Duration = Duration::from_secs(30);

pub struct WebBackend {
    store: Store,
    bags: watch::Receiver<Arc<DagBag>>,
    logs: LogHub,
    executor: Option<Executor>,
    heartbeat: Heartbeat,
    live: LiveHub,
    /// How long a stop waits for its run to end before answering.
    stop_wait: Duration,
    /// Histories of the running streams (with an executor).
    streams: Option<streams::StreamSampler>,
}

impl WebBackend {
    /// The stored row of `run` (NotFound when there is none).
    async fn run_row(&self, run: &UiRunKey) -> BackendResult<DagRunRow> {
        self.store
            .get_run(run.dag_id.as_str(), &run.run_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                BackendError::NotFound(format!("DAG {} has no run {:?}", run.dag_id, run.run_id))
            })
    }

    /// Whether this process drives `run` now.
    fn is_active(&self, run: &UiRunKey) -> bool {
        self.executor.as_ref().is_some_and(|e| {
            e.active_runs()
                .iter()
                .any(|r| r.dag_id == run.dag_id.as_str() && r.run_id == run.run_id)
        })
    }

    /// Whether the DAG file `dag` is now is the version `run` was created with.
    async fn is_current_version(&self, run: &DagRunRow, dag: Option<&Dag>) -> BackendResult<bool> {
        let (Some(number), Some(dag)) = (run.dag_version_number, dag) else {
            return Ok(false);
        };
        let hash = self
            .store
            .dag_version_hash(&run.dag_id, number)
            .await
            .map_err(internal)?;
        Ok(hash.is_some_and(|hash| hash == dag.source_hash))
    }

    /// A page of runs and how many match in all.
    async fn run_list(&self, filter: &RunFilter) -> BackendResult<RunList> {
        let runs = self.store.list_runs(filter).await.map_err(internal)?;
        Ok(RunList {
            total_entries: self.store.count_runs(filter).await.map_err(internal)? as usize,
            dag_runs: runs.into_iter().map(run_view).collect(),
        })
    }

    pub fn new(
        store: Store,
        bags: watch::Receiver<Arc<DagBag>>,
        logs: LogHub,
        executor: Option<Executor>,
        heartbeat: Heartbeat,
        stop_wait: Duration,
    ) -> Self {
        Self {
            live: LiveHub::start(&store),
            streams: executor.clone().map(streams::StreamSampler::start),
            store,
            bags,
            logs,
            executor,
            heartbeat,
            stop_wait,
        }
    }

    fn bag(&self) -> Arc<DagBag> {
        self.bags.borrow().clone()
    }

    fn dag(&self, dag_id: &DagId) -> BackendResult<Arc<Dag>> {
        self.bag().get(dag_id.as_str()).ok_or_else(|| {
            BackendError::NotFound(format!("no DAG {:?} in the DAGs folder", dag_id.as_str()))
        })
    }

    async fn paused(&self) -> BackendResult<HashSet<String>> {
        self.store.paused_dags().await.map_err(internal)
    }

    async fn summary(&self, dag: &Dag, paused: &HashSet<String>) -> BackendResult<DagSummary> {
        let recent = self
            .store
            .latest_runs(&dag.id, None, RECENT_RUNS)
            .await
            .map_err(internal)?;
        Ok(dag_summary(dag, paused.contains(&dag.id), &recent))
    }

    /// The try's log key, if the task instance exists and has had that try.
    async fn known_try(&self, key: &TryKey) -> BackendResult<TryLogKey> {
        let task = &key.task;
        let ti = self
            .store
            .task_instance(task.run.dag_id.as_str(), &task.run.run_id, &task.task_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "no task instance {}.{} in run {:?}",
                    task.run.dag_id, task.task_id, task.run.run_id
                ))
            })?;
        if key.try_number > ti.try_number.max(1) {
            return Err(BackendError::NotFound(format!(
                "no try {} of {}.{}: it has had {} tr{}",
                key.try_number,
                task.run.dag_id,
                task.task_id,
                ti.try_number,
                if ti.try_number == 1 { "y" } else { "ies" }
            )));
        }
        Ok(TryLogKey {
            dag_id: task.run.dag_id.as_str().into(),
            run_id: task.run.run_id.as_str().into(),
            task_id: task.task_id.as_str().into(),
            try_number: key.try_number,
        })
    }

    /// Who holds the scheduler lease (`host:pid`); None on SQLite, where there is none.
    async fn lease_holder(&self) -> Result<Option<String>, crate::store::StoreError> {
        if !self.store.is_shared() {
            return Ok(None);
        }
        Ok(self
            .store
            .scheduler_lease()
            .await?
            .map(|lease| lease.holder))
    }

    /// The try's file here, else the chunks its worker shipped.
    pub(super) fn log_source(&self, key: &TryLogKey) -> LogSource {
        LogSource::locate(
            crate::logs::try_log_to_read(self.logs.root(), key),
            &self.store,
            key,
        )
    }

    /// A file holding the shipped log of a try run elsewhere, for its raw download (written
    /// anew under `<logs>/.downloads` on each request).
    async fn download_copy(
        &self,
        key: &TryLogKey,
        source: &LogSource,
    ) -> std::io::Result<std::path::PathBuf> {
        use tokio::io::AsyncWriteExt as _;
        let root = self.logs.root().join(".downloads");
        let path = crate::logs::try_log_path(
            &root,
            &key.dag_id,
            &key.run_id,
            &key.task_id,
            key.try_number,
        );
        if let Some(folder) = path.parent() {
            tokio::fs::create_dir_all(folder).await?;
        }
        let mut file = tokio::fs::File::create(&path).await?;
        let mut offset = 0;
        loop {
            let slice = source.read_new(offset, true).await?;
            if slice.text.is_empty() {
                break;
            }
            file.write_all(slice.text.as_bytes()).await?;
            offset = slice.end;
        }
        file.flush().await?;
        Ok(path)
    }
}

fn internal(error: impl std::fmt::Display) -> BackendError {
    BackendError::Internal(error.to_string())
}

fn command_error(error: CommandError) -> BackendError {
    match error {
        CommandError::NotFound(message) => BackendError::NotFound(message),
        CommandError::Conflict(message) => BackendError::Conflict(message),
        CommandError::Invalid { field, message } => BackendError::Invalid { field, message },
        CommandError::Store(error) => internal(error),
    }
}

fn run_key(run: &UiRunKey) -> RunKey {
    RunKey {
        dag_id: run.dag_id.to_string(),
        run_id: run.run_id.clone(),
    }
}

fn task_key(task: &UiTaskKey) -> TaskKey {
    TaskKey {
        dag_id: task.run.dag_id.to_string(),
        run_id: task.run.run_id.clone(),
        task_id: task.task_id.clone(),
    }
}

/// The store's filter for a task instance form.
fn ti_filter(form: &ListTaskInstanceForm) -> BackendResult<TiFilter> {
    let states = parse_filters("state", &form.state)?;
    let millis = |seconds: Option<f64>| seconds.map(|s| (s * 1000.0).round() as i64);
    let range = |from, to| TimeRange { from, to };
    let filter = TiFilter {
        dag_ids: form.dag_ids.clone(),
        run_ids: form.dag_run_ids.clone(),
        task_ids: form.task_ids.clone(),
        states,
        queues: form.queue.clone(),
        pools: form.pool.clone(),
        logical_date: range(form.execution_date_gte, form.execution_date_lte),
        start_date: range(form.start_date_gte, form.start_date_lte),
        end_date: range(form.end_date_gte, form.end_date_lte),
        duration_ms: (millis(form.duration_gte), millis(form.duration_lte)),
        limit: i64::from(form.page_limit.unwrap_or(100)).min(MAX_PAGE as i64),
        offset: i64::from(form.page_offset.unwrap_or(0)),
    };
    Ok(filter)
}

/// The store's filter for a runs query: states and run type checked, Airflow's order names.
fn run_filter(query: &RunQuery) -> BackendResult<RunFilter> {
    let states = parse_filters("state", &query.state)?;
    let order_by = query
        .order_by
        .as_deref()
        .filter(|o| !o.is_empty())
        .map(run_order)
        .transpose()?;
    let range = |from, to| TimeRange { from, to };
    Ok(RunFilter {
        states,
        run_type: parse_filter("run_type", query.run_type.as_deref())?,
        logical_date: range(query.execution_date_gte, query.execution_date_lte),
        start_date: range(query.start_date_gte, query.start_date_lte),
        end_date: range(query.end_date_gte, query.end_date_lte),
        order_by,
        limit: Some((query.limit.unwrap_or(25) as usize).min(MAX_PAGE) as i64),
        offset: query.offset.map(i64::from),
        ..RunFilter::default()
    })
}

/// Airflow's `order_by` of runs: a column name, `-` first for largest first.
fn run_order(text: &str) -> BackendResult<(RunColumn, bool)> {
    let (name, newest_first) = match text.strip_prefix('-') {
        Some(name) => (name, true),
        None => (text, false),
    };
    let column = match name {
        "execution_date" | "logical_date" => RunColumn::LogicalDate,
        "start_date" => RunColumn::StartDate,
        "end_date" => RunColumn::EndDate,
        "dag_run_id" | "run_id" => RunColumn::RunId,
        "dag_id" => RunColumn::DagId,
        "state" => RunColumn::State,
        other => {
            return Err(BackendError::invalid(
                "order_by",
                format!(
                    "{other:?}: use execution_date, start_date, end_date, dag_run_id, dag_id or state, with - first for largest first"
                ),
            ));
        }
    };
    Ok((column, newest_first))
}

/// Each non-empty value of a repeated filter, parsed (an unknown one names `field`).
fn parse_filters<T: std::str::FromStr<Err = String>>(
    field: &str,
    values: &[String],
) -> BackendResult<Vec<T>> {
    values
        .iter()
        .filter_map(|v| parse_filter(field, Some(v)).transpose())
        .collect()
}

fn parse_filter<T: std::str::FromStr<Err = String>>(
    field: &str,
    value: Option<&str>,
) -> BackendResult<Option<T>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<T>().map_err(|e| BackendError::invalid(field, e)))
        .transpose()
}

#[async_trait::async_trait]
impl ui::Backend for WebBackend {
    async fn dags(&self, query: &DagQuery) -> BackendResult<DagList> {
        let bag = self.bag();
        let lower =
            |text: &Option<String>| text.as_deref().map(str::to_lowercase).unwrap_or_default();
        let (search, pattern) = (lower(&query.search), lower(&query.dag_id_pattern));
        let newest_first = match query.order_by.as_deref().unwrap_or("dag_id") {
            "dag_id" | "" => false,
            "-dag_id" => true,
            other => {
                return Err(BackendError::invalid(
                    "order_by",
                    format!("{other:?}: use dag_id or -dag_id"),
                ));
            }
        };
        let paused = self.paused().await?;
        let mut matching: Vec<&Arc<Dag>> = bag
            .dags
            .values()
            .filter(|dag| {
                search.is_empty()
                    || dag.id.to_lowercase().contains(&search)
                    || dag.tags.iter().any(|t| t.to_lowercase() == search)
            })
            .filter(|dag| dag.id.to_lowercase().contains(&pattern))
            .filter(|dag| query.tags.is_empty() || dag.tags.iter().any(|t| query.tags.contains(t)))
            .filter(|dag| query.paused.is_none_or(|p| p == paused.contains(&dag.id)))
            .collect();
        if newest_first {
            matching.reverse();
        }
        let offset = query.offset.unwrap_or(0) as usize;
        let limit = (query.limit.unwrap_or(100) as usize).min(MAX_PAGE);
        let page: Vec<&Arc<Dag>> = matching.iter().skip(offset).take(limit).copied().collect();
        let ids: Vec<&str> = page.iter().map(|d| d.id.as_str()).collect();
        let mut recent = self
            .store
            .latest_runs_of_dags(&ids, RECENT_RUNS)
            .await
            .map_err(internal)?;
        let dags = page
            .iter()
            .map(|dag| {
                let runs = recent.remove(&dag.id).unwrap_or_default();
                dag_summary(dag, paused.contains(&dag.id), &runs)
            })
            .collect();
        Ok(DagList {
            dags,
            total_entries: matching.len(),
            import_errors: bag.errors.iter().map(import_error_view).collect(),
        })
    }

    async fn dag(&self, dag_id: &DagId) -> BackendResult<DagDetail> {
        let dag = self.dag(dag_id)?;
        let summary = self.summary(&dag, &self.paused().await?).await?;
        let source = tokio::fs::read_to_string(&dag.file)
            .await
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", dag.file.display()));
        Ok(dag_detail(&dag, summary, source))
    }

    async fn grid(
        &self,
        dag_id: &DagId,
        before: Option<&str>,
        limit: usize,
        task_paging: Paging,
    ) -> BackendResult<GridView> {
        let dag = self.dag(dag_id)?;
        let before = before
            .filter(|b| !b.is_empty())
            .map(|b| {
                DateTime::parse_from_rfc3339(b)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| {
                        BackendError::invalid(
                            "before",
                            format!("{b:?} is not an RFC 3339 time: {e}"),
                        )
                    })
            })
            .transpose()?;
        let mut runs = self
            .store
            .latest_runs(&dag.id, before, limit as i64 + 1)
            .await
            .map_err(internal)?;
        let has_older = runs.len() > limit;
        runs.truncate(limit);
        runs.reverse();
        let run_ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        let tasks = task_paging.slice(&dag.tasks);
        let task_ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        let cells = self
            .store
            .grid_cells(&dag.id, &run_ids, &task_ids)
            .await
            .map_err(internal)?;
        Ok(GridView {
            dag_id: dag.id.clone(),
            rows: grid_rows(tasks, &runs, &cells),
            task_paging,
            older: has_older
                .then(|| {
                    runs.first().map(|r| {
                        r.logical_date
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    })
                })
                .flatten(),
            runs: runs.iter().map(views::run_brief).collect(),
        })
    }

    async fn runs(&self, dag_id: &DagId, query: &RunQuery) -> BackendResult<RunList> {
        let filter = RunFilter {
            dag_id: Some(dag_id.to_string()),
            ..run_filter(query)?
        };
        if self.bag().get(dag_id.as_str()).is_none()
            && self.store.count_runs(&filter).await.map_err(internal)? == 0
        {
            return Err(BackendError::NotFound(format!(
                "no DAG {:?}",
                dag_id.as_str()
            )));
        }
        self.run_list(&filter).await
    }

    async fn runs_of(&self, dag_ids: &[String], query: &RunQuery) -> BackendResult<RunList> {
        let filter = RunFilter {
            dag_ids: dag_ids.to_vec(),
            ..run_filter(query)?
        };
        self.run_list(&filter).await
    }

    async fn find_task_instances(
        &self,
        form: &ListTaskInstanceForm,
    ) -> BackendResult<TaskInstanceList> {
        let filter = ti_filter(form)?;
        let (found, total_entries) = self
            .store
            .find_task_instances(&filter)
            .await
            .map_err(internal)?;
        let bag = self.bag();
        let task_instances = found
            .into_iter()
            .map(|(ti, logical_date)| {
                let dag = bag.get(&ti.dag_id);
                views::task_instance_view(ti, dag.as_deref(), logical_date)
            })
            .collect();
        Ok(TaskInstanceList {
            task_instances,
            total_entries,
        })
    }

    async fn run(&self, run: &UiRunKey) -> BackendResult<RunDetail> {
        let row = self.run_row(run).await?;
        let tis = self
            .store
            .task_instances(run.dag_id.as_str(), &run.run_id)
            .await
            .map_err(internal)?;
        let dag = self.bag().get(run.dag_id.as_str());
        Ok(RunDetail {
            task_instances: views::ordered_task_instances(tis, dag.as_deref(), row.logical_date),
            run: run_view(row),
        })
    }

    async fn run_rows(&self, run: &UiRunKey, wanted: &RowsWanted) -> BackendResult<RunRows> {
        let row = self.run_row(run).await?;
        let dag_id = run.dag_id.as_str();
        let dag = self.bag().get(dag_id);
        let mut summaries = self
            .store
            .task_summaries(dag_id, &run.run_id)
            .await
            .map_err(internal)?;
        views::order_summaries(&mut summaries, dag.as_deref());
        let now = Utc::now();
        let selected: Vec<&str> = summaries
            .iter()
            .filter(|s| {
                wanted
                    .state
                    .as_deref()
                    .is_none_or(|w| s.state.as_str() == w)
            })
            .map(|s| s.task_id.as_str())
            .collect();
        let paging = Paging::of(selected.len(), wanted.per_page, Some(wanted.page));
        let page_ids = paging.slice(&selected);
        let tis = self
            .store
            .task_instances_named(dag_id, &run.run_id, page_ids)
            .await
            .map_err(internal)?;
        let mut task_instances =
            views::ordered_task_instances(tis, dag.as_deref(), row.logical_date);
        if task_instances
            .iter()
            .any(|ti| ti.state == "queued" || ti.state == "scheduled")
        {
            let states: HashMap<&str, TiState> = summaries
                .iter()
                .map(|s| (s.task_id.as_str(), s.state))
                .collect();
            let pools = self.store.pools().await.map_err(internal)?;
            views::explain_waits(&mut task_instances, &states, dag.as_deref(), &pools);
        }
        Ok(RunRows {
            is_active: self.is_active(run),
            dag_version_is_current: self.is_current_version(&row, dag.as_deref()).await?,
            task_instances,
            state_counts: views::count_states(summaries.iter().map(|s| s.state)),
            selected: selected.len(),
            paging,
            has_streams: dag.as_deref().is_some_and(|dag| {
                summaries
                    .iter()
                    .any(|s| dag.task(&s.task_id).is_some_and(|t| t.is_stream()))
            }),
            first_start: summaries.iter().filter_map(|s| s.start).min(),
            last_end: summaries
                .iter()
                .filter_map(|s| s.end.or(s.start.map(|_| now)))
                .max(),
            run: run_view(row),
        })
    }

    async fn get_run(&self, run: &UiRunKey) -> BackendResult<RunView> {
        Ok(run_view(self.run_row(run).await?))
    }

    async fn task_instance(&self, task: &UiTaskKey) -> BackendResult<TaskInstanceView> {
        let run = self.run_row(&task.run).await?;
        let dag_id = task.run.dag_id.as_str();
        let ti = self
            .store
            .task_instance(dag_id, &task.run.run_id, &task.task_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "run {:?} of DAG {dag_id} has no task {:?}",
                    task.run.run_id, task.task_id
                ))
            })?;
        let dag = self.bag().get(dag_id);
        Ok(views::task_instance_view(
            ti,
            dag.as_deref(),
            run.logical_date,
        ))
    }

    async fn run_dag_version(&self, run: &UiRunKey) -> BackendResult<Option<RunDagVersion>> {
        let row = self.run_row(run).await?;
        let Some(number) = row.dag_version_number else {
            return Ok(None);
        };
        let dag_id = run.dag_id.as_str();
        let Some((stored, source)) = self
            .store
            .dag_version_source(dag_id, number)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let diff = match self.bag().get(dag_id) {
            Some(dag) if dag.source_hash != stored.source_hash => {
                Some(views::source_diff(&source, &dag.source))
            }
            _ => None,
        };
        Ok(Some(RunDagVersion {
            number,
            source,
            diff,
        }))
    }

    async fn import_errors(&self) -> BackendResult<Vec<ImportErrorView>> {
        Ok(self.bag().errors.iter().map(import_error_view).collect())
    }

    async fn workers(&self) -> BackendResult<WorkersView> {
        let own = self.executor.as_ref().map(|e| e.owner().to_owned());
        if !self.store.is_shared() {
            return Ok(views::workers_view(
                Vec::new(),
                Vec::new(),
                None,
                own,
                false,
            ));
        }
        let workers = self.store.workers().await.map_err(internal)?;
        let running = self
            .store
            .running_task_instances()
            .await
            .map_err(internal)?;
        let holder = self.lease_holder().await.map_err(internal)?;
        Ok(views::workers_view(workers, running, holder, own, true))
    }

    async fn health(&self) -> HealthView {
        let db_ok = self.store.ping().await.is_ok();
        let latest = self.heartbeat.latest();
        let age = latest.map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0);
        let scheduler_ok = age.is_some_and(|a| a < HEARTBEAT_LIMIT.as_secs_f64());
        let lease_holder = self.lease_holder().await.ok().flatten();
        let own = self.executor.as_ref().map(|e| e.owner().to_owned());
        let schedules_here = match &lease_holder {
            Some(holder) => own.as_ref() == Some(holder),
            None => own.is_some(),
        };
        let status = |ok: bool| if ok { "healthy" } else { "unhealthy" }.to_owned();
        HealthView {
            status: status(db_ok && scheduler_ok),
            metadatabase: ComponentHealth {
                status: status(db_ok),
            },
            scheduler: SchedulerHealth {
                status: status(scheduler_ok),
                latest_heartbeat: latest,
                heartbeat_age_seconds: age,
                lease_holder,
                schedules_here,
            },
        }
    }

    async fn read_log(&self, key: &TryKey, range: LogRange) -> BackendResult<LogChunk> {
        let log = self.known_try(key).await?;
        let finished = logs::try_has_ended(&self.store, &log)
            .await
            .map_err(internal)?;
        let slice = logs::read_range(&self.log_source(&log), range, finished)
            .await
            .map_err(internal)?;
        Ok(LogChunk {
            text: slice.text,
            start: slice.start,
            end: slice.end,
            size: slice.size,
            finished,
            first_line_cut: slice.first_line_cut.map(|cut| ui::views::CutLine {
                bytes: cut.bytes,
                exact: cut.exact,
            }),
        })
    }

    async fn search_log(
        &self,
        key: &TryKey,
        query: &str,
        limit: usize,
    ) -> BackendResult<Vec<LogMatch>> {
        let log = self.known_try(key).await?;
        let found = self
            .log_source(&log)
            .search(query, limit)
            .await
            .map_err(internal)?;
        Ok(found
            .into_iter()
            .map(|(offset, line)| LogMatch { offset, line })
            .collect())
    }

    async fn follow_log(
        &self,
        key: &TryKey,
        from: u64,
    ) -> BackendResult<BoxStream<'static, LogEvent>> {
        let log = self.known_try(key).await?;
        let source = self.log_source(&log);
        logs::follow(self.store.clone(), &self.logs, source, log, from)
            .await
            .map_err(internal)
    }

    async fn log_file(&self, key: &TryKey) -> BackendResult<std::path::PathBuf> {
        let log = self.known_try(key).await?;
        let path = match self.log_source(&log) {
            LogSource::File(path) => path,
            shipped => self.download_copy(&log, &shipped).await.map_err(internal)?,
        };
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(BackendError::NotFound(format!(
                "try {} of {} has no log yet",
                key.try_number, key.task.task_id
            )));
        }
        Ok(path)
    }

    async fn trigger(
        &self,
        dag_id: &DagId,
        conf: serde_json::Map<String, serde_json::Value>,
        actor: &Actor,
    ) -> BackendResult<RunView> {
        let dag = self.dag(dag_id)?;
        let run = commands::trigger(&self.store, &dag, conf, actor)
            .await
            .map_err(command_error)?;
        Ok(run_view(run))
    }

    async fn set_paused(
        &self,
        dag_id: &DagId,
        paused: bool,
        actor: &Actor,
    ) -> BackendResult<DagSummary> {
        let dag = self.dag(dag_id)?;
        commands::set_paused(&self.store, &dag, paused, actor)
            .await
            .map_err(command_error)?;
        self.summary(&dag, &self.paused().await?).await
    }

    async fn clear_task(
        &self,
        task: &UiTaskKey,
        downstream: bool,
        actor: &Actor,
    ) -> BackendResult<Vec<String>> {
        let dag = self.dag(&task.run.dag_id)?;
        commands::clear(&self.store, &dag, &task_key(task), downstream, actor)
            .await
            .map_err(command_error)
    }

    async fn clear_tasks(
        &self,
        run: &UiRunKey,
        task_ids: &[String],
        actor: &Actor,
    ) -> BackendResult<Vec<String>> {
        let dag = self.dag(&run.dag_id)?;
        commands::clear_tasks(&self.store, &dag, &run_key(run), task_ids.to_vec(), actor)
            .await
            .map_err(command_error)
    }

    async fn backfill(
        &self,
        dag_id: &DagId,
        request: ui::views::BackfillRequest,
        actor: &Actor,
    ) -> BackendResult<ui::views::BackfillPlanView> {
        self.plan_backfill(dag_id, request, actor).await
    }

    async fn pools(&self) -> BackendResult<Vec<ui::views::PoolView>> {
        let pools = self.store.pools().await.map_err(internal)?;
        Ok(pools.into_iter().map(views::pool_view).collect())
    }

    async fn set_pool(
        &self,
        name: &str,
        slots: i64,
        description: Option<&str>,
        actor: &Actor,
    ) -> BackendResult<ui::views::PoolView> {
        let pool = commands::set_pool(&self.store, name, slots, description, actor)
            .await
            .map_err(command_error)?;
        Ok(views::pool_view(pool))
    }

    async fn delete_pool(&self, name: &str, actor: &Actor) -> BackendResult<()> {
        commands::delete_pool(&self.store, name, actor)
            .await
            .map_err(command_error)
    }

    async fn dag_versions(&self, dag_id: &DagId) -> BackendResult<Vec<ui::views::DagVersionView>> {
        let current = self
            .bag()
            .get(dag_id.as_str())
            .map(|d| d.source_hash.clone());
        let versions = self
            .store
            .dag_versions(dag_id.as_str())
            .await
            .map_err(internal)?;
        if versions.is_empty() && current.is_none() {
            return Err(BackendError::NotFound(format!(
                "no DAG {:?}",
                dag_id.as_str()
            )));
        }
        Ok(versions
            .into_iter()
            .map(|v| ui::views::DagVersionView {
                is_current: current.as_deref() == Some(v.source_hash.as_str()),
                dag_id: v.dag_id,
                version_number: v.version_number,
                source_hash: v.source_hash,
                created_at: v.created_at,
                source_bytes: v.source_bytes,
                stored_bytes: v.stored_bytes,
            })
            .collect())
    }

    async fn backfills(&self, dag_id: &DagId) -> BackendResult<Vec<ui::views::BackfillView>> {
        self.dag_backfills(dag_id).await
    }

    async fn change_backfill(
        &self,
        dag_id: &DagId,
        backfill_id: i64,
        action: ui::views::BackfillAction,
        actor: &Actor,
    ) -> BackendResult<ui::views::BackfillView> {
        self.change_dag_backfill(dag_id, backfill_id, action, actor)
            .await
    }

    async fn mark_task(&self, task: &UiTaskKey, mark: Mark, actor: &Actor) -> BackendResult<()> {
        let state = match mark {
            Mark::Success => TiState::Success,
            Mark::Failed => TiState::Failed,
        };
        commands::mark(&self.store, &task_key(task), state, actor)
            .await
            .map_err(command_error)
    }

    async fn stop_run(&self, run: &UiRunKey, actor: &Actor) -> BackendResult<RunView> {
        let stopped = commands::stop(
            &self.store,
            self.executor.as_ref(),
            &run_key(run),
            self.stop_wait,
            actor,
        )
        .await
        .map_err(command_error)?;
        Ok(run_view(stopped))
    }

    fn live_events(&self, after: Option<u64>) -> LiveSubscription {
        self.live.subscribe(after)
    }

    fn live_seq(&self) -> u64 {
        self.live.latest_seq()
    }

    async fn streams(&self) -> BackendResult<Vec<StreamView>> {
        self.stream_views().await
    }

    async fn stream(&self, task: &UiTaskKey) -> BackendResult<StreamDetail> {
        self.stream_detail(task).await
    }

    async fn results(&self, task: &UiTaskKey, window: Option<&str>) -> BackendResult<ResultsView> {
        self.stream_results(task, window).await
    }

    fn stream_ticks(&self) -> BoxStream<'static, StreamTick> {
        self.ticks()
    }

    async fn authenticate(&self, username: &str, password: &str) -> BackendResult<Option<User>> {
        let ok = users::verify_password(&self.store, username, password)
            .await
            .map_err(internal)?;
        if !ok {
            return Ok(None);
        }
        self.user(username).await
    }

    async fn user_for_token(&self, token: &str) -> BackendResult<Option<User>> {
        users::token_user(&self.store, token)
            .await
            .map_err(internal)
    }

    async fn user(&self, username: &str) -> BackendResult<Option<User>> {
        let user = self.store.user(username).await.map_err(internal)?;
        Ok(user.map(users::user_of))
    }

    async fn audit(&self, actor: &Actor, event: &str, detail: serde_json::Value) {
        let entry = audit::entry(actor, event).with_detail(detail);
        audit::record(&self.store, entry).await;
    }

    async fn event_logs(&self, query: &EventLogQuery) -> BackendResult<EventLogList> {
        let newest_first = query
            .newest_first()
            .map_err(|message| BackendError::invalid("order_by", message))?;
        let filter = AuditFilter {
            dag_id: query.dag_id.clone(),
            run_id: query.run_id.clone(),
            task_id: query.task_id.clone(),
            event: query.event.clone(),
            owner: query.owner.clone(),
            newest_first,
            limit: query.limit.unwrap_or(100).min(MAX_PAGE as u32),
            offset: query.offset.unwrap_or(0),
        };
        let (rows, total_entries) = self.store.audit_log(&filter).await.map_err(internal)?;
        Ok(EventLogList {
            event_logs: rows.into_iter().map(event_log_view).collect(),
            total_entries,
        })
    }
}
