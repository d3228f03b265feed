//! `orchestrator worker` and `orchestrator workers list`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use orchestrator::{
    dag::{DEFAULT_QUEUE, watch_folder},
    executor::hostname,
    worker::{Worker, WorkerConfig},
};
use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, serve::cancel_on_signal, table};

#[derive(Args)]
pub struct WorkerArgs {
    /// Queues to take task instances from (comma-separated)
    #[arg(long, env = "UPDRAFT_QUEUES", value_delimiter = ',', default_value = DEFAULT_QUEUE)]
    queues: Vec<String>,
    /// Task instances running at once on this worker
    #[arg(long, env = "UPDRAFT_SLOTS", default_value_t = 32)]
    slots: u32,
    /// Shown as the hostname of its tries and in `workers list` (the host name by default)
    #[arg(long, env = "UPDRAFT_WORKER_NAME")]
    name: Option<String>,
    /// How often the worker records that it is alive (keep well under serve's --worker-timeout)
    #[arg(long, env = "UPDRAFT_HEARTBEAT", default_value = "3s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// How long running tries get to finish on SIGTERM before they are handed back
    #[arg(long, env = "UPDRAFT_GRACE_PERIOD", default_value = "10s", value_parser = humantime::parse_duration)]
    grace_period: Duration,
}

#[derive(Subcommand)]
pub enum WorkersCommand {
    /// List the workers: queues, slots used, last heartbeat
    List,
}

pub async fn worker(global: &GlobalArgs, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown)?;
    let store = global.store().await?;
    let bag = Arc::new(global.dag_bag()?);
    let (bags, _watcher) =
        watch_folder(global.dags_folder.clone(), bag).context("watching the DAGs folder")?;
    let queues: Vec<String> = args
        .queues
        .iter()
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty())
        .collect();
    anyhow::ensure!(!queues.is_empty(), "--queues names no queue");
    let config = WorkerConfig {
        name: args.name.unwrap_or_else(hostname),
        queues,
        slots: args.slots.max(1),
        heartbeat_interval: args.heartbeat,
        grace_period: args.grace_period,
        connections: Arc::new(global.connections()),
        env_passthrough: global.env_passthrough()?,
        live_metrics: None,
    };
    let logs = global.log_hub().shipping_to(&store);
    Worker::new(store, bags, logs, config).run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn workers(global: &GlobalArgs, command: WorkersCommand) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    match command {
        WorkersCommand::List => {
            let rows: Vec<Vec<String>> = store
                .workers()
                .await?
                .into_iter()
                .map(|w| {
                    vec![
                        w.name,
                        w.state.to_string(),
                        w.queues.join(","),
                        format!("{}/{}", w.running, w.slots),
                        table::time(Some(w.heartbeat)),
                        w.hostname,
                        w.worker_id,
                    ]
                })
                .collect();
            table::print(
                &[
                    "name",
                    "state",
                    "queues",
                    "slots used",
                    "last heartbeat",
                    "host",
                    "id",
                ],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
