use std::{fmt::Write as _, io::Write as _, process::ExitCode, sync::Arc};

use clap::Args;
use orchestrator::{
    executor::{Executor, ExecutorConfig, RunOutcome},
    scheduler::{new_manual_run, parse_conf},
    store::RunState,
};
use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, runs::print_ended_run};

#[derive(Args)]
pub struct RunArgs {
    /// The DAG to run
    pub dag_id: String,
    /// JSON object overriding the DAG's params, e.g. '{"results": 10}'
    #[arg(long)]
    pub conf: Option<String>,
    /// Task instances running at once
    #[arg(long, default_value_t = 32)]
    pub parallelism: usize,
}

/// Runs one DAG run in this process, printing every task log line as it is written.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(args.conf.as_deref()).map_err(|e| anyhow::anyhow!("--conf: {e}"))?;
    let dag = global.dag(&args.dag_id)?;
    orchestrator::commands::check_conf(&dag, &conf)?;
    let store = global.store().await?;
    let executor = Executor::new(
        store.clone(),
        global.log_hub(),
        ExecutorConfig {
            parallelism: args.parallelism,
            connections: Arc::new(global.connections()),
            env_passthrough: global.env_passthrough()?,
            ..Default::default()
        },
    );
    let mut new = new_manual_run(&dag, conf, Some(executor.owner().to_owned()));
    new.dag_version_number = Some(orchestrator::scheduler::dag_version(&store, &dag).await?);
    let tasks = dag.new_task_instances();
    let Some(run) = store.create_run(&new, &tasks).await? else {
        anyhow::bail!("a run {} of {} already exists", new.run_id, dag.id);
    };
    println!("Running {} ({})", dag.id, run.run_id);
    let printer = tokio::spawn(print_log_lines(
        executor.logs().subscribe(),
        run.run_id.clone(),
    ));
    let interrupt = CancellationToken::new();
    let on_signal = interrupt.clone();
    let exec = executor.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
            exec.shut_down();
        }
    });
    let outcome = executor
        .drive_created_run(dag.clone(), run.clone(), tasks)
        .await?;
    printer.abort();
    print_ended_run(&store, &run.key(), &dag).await?;
    Ok(match outcome {
        RunOutcome::Finished(RunState::Success) => {
            println!("Run {} succeeded", run.run_id);
            ExitCode::SUCCESS
        }
        RunOutcome::Finished(state) => {
            println!("Run {} ended {state}", run.run_id);
            ExitCode::FAILURE
        }
        RunOutcome::Interrupted => {
            println!(
                "Run {} interrupted; `orchestrator serve` resumes it",
                run.run_id
            );
            ExitCode::from(130)
        }
    })
}

/// Prints the run's log lines as they come, a burst at a time: lines already waiting are
/// written together and flushed once (stdout flushes at every line otherwise).
async fn print_log_lines(
    mut lines: tokio::sync::broadcast::Receiver<orchestrator::logs::LogLine>,
    run_id: String,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut burst = String::new();
    loop {
        match lines.recv().await {
            Ok(line) => add(&mut burst, &run_id, &line),
            Err(RecvError::Lagged(n)) => skipped(&mut burst, n),
            Err(RecvError::Closed) => break,
        }
        loop {
            match lines.try_recv() {
                Ok(line) => add(&mut burst, &run_id, &line),
                Err(TryRecvError::Lagged(n)) => skipped(&mut burst, n),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        write_out(&mut burst);
    }
}

/// Adds `line` to the burst when it is of the run.
fn add(burst: &mut String, run_id: &str, line: &orchestrator::logs::LogLine) {
    if *line.run_id == *run_id {
        let _ = writeln!(
            burst,
            "[{}#{}] {}",
            line.task_id, line.try_number, line.text
        );
    }
}

fn skipped(burst: &mut String, n: u64) {
    let _ = writeln!(
        burst,
        "... {n} log lines skipped (they are in the log files)"
    );
}

/// Writes and empties `text` with one write to stdout.
fn write_out(text: &mut String) {
    if !text.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        text.clear();
    }
}
