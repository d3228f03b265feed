use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use orchestrator::{
    dag::{DagBag, watch_folder},
    executor::{Executor, ExecutorConfig},
    scheduler::Scheduler,
    store::Store,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::GlobalArgs;

#[derive(Args)]
pub struct ServeArgs {
    /// Address of the web UI and REST API
    #[arg(long, env = "UPDRAFT_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Task instances running at once, over all DAGs
    #[arg(long, env = "UPDRAFT_PARALLELISM", default_value_t = 32)]
    parallelism: usize,
    /// How long running tasks get to stop on shutdown
    #[arg(long, env = "UPDRAFT_GRACE_PERIOD", default_value = "10s", value_parser = humantime::parse_duration)]
    grace_period: Duration,
}

pub async fn serve(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    let bag = Arc::new(global.dag_bag()?);
    tracing::info!(dags = bag.dags.len(), import_errors = bag.errors.len(), folder = %global.dags_folder.display(), "Loaded the DAGs folder");
    let (bags, _watcher) =
        watch_folder(global.dags_folder.clone(), bag).context("watching the DAGs folder")?;
    let executor = Executor::new(
        store.clone(),
        global.log_hub(),
        ExecutorConfig {
            parallelism: args.parallelism,
            grace_period: args.grace_period,
        },
    );
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding the web UI to {}", args.bind))?;
    tracing::info!(address = %args.bind, "Web UI listening");
    let app = ui::router(Arc::new(UiBackend {
        store,
        bags: bags.clone(),
    }));
    let web_shutdown = shutdown.clone();
    let web = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(web_shutdown.cancelled_owned())
            .await
    });
    tokio::spawn(signal_shutdown(shutdown.clone()));
    Scheduler::new(executor, bags)
        .run(shutdown.clone(), args.grace_period)
        .await?;
    shutdown.cancel();
    let _ = web.await;
    tracing::info!("Stopped");
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
pub(super) async fn signal_shutdown(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

struct UiBackend {
    store: Store,
    bags: watch::Receiver<Arc<DagBag>>,
}

#[async_trait::async_trait]
impl ui::Backend for UiBackend {
    async fn dags(&self) -> Result<ui::DagList, ui::BackendError> {
        let bag = self.bags.borrow().clone();
        let paused = self
            .store
            .paused_dags()
            .await
            .map_err(|e| ui::BackendError(e.to_string()))?;
        Ok(super::dags::dag_list(&bag, &paused))
    }
}
