//! `scripts/bench scheduler`: orchestration overhead of the real executor on a durable SQLite
//! store (every state change committed before the next step), `orchestrator run` as a user
//! runs it (per hand-off, and a sweep of DAG sizes: time per task and peak RSS), and idle
//! memory of `serve`.
//!
//! `cargo bench --bench scheduler` runs the full sizes; under `cargo test` (no `--bench`
//! argument) it runs tiny sizes once, so the suite proves the benchmark still works.

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use orchestrator::{
    dag::{Dag, parse_dag_file},
    executor::{Executor, ExecutorConfig, RunOutcome},
    logs::LogHub,
    scheduler::new_manual_run,
    store::{RunState, Store, TaskInstanceRow},
};

/// How big each measurement is.
/// The allocator of the `orchestrator` binary, so the executor runs here as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Sizes {
    chain_len: usize,
    chain_repeats: usize,
    independent: usize,
    throughput_repeats: usize,
    idle_dags: usize,
    idle_wait: Duration,
    /// Sizes of the `orchestrator run` sweep: wide DAGs and chains, smallest first.
    sweep_wide: &'static [usize],
    sweep_chain: &'static [usize],
    /// Runs of each DAG of the CLI hand-off figure ((41-chain - 1 task) / 40).
    cli_repeats: usize,
}

const FULL: Sizes = Sizes {
    chain_len: 40,
    chain_repeats: 5,
    independent: 500,
    throughput_repeats: 5,
    idle_dags: 50,
    idle_wait: Duration::from_secs(5),
    sweep_wide: &[1_000, 5_000, 20_000],
    sweep_chain: &[250, 1_000, 4_000],
    cli_repeats: 11,
};

const SMOKE: Sizes = Sizes {
    chain_len: 3,
    chain_repeats: 1,
    independent: 10,
    throughput_repeats: 1,
    idle_dags: 2,
    idle_wait: Duration::from_millis(200),
    sweep_wide: &[10, 20],
    sweep_chain: &[5, 10],
    cli_repeats: 1,
};

fn main() -> anyhow::Result<()> {
    orchestrator::alloc::set_up();
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let scratch = tempfile::tempdir()?;
    SCRATCH_ROOT.get_or_init(|| scratch.path().to_path_buf());
    let runtime = tokio::runtime::Runtime::new()?;
    // UPDRAFT_BENCH_ONLY=throughput runs the 500 independent tasks alone.
    let only_throughput =
        std::env::var("UPDRAFT_BENCH_ONLY").is_ok_and(|only| only == "throughput");
    if !only_throughput {
        runtime.block_on(chains(&sizes))?;
    }
    runtime.block_on(throughput(&sizes, LogsOn::Disk))?;
    // The same on a memory file system, where it exists: what the disk's file
    // creation costs (it moves by 10x from hour to hour on this guest) left out.
    if Path::new("/dev/shm").is_dir() {
        runtime.block_on(throughput(&sizes, LogsOn::Memory))?;
    }
    if only_throughput {
        return Ok(());
    }
    cli_handoff(&sizes)?;
    size_sweep(&sizes)?;
    idle_rss(&sizes)?;
    Ok(())
}

/// The folder holding every phase's folder: see [`scratch_folder`].
static SCRATCH_ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// A new temporary folder, kept until the bench ends (its root goes then, on any return).
/// ext4 without a journal (this guest's disk) skips inodes freed in the last 1-5 minutes
/// when it creates a file or folder, reading each one's inode: removing the 40,000 of a
/// 20,000-task run's logs made every folder and file the next phases created cost 300-700 us
/// instead of 30-60 (BENCHMARKS.md).
fn scratch_folder() -> anyhow::Result<std::path::PathBuf> {
    let root = SCRATCH_ROOT
        .get()
        .context("the bench's scratch folder is not made yet")?;
    Ok(tempfile::tempdir_in(root)?.keep())
}

/// One executor on a fresh SQLite file, as `serve` builds it.
struct Bench {
    dir: std::path::PathBuf,
    store: Store,
    executor: Executor,
}

/// Where a bench's task logs go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LogsOn {
    /// The temporary folder, as a user's logs folder.
    Disk,
    /// `/dev/shm` (memory).
    Memory,
}

impl Bench {
    async fn new(parallelism: usize) -> anyhow::Result<Self> {
        Self::with_logs(parallelism, LogsOn::Disk).await
    }

    async fn with_logs(parallelism: usize, logs_on: LogsOn) -> anyhow::Result<Self> {
        let dir = scratch_folder()?;
        let store = Store::connect(&format!("sqlite://{}", dir.join("bench.db").display())).await?;
        let logs = match logs_on {
            LogsOn::Disk => dir.join("logs"),
            LogsOn::Memory => memory_logs(),
        };
        let executor = Executor::new(
            store.clone(),
            LogHub::new(logs),
            ExecutorConfig {
                parallelism,
                ..Default::default()
            },
        );
        Ok(Self {
            dir,
            store,
            executor,
        })
    }

    /// Creates a manual run (the trigger) and drives it; returns the trigger time and the
    /// task instances as the store recorded them.
    async fn run(&self, dag: &Arc<Dag>) -> anyhow::Result<(DateTime<Utc>, Vec<TaskInstanceRow>)> {
        let triggered = Utc::now();
        let new = new_manual_run(dag, Default::default(), Some(self.executor.owner().into()));
        let run = self
            .store
            .create_run(&new, &dag.new_task_instances())
            .await?
            .context("run id taken")?;
        let outcome = self.executor.drive_run(dag.clone(), run.clone()).await?;
        ensure!(
            outcome == RunOutcome::Finished(RunState::Success),
            "{} ended {outcome:?}",
            dag.id
        );
        let tis = self.store.task_instances(&run.dag_id, &run.run_id).await?;
        Ok((triggered, tis))
    }
}

fn dag(source: &str) -> anyhow::Result<Arc<Dag>> {
    Ok(Arc::new(parse_dag_file(Path::new("bench.toml"), source)?))
}

/// A chain `t0 -> t1 -> ...` where every task has the operator config `task`.
fn chain_dag(id: &str, len: usize, task: &str) -> anyhow::Result<Arc<Dag>> {
    let mut source = format!("[dag]\nid = \"{id}\"\n");
    for i in 0..len {
        source.push_str(&format!("[[task]]\nid = \"t{i}\"\n{task}\n"));
        if i > 0 {
            source.push_str(&format!("upstream = [\"t{}\"]\n", i - 1));
        }
    }
    dag(&source)
}

fn micros(time: Option<DateTime<Utc>>) -> anyhow::Result<i64> {
    Ok(time
        .context("task instance without start or end")?
        .timestamp_micros())
}

/// The chain's figures from the store: wall (trigger -> last success), hand-offs (upstream end
/// -> downstream start) and the time spent inside tasks.
struct ChainFigures {
    wall_us: i64,
    in_tasks_us: i64,
    handoffs_us: Vec<i64>,
}

fn chain_figures(
    triggered: DateTime<Utc>,
    tis: &[TaskInstanceRow],
    len: usize,
) -> anyhow::Result<ChainFigures> {
    let by_index = |i: usize| {
        tis.iter()
            .find(|t| t.task_id == format!("t{i}"))
            .with_context(|| format!("t{i} missing"))
    };
    let mut handoffs_us = Vec::new();
    let mut in_tasks_us = 0;
    for i in 0..len {
        let ti = by_index(i)?;
        in_tasks_us += micros(ti.end)? - micros(ti.start)?;
        if i > 0 {
            handoffs_us.push(micros(ti.start)? - micros(by_index(i - 1)?.end)?);
        }
    }
    let wall_us = micros(by_index(len - 1)?.end)? - triggered.timestamp_micros();
    Ok(ChainFigures {
        wall_us,
        in_tasks_us,
        handoffs_us,
    })
}

async fn chains(sizes: &Sizes) -> anyhow::Result<()> {
    let bench = Bench::new(32).await?;
    let noop = chain_dag("chain_noop", sizes.chain_len, "operator = \"noop\"")?;
    report_chain(&bench, &noop, "noop", sizes).await?;
    let spin = calibrate_spin(Duration::from_millis(10))?;
    let cpu = chain_dag(
        "chain_cpu",
        sizes.chain_len,
        &format!("operator = \"shell\"\ncommand = \"{}\"", spin_command(spin)),
    )?;
    report_chain(&bench, &cpu, "~10 ms CPU (shell)", sizes).await
}

async fn report_chain(
    bench: &Bench,
    dag: &Arc<Dag>,
    label: &str,
    sizes: &Sizes,
) -> anyhow::Result<()> {
    let mut walls = Vec::new();
    let mut overheads = Vec::new();
    let mut in_tasks = Vec::new();
    let mut handoffs = Vec::new();
    for _ in 0..sizes.chain_repeats {
        let (triggered, tis) = bench.run(dag).await?;
        let figures = chain_figures(triggered, &tis, sizes.chain_len)?;
        walls.push(figures.wall_us);
        in_tasks.push(figures.in_tasks_us);
        overheads.push(figures.wall_us - figures.in_tasks_us);
        handoffs.extend(figures.handoffs_us);
    }
    println!(
        "chain of {} {label} tasks ({} runs): wall {} ms (median), in tasks {} ms, orchestration overhead {} ms; hand-off p50 {} ms, p99 {} ms, max {} ms",
        sizes.chain_len,
        sizes.chain_repeats,
        ms(percentile(&mut walls, 50.0)),
        ms(percentile(&mut in_tasks, 50.0)),
        ms(percentile(&mut overheads, 50.0)),
        ms(percentile(&mut handoffs, 50.0)),
        ms(percentile(&mut handoffs, 99.0)),
        ms(percentile(&mut handoffs, 100.0)),
    );
    Ok(())
}

/// A bash busy loop of `iterations` steps (bash starts in a few ms; the loop burns the rest).
fn spin_command(iterations: u64) -> String {
    format!("i=0; while [ $i -lt {iterations} ]; do i=$((i+1)); done")
}

/// Loop steps for which the whole `bash -c` process takes about `target`.
fn calibrate_spin(target: Duration) -> anyhow::Result<u64> {
    let time = |iterations: u64| -> anyhow::Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let status = Command::new("bash")
                .arg("-c")
                .arg(spin_command(iterations))
                .status()?;
            ensure!(status.success(), "bash busy loop failed");
            best = best.min(started.elapsed());
        }
        Ok(best)
    };
    let empty = time(0)?;
    let probe = 20_000;
    let per_step = (time(probe)? - empty).as_secs_f64() / probe as f64;
    let wanted = target.saturating_sub(empty).as_secs_f64();
    Ok(((wanted / per_step) as u64).max(1))
}

/// The logs folder of the benches whose logs are in memory.
fn memory_logs() -> std::path::PathBuf {
    Path::new("/dev/shm").join(format!("updraft-bench-logs-{}", std::process::id()))
}

/// The file system's cost of what each try's log takes (a file with two lines in its run's
/// folder), in `dir`, one after the other.
fn log_file_cost(dir: &Path, tries: usize) -> anyhow::Result<Duration> {
    use std::io::Write as _;
    let folder = dir.join("probe");
    std::fs::create_dir_all(&folder)?;
    let start = Instant::now();
    for i in 0..tries {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(folder.join(format!("t{i}.1.log")))?;
        file.write_all(b"Try 1 of 1\nTask succeeded\n")?;
    }
    Ok(start.elapsed() / tries as u32)
}

/// The file system holding `dir` (the longest mount point above it), and for ext4 whether
/// it has a journal: without one, creating a file walks the inodes freed in the last minutes,
/// and the figure says more about what was removed before than about Updraft (BENCHMARKS.md).
fn file_system_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // Each line: id parent major:minor root mount-point options... - type source options.
    let mount = mounts
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let point = before.split(' ').nth(4)?;
            let mut after = after.split(' ');
            Some((point, after.next()?, after.next()?))
        })
        .filter(|(point, _, _)| dir.starts_with(point))
        .max_by_key(|(point, _, _)| point.len());
    let Some((_, kind, source)) = mount else {
        return "file system unknown".into();
    };
    if kind != "ext4" {
        return kind.to_owned();
    }
    let device = source.rsplit('/').next().unwrap_or(source);
    let journaled = std::fs::read_dir("/proc/fs/jbd2").is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{device}-"))
        })
    });
    if journaled {
        "ext4".into()
    } else {
        "ext4 without a journal".into()
    }
}

async fn throughput(sizes: &Sizes, logs_on: LogsOn) -> anyhow::Result<()> {
    let n = sizes.independent;
    let mut source = format!("[dag]\nid = \"wide\"\nmax_active_tasks = {n}\n");
    for i in 0..n {
        source.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n"));
    }
    let dag = dag(&source)?;
    let bench = Bench::with_logs(n, logs_on).await?;
    let where_logs = match logs_on {
        LogsOn::Disk => {
            let cost = log_file_cost(&bench.dir, 200)?;
            format!(
                "logs on disk ({}): a try's file costs {} us here now",
                file_system_of(&bench.dir),
                cost.as_micros()
            )
        }
        LogsOn::Memory => "logs on /dev/shm".to_string(),
    };
    let mut rates = Vec::new();
    for _ in 0..sizes.throughput_repeats {
        let (triggered, tis) = bench.run(&dag).await?;
        let last_end = tis
            .iter()
            .map(|t| micros(t.end))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .max()
            .context("no task instances")?;
        let seconds = (last_end - triggered.timestamp_micros()) as f64 / 1e6;
        rates.push((n as f64 / seconds) as i64);
    }
    let in_order = rates
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{n} independent noop tasks ({} runs, {where_logs}): {} task instances/s (median), {} min, {} max; in run order {in_order}",
        sizes.throughput_repeats,
        percentile(&mut rates, 50.0),
        percentile(&mut rates, 0.0),
        percentile(&mut rates, 100.0),
    );
    if logs_on == LogsOn::Memory {
        std::fs::remove_dir_all(memory_logs())?;
    }
    Ok(())
}

/// What one `orchestrator run` took: wall time of the whole command and its peak RSS.
struct CliRun {
    wall: Duration,
    peak_kb: u64,
}

/// Runs `orchestrator run` on `source` (DAG id `bench`) on a fresh SQLite file, as a new user
/// would; the peak RSS is the process's high-water mark, read every 5 ms until it exits.
fn cli_run(source: &str) -> anyhow::Result<CliRun> {
    let dir = scratch_folder()?;
    let dags = dir.join("dags");
    std::fs::create_dir(&dags)?;
    std::fs::write(dags.join("bench.toml"), source)?;
    let started = Instant::now();
    let mut child = orchestrator_in(&dir).args(["run", "bench"]).spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| status_field(&status, "VmHWM:"))
        {
            peak_kb = peak_kb.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    ensure!(status.success(), "orchestrator run ended {status}");
    Ok(CliRun { wall, peak_kb })
}

/// The `orchestrator` binary over `dir`'s `dags` folder, SQLite file and logs, quiet.
fn orchestrator_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    command
        .env("UPDRAFT_DAGS_FOLDER", dir.join("dags"))
        .env(
            "UPDRAFT_DB",
            format!("sqlite://{}", dir.join("updraft.db").display()),
        )
        .env("UPDRAFT_LOGS_FOLDER", dir.join("logs"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    command
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn wide_source(n: usize) -> String {
    let mut source = String::from("[dag]\nid = \"bench\"\n");
    for i in 0..n {
        source.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n"));
    }
    source
}

fn chain_source(n: usize) -> String {
    let mut source = String::from("[dag]\nid = \"bench\"\n");
    for i in 0..n {
        source.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n"));
        if i > 0 {
            source.push_str(&format!("upstream = [\"t{}\"]\n", i - 1));
        }
    }
    source
}

/// Per hand-off through the whole CLI: (41-noop chain - 1-task DAG) / 40, medians of runs.
/// The two DAGs take turns, so a slow minute of the machine weighs on both alike.
fn cli_handoff(sizes: &Sizes) -> anyhow::Result<()> {
    let (one_source, chain_source) = (chain_source(1), chain_source(41));
    let (mut ones, mut chains) = (Vec::new(), Vec::new());
    for _ in 0..sizes.cli_repeats {
        ones.push(cli_run(&one_source)?.wall.as_micros() as i64);
        chains.push(cli_run(&chain_source)?.wall.as_micros() as i64);
    }
    let one = percentile(&mut ones, 50.0);
    let chain = percentile(&mut chains, 50.0);
    println!(
        "orchestrator run, 41-noop chain {} ms - 1-task DAG {} ms = {} ms per hand-off ({} runs each, taking turns, medians)",
        ms(chain),
        ms(one),
        ms((chain - one) / 40),
        sizes.cli_repeats
    );
    Ok(())
}

/// `orchestrator run` of wide and chain noop DAGs of growing size: the time per task and its
/// ratio to the smallest size (flat is 1.00), and the peak RSS.
fn size_sweep(sizes: &Sizes) -> anyhow::Result<()> {
    println!("| DAG | tasks | wall | per task | TI/s | per task vs smallest | peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    type Shape<'a> = (&'a str, &'a [usize], fn(usize) -> String);
    let shapes: [Shape<'_>; 2] = [
        ("wide", sizes.sweep_wide, wide_source),
        ("chain", sizes.sweep_chain, chain_source),
    ];
    for (shape, counts, source) in shapes {
        let mut smallest_per_task = None;
        for &n in counts {
            let run = cli_run(&source(n))?;
            let per_task_us = run.wall.as_secs_f64() * 1e6 / n as f64;
            let first = *smallest_per_task.get_or_insert(per_task_us);
            println!(
                "| {shape} | {n} | {} ms | {per_task_us:.0} us | {:.0} | {:.2}x | {:.1} MB |",
                run.wall.as_millis(),
                n as f64 / run.wall.as_secs_f64(),
                per_task_us / first,
                run.peak_kb as f64 / 1024.0
            );
        }
    }
    Ok(())
}

/// Peak and current RSS of `orchestrator serve` idle with `idle_dags` DAGs loaded.
fn idle_rss(sizes: &Sizes) -> anyhow::Result<()> {
    let dir = scratch_folder()?;
    let dags = dir.join("dags");
    std::fs::create_dir(&dags)?;
    for i in 0..sizes.idle_dags {
        std::fs::write(dags.join(format!("dag_{i}.toml")), idle_dag(i))?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut serve = orchestrator_in(&dir)
        .env("UPDRAFT_PUBLIC_READ", "true")
        .arg("serve")
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .spawn()?;
    let measured = measure_idle(serve.id(), port, sizes);
    let _ = serve.kill();
    let _ = serve.wait();
    let (dag_count, peak_kb, now_kb) = measured?;
    ensure!(
        dag_count == sizes.idle_dags,
        "serve loaded {dag_count} DAGs, expected {}",
        sizes.idle_dags
    );
    println!(
        "orchestrator serve idle with {dag_count} DAGs: peak RSS {:.1} MB, RSS now {:.1} MB",
        peak_kb as f64 / 1024.0,
        now_kb as f64 / 1024.0
    );
    Ok(())
}

fn measure_idle(pid: u32, port: u16, sizes: &Sizes) -> anyhow::Result<(usize, u64, u64)> {
    let started = Instant::now();
    let dags = loop {
        if let Some(body) = http_get(port, "/api/v1/dags") {
            break body;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("serve did not answer on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dag_count = dags.matches("\"dag_id\"").count();
    std::thread::sleep(sizes.idle_wait);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status_field(&status, name).with_context(|| format!("{name} missing in /proc/{pid}/status"))
    };
    Ok((dag_count, field("VmHWM:")?, field("VmRSS:")?))
}

/// A realistic idle DAG: a cron schedule in the future, a few templated shell tasks.
fn idle_dag(i: usize) -> String {
    format!(
        r#"[dag]
id = "idle_{i}"
schedule = "{minute} 3 * * *"
start_date = "2100-01-01T00:00:00Z"
tags = ["bench"]
[dag.params]
name = "dag {i}"

[[task]]
id = "extract"
operator = "http"
url = "http://127.0.0.1:9/{{{{ params.name }}}}"

[[task]]
id = "transform"
operator = "shell"
upstream = ["extract"]
command = "echo {{{{ upstream.extract.status }}}}"
retries = 2

[[task]]
id = "load"
operator = "sleep"
upstream = ["transform"]
duration = "1s"
"#,
        minute = i % 60
    )
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

/// The `p`th percentile (nearest rank) of `values`.
fn percentile(values: &mut [i64], p: f64) -> i64 {
    values.sort_unstable();
    if values.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

fn ms(micros: i64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}
