use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use orchestrator::{
    audit, commands,
    dag::TemplateContext,
    executor::build_operator,
    logs::{LogSource, TryLogKey, try_log_to_read},
    scheduler::parse_conf,
    store::{TaskKey, TiState},
};
use tasks::{LogSink, Metrics, TaskContext};
use tokio_util::sync::CancellationToken;

use super::GlobalArgs;

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Print a task's log for one try (the latest by default)
    Logs {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// Try number (1 is the first try)
        #[arg(long = "try")]
        try_number: Option<u32>,
        /// Keep printing new lines until the task instance finishes
        #[arg(long, short)]
        follow: bool,
    },
    /// Clear a task instance of a finished run (and its downstream ones) so it runs again
    Clear {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// Clear the tasks downstream of it too
        #[arg(long)]
        downstream: bool,
    },
    /// Mark a task instance of a finished run success or failed
    Mark {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// success or failed
        #[arg(value_parser = ["success", "failed"])]
        state: String,
    },
    /// Run one task now, without its upstreams and without recording state
    Test {
        dag_id: String,
        task_id: String,
        /// JSON object overriding the DAG's params
        #[arg(long)]
        conf: Option<String>,
    },
}

pub async fn execute(global: &GlobalArgs, command: TasksCommand) -> anyhow::Result<ExitCode> {
    match command {
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
            follow,
        } => logs(global, &dag_id, &run_id, &task_id, try_number, follow).await,
        TasksCommand::Test {
            dag_id,
            task_id,
            conf,
        } => test(global, &dag_id, &task_id, conf.as_deref()).await,
        TasksCommand::Clear {
            dag_id,
            run_id,
            task_id,
            downstream,
        } => {
            let dag = global.dag(&dag_id)?;
            let key = TaskKey {
                dag_id,
                run_id,
                task_id,
            };
            let store = global.store().await?;
            let actor = audit::cli_actor();
            let cleared = commands::clear(&store, &dag, &key, downstream, &actor).await?;
            println!(
                "Cleared {}; `orchestrator serve` runs them again",
                cleared.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Mark {
            dag_id,
            run_id,
            task_id,
            state,
        } => {
            let state: TiState = state.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let key = TaskKey {
                dag_id,
                run_id,
                task_id,
            };
            let store = global.store().await?;
            commands::mark(&store, &key, state, &audit::cli_actor()).await?;
            println!("Marked {}.{} {state}", key.dag_id, key.task_id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn logs(
    global: &GlobalArgs,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: Option<u32>,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    let ti = store
        .task_instance(dag_id, run_id, task_id)
        .await?
        .with_context(|| format!("no task instance {dag_id}.{task_id} in run {run_id:?}: see `orchestrator runs show {run_id}`"))?;
    let try_number = try_number.unwrap_or(ti.try_number.max(1));
    let key = TryLogKey {
        dag_id: dag_id.into(),
        run_id: run_id.into(),
        task_id: task_id.into(),
        try_number,
    };
    let path = try_log_to_read(&global.logs_folder, &key);
    // This machine's file, or the chunks shipped by the worker that ran the try.
    let source = LogSource::locate(path.clone(), &store, &key);
    let mut offset = 0u64;
    loop {
        let state = store
            .task_instance(dag_id, run_id, task_id)
            .await?
            .map(|t| (t.state, t.try_number));
        // The try ended: the instance moved past it, or no longer runs it.
        let ended =
            state.is_none_or(|(s, t)| t > try_number || (t == try_number && s != TiState::Running));
        offset = print_from(&source, offset, ended || !follow).await?;
        if !follow || ended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if offset == 0 && matches!(source, LogSource::File(_)) && !path.exists() {
        eprintln!(
            "No log yet at {} (task instance is {}, try {})",
            path.display(),
            ti.state,
            ti.try_number
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the log's lines from `offset` (the last one without its newline too when `to_end`);
/// returns the new offset.
async fn print_from(source: &LogSource, mut offset: u64, to_end: bool) -> anyhow::Result<u64> {
    loop {
        let slice = source.read_new(offset, to_end).await?;
        if slice.text.is_empty() {
            return Ok(offset);
        }
        print!("{}", slice.text);
        offset = slice.end;
    }
}

struct Stdout;

impl LogSink for Stdout {
    fn line(&self, line: &str) {
        println!("{} {line}", Utc::now().format("%H:%M:%S%.3f"));
    }
}

async fn test(
    global: &GlobalArgs,
    dag_id: &str,
    task_id: &str,
    conf: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(conf).map_err(|e| anyhow::anyhow!("--conf: {e}"))?;
    let dag = global.dag(dag_id)?;
    commands::check_conf(&dag, &conf)?;
    let spec = dag.task(task_id).with_context(|| {
        let known: Vec<&str> = dag.tasks.iter().map(|t| t.id.as_str()).collect();
        format!(
            "DAG {dag_id:?} has no task {task_id:?} (tasks: {})",
            known.join(", ")
        )
    })?;
    let now = Utc::now();
    let mut context =
        TemplateContext::for_run(&dag, &format!("test__{}", now.to_rfc3339()), now, &conf);
    context.task = serde_json::json!({ "id": spec.id, "try_number": 1 });
    let operator =
        build_operator(spec, &context).map_err(|e| anyhow::anyhow!("{dag_id}.{task_id}: {e}"))?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let ctx = TaskContext {
        cancel,
        log: Arc::new(Stdout),
        metrics: Metrics::default(),
        connections: Arc::new(global.connections()),
        share: Default::default(),
        env_passthrough: global.env_passthrough()?,
    };
    let outcome = match spec.timeout {
        Some(limit) => tokio::time::timeout(limit, operator.execute(&ctx))
            .await
            .unwrap_or(Err(tasks::TaskError::Failed(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            )))),
        None => operator.execute(&ctx).await,
    };
    match outcome {
        Ok(result) => {
            println!(
                "Task succeeded; result: {}",
                serde_json::Value::Object(result)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("Task failed: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
