use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use orchestrator::{
    dag::{DEFAULT_QUEUE, watch_folder},
    executor::{Dispatch, Executor, ExecutorConfig, hostname},
    scheduler::Heartbeat,
    scheduler::Scheduler,
    store::Store,
    users,
    web::{WebBackend, metrics_router},
    worker::{Worker, WorkerConfig},
};
use tokio_util::sync::CancellationToken;

use super::GlobalArgs;

/// How long the scheduler lease lasts unrenewed (renewed every second): a standby `serve`
/// takes over within this much of the active one dying.
const SCHEDULER_LEASE: Duration = Duration::from_secs(5);

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
    /// Whether pages and the read API need no sign-in (by default they need one; changes
    /// always do)
    #[arg(long, env = "UPDRAFT_PUBLIC_READ", default_value_t = false, action = clap::ArgAction::Set)]
    public_read: bool,
    /// Mark the session cookie Secure (serve behind HTTPS)
    #[arg(long, env = "UPDRAFT_SECURE_COOKIES")]
    secure_cookies: bool,
    /// A UI session ends after this long without a request
    #[arg(long, env = "UPDRAFT_SESSION_IDLE", default_value = "8h", value_parser = humantime::parse_duration)]
    session_idle: Duration,
    /// A UI session ends this long after sign-in, however active
    #[arg(long, env = "UPDRAFT_SESSION_MAX", default_value = "24h", value_parser = humantime::parse_duration)]
    session_max: Duration,
    /// Live connections (the pages' server-sent events) open at once in all; beyond, 503
    #[arg(long, env = "UPDRAFT_MAX_LIVE_CONNECTIONS", default_value_t = 1024)]
    max_live_connections: usize,
    /// Live connections open at once from one client address
    #[arg(
        long,
        env = "UPDRAFT_MAX_LIVE_CONNECTIONS_PER_CLIENT",
        default_value_t = 64
    )]
    max_live_connections_per_client: usize,
    /// Bearer token Prometheus must send to scrape /metrics (open when unset)
    #[arg(long, env = "UPDRAFT_METRICS_TOKEN")]
    metrics_token: Option<String>,
    /// Run no task here: schedule and serve the UI only, workers run the tasks (PostgreSQL)
    #[arg(long, env = "UPDRAFT_NO_LOCAL_TASKS")]
    no_local_tasks: bool,
    /// A worker silent for this long loses its tries: retried elsewhere, or failed (PostgreSQL)
    #[arg(long, env = "UPDRAFT_WORKER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    worker_timeout: Duration,
}

pub async fn serve(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown)?;
    let store = global.store().await?;
    let bag = Arc::new(global.dag_bag()?);
    tracing::info!(dags = bag.dags.len(), import_errors = bag.errors.len(), folder = %global.dags_folder.display(), "Loaded the DAGs folder");
    let (bags, _watcher) =
        watch_folder(global.dags_folder.clone(), bag).context("watching the DAGs folder")?;
    // On a shared database the tasks go through the queue, to this process's own worker
    // (unless --no-local-tasks) and to any other.
    let shared = store.is_shared();
    anyhow::ensure!(
        shared || !args.no_local_tasks,
        "--no-local-tasks needs workers, and workers need a shared metadata database: use --db postgres://user@host:port/db"
    );
    let connections = Arc::new(global.connections());
    let env_passthrough = global.env_passthrough()?;
    let logs = global.log_hub().shipping_to(&store);
    let executor = Executor::new(
        store.clone(),
        logs.clone(),
        ExecutorConfig {
            parallelism: args.parallelism,
            grace_period: args.grace_period,
            connections: connections.clone(),
            env_passthrough: env_passthrough.clone(),
            dispatch: if shared {
                Dispatch::Queue
            } else {
                Dispatch::InProcess
            },
            owner: None,
            live_metrics: None,
        },
    );
    store.listen_to_other_processes().await?;
    if shared {
        executor.live_metrics_registry().spawn_mirror(store.clone());
    }
    let local_worker = (shared && !args.no_local_tasks).then(|| {
        let worker = Worker::new(
            store.clone(),
            bags.clone(),
            logs,
            WorkerConfig {
                name: hostname(),
                queues: vec![DEFAULT_QUEUE.to_owned()],
                slots: u32::try_from(args.parallelism).unwrap_or(u32::MAX),
                heartbeat_interval: Duration::from_secs(3),
                grace_period: args.grace_period,
                connections,
                env_passthrough,
                live_metrics: Some(executor.live_metrics_registry()),
            },
        );
        tokio::spawn(worker.run(shutdown.clone()))
    });
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding the web UI to {}", args.bind))?;
    ensure_a_user(&store).await?;
    tracing::info!(address = %args.bind, "Web UI listening");
    let heartbeat = Heartbeat::default();
    let metrics = metrics_router(
        store.clone(),
        Some(executor.clone()),
        args.metrics_token,
        args.public_read,
    );
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
            session_max_lifetime: args.session_max,
            max_live_connections: args.max_live_connections,
            max_live_connections_per_client: args.max_live_connections_per_client,
            ..ui::UiConfig::default()
        },
    )
    .merge(metrics);
    let web_shutdown = shutdown.clone();
    let web = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(web_shutdown.cancelled_owned())
            .await
    });
    let mut scheduler = Scheduler::new(executor, bags).with_heartbeat(heartbeat);
    if shared {
        scheduler = scheduler
            .with_worker_timeout(args.worker_timeout)
            .with_lease(SCHEDULER_LEASE);
    }
    scheduler.run(shutdown.clone(), args.grace_period).await?;
    shutdown.cancel();
    if let Some(worker) = local_worker {
        match worker.await {
            Ok(Err(error)) => tracing::error!(%error, "The local worker stopped on an error"),
            Err(error) => tracing::error!(%error, "The local worker panicked"),
            Ok(Ok(())) => {}
        }
    }
    let _ = web.await;
    tracing::info!("Stopped");
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT. The handlers are in place when this
/// returns (a signal sent right after still shuts down cleanly); the wait runs in its own task.
pub(super) fn cancel_on_signal(shutdown: &CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        shutdown.cancel();
    });
    Ok(())
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
    match users::add_user(store, "admin", &password, users::Role::Admin).await {
        Ok(()) => {}
        // Another serve on the same database created it first (a standby starting at once).
        Err(users::UserError::Exists(_)) => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    if generated {
        eprintln!(
            "\nCreated the user `admin` with password {password}\n(shown once; change users with `orchestrator users`)\n"
        );
    } else {
        tracing::info!("Created the user admin with the password from UPDRAFT_ADMIN_PASSWORD");
    }
    Ok(())
}
