//! An in-memory [`ui::Backend`] holding a few DAGs, runs and logs, and helpers to send
//! requests through the router with `oneshot`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode, header},
};
use chrono::{TimeZone, Utc};
use futures::{StreamExt, stream::BoxStream};
use tower::ServiceExt;
use ui::{
    BackendError, BackendResult, DagId, RunKey, TaskKey, TryKey, UiConfig,
    views::{
        Actor, BackfillAction, BackfillDateView, BackfillPlanView, BackfillProgressView,
        BackfillRequest, BackfillView, DagVersionView, EventLogList, EventLogQuery, EventLogView,
        ListTaskInstanceForm, PoolView, Role, TaskInstanceList,
    },
    views::{
        ComponentHealth, DagDetail, DagList, DagQuery, DagSummary, DeadLetterView, GridCell,
        GridRow, GridView, HealthView, ImportErrorView, LiveEvent, LiveSubscription, LogChunk,
        LogEvent, LogMatch, LogRange, Mark, Paging, ParamView, ProblemView, ResultRow, ResultsView,
        RowsWanted, RunBrief, RunDagVersion, RunDetail, RunList, RunQuery, RunRows, RunView,
        SchedulerHealth, StreamDetail, StreamSample, StreamTick, StreamView, TaskInstanceView,
        TaskNode, User, WorkerTry, WorkerView, WorkersView,
    },
};

pub(crate) const PASSWORD: &str = "correct horse";
/// The token of `robot`, an op.
pub(crate) const TOKEN: &str = "updraft_testtoken";
/// The token of `reader`, a viewer.
pub(crate) const VIEWER_TOKEN: &str = "updraft_viewertoken";

/// The users the memory backend knows (all with [`PASSWORD`]), by role.
pub(crate) const USERS: [(&str, Role); 4] = [
    ("admin", Role::Admin),
    ("olga", Role::Op),
    ("vera", Role::Viewer),
    ("robot", Role::Op),
];
pub(crate) const RUN_ID: &str = "manual__2026-11-25T10:00:00Z";

/// What the memory backend holds and records.
#[derive(Default)]
pub(crate) struct Memory {
    pub paused: bool,
    pub triggered: Vec<serde_json::Map<String, serde_json::Value>>,
    pub cleared: Vec<(String, bool)>,
    pub marked: Vec<(String, Mark)>,
    pub follow_from: Vec<u64>,
    pub actors: Vec<Actor>,
    /// Password checks (`authenticate` calls).
    pub password_checks: usize,
    /// Reads of a stream's results (the sink).
    pub results_reads: usize,
    /// What `audit` was told: (who, event, detail).
    pub audited: Vec<(Actor, String, serde_json::Value)>,
    /// When `admin` last changed their password.
    pub admin_password_changed_at: Option<chrono::DateTime<Utc>>,
    /// Backfills created, newest last.
    pub backfills: Vec<BackfillView>,
    /// Pools set.
    pub pools: Vec<PoolView>,
    /// `admin` was deleted.
    pub admin_deleted: bool,
}

pub(crate) struct MemoryBackend {
    pub memory: Mutex<Memory>,
    /// The log of try 1 of `greet`.
    pub log: String,
    pub log_finished: bool,
    /// A default of the `name` param (to check escaping).
    pub name_default: String,
    pub live: Vec<LiveEvent>,
    /// Running streams (`users` / `stats` by default).
    pub streams: Vec<StreamView>,
    /// The flush counts the ticks carry, one tick each.
    pub ticks: Vec<u64>,
    /// Runs are `running` with a `stream` task instead of a finished shell run.
    pub streaming_run: bool,
}

/// The stream task the memory backend runs: `users`, run [`RUN_ID`], task `stats`.
pub(crate) fn stats_stream() -> StreamView {
    StreamView {
        dag_id: "users".into(),
        run_id: RUN_ID.into(),
        task_id: "stats".into(),
        worker: Some("worker-7".into()),
        try_number: 3,
        restarts: 2,
        last_error: Some("MongoDB: writing results failed: <unreachable>".into()),
        records_in: 1200,
        records_out: 40,
        records_in_per_s: 250.0,
        records_out_per_s: 8.0,
        lag_total: 30,
        lag: BTreeMap::from([
            ("users.fr/0".to_string(), 10),
            ("users.fr/1".to_string(), 20),
        ]),
        last_flush_at: Some("2026-11-25T10:00:05.000Z".into()),
        last_flush_docs: 12,
        last_flush_ms: 7,
        late: 1,
        dead_lettered: 2,
        flushes: 5,
        history: (0..90)
            .map(|i| StreamSample {
                at_ms: 1_764_064_800_000 + i * 1000,
                in_per_s: (i % 10) as f64 * 30.0,
                out_per_s: 8.0,
                lag: 120 - i,
            })
            .collect(),
        lag_growing: false,
        restarting: true,
        dead_letter_topic: Some("users.dlq".into()),
        sink: "mongodb users.stats".into(),
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self {
            memory: Mutex::default(),
            log: "2026-11-25T10:00:00.000Z Try 1 of 1\n2026-11-25T10:00:00.100Z hello world\n2026-11-25T10:00:00.200Z Task succeeded\n".into(),
            log_finished: true,
            name_default: "world".into(),
            live: (1..=3)
                .map(|seq| LiveEvent {
                    seq,
                    dag_id: "hello".into(),
                    run_id: Some(RUN_ID.into()),
                    task_id: Some("greet".into()),
                    kind: "task".into(),
                    state: Some("running".into()),
                    try_number: Some(1),
                })
                .collect(),
            streams: vec![stats_stream()],
            ticks: vec![5, 5, 6],
            streaming_run: false,
        }
    }
}

impl MemoryBackend {
    pub(crate) fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap()
    }

    fn summary(&self) -> DagSummary {
        DagSummary {
            dag_id: "hello".into(),
            description: Some("Say hello".into()),
            tags: vec!["example".into()],
            schedule: "*/5 * * * *".into(),
            is_paused: self.memory().paused,
            next_run: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 5, 0).unwrap()),
            recent_runs: vec![RunBrief {
                run_id: RUN_ID.into(),
                state: "success".into(),
                run_type: "manual".into(),
                logical_date: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
                dag_version_number: Some(1),
            }],
            tasks: 2,
            file: "dags/hello.toml".into(),
        }
    }

    fn run_view(&self) -> RunView {
        RunView {
            dag_id: "hello".into(),
            run_id: RUN_ID.into(),
            state: "success".into(),
            run_type: "manual".into(),
            logical_date: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
            queued_at: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
            start_date: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()),
            end_date: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 2).unwrap()),
            conf: serde_json::Map::new(),
            dag_version_number: Some(2),
        }
    }

    fn check_dag(dag_id: &DagId) -> BackendResult<()> {
        if dag_id.as_str() == "hello" {
            Ok(())
        } else {
            Err(BackendError::NotFound(format!(
                "no DAG {:?}",
                dag_id.as_str()
            )))
        }
    }

    fn check_run(run: &RunKey) -> BackendResult<()> {
        Self::check_dag(&run.dag_id)?;
        if run.run_id == RUN_ID {
            Ok(())
        } else {
            Err(BackendError::NotFound(format!("no run {:?}", run.run_id)))
        }
    }

    fn check_try(key: &TryKey) -> BackendResult<()> {
        Self::check_run(&key.task.run)?;
        if key.task.task_id == "greet" && key.try_number == 1 {
            Ok(())
        } else {
            Err(BackendError::NotFound(format!(
                "no try {} of {}",
                key.try_number, key.task.task_id
            )))
        }
    }
}

#[async_trait::async_trait]
impl ui::Backend for MemoryBackend {
    async fn dags(&self, query: &DagQuery) -> BackendResult<DagList> {
        let matches = query
            .search
            .as_deref()
            .is_none_or(|s| "hello".contains(s) || s == "example");
        Ok(DagList {
            dags: if matches {
                vec![self.summary()]
            } else {
                vec![]
            },
            total_entries: usize::from(matches),
            import_errors: vec![ImportErrorView {
                file: "dags/broken.toml".into(),
                modified: Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
                problems: vec![ProblemView {
                    line: Some(3),
                    column: Some(7),
                    field: Some("dag.schedule".into()),
                    message: "bad cron expression \"every day\"".into(),
                }],
            }],
        })
    }

    async fn dag(&self, dag_id: &DagId) -> BackendResult<DagDetail> {
        Self::check_dag(dag_id)?;
        Ok(DagDetail {
            summary: self.summary(),
            timezone: "UTC".into(),
            start_date: None,
            end_date: None,
            catchup: false,
            max_active_runs: 16,
            params: vec![
                ParamView {
                    name: "name".into(),
                    kind: "string".into(),
                    default: self.name_default.clone().into(),
                },
                ParamView {
                    name: "results".into(),
                    kind: "integer".into(),
                    default: 10.into(),
                },
            ],
            allow_extra_conf: false,
            tasks: vec![
                TaskNode {
                    task_id: "greet".into(),
                    operator: "shell".into(),
                    upstream: vec![],
                    trigger_rule: "all_success".into(),
                    retries: 0,
                },
                TaskNode {
                    task_id: "report".into(),
                    operator: "shell".into(),
                    upstream: vec!["greet".into()],
                    trigger_rule: "all_success".into(),
                    retries: 0,
                },
            ],
            source: "[dag]\nid = \"hello\"\n".into(),
        })
    }

    async fn grid(
        &self,
        dag_id: &DagId,
        _: Option<&str>,
        _: usize,
        task_paging: Paging,
    ) -> BackendResult<GridView> {
        Self::check_dag(dag_id)?;
        let cell = |state: &str| GridCell {
            state: Some(state.into()),
            try_number: 1,
        };
        Ok(GridView {
            dag_id: "hello".into(),
            runs: self.summary().recent_runs,
            rows: task_paging
                .slice(&[
                    GridRow {
                        task_id: "greet".into(),
                        cells: vec![cell("success")],
                    },
                    GridRow {
                        task_id: "report".into(),
                        cells: vec![cell("failed")],
                    },
                ])
                .to_vec(),
            task_paging,
            older: None,
        })
    }

    async fn runs(&self, dag_id: &DagId, query: &RunQuery) -> BackendResult<RunList> {
        Self::check_dag(dag_id)?;
        self.runs_of(&[dag_id.to_string()], query).await
    }

    async fn runs_of(&self, dag_ids: &[String], query: &RunQuery) -> BackendResult<RunList> {
        if let Some(state) = query
            .state
            .iter()
            .find(|s| !["queued", "running", "success", "failed", "stopped"].contains(&s.as_str()))
        {
            return Err(BackendError::invalid(
                "state",
                format!("unknown state {state:?}"),
            ));
        }
        let dag_runs: Vec<RunView> = [self.run_view()]
            .into_iter()
            .filter(|run| dag_ids.is_empty() || dag_ids.contains(&run.dag_id))
            .collect();
        Ok(RunList {
            total_entries: dag_runs.len(),
            dag_runs,
        })
    }

    async fn find_task_instances(
        &self,
        form: &ListTaskInstanceForm,
    ) -> BackendResult<TaskInstanceList> {
        let run = RunKey::parse("hello", RUN_ID)?;
        let task_instances: Vec<TaskInstanceView> = self
            .run(&run)
            .await?
            .task_instances
            .into_iter()
            .filter(|ti| form.dag_ids.is_empty() || form.dag_ids.contains(&ti.dag_id))
            .filter(|ti| form.dag_run_ids.is_empty() || form.dag_run_ids.contains(&ti.run_id))
            .filter(|ti| form.state.is_empty() || form.state.contains(&ti.state))
            .collect();
        Ok(TaskInstanceList {
            total_entries: task_instances.len() as u64,
            task_instances,
        })
    }

    async fn run(&self, run: &RunKey) -> BackendResult<RunDetail> {
        Self::check_run(run)?;
        let operator = if self.streaming_run {
            "stream"
        } else {
            "shell"
        };
        let ti = |task_id: &str, state: &str| TaskInstanceView {
            pool: "default_pool".into(),
            pool_slots: 1,
            priority_weight: 1,
            waiting_for: None,
            dag_id: run.dag_id.to_string(),
            run_id: run.run_id.clone(),
            logical_date: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
            pid: Some(4242),
            queue: "default".into(),
            task_id: task_id.into(),
            operator: operator.into(),
            state: state.into(),
            try_number: 1,
            max_tries: 1,
            start_date: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()),
            end_date: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 1).unwrap()),
            duration_ms: Some(1000),
            hostname: Some("worker-7".into()),
            error: None,
            result: Some(serde_json::json!({"exit_code": 0})),
        };
        let mut view = self.run_view();
        if self.streaming_run {
            view.state = "running".into();
            view.end_date = None;
        }
        Ok(RunDetail {
            run: view,
            task_instances: vec![ti("greet", "success"), ti("report", "failed")],
        })
    }

    async fn run_rows(&self, run: &RunKey, wanted: &RowsWanted) -> BackendResult<RunRows> {
        let detail = self.run(run).await?;
        let mut state_counts: Vec<(String, usize)> = Vec::new();
        for ti in &detail.task_instances {
            match state_counts
                .iter_mut()
                .find(|(state, _)| *state == ti.state)
            {
                Some((_, n)) => *n += 1,
                None => state_counts.push((ti.state.clone(), 1)),
            }
        }
        let selected: Vec<TaskInstanceView> = detail
            .task_instances
            .into_iter()
            .filter(|ti| wanted.state.as_ref().is_none_or(|state| ti.state == *state))
            .collect();
        let paging = Paging::of(selected.len(), wanted.per_page, Some(wanted.page));
        let task_instances = paging.slice(&selected).to_vec();
        Ok(RunRows {
            first_start: selected.iter().filter_map(|ti| ti.start_date).min(),
            last_end: selected.iter().filter_map(|ti| ti.end_date).max(),
            has_streams: selected.iter().any(|ti| ti.operator == "stream"),
            selected: selected.len(),
            paging,
            state_counts,
            task_instances,
            run: detail.run,
            is_active: self.streaming_run,
            dag_version_is_current: false,
        })
    }

    async fn get_run(&self, run: &RunKey) -> BackendResult<RunView> {
        Ok(self.run(run).await?.run)
    }

    async fn task_instance(&self, task: &TaskKey) -> BackendResult<TaskInstanceView> {
        self.run(&task.run)
            .await?
            .task_instances
            .into_iter()
            .find(|ti| ti.task_id == task.task_id)
            .ok_or_else(|| BackendError::NotFound(format!("no task {:?}", task.task_id)))
    }

    async fn run_dag_version(&self, run: &RunKey) -> BackendResult<Option<RunDagVersion>> {
        Self::check_run(run)?;
        Ok(Some(RunDagVersion {
            number: 2,
            source: "[dag]\nid = \"hello\"  # as it ran\n".into(),
            diff: Some(
                "@@ -1,2 +1,2 @@\n [dag]\n-id = \"hello\"  # as it ran\n+id = \"hello\"\n".into(),
            ),
        }))
    }

    async fn workers(&self) -> BackendResult<WorkersView> {
        let now = Utc::now();
        Ok(WorkersView {
            workers: vec![WorkerView {
                name: "w1".into(),
                state: "active".into(),
                queues: vec!["default".into(), "etl".into()],
                slots: 8,
                running: 1,
                started: now,
                last_heartbeat: now,
                hostname: "host-a".into(),
                worker_id: "w1-0123456789ab".into(),
                tries: vec![WorkerTry {
                    dag_id: "etl".into(),
                    run_id: "manual__1".into(),
                    task_id: "load".into(),
                    try_number: 2,
                }],
            }],
            scheduler: Some("host-a:1".into()),
            this_serve: Some("host-b:2".into()),
            shared: true,
        })
    }

    async fn import_errors(&self) -> BackendResult<Vec<ImportErrorView>> {
        Ok(self.dags(&DagQuery::default()).await?.import_errors)
    }

    async fn health(&self) -> HealthView {
        HealthView {
            status: "healthy".into(),
            metadatabase: ComponentHealth {
                status: "healthy".into(),
            },
            scheduler: SchedulerHealth {
                status: "healthy".into(),
                latest_heartbeat: Some(Utc::now()),
                heartbeat_age_seconds: Some(0.5),
                lease_holder: None,
                schedules_here: true,
            },
        }
    }

    async fn read_log(&self, key: &TryKey, range: LogRange) -> BackendResult<LogChunk> {
        Self::check_try(key)?;
        let size = self.log.len() as u64;
        let (start, end) = match range {
            LogRange::Tail { .. } => (0, size),
            LogRange::Before { offset, .. } => (0, offset.min(size)),
            LogRange::From { offset, .. } | LogRange::After { offset } => (offset.min(size), size),
        };
        Ok(LogChunk {
            text: self.log[start as usize..end as usize].to_owned(),
            start,
            end,
            size,
            finished: self.log_finished,
            first_line_cut: None,
        })
    }

    async fn search_log(
        &self,
        key: &TryKey,
        query: &str,
        _: usize,
    ) -> BackendResult<Vec<LogMatch>> {
        Self::check_try(key)?;
        let mut offset = 0;
        let mut found = Vec::new();
        for line in self.log.split_inclusive('\n') {
            if line.to_lowercase().contains(&query.to_lowercase()) {
                found.push(LogMatch {
                    offset,
                    line: line.trim_end().to_owned(),
                });
            }
            offset += line.len() as u64;
        }
        Ok(found)
    }

    async fn follow_log(
        &self,
        key: &TryKey,
        from: u64,
    ) -> BackendResult<BoxStream<'static, LogEvent>> {
        Self::check_try(key)?;
        self.memory().follow_from.push(from);
        let from = (from as usize).min(self.log.len());
        let rest = self.log[from..].trim_end_matches('\n').to_owned();
        let mut events = Vec::new();
        if !rest.is_empty() {
            events.push(LogEvent::Lines {
                text: rest,
                end: self.log.len() as u64,
            });
        }
        events.push(LogEvent::End);
        Ok(futures::stream::iter(events).boxed())
    }

    async fn log_file(&self, key: &TryKey) -> BackendResult<std::path::PathBuf> {
        Self::check_try(key)?;
        // One file per call: tests run in parallel, and a file rewritten while another test
        // reads it is empty for a moment.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("updraft-ui-test-{}-{call}.log", std::process::id()));
        std::fs::write(&path, &self.log).map_err(|e| BackendError::Internal(e.to_string()))?;
        Ok(path)
    }

    async fn trigger(
        &self,
        dag_id: &DagId,
        conf: serde_json::Map<String, serde_json::Value>,
        actor: &Actor,
    ) -> BackendResult<RunView> {
        Self::check_dag(dag_id)?;
        if let Some(value) = conf.get("results")
            && !value.is_i64()
        {
            return Err(BackendError::invalid(
                "conf.results",
                "expected integer (the type of its default), got string",
            ));
        }
        if let Some(key) = conf.keys().find(|k| *k != "name" && *k != "results") {
            return Err(BackendError::invalid(
                format!("conf.{key}"),
                "not a param of hello",
            ));
        }
        let mut memory = self.memory();
        memory.triggered.push(conf.clone());
        memory.actors.push(actor.clone());
        Ok(RunView {
            conf,
            ..self.run_view()
        })
    }

    async fn set_paused(
        &self,
        dag_id: &DagId,
        paused: bool,
        actor: &Actor,
    ) -> BackendResult<DagSummary> {
        Self::check_dag(dag_id)?;
        {
            let mut memory = self.memory();
            memory.paused = paused;
            memory.actors.push(actor.clone());
        }
        Ok(self.summary())
    }

    async fn clear_task(
        &self,
        task: &TaskKey,
        downstream: bool,
        _: &Actor,
    ) -> BackendResult<Vec<String>> {
        Self::check_run(&task.run)?;
        self.memory()
            .cleared
            .push((task.task_id.clone(), downstream));
        Ok(vec![task.task_id.clone()])
    }

    async fn clear_tasks(
        &self,
        run: &RunKey,
        task_ids: &[String],
        _: &Actor,
    ) -> BackendResult<Vec<String>> {
        Self::check_run(run)?;
        let mut memory = self.memory();
        for task_id in task_ids {
            memory.cleared.push((task_id.clone(), false));
        }
        Ok(task_ids.to_vec())
    }

    /// Three hourly dates from `from_date` (`2026-01-01`), the second skipped; refuses a
    /// `from_date` that is not a date.
    async fn backfill(
        &self,
        dag_id: &DagId,
        request: BackfillRequest,
        actor: &Actor,
    ) -> BackendResult<BackfillPlanView> {
        Self::check_dag(dag_id)?;
        let from = chrono::NaiveDate::parse_from_str(&request.from_date, "%Y-%m-%d")
            .map_err(|_| BackendError::invalid("from_date", "bad date"))?
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let dates: Vec<BackfillDateView> = (0..3)
            .map(|h| BackfillDateView {
                logical_date: from + chrono::Duration::hours(h),
                action: if h == 1 { "skip" } else { "run" }.into(),
                reason: (h == 1).then(|| "has a run (success)".into()),
            })
            .collect();
        let mut memory = self.memory();
        let backfill = (!request.dry_run).then(|| {
            let view = BackfillView {
                id: memory.backfills.len() as i64 + 1,
                dag_id: dag_id.to_string(),
                from_date: from,
                to_date: from + chrono::Duration::hours(2),
                dag_run_conf: request.dag_run_conf.clone(),
                is_paused: false,
                reprocess_behavior: request.reprocess_behavior.clone().unwrap_or_default(),
                max_active_runs: request.max_active_runs.unwrap_or(1),
                run_backwards: request.run_backwards,
                created_at: Utc::now(),
                completed_at: None,
                created_by: actor.username.clone(),
                state: "running".into(),
                progress: BackfillProgressView {
                    total: 2,
                    queued: 1,
                    success: 1,
                    ..Default::default()
                },
            };
            memory.backfills.push(view.clone());
            view
        });
        Ok(BackfillPlanView {
            dry_run: request.dry_run,
            total_entries: 3,
            runs: 2,
            dates,
            backfill,
        })
    }

    async fn pools(&self) -> BackendResult<Vec<PoolView>> {
        Ok(self.memory().pools.clone())
    }

    async fn set_pool(
        &self,
        name: &str,
        slots: i64,
        description: Option<&str>,
        _: &Actor,
    ) -> BackendResult<PoolView> {
        if slots < 0 {
            return Err(BackendError::invalid("slots", "negative"));
        }
        let mut memory = self.memory();
        // As the store: a description not given is kept.
        let kept = memory
            .pools
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.description.clone());
        memory.pools.retain(|p| p.name != name);
        let pool = PoolView {
            name: name.into(),
            slots,
            occupied_slots: 0,
            running_slots: 0,
            queued_slots: 0,
            scheduled_slots: 0,
            deferred_slots: 0,
            open_slots: slots,
            description: description.map(str::to_owned).or(kept).unwrap_or_default(),
            include_deferred: false,
        };
        memory.pools.push(pool.clone());
        Ok(pool)
    }

    async fn delete_pool(&self, name: &str, _: &Actor) -> BackendResult<()> {
        let mut memory = self.memory();
        let before = memory.pools.len();
        memory.pools.retain(|p| p.name != name);
        if memory.pools.len() == before {
            return Err(BackendError::NotFound(format!("no pool {name:?}")));
        }
        Ok(())
    }

    async fn dag_versions(&self, dag_id: &DagId) -> BackendResult<Vec<DagVersionView>> {
        Self::check_dag(dag_id)?;
        Ok((1..=2)
            .map(|n| DagVersionView {
                dag_id: "hello".into(),
                version_number: n,
                source_hash: format!("{n:064}"),
                created_at: Utc.with_ymd_and_hms(2026, 1, n as u32, 0, 0, 0).unwrap(),
                source_bytes: 120,
                stored_bytes: 90,
                is_current: n == 2,
            })
            .collect())
    }

    async fn backfills(&self, dag_id: &DagId) -> BackendResult<Vec<BackfillView>> {
        Self::check_dag(dag_id)?;
        Ok(self.memory().backfills.iter().rev().cloned().collect())
    }

    async fn change_backfill(
        &self,
        dag_id: &DagId,
        backfill_id: i64,
        action: BackfillAction,
        _: &Actor,
    ) -> BackendResult<BackfillView> {
        Self::check_dag(dag_id)?;
        let mut memory = self.memory();
        let backfill = memory
            .backfills
            .iter_mut()
            .find(|b| b.id == backfill_id)
            .ok_or_else(|| BackendError::NotFound(format!("no backfill {backfill_id}")))?;
        match action {
            BackfillAction::Pause => backfill.is_paused = true,
            BackfillAction::Unpause => backfill.is_paused = false,
            BackfillAction::Cancel => {
                backfill.completed_at = Some(Utc::now());
                backfill.state = "cancelled".into();
            }
        }
        if backfill.is_paused && backfill.completed_at.is_none() {
            backfill.state = "paused".into();
        }
        Ok(backfill.clone())
    }

    async fn mark_task(&self, task: &TaskKey, mark: Mark, _: &Actor) -> BackendResult<()> {
        Self::check_run(&task.run)?;
        self.memory().marked.push((task.task_id.clone(), mark));
        Ok(())
    }

    async fn stop_run(&self, run: &RunKey, _: &Actor) -> BackendResult<RunView> {
        Self::check_run(run)?;
        Err(BackendError::Conflict(format!(
            "run {} already ended success",
            run.run_id
        )))
    }

    fn live_events(&self, after: Option<u64>) -> LiveSubscription {
        let replay = self
            .live
            .iter()
            .filter(|e| after.is_some_and(|a| e.seq > a))
            .cloned()
            .collect();
        LiveSubscription {
            replay,
            gap: after == Some(0),
            stream: futures::stream::empty().boxed(),
        }
    }

    fn live_seq(&self) -> u64 {
        self.live.len() as u64
    }

    async fn streams(&self) -> BackendResult<Vec<StreamView>> {
        Ok(self.streams.clone())
    }

    async fn stream(&self, task: &TaskKey) -> BackendResult<StreamDetail> {
        let stream = self
            .streams
            .iter()
            .find(|s| {
                s.dag_id == task.run.dag_id.as_str()
                    && s.run_id == task.run.run_id
                    && s.task_id == task.task_id
            })
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("no stream {} running", task.task_id)))?;
        Ok(StreamDetail {
            stream,
            dead_letters: vec![DeadLetterView {
                at: Some("2026-11-25T10:00:01.000Z".into()),
                partition: 0,
                offset: 4,
                key: Some("k1".into()),
                error: "invalid JSON: expected value at line 1 column 1".into(),
                source: "users.fr/1@17".into(),
                payload: "<not json>".into(),
            }],
            dead_letters_error: None,
        })
    }

    async fn results(&self, task: &TaskKey, window: Option<&str>) -> BackendResult<ResultsView> {
        self.stream(task).await?;
        self.memory().results_reads += 1;
        let windows = vec![
            "2026-11-25T10:01:00.000Z".to_string(),
            "2026-11-25T10:00:00.000Z".to_string(),
        ];
        let selected = window
            .map(str::to_owned)
            .unwrap_or_else(|| windows[0].clone());
        let rows = if selected == windows[0] {
            vec![("France", "7", "31.5"), ("Spain <b>", "3", "40")]
        } else {
            vec![("Norway", "11", "29")]
        };
        Ok(ResultsView {
            dag_id: "users".into(),
            run_id: RUN_ID.into(),
            task_id: "stats".into(),
            kind: "windows".into(),
            sink: "mongodb users.stats".into(),
            window_end: Some("2026-11-25T10:02:00.000Z".into()),
            selected: Some(selected),
            windows,
            group_by: vec!["country".into()],
            aggregates: vec!["users".into(), "avg_age".into()],
            measure: 0,
            rows: rows
                .into_iter()
                .map(|(country, users, age)| ResultRow {
                    label: country.into(),
                    group: vec![country.into()],
                    values: vec![users.into(), age.into()],
                    closed: false,
                })
                .collect(),
            columns: Vec::new(),
            records: Vec::new(),
            flushes: 5,
            shares: 2,
            error: None,
        })
    }

    fn stream_ticks(&self) -> BoxStream<'static, StreamTick> {
        let name = format!("users/{RUN_ID}/stats");
        futures::stream::iter(
            self.ticks
                .clone()
                .into_iter()
                .zip(1..)
                .map(move |(flushes, seq)| StreamTick {
                    seq,
                    flushes: BTreeMap::from([(name.clone(), flushes)]),
                    sampled: true,
                }),
        )
        .boxed()
    }

    async fn authenticate(&self, username: &str, password: &str) -> BackendResult<Option<User>> {
        self.memory().password_checks += 1;
        if password != PASSWORD {
            return Ok(None);
        }
        self.user(username).await
    }

    async fn user_for_token(&self, token: &str) -> BackendResult<Option<User>> {
        match token {
            TOKEN => self.user("robot").await,
            VIEWER_TOKEN => self.user("vera").await,
            _ => Ok(None),
        }
    }

    async fn user(&self, username: &str) -> BackendResult<Option<User>> {
        if username == "admin" && self.memory().admin_deleted {
            return Ok(None);
        }
        Ok(USERS
            .iter()
            .find(|(name, _)| *name == username)
            .map(|(name, role)| User {
                username: (*name).into(),
                role: *role,
                password_changed_at: if *name == "admin" {
                    self.memory().admin_password_changed_at
                } else {
                    None
                },
            }))
    }

    async fn audit(&self, actor: &Actor, event: &str, detail: serde_json::Value) {
        self.memory()
            .audited
            .push((actor.clone(), event.to_owned(), detail));
    }

    async fn event_logs(&self, query: &EventLogQuery) -> BackendResult<EventLogList> {
        query
            .newest_first()
            .map_err(|message| BackendError::invalid("order_by", message))?;
        let memory = self.memory();
        let event_logs: Vec<EventLogView> = memory
            .audited
            .iter()
            .enumerate()
            .filter(|(_, (_, event, _))| query.event.as_ref().is_none_or(|e| e == event))
            .map(|(i, (actor, event, detail))| {
                let mut extra = detail.as_object().cloned().unwrap_or_default();
                if let Some(source) = &actor.source {
                    extra.insert("source".into(), source.clone().into());
                }
                EventLogView {
                    event_log_id: i as i64 + 1,
                    when: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
                    dag_id: None,
                    task_id: None,
                    run_id: None,
                    map_index: None,
                    try_number: None,
                    event: event.clone(),
                    execution_date: None,
                    owner: Some(actor.username.clone()),
                    extra: Some(serde_json::Value::Object(extra).to_string()),
                }
            })
            .collect();
        Ok(EventLogList {
            total_entries: event_logs.len() as u64,
            event_logs,
        })
    }
}

/// The router over a backend (kept to look at what it recorded).
pub(crate) struct App {
    pub backend: Arc<MemoryBackend>,
    pub router: Router,
}

impl App {
    pub(crate) fn new(backend: MemoryBackend, config: UiConfig) -> Self {
        let backend = Arc::new(backend);
        Self {
            router: ui::router(backend.clone(), config),
            backend,
        }
    }

    pub(crate) fn public() -> Self {
        Self::public_with(MemoryBackend::default())
    }

    /// The router over `backend`, reading open to everyone.
    pub(crate) fn public_with(backend: MemoryBackend) -> Self {
        let config = UiConfig {
            public_read: true,
            ..UiConfig::default()
        };
        Self::new(backend, config)
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.unwrap()
    }

    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, String) {
        text(
            self.send(Request::get(uri).body(Body::empty()).unwrap())
                .await,
        )
        .await
    }

    /// GET `uri` in `session`.
    pub(crate) async fn get_in(&self, session: &Session, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri)
            .header(header::COOKIE, &session.cookie)
            .body(Body::empty())
            .unwrap();
        text(self.send(request).await).await
    }

    /// Signs in as admin; the session cookie and the CSRF token of its pages.
    pub(crate) async fn sign_in(&self) -> Session {
        self.sign_in_as("admin").await
    }

    /// Signs in as one of [`USERS`]; the session cookie and the CSRF token of its pages.
    pub(crate) async fn sign_in_as(&self, username: &str) -> Session {
        let response = self
            .send(form_request(
                "/login",
                None,
                &format!(
                    "username={username}&password={}",
                    PASSWORD.replace(' ', "+")
                ),
            ))
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_owned();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let page = self
            .send(
                Request::get("/dags/hello")
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let (_, html) = text(page).await;
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a CSRF token in the page")
            .to_owned();
        Session { cookie, csrf }
    }
}

pub(crate) struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub(crate) fn form_request(uri: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

pub(crate) fn json_request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

pub(crate) async fn text(response: Response<Body>) -> (StatusCode, String) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub(crate) async fn json(response: Response<Body>) -> (StatusCode, serde_json::Value) {
    let (status, body) = text(response).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}
