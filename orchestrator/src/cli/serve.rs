use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use orchestrator::{
    dag::watch_folder,
    executor::{Executor, ExecutorConfig},
    scheduler::Heartbeat,
    scheduler::Scheduler,
    store::Store,
    users,
    web::{WebBackend, metrics_router},
};
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
    /// Whether pages and the read API need no sign-in (changes always need one)
    #[arg(long, env = "UPDRAFT_PUBLIC_READ", default_value_t = true, action = clap::ArgAction::Set)]
    public_read: bool,
    /// Mark the session cookie Secure (serve behind HTTPS)
    #[arg(long, env = "UPDRAFT_SECURE_COOKIES")]
    secure_cookies: bool,
    /// A UI session ends after this long without a request
    #[arg(long, env = "UPDRAFT_SESSION_IDLE", default_value = "8h", value_parser = humantime::parse_duration)]
    session_idle: Duration,
    /// Bearer token Prometheus must send to scrape /metrics (open when unset)
    #[arg(long, env = "UPDRAFT_METRICS_TOKEN")]
    metrics_token: Option<String>,
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
            connections: Arc::new(global.connections()),
        },
    );
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding the web UI to {}", args.bind))?;
    ensure_a_user(&store).await?;
    tracing::info!(address = %args.bind, "Web UI listening");
    let heartbeat = Heartbeat::default();
    let metrics = metrics_router(store.clone(), Some(executor.clone()), args.metrics_token);
    let backend = WebBackend::new(
        store,
        bags.clone(),
        executor.logs().clone(),
        Some(executor.clone()),
        heartbeat.clone(),
        args.grace_period + Duration::from_secs(5),
    );
    let app = ui::router(
        Arc::new(backend),
        ui::UiConfig {
            public_read: args.public_read,
            secure_cookies: args.secure_cookies,
            session_idle_timeout: args.session_idle,
            ..ui::UiConfig::default()
        },
    )
    .merge(metrics);
    let web_shutdown = shutdown.clone();
    let web = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(web_shutdown.cancelled_owned())
            .await
    });
    tokio::spawn(signal_shutdown(shutdown.clone()));
    Scheduler::new(executor, bags)
        .with_heartbeat(heartbeat)
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

/// With no user at all, creates `admin` with a random password (or `UPDRAFT_ADMIN_PASSWORD`)
/// and prints it once.
async fn ensure_a_user(store: &Store) -> anyhow::Result<()> {
    if !store.users().await?.is_empty() {
        return Ok(());
    }
    let (password, generated) = match std::env::var("UPDRAFT_ADMIN_PASSWORD") {
        Ok(password) if !password.is_empty() => (password, false),
        _ => (users::random_secret()[..20].to_owned(), true),
    };
    users::add_user(store, "admin", &password).await?;
    if generated {
        eprintln!(
            "\nCreated the user `admin` with password {password}\n(shown once; change users with `orchestrator users`)\n"
        );
    } else {
        tracing::info!("Created the user admin with the password from UPDRAFT_ADMIN_PASSWORD");
    }
    Ok(())
}
