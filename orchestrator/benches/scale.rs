//! `scripts/bench scale`: the scale-out path on PostgreSQL with real processes — `serve
//! --no-local-tasks` scheduling and workers claiming from the queue — beside the same noop
//! figures on SQLite with one `serve` doing everything.
//!
//! Figures: hand-off through the queue (upstream end -> downstream start), noop throughput
//! with 1 and 2 workers, `sleep 0.2` tasks with 16 slots per worker (2 workers vs 1), the
//! hand-off while 50 simulated workers heartbeat, and failover times (a SIGKILLed worker's
//! try running elsewhere; a SIGKILLed scheduler's standby scheduling). `cargo bench --bench
//! scale` runs the full sizes; under `cargo test` it runs tiny sizes once (it needs
//! UPDRAFT_TEST_POSTGRES_URL, as the suite's other PostgreSQL tests).

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use orchestrator::{
    dag::{Dag, parse_dag_file},
    scheduler::new_manual_run,
    store::{RunState, Store, TaskInstanceRow, TiState, WorkerRow, WorkerState},
};

struct Sizes {
    /// Megabytes of the shipped log whose first page is timed.
    log_mb: usize,
    chain_len: usize,
    chain_repeats: usize,
    wide: &'static [usize],
    sleepers: usize,
    /// The `--worker-timeout`s the worker failover is measured at.
    worker_timeouts: &'static [&'static str],
    heartbeaters: usize,
}

const FULL: Sizes = Sizes {
    log_mb: 100,
    chain_len: 41,
    chain_repeats: 5,
    wide: &[500, 5000],
    sleepers: 1000,
    worker_timeouts: &["5s", "30s"],
    heartbeaters: 50,
};

const SMOKE: Sizes = Sizes {
    log_mb: 1,
    chain_len: 3,
    chain_repeats: 1,
    wide: &[10],
    sleepers: 4,
    worker_timeouts: &["2s"],
    heartbeaters: 2,
};

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_all(&sizes))
}

async fn run_all(sizes: &Sizes) -> anyhow::Result<()> {
    let admin = std::env::var("UPDRAFT_TEST_POSTGRES_URL").context(
        "UPDRAFT_TEST_POSTGRES_URL is not set: start PostgreSQL with `eval \"$(scripts/postgres start)\"` (scripts/bench scale does)",
    )?;
    let log = std::env::var("UPDRAFT_BENCH_LOG").unwrap_or_else(|_| "info".into());
    println!(
        "processes: release `orchestrator serve --no-local-tasks` + `orchestrator worker --slots 32`, RUST_LOG={log} (UPDRAFT_BENCH_LOG) to files; PostgreSQL on loopback"
    );
    // UPDRAFT_BENCH_ONLY=wide runs the throughput part alone.
    let only_wide = std::env::var("UPDRAFT_BENCH_ONLY").is_ok_and(|only| only == "wide");
    if !only_wide {
        handoff(&admin, sizes, 0).await?;
        handoff(&admin, sizes, sizes.heartbeaters).await?;
    }
    for &tasks in sizes.wide {
        let sqlite = wide(Backend::Sqlite, tasks, 0).await?;
        for workers in [1, 2] {
            let pg = wide(Backend::Postgres(&admin), tasks, workers).await?;
            println!(
                "{tasks} independent noop, {workers} worker(s): {:.0} TI/s (SQLite single serve: {:.0} TI/s, ratio {:.2})",
                pg,
                sqlite,
                pg / sqlite
            );
        }
    }
    if only_wide {
        return Ok(());
    }
    sleepers(&admin, sizes).await?;
    shipped_log(&admin, sizes).await?;
    worker_failover(&admin, sizes.worker_timeouts).await?;
    scheduler_failover(&admin).await?;
    Ok(())
}

/// The metadata database of one measurement.
#[derive(Clone, Copy)]
enum Backend<'a> {
    Sqlite,
    /// The server of this URL; each measurement gets a fresh database on it.
    Postgres(&'a str),
}

/// A folder with DAGs, a metadata database and the processes over them (killed on drop).
struct Cluster {
    dir: tempfile::TempDir,
    db: String,
    store: Store,
    processes: Vec<Child>,
}

impl Cluster {
    async fn new(backend: Backend<'_>, dag_source: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("dags"))?;
        std::fs::write(dir.path().join("dags/bench.toml"), dag_source)?;
        let db = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("bench.db").display()),
            Backend::Postgres(admin) => fresh_database(admin).await?,
        };
        let store = Store::connect(&db).await?;
        Ok(Self {
            dir,
            db,
            store,
            processes: Vec::new(),
        })
    }

    fn command(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Child> {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log")))?;
        Ok(Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .env("UPDRAFT_DAGS_FOLDER", self.dir.path().join("dags"))
            .env("UPDRAFT_DB", &self.db)
            .env(
                "UPDRAFT_LOGS_FOLDER",
                self.dir.path().join(format!("logs-{name}")),
            )
            .env("UPDRAFT_ADMIN_PASSWORD", "bench-password")
            .env("UPDRAFT_PUBLIC_READ", "true")
            .env(
                "RUST_LOG",
                std::env::var("UPDRAFT_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?)
    }

    fn serve(
        &mut self,
        name: &str,
        local_tasks: bool,
        env: &[(&str, &str)],
    ) -> anyhow::Result<usize> {
        let port = free_port()?;
        let bind = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--bind", &bind];
        if !local_tasks {
            args.push("--no-local-tasks");
        }
        let child = self.command(name, &args, env)?;
        self.processes.push(child);
        Ok(self.processes.len() - 1)
    }

    fn worker(&mut self, name: &str, slots: u32, env: &[(&str, &str)]) -> anyhow::Result<usize> {
        let slots = slots.to_string();
        let child = self.command(name, &["worker", "--name", name, "--slots", &slots], env)?;
        self.processes.push(child);
        Ok(self.processes.len() - 1)
    }

    fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        self.processes[index].kill()?;
        self.processes[index].wait()?;
        Ok(())
    }

    fn pid(&self, index: usize) -> u32 {
        self.processes[index].id()
    }

    async fn wait_for_workers(&self, count: usize) -> anyhow::Result<()> {
        wait_for(
            "the workers to register",
            Duration::from_secs(60),
            || async {
                let live = self.store.workers().await.unwrap_or_default();
                live.iter()
                    .filter(|w| w.state == WorkerState::Active)
                    .count()
                    >= count
            },
        )
        .await
    }

    /// Queues a manual run of the bench DAG and waits (`limit`) for it to succeed; its task
    /// instances and the run's (start, end).
    async fn run(
        &self,
        limit: Duration,
    ) -> anyhow::Result<(Vec<TaskInstanceRow>, DateTime<Utc>, DateTime<Utc>)> {
        let source = std::fs::read_to_string(self.dir.path().join("dags/bench.toml"))?;
        let dag = parse_dag(&source)?;
        let new = new_manual_run(&dag, Default::default(), None);
        let run = self
            .store
            .create_run(&new, &dag.new_task_instances())
            .await?
            .context("run id taken")?;
        let deadline = Instant::now() + limit;
        loop {
            let now = self
                .store
                .get_run(&run.dag_id, &run.run_id)
                .await?
                .context("run gone")?;
            if now.state.is_finished() {
                ensure!(
                    now.state == RunState::Success,
                    "the bench run ended {}",
                    now.state
                );
                let tis = self.store.task_instances(&run.dag_id, &run.run_id).await?;
                return Ok((
                    tis,
                    now.start.context("no start")?,
                    now.end.context("no end")?,
                ));
            }
            if Instant::now() > deadline {
                bail!(
                    "the bench run did not end within {limit:?}; logs in {}",
                    self.dir.path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn fresh_database(admin: &str) -> anyhow::Result<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "bench{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let (server, _) = admin
        .rsplit_once('/')
        .context("a database URL ends in /<db>")?;
    Ok(format!("{server}/{name}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn parse_dag(source: &str) -> anyhow::Result<Arc<Dag>> {
    Ok(Arc::new(parse_dag_file(Path::new("bench.toml"), source)?))
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn chain_source(len: usize, command: Option<&str>) -> String {
    let mut source = String::from("[dag]\nid = \"bench\"\nmax_active_tasks = 4096\n");
    for i in 0..len {
        match command {
            Some(command) => source.push_str(&format!(
                "[[task]]\nid = \"t{i}\"\noperator = \"shell\"\ncommand = \"{command}\"\n"
            )),
            None => source.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n")),
        }
        if i > 0 && command.is_none() {
            source.push_str(&format!("upstream = [\"t{}\"]\n", i - 1));
        }
    }
    source
}

fn wide_source(tasks: usize, command: Option<&str>) -> String {
    let mut source = String::from("[dag]\nid = \"bench\"\nmax_active_tasks = 10000\n");
    for i in 0..tasks {
        match command {
            Some(command) => source.push_str(&format!(
                "[[task]]\nid = \"t{i}\"\noperator = \"shell\"\ncommand = \"{command}\"\n"
            )),
            None => source.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n")),
        }
    }
    source
}

fn micros(time: Option<DateTime<Utc>>) -> anyhow::Result<i64> {
    Ok(time
        .context("task instance without start or end")?
        .timestamp_micros())
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// The chain's hand-offs through the queue (ms), with `heartbeaters` simulated workers
/// heartbeating every 100 ms meanwhile (each on its own row, as real workers do every 3 s:
/// 30 times the load of as many real ones).
async fn handoff(admin: &str, sizes: &Sizes, heartbeaters: usize) -> anyhow::Result<()> {
    let mut cluster = Cluster::new(
        Backend::Postgres(admin),
        &chain_source(sizes.chain_len, None),
    )
    .await?;
    cluster.serve("serve", false, &[])?;
    cluster.worker("w1", 32, &[])?;
    cluster.wait_for_workers(1).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let beats = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..heartbeaters {
        let (store, stop, beats) = (cluster.store.clone(), stop.clone(), beats.clone());
        let id = format!("ghost-{i}");
        store.register_worker(&ghost(&id)).await?;
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let _ = store.heartbeat_worker(&id, 0).await;
                beats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let started = Instant::now();
    let mut handoffs = Vec::new();
    let mut in_tasks = Vec::new();
    let mut walls = Vec::new();
    for _ in 0..sizes.chain_repeats {
        let (tis, start, end) = cluster.run(Duration::from_secs(120)).await?;
        walls.push((end - start).num_microseconds().unwrap_or(0));
        let find = |i: usize| {
            tis.iter()
                .find(|t| t.task_id == format!("t{i}"))
                .context("task missing")
        };
        for i in 0..sizes.chain_len {
            in_tasks.push(micros(find(i)?.end)? - micros(find(i)?.start)?);
            if i > 0 {
                handoffs.push(micros(find(i)?.start)? - micros(find(i - 1)?.end)?);
            }
        }
    }
    stop.cancel();
    handoffs.sort_unstable();
    in_tasks.sort_unstable();
    walls.sort_unstable();
    let label = if heartbeaters == 0 {
        String::from("no other heartbeats")
    } else {
        let rate = beats.load(std::sync::atomic::Ordering::Relaxed) as f64
            / started.elapsed().as_secs_f64();
        format!(
            "{heartbeaters} simulated workers heartbeating every 100 ms ({rate:.0} heartbeats/s)"
        )
    };
    println!(
        "hand-off through the queue, {}-noop chain x{} ({}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p50 <= 2 ms, p99 <= 10 ms)",
        sizes.chain_len,
        sizes.chain_repeats,
        label,
        percentile(&handoffs, 0.5),
        percentile(&handoffs, 0.99),
        percentile(&handoffs, 1.0)
    );
    println!(
        "  the same chain: a noop try start -> end p50 {:.2} ms (claim to its end written: operator, log, log shipping), run wall median {:.1} ms",
        percentile(&in_tasks, 0.5),
        percentile(&walls, 0.5)
    );
    Ok(())
}

fn ghost(id: &str) -> WorkerRow {
    let now = Utc::now();
    WorkerRow {
        worker_id: id.to_owned(),
        name: id.to_owned(),
        hostname: "bench".into(),
        queues: vec!["nobody".into()],
        slots: 1,
        running: 0,
        state: WorkerState::Active,
        started: now,
        heartbeat: now,
    }
}

/// Task instances per second of a wide noop DAG, run start to run end: on SQLite with one
/// `serve` doing everything, or through the queue with `workers` workers.
async fn wide(backend: Backend<'_>, tasks: usize, workers: usize) -> anyhow::Result<f64> {
    let mut cluster = Cluster::new(backend, &wide_source(tasks, None)).await?;
    match backend {
        Backend::Sqlite => {
            cluster.serve("serve", true, &[])?;
        }
        Backend::Postgres(_) => {
            cluster.serve("serve", false, &[])?;
            for i in 0..workers {
                cluster.worker(&format!("w{i}"), 32, &[])?;
            }
            cluster.wait_for_workers(workers).await?;
        }
    }
    // Let serve come up (its first queued-run poll).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, start, end) = cluster.run(Duration::from_secs(600)).await?;
    let seconds = (end - start).num_microseconds().unwrap_or(1) as f64 / 1e6;
    Ok(tasks as f64 / seconds)
}

/// `sleep 0.2` tasks with 16 slots per worker: 2 workers against 1.
async fn sleepers(admin: &str, sizes: &Sizes) -> anyhow::Result<()> {
    let mut seconds = Vec::new();
    for workers in [1, 2] {
        let mut cluster = Cluster::new(
            Backend::Postgres(admin),
            &wide_source(sizes.sleepers, Some("sleep 0.2")),
        )
        .await?;
        cluster.serve("serve", false, &[])?;
        for i in 0..workers {
            cluster.worker(&format!("w{i}"), 16, &[])?;
        }
        cluster.wait_for_workers(workers).await?;
        let (_, start, end) = cluster.run(Duration::from_secs(600)).await?;
        seconds.push((end - start).num_milliseconds() as f64 / 1000.0);
    }
    let ideal = sizes.sleepers as f64 * 0.2 / 16.0;
    println!(
        "{} tasks of `sleep 0.2`, 16 slots per worker: 1 worker {:.2} s (ideal {:.2} s), 2 workers {:.2} s: {:.2}x (target >= 1.8x)",
        sizes.sleepers,
        seconds[0],
        ideal,
        seconds[1],
        seconds[0] / seconds[1]
    );
    Ok(())
}

/// SIGKILL a worker mid-try: time until the try runs again on the other worker.
async fn worker_failover(admin: &str, timeouts: &[&str]) -> anyhow::Result<()> {
    for &timeout in timeouts {
        let source = "[dag]\nid = \"bench\"\n[[task]]\nid = \"long\"\noperator = \"shell\"\nretries = 1\nretry_delay = \"0s\"\ncommand = \"sleep 600\"\n";
        let mut cluster = Cluster::new(Backend::Postgres(admin), source).await?;
        cluster.serve("serve", false, &[("UPDRAFT_WORKER_TIMEOUT", timeout)])?;
        // Heartbeats well within the timeout (a quarter of it, at most the default 3 s): at
        // 3 s a live worker was declared lost under a 2 s timeout and its try retried before
        // the kill, and the bench waited for a retry that had already come (a CI failure).
        let heartbeat = (humantime::parse_duration(timeout)? / 4).min(Duration::from_secs(3));
        let heartbeat = format!("{}ms", heartbeat.as_millis());
        let beat = [("UPDRAFT_HEARTBEAT", heartbeat.as_str())];
        let first = cluster.worker("first", 4, &beat)?;
        cluster.wait_for_workers(1).await?;
        let source_dag = parse_dag(source)?;
        let new = new_manual_run(&source_dag, Default::default(), None);
        cluster
            .store
            .create_run(&new, &source_dag.new_task_instances())
            .await?;
        let store = cluster.store.clone();
        let running = |try_number: u32| {
            let store = store.clone();
            let run_id = new.run_id.clone();
            async move {
                store
                    .task_instance("bench", &run_id, "long")
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|t| t.state == TiState::Running && t.try_number == try_number)
            }
        };
        wait_for("the first try", Duration::from_secs(60), || running(1)).await?;
        cluster.worker("second", 4, &beat)?;
        cluster.wait_for_workers(2).await?;
        ensure!(
            running(1).await,
            "the first try ended before its worker was killed"
        );
        let killed = Instant::now();
        cluster.kill(first)?;
        wait_for("the retry elsewhere", Duration::from_secs(120), || {
            running(2)
        })
        .await?;
        println!(
            "worker failover (SIGKILL mid-try -> its retry running on the other worker), --worker-timeout {timeout}: {:.2} s",
            killed.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// SIGKILL the active `serve`: time until the standby's first scheduled run.
async fn scheduler_failover(admin: &str) -> anyhow::Result<()> {
    let source = "[dag]\nid = \"bench\"\nschedule = \"* * * * * *\"\nmax_active_runs = 64\n[[task]]\nid = \"t\"\noperator = \"noop\"\n";
    let mut cluster = Cluster::new(Backend::Postgres(admin), source).await?;
    let a = cluster.serve("a", true, &[])?;
    let b = cluster.serve("b", true, &[])?;
    let store = cluster.store.clone();
    wait_for(
        "a scheduler to hold the lease",
        Duration::from_secs(60),
        || async { store.scheduler_lease().await.ok().flatten().is_some() },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let holder = store.scheduler_lease().await?.context("no lease")?.holder;
    let active = if holder.ends_with(&format!(":{}", cluster.pid(a))) {
        a
    } else {
        b
    };
    let killed_at = Utc::now();
    let killed = Instant::now();
    cluster.kill(active)?;
    wait_for(
        "the standby's first run",
        Duration::from_secs(60),
        || async {
            store
                .latest_runs("bench", None, 20)
                .await
                .unwrap_or_default()
                .iter()
                .any(|r| r.queued_at > killed_at)
        },
    )
    .await?;
    println!(
        "scheduler failover (SIGKILL the active serve -> the standby's first scheduled run; lease 5 s, renewed every 1 s): {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A log of `log_mb` MB shipped to the store (as a worker does, in 256 KB chunks of 100-byte
/// lines), then read through `serve`'s reader: the first page (last 1,000 lines), a forward
/// read from the start, and a search that scans it all.
async fn shipped_log(admin: &str, sizes: &Sizes) -> anyhow::Result<()> {
    use orchestrator::logs::{LogPart, LogSource, TryLogKey};
    use orchestrator::store::LogKey;
    let store = Store::connect(&fresh_database(admin).await?).await?;
    let line = format!("{}\n", "x".repeat(99));
    let chunk: String = line.repeat(256 * 1024 / line.len());
    let chunks = sizes.log_mb * 1024 * 1024 / chunk.len();
    let key = LogKey {
        dag_id: "bench",
        run_id: "manual__1",
        task_id: "talk",
        try_number: 1,
    };
    let started = Instant::now();
    let mut offset = 0u64;
    for _ in 0..chunks {
        store.append_log_chunk(key, offset, &chunk).await?;
        offset += chunk.len() as u64;
    }
    let shipping = started.elapsed();
    let source = LogSource::Shipped {
        store: store.clone(),
        key: TryLogKey {
            dag_id: "bench".into(),
            run_id: "manual__1".into(),
            task_id: "talk".into(),
            try_number: 1,
        },
    };
    let mut firsts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let page = source.read(LogPart::Tail { lines: 1000 }).await?;
        ensure!(
            page.text.lines().count() == 1000,
            "the first page has 1,000 lines"
        );
        firsts.push(started.elapsed().as_micros() as i64);
    }
    firsts.sort_unstable();
    let started = Instant::now();
    let forward = source.read_new(0, false).await?;
    let forward_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let found = source.search("no such text", 10).await?;
    ensure!(found.is_empty());
    let search_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "a {} MB log shipped to PostgreSQL ({} chunks in {:.1} s, {:.0} MB/s): first page (last 1,000 lines) p50 {:.1} ms, max {:.1} ms; the first {:.1} MB from the start {forward_ms:.0} ms; a search through all of it {search_ms:.0} ms",
        sizes.log_mb,
        chunks,
        shipping.as_secs_f64(),
        sizes.log_mb as f64 / shipping.as_secs_f64(),
        percentile(&firsts, 0.5),
        percentile(&firsts, 1.0),
        forward.text.len() as f64 / 1e6,
    );
    Ok(())
}
