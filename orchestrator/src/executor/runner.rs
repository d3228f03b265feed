//! Runs one task instance through its tries: slots, templating, the operator, timeout,
//! retries with backoff, and what shutdown or a stop does to it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use tasks::{
    ConfigError, JsonConfigError, LogSink, Metrics, Operator, OperatorConfig, TaskContext,
    TaskError, TaskResult,
};
use tokio_util::sync::CancellationToken;

use super::{
    Executor, ExecutorError, begin_try, retry_delay,
    slots::{Need, SlotPermit},
    stream_restart_delay,
};
use crate::{
    dag::{Dag, TaskSpec, TemplateContext, has_templates, render_config},
    logs::{TryLog, task_secrets},
    store::{DagRunRow, TaskInstanceRow, TaskKey, TiState},
};

/// Renders a task's config for one try, checks it again and builds its operator.
pub fn build_operator(
    spec: &TaskSpec,
    context: &TemplateContext,
) -> Result<Box<dyn Operator>, ConfigError> {
    let rendered = render_config(&spec.config, context)?;
    typed_config(spec, rendered)?.build()
}

/// The operator config of a rendered `spec`. Templates render to text, so a templated value
/// where the operator wants a number or a boolean (`records = "{{ params.n }}"`) is taken as
/// the number or boolean its text spells, as Kestra does; any other mismatch names its field.
fn typed_config(
    spec: &TaskSpec,
    mut rendered: serde_json::Value,
) -> Result<OperatorConfig, ConfigError> {
    loop {
        let error = match OperatorConfig::from_json(spec.operator, rendered.clone()) {
            Ok(config) => return Ok(config),
            Err(error) => error,
        };
        if !retype_templated_scalar(&spec.config, &mut rendered, &error) {
            let field = error.path().to_string();
            let field = if field == "." { spec.id.clone() } else { field };
            return Err(ConfigError::new(
                field,
                format!("after templating: {}", error.inner()),
            ));
        }
    }
}

/// Turns the rendered text at the error's path into the number or boolean it spells, if the
/// error is text given for something else and the value there came from a template; says
/// whether it did.
fn retype_templated_scalar(
    template: &serde_json::Value,
    rendered: &mut serde_json::Value,
    error: &JsonConfigError,
) -> bool {
    use serde_json::Value;
    if !error
        .inner()
        .to_string()
        .starts_with("invalid type: string")
    {
        return false;
    }
    let Some(pointer) = json_pointer(error.path()) else {
        return false;
    };
    let is_template = matches!(template.pointer(&pointer),
        Some(Value::String(text)) if text.contains("{{") || text.contains("{%"));
    let Some(slot) = rendered.pointer_mut(&pointer).filter(|_| is_template) else {
        return false;
    };
    match slot
        .as_str()
        .map(|text| serde_json::from_str::<Value>(text.trim()))
    {
        Some(Ok(scalar)) if scalar.is_number() || scalar.is_boolean() => {
            *slot = scalar;
            true
        }
        _ => false,
    }
}

/// The JSON pointer (`/window/size`, `/topics/1`) of a serde path, when every step is a key
/// or an index.
fn json_pointer(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Map { key } => Some(format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Seq { index } => Some(format!("/{index}")),
            _ => None,
        })
        .collect()
}

impl Executor {
    /// A token that cancels a try this executor runs; shutdown cancels it too.
    pub fn try_stop_token(&self) -> CancellationToken {
        self.inner.shutdown.child_token()
    }

    /// Runs a try that this executor's claim started (a worker's: `running`, claimed by
    /// [`Executor::owner`]) to its end, `stop` cancelling it; returns the instance as it
    /// stands. Its retry, if any, is queued by the run's driver.
    pub async fn run_claimed_try(
        &self,
        dag: &Dag,
        run: &DagRunRow,
        ti: TaskInstanceRow,
        upstream_results: serde_json::Map<String, serde_json::Value>,
        stop: CancellationToken,
    ) -> TaskInstanceRow {
        let Some(spec) = dag.task(&ti.task_id).cloned() else {
            let error = format!(
                "task {:?} is no longer in the DAG file {}",
                ti.task_id,
                dag.file.display()
            );
            return self.fail_claimed_try(ti, error).await;
        };
        let runner = Runner {
            executor: self.clone(),
            max_active_tasks: dag.max_active_tasks,
            spec,
            base: Arc::new(TemplateContext::for_dag_run(dag, run)),
            upstream_results,
            stop,
            defer_end: false,
            end_deferred: AtomicBool::new(false),
            slots: Default::default(),
            start_written: Default::default(),
        };
        runner.run_claimed(ti).await
    }

    /// Fails a claimed try that cannot start (its DAG or run is unknown here).
    pub async fn fail_claimed_try(
        &self,
        mut ti: TaskInstanceRow,
        error: String,
    ) -> TaskInstanceRow {
        tracing::error!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, %error, "A claimed try cannot start");
        ti.error = Some(error);
        ti.end = Some(Utc::now());
        if let Err(error) = self.transition(&mut ti, TiState::Failed).await {
            tracing::error!(dag_id = %ti.dag_id, task_id = %ti.task_id, %error, "Cannot fail the try");
        }
        ti
    }
}

/// Why a try failed, as the user reads it, and whether another try could go differently.
struct TryFailure {
    message: String,
    retryable: bool,
}

impl TryFailure {
    fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

impl From<TaskError> for TryFailure {
    fn from(error: TaskError) -> Self {
        Self {
            retryable: error.is_retryable(),
            message: error.to_string(),
        }
    }
}

pub(super) struct Runner {
    pub executor: Executor,
    /// Its DAG's limit of tries at once.
    pub max_active_tasks: u32,
    pub spec: TaskSpec,
    pub base: Arc<TemplateContext>,
    pub upstream_results: serde_json::Map<String, serde_json::Value>,
    pub stop: CancellationToken,
    /// Leaves a try's last move (to success or failed) unwritten for the run's driver, which
    /// writes it in one commit with the moves it releases: a chain's hand-off waits for one
    /// commit, not two.
    pub defer_end: bool,
    /// Whether the instance returned ended in a move left to the driver.
    pub end_deferred: AtomicBool,
    /// The slots of the try under way. A try whose end is left to the driver gives back its
    /// process and DAG slots at once and hands its pool's to the driver, which holds them
    /// until that end is written (the store never shows more of a pool running than it has).
    pub slots: std::sync::Mutex<Option<SlotPermit>>,
    /// For a try its driver started: true once the driver's write of its move to running
    /// is durable (false: the write failed and the try does not run).
    pub start_written: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<bool>>>,
}

/// A try run by a drive's runner, as it came back.
pub(super) struct RunnerDone {
    pub ti: TaskInstanceRow,
    /// The instance's last move (from running to its `state`) is left to the driver.
    pub end_unwritten: bool,
    /// Its pool slots, to give back once that move is written.
    pub pool_permit: Option<SlotPermit>,
}

/// What interrupted a wait.
enum Interrupt {
    Shutdown,
    Stop,
}

impl Runner {
    /// Runs the instance until it finishes, or shutdown leaves it to be resumed; returns it as
    /// it stands.
    pub async fn run(self, mut ti: TaskInstanceRow) -> RunnerDone {
        if let Err(error) = self.run_tries(&mut ti).await {
            tracing::error!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, %error, "Task instance stopped on an error");
        }
        RunnerDone {
            ti,
            end_unwritten: self.end_deferred.load(Ordering::Relaxed),
            pool_permit: self.held_slots().take(),
        }
    }

    /// The try's last move, from running to success or failed: written here, or left to the
    /// driver ([`Runner::defer_end`]).
    async fn end(&self, ti: &mut TaskInstanceRow, to: TiState) -> Result<(), ExecutorError> {
        if self.defer_end {
            ti.state = to;
            self.end_deferred.store(true, Ordering::Relaxed);
            return Ok(());
        }
        self.executor.transition(ti, to).await
    }

    async fn run_tries(&self, ti: &mut TaskInstanceRow) -> Result<(), ExecutorError> {
        loop {
            match ti.state {
                TiState::UpForRetry => {
                    let wait = ti.next_retry_at.map_or(Duration::ZERO, |at| {
                        (at - Utc::now()).to_std().unwrap_or_default()
                    });
                    match self.interruptible(tokio::time::sleep(wait)).await {
                        Err(Interrupt::Shutdown) => return Ok(()),
                        Err(Interrupt::Stop) => {
                            return self.executor.transition(ti, TiState::Failed).await;
                        }
                        Ok(()) => self.executor.transition(ti, TiState::Queued).await?,
                    }
                }
                // Queued, or left `scheduled` by its driver until its slots are taken.
                TiState::Queued | TiState::Scheduled => {
                    if !self.try_once(ti).await? {
                        return Ok(());
                    }
                }
                // Its driver started it: moved it to running with its slots taken (see
                // `RunDrive::start_at_once`), and says when that move is written.
                TiState::Running => {
                    let written = self
                        .start_written
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    let Some(written) = written else {
                        return Ok(());
                    };
                    let started = ti.start.unwrap_or_else(Utc::now);
                    // The log opens while the driver's write commits.
                    let key = ti.key();
                    let (log, written) = tokio::join!(self.open_log(&key, ti.try_number), written);
                    if !written.unwrap_or(false) || !self.go_on_started(ti, started, log).await? {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    async fn interruptible<T>(&self, wait: impl Future<Output = T>) -> Result<T, Interrupt> {
        tokio::select! {
            value = wait => Ok(value),
            _ = self.stop.cancelled() => Err(if self.executor.is_shutting_down() { Interrupt::Shutdown } else { Interrupt::Stop }),
        }
    }

    /// One try from `queued` (or `scheduled`, passing through `queued` in the write that
    /// starts it); true when another try follows.
    async fn try_once(&self, ti: &mut TaskInstanceRow) -> Result<bool, ExecutorError> {
        let need = Need::of(
            &self.spec,
            &ti.dag_id,
            self.max_active_tasks,
            &self.base.logical_date,
        );
        // Waiting for its slots, the try stays queued (or scheduled).
        match self
            .interruptible(self.executor.inner.slots.acquire(need))
            .await
        {
            Ok(permit) => *self.held_slots() = Some(permit),
            Err(Interrupt::Shutdown) => return Ok(false),
            Err(Interrupt::Stop) => {
                ti.end = Some(Utc::now());
                self.executor.transition(ti, TiState::Skipped).await?;
                return Ok(false);
            }
        }
        let started = begin_try(ti, &self.executor.inner.hostname);
        // The log file is opened while the move to running commits.
        let log = {
            let key = ti.key();
            let try_number = ti.try_number;
            async move { self.open_log(&key, try_number).await }
        };
        let (running, log) = tokio::join!(self.executor.transition(ti, TiState::Running), log);
        running?;
        self.go_on_started(ti, started, log).await
    }

    /// The rest of a try that is `running` with its slots held: its operator and how it
    /// went, then its slots go back; true when another try follows.
    async fn go_on_started(
        &self,
        ti: &mut TaskInstanceRow,
        started: chrono::DateTime<Utc>,
        log: Result<TryLog, TryFailure>,
    ) -> Result<bool, ExecutorError> {
        let more = self.finish_try(ti, started, log).await;
        // The slots of a try whose end is written here go back now; a deferred end keeps its
        // pool's until the driver writes it.
        let mut held = self.held_slots();
        if self.end_deferred.load(Ordering::Relaxed) {
            if let Some(permit) = held.as_mut() {
                permit.keep_pool_only();
            }
        } else {
            held.take();
        }
        more
    }

    fn held_slots(&self) -> std::sync::MutexGuard<'_, Option<SlotPermit>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a try that a worker's claim started (`running`) to its end; whatever follows
    /// (a retry, a restart) is up to the run's driver.
    pub async fn run_claimed(self, mut ti: TaskInstanceRow) -> TaskInstanceRow {
        let started = ti.start.unwrap_or_else(Utc::now);
        let log = self.open_log(&ti.key(), ti.try_number).await;
        if let Err(error) = self.finish_try(&mut ti, started, log).await {
            tracing::error!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, %error, "Task instance stopped on an error");
        }
        ti
    }

    /// The operator of a `running` try, then how it went; true when another try follows.
    async fn finish_try(
        &self,
        ti: &mut TaskInstanceRow,
        started: chrono::DateTime<Utc>,
        log: Result<TryLog, TryFailure>,
    ) -> Result<bool, ExecutorError> {
        let outcome = match log {
            Ok(log) => self.execute(ti, log).await,
            Err(failure) => Err(failure),
        };
        let ended = Utc::now();
        ti.end = Some(ended);
        ti.duration_ms = Some((ended - started).num_milliseconds());
        let more = self.conclude(ti, outcome).await?;
        let outcome = match ti.state {
            TiState::Success => "success",
            TiState::Failed => "failed",
            _ => "retry",
        };
        let seconds = (ended - started).num_microseconds().unwrap_or(0) as f64 / 1e6;
        crate::telemetry::observe_try(&ti.dag_id, &ti.task_id, outcome, seconds);
        Ok(more)
    }

    /// Records how the try went; true when another try follows.
    async fn conclude(
        &self,
        ti: &mut TaskInstanceRow,
        outcome: Result<TaskResult, TryFailure>,
    ) -> Result<bool, ExecutorError> {
        match outcome {
            // A stream ends cleanly when cancelled: on shutdown it has flushed and committed,
            // and its run goes on with the next serve, like any interrupted task.
            Ok(_) if self.spec.is_stream() && self.executor.is_shutting_down() => {
                self.after_failure(ti, TryFailure::retryable("interrupted by shutdown"))
                    .await
            }
            Ok(result) => {
                ti.result = Some(serde_json::Value::Object(result));
                ti.error = None;
                self.end(ti, TiState::Success).await?;
                Ok(false)
            }
            Err(failure) => self.after_failure(ti, failure).await,
        }
    }

    /// A failed try: retry if tries remain (a try cut short by shutdown is not counted); a
    /// config error fails the instance at once, stream or not.
    async fn after_failure(
        &self,
        ti: &mut TaskInstanceRow,
        failure: TryFailure,
    ) -> Result<bool, ExecutorError> {
        let shutdown = self.executor.is_shutting_down();
        ti.error = Some(failure.message);
        if !failure.retryable && !shutdown {
            self.end(ti, TiState::Failed).await?;
            return Ok(false);
        }
        let supervised = self.spec.is_stream() && !self.stop.is_cancelled();
        if shutdown {
            ti.max_tries += 1;
        } else if supervised {
            // Streams are restarted for as long as their run lives.
            ti.max_tries = ti.max_tries.max(ti.try_number + 1);
            let ran_for = Duration::from_millis(ti.duration_ms.unwrap_or(0).max(0) as u64);
            let delay = stream_restart_delay(ti.try_number, ran_for);
            ti.next_retry_at = Some(Utc::now() + delay);
            tracing::warn!(dag_id = %ti.dag_id, task_id = %ti.task_id, try_number = ti.try_number, delay_ms = delay.as_millis() as u64, error = ?ti.error, "Stream task failed; restarting");
            self.executor.transition(ti, TiState::UpForRetry).await?;
            return Ok(true);
        }
        if ti.try_number < ti.max_tries && (shutdown || !self.stop.is_cancelled()) {
            let delay = if shutdown {
                Duration::ZERO
            } else {
                retry_delay(&self.spec.retry, ti.try_number + 1)
            };
            ti.next_retry_at = Some(Utc::now() + delay);
            self.executor.transition(ti, TiState::UpForRetry).await?;
            return Ok(!shutdown);
        }
        self.end(ti, TiState::Failed).await?;
        Ok(false)
    }

    /// Opens the log file of a try.
    async fn open_log(&self, key: &TaskKey, try_number: u32) -> Result<TryLog, TryFailure> {
        let logs = self.executor.logs();
        logs.open_try(&key.dag_id, &key.run_id, &key.task_id, try_number)
            .await
            .map_err(|e| {
                TryFailure::retryable(format!(
                    "cannot open the task log under {}: {e}",
                    logs.root().display()
                ))
            })
    }

    /// Runs the operator once, writing to the try's `log`.
    async fn execute(&self, ti: &TaskInstanceRow, log: TryLog) -> Result<TaskResult, TryFailure> {
        let try_log = Arc::new(log);
        let log: Arc<dyn LogSink> = try_log.clone();
        log.line(&self.try_heading(ti));
        let outcome = self.render_and_execute(ti, &try_log).await;
        match &outcome {
            Ok(_) => log.line("Task succeeded"),
            Err(failure) if failure.retryable => {
                log.line(&format!("Task failed: {}", failure.message))
            }
            Err(failure) => log.line(&format!(
                "Task failed: {} (not retried: fix the DAG file)",
                failure.message
            )),
        }
        try_log.finish().await;
        outcome
    }

    /// The first line of a try's log: "Try 2 of 3 ..." for tasks, "Restart 4 ..." for
    /// supervised streams, which have no last try.
    fn try_heading(&self, ti: &TaskInstanceRow) -> String {
        let task = format!("{}.{} in run {}", ti.dag_id, ti.task_id, ti.run_id);
        match ti.try_number {
            1 if self.spec.is_stream() => format!("Start of stream {task}"),
            n if self.spec.is_stream() => format!("Restart {} of stream {task}", n - 1),
            n => format!("Try {n} of {} of {task}", ti.max_tries.max(n)),
        }
    }

    async fn render_and_execute(
        &self,
        ti: &TaskInstanceRow,
        try_log: &Arc<TryLog>,
    ) -> Result<TaskResult, TryFailure> {
        let operator = self.render(ti, try_log).map_err(TaskError::from)?;
        let log: Arc<dyn LogSink> = try_log.clone();
        let cancel = self.stop.child_token();
        let metrics = Metrics::default();
        // Where a stream runs, for the streams page of every serve.
        if let (true, Some(worker)) = (self.spec.is_stream(), &ti.hostname) {
            metrics.update_stream(|m| m.worker = Some(worker.clone()));
        }
        let _published = self.executor.publish_metrics(ti.key(), metrics.clone());
        let ctx = TaskContext {
            cancel: cancel.clone(),
            log,
            metrics,
            connections: self.executor.inner.config.connections.clone(),
            share: self.spec.share_of(&ti.task_id),
            env_passthrough: self.executor.inner.config.env_passthrough.clone(),
        };
        let mut execution = std::pin::pin!(operator.execute(&ctx));
        let timeout = async {
            match self.spec.timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut execution => result.map_err(|e| self.describe_error(e)),
            _ = timeout => {
                cancel.cancel();
                let _ = tokio::time::timeout(self.executor.inner.config.grace_period, &mut execution).await;
                Err(TryFailure::retryable(format!("timed out after {}", humantime::format_duration(self.spec.timeout.unwrap_or_default()))))
            }
        }
    }

    /// The try's operator, from its config rendered for it; the secrets the config holds are
    /// masked in the try's log from here on.
    fn render(
        &self,
        ti: &TaskInstanceRow,
        try_log: &TryLog,
    ) -> Result<Box<dyn Operator>, ConfigError> {
        // The try's own context only for templates to read (copying the base, which holds
        // the whole environment, cost more than a noop try).
        let own_context;
        let context = if has_templates(&self.spec.config) {
            let mut context = (*self.base).clone();
            context.task = serde_json::json!({ "id": ti.task_id, "try_number": ti.try_number });
            context.upstream = self.upstream_results.clone();
            own_context = context;
            &own_context
        } else {
            &*self.base
        };
        let rendered = render_config(&self.spec.config, context)?;
        let everywhere = &self.executor.inner.config.env_passthrough;
        try_log.mask_also(task_secrets(&rendered, everywhere, |name| {
            std::env::var(name).ok()
        }));
        typed_config(&self.spec, rendered)?.build()
    }

    fn describe_error(&self, error: TaskError) -> TryFailure {
        match error {
            TaskError::Cancelled if self.executor.is_shutting_down() => {
                TryFailure::retryable("interrupted by shutdown")
            }
            TaskError::Cancelled if self.stop.is_cancelled() => {
                TryFailure::retryable("stopped with its run")
            }
            other => other.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::Utc;
    use serde_json::json;
    use tasks::OperatorConfig;

    use super::typed_config;
    use crate::dag::{TemplateContext, parse_dag_file, render_config};

    const DAG: &str = r#"
[dag]
id = "sim"
[dag.params]
n = 5
lines = 10
flag = "yes"
[[task]]
id = "emit"
operator = "generate_to_kafka"
records = "{{ params.n }}"
topic = "t"
create_topics = "{{ params.flag }}"
fields = { id = "uuid" }
[[task]]
id = "say"
operator = "shell"
command = "seq 1 $LINES"
env = { LINES = "{{ params.lines }}" }
"#;

    fn typed(task: &str, conf: serde_json::Value) -> Result<OperatorConfig, tasks::ConfigError> {
        let dag = parse_dag_file(Path::new("dags/sim.toml"), DAG).unwrap();
        let conf = conf.as_object().unwrap().clone();
        let context = TemplateContext::for_run(&dag, "r", Utc::now(), &conf);
        let spec = dag.task(task).unwrap();
        typed_config(spec, render_config(&spec.config, &context).unwrap())
    }

    #[test]
    fn a_templated_number_or_boolean_is_taken_as_one() {
        let config = typed("emit", json!({"flag": "false", "n": 7})).unwrap();
        let OperatorConfig::GenerateToKafka(config) = config else {
            panic!("{config:?}")
        };
        assert_eq!(config.records, 7);
        assert!(!config.create_topics);
    }

    #[test]
    fn a_templated_value_stays_text_where_text_is_wanted() {
        let OperatorConfig::Shell(config) = typed("say", json!({})).unwrap() else {
            panic!("not a shell config")
        };
        assert_eq!(config.env["LINES"], "10");
    }

    #[test]
    fn a_templated_value_of_the_wrong_type_names_its_field() {
        let error = typed("emit", json!({"n": "many", "flag": "true"})).unwrap_err();
        assert_eq!(error.field, "records");
        assert!(
            error.message.contains("invalid type: string \"many\""),
            "{error:?}"
        );
        let error = typed("emit", json!({"flag": "sometimes"})).unwrap_err();
        assert_eq!(error.field, "create_topics");
    }
}
