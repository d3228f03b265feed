//! Scale-out on PostgreSQL, in separate processes: `serve --no-local-tasks` schedules, two
//! `orchestrator worker`s (each with its own logs folder) claim and run the tasks.

use crate::support;

use std::{collections::HashMap, path::Path, time::Duration};

use orchestrator::store::{RunState, Store, TaskInstanceRow, TiState};
use support::serve::{Serve, WorkerProcess, cli, cli_output};

/// A DAG of `root` then `fan_out` tasks below it, each appending one line to its own
/// side-effect file (and `pre` first, if given).
fn fan_dag(id: &str, dir: &Path, fan_out: usize, pre: &str) -> String {
    let effects = dir.join("effects");
    std::fs::create_dir_all(&effects).unwrap();
    let effect = |task: &str| {
        format!(
            "command = \"{pre}echo {{{{ task.try_number }}}} >> {}/{task}\"\n",
            effects.display()
        )
    };
    let mut source = format!(
        "[dag]\nid = \"{id}\"\nmax_active_tasks = 64\n[[task]]\nid = \"root\"\noperator = \"shell\"\n{}",
        effect("root")
    );
    for i in 0..fan_out {
        source.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\noperator = \"shell\"\nupstream = [\"root\"]\nretries = 1\nretry_delay = \"1s\"\n{}",
            effect(&format!("t{i}"))
        ));
    }
    source
}

fn env(db: &str) -> Vec<(&str, &str)> {
    vec![("UPDRAFT_DB", db)]
}

/// A fresh PostgreSQL database and a test folder with an empty `dags/`.
async fn fresh(prefix: &str) -> (String, tempfile::TempDir) {
    let db = support::fresh_postgres_database(prefix).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dags")).unwrap();
    (db, dir)
}

/// `serve --no-local-tasks` over `dir` and `db` with `extra` settings, once healthy.
fn scheduler(dir: &Path, db: &str, extra: &[(&str, &str)]) -> Serve {
    let mut serve_env = env(db);
    serve_env.push(("UPDRAFT_NO_LOCAL_TASKS", "true"));
    serve_env.extend_from_slice(extra);
    let mut serve = Serve::start(dir, &serve_env);
    serve.wait_healthy(Duration::from_secs(30));
    serve
}

async fn trigger(dir: &Path, db: &str, dag_id: &str) -> String {
    let out = cli_output(
        cli(dir)
            .env("UPDRAFT_DB", db)
            .args(["dags", "trigger", dag_id]),
    );
    out.split_whitespace()
        .find(|word| word.starts_with("manual__"))
        .unwrap_or_else(|| panic!("no run id in {out:?}"))
        .trim_end_matches(['.', ','])
        .to_owned()
}

async fn wait_for_run(store: &Store, dag_id: &str, run_id: &str, limit: Duration) -> RunState {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(run)) = store.get_run(dag_id, run_id).await
            && run.state.is_finished()
        {
            return run.state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id} did not end within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_task(tis: Vec<TaskInstanceRow>) -> HashMap<String, TaskInstanceRow> {
    tis.into_iter().map(|t| (t.task_id.clone(), t)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_a_run_and_every_task_runs_exactly_once() {
    let (db, dir) = fresh("workers").await;
    let id = "fan";
    std::fs::write(
        dir.path().join("dags/fan.toml"),
        fan_dag(id, dir.path(), 199, ""),
    )
    .unwrap();
    let serve = scheduler(dir.path(), &db, &[]);
    // w2 writes its own log as JSON lines.
    let mut json_env = env(&db);
    json_env.push(("UPDRAFT_LOG_FORMAT", "json"));
    let workers = vec![
        WorkerProcess::start(dir.path(), "w1", &env(&db)),
        WorkerProcess::start(dir.path(), "w2", &json_env),
    ];
    let store = Store::connect(&db).await.unwrap();
    support::eventually(
        "both workers to register",
        Duration::from_secs(30),
        || async { store.workers().await.is_ok_and(|w| w.len() == 2) },
    )
    .await;
    let run_id = trigger(dir.path(), &db, id).await;
    let state = wait_for_run(&store, id, &run_id, Duration::from_secs(120)).await;
    let tis = by_task(store.task_instances(id, &run_id).await.unwrap());
    assert_eq!(state, RunState::Success, "serve:\n{}", serve.log_tail());
    assert_eq!(tis.len(), 200);
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    for (task_id, ti) in &tis {
        assert_eq!(
            (ti.state, ti.try_number),
            (TiState::Success, 1),
            "{task_id}"
        );
        *per_worker
            .entry(ti.hostname.clone().unwrap_or_default())
            .or_default() += 1;
        let effect = std::fs::read_to_string(dir.path().join("effects").join(task_id)).unwrap();
        assert_eq!(effect, "1\n", "{task_id} ran once, in its first try");
    }
    assert_eq!(
        per_worker.len(),
        2,
        "both workers ran tasks: {per_worker:?}"
    );
    assert!(per_worker.contains_key("w1") && per_worker.contains_key("w2"));
    // Each try's log is in the folder of the worker that ran it.
    let ti = &tis["t7"];
    let log = dir
        .path()
        .join(format!("logs-{}", ti.hostname.as_deref().unwrap()))
        .join(id);
    assert!(log.exists(), "{} holds t7's log", log.display());
    let listed = cli_output(
        cli(dir.path())
            .env("UPDRAFT_DB", &db)
            .args(["workers", "list"]),
    );
    assert!(
        listed.contains("w1") && listed.contains("w2") && listed.contains("active"),
        "{listed}"
    );
    let json_log = workers[1].log();
    let lines: Vec<serde_json::Value> = json_log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "Worker registered" && l["level"] == "INFO"),
        "{json_log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "Task state changed" && l["to"] == "success")
    );
    for worker in workers {
        worker.terminate();
    }
    let listed = cli_output(
        cli(dir.path())
            .env("UPDRAFT_DB", &db)
            .args(["workers", "list"]),
    );
    assert_eq!(listed.matches("stopped").count(), 2, "{listed}");
    serve.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_workers_tries_are_retried_on_the_other_and_its_children_die() {
    let (db, dir) = fresh("workerkill").await;
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let id = "slow";
    // Each try records its shell's pid, then sleeps long enough to be killed mid-try.
    let pre = format!(
        "echo $$ > {}/{{{{ task.id }}}}.{{{{ task.try_number }}}}; sleep 4; ",
        pids.display()
    );
    std::fs::write(
        dir.path().join("dags/slow.toml"),
        fan_dag(id, dir.path(), 6, &pre),
    )
    .unwrap();
    let serve = scheduler(dir.path(), &db, &[("UPDRAFT_WORKER_TIMEOUT", "3s")]);
    let mut worker_env = env(&db);
    worker_env.push(("UPDRAFT_HEARTBEAT", "500ms"));
    let doomed = WorkerProcess::start(dir.path(), "doomed", &worker_env);
    let store = Store::connect(&db).await.unwrap();
    support::eventually(
        "the first worker to register",
        Duration::from_secs(30),
        || async { store.workers().await.is_ok_and(|w| w.len() == 1) },
    )
    .await;
    let run_id = trigger(dir.path(), &db, id).await;
    // Kill it while it runs the fan-out (root has succeeded on it).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let running_there: Vec<String> = loop {
        let running: Vec<String> = store
            .task_instances(id, &run_id)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.state == TiState::Running && t.hostname.as_deref() == Some("doomed"))
            .map(|t| t.task_id)
            .collect();
        if running.len() >= 2 {
            break running;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the doomed worker never ran the fan-out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    support::eventually(
        "their shells to record their pids",
        Duration::from_secs(10),
        || async {
            running_there
                .iter()
                .all(|task| pids.join(format!("{task}.1")).exists())
        },
    )
    .await;
    doomed.kill();
    let _rescuer = WorkerProcess::start(dir.path(), "rescuer", &worker_env);
    let state = wait_for_run(&store, id, &run_id, Duration::from_secs(90)).await;
    assert_eq!(state, RunState::Success, "serve:\n{}", serve.log_tail());
    let tis = by_task(store.task_instances(id, &run_id).await.unwrap());
    for task in &running_there {
        let ti = &tis[task];
        assert_eq!(
            (ti.state, ti.try_number, ti.hostname.as_deref()),
            (TiState::Success, 2, Some("rescuer")),
            "{task} was retried on the other worker"
        );
        let pid: i32 = std::fs::read_to_string(pids.join(format!("{task}.1")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "the killed try's shell {pid} of {task} is gone");
        let effect = std::fs::read_to_string(dir.path().join("effects").join(task)).unwrap();
        assert_eq!(effect, "2\n", "{task}: only the second try finished");
    }
    let log = serve.log();
    assert!(
        log.contains("A worker stopped heartbeating"),
        "{}",
        serve.log_tail()
    );
    serve.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_serve_takes_over_the_schedule_without_duplicate_runs() {
    let (db, dir) = fresh("standby").await;
    let effects = dir.path().join("effects");
    std::fs::create_dir_all(&effects).unwrap();
    let id = "ticks";
    std::fs::write(
        dir.path().join("dags/ticks.toml"),
        format!(
            "[dag]\nid = \"{id}\"\nschedule = \"*/2 * * * * *\"\nmax_active_runs = 4\n[[task]]\nid = \"t\"\noperator = \"shell\"\ncommand = \"echo {{{{ run_id }}}} >> {}/runs\"\n",
            effects.display()
        ),
    )
    .unwrap();
    let mut serve_env = env(&db);
    serve_env.push(("UPDRAFT_WORKER_TIMEOUT", "3s"));
    let mut first = Serve::start(dir.path(), &serve_env);
    first.wait_healthy(Duration::from_secs(30));
    let mut second = Serve::start(dir.path(), &serve_env);
    second.wait_healthy(Duration::from_secs(30));
    let store = Store::connect(&db).await.unwrap();
    let successes = |store: Store| async move {
        store
            .latest_runs(id, None, 1000)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.state == RunState::Success)
            .count()
    };
    support::eventually("two scheduled runs", Duration::from_secs(30), || {
        let store = store.clone();
        async move { successes(store).await >= 2 }
    })
    .await;
    let holder = store
        .scheduler_lease()
        .await
        .unwrap()
        .expect("a lease")
        .holder;
    let (active, standby) = if holder.ends_with(&format!(":{}", first.pid())) {
        (first, second)
    } else {
        assert!(holder.ends_with(&format!(":{}", second.pid())), "{holder}");
        (second, first)
    };
    let health = |serve: &Serve| serve.get("/health").unwrap_or_default();
    assert!(
        health(&standby).contains(r#""schedules_here":false"#),
        "{}",
        health(&standby)
    );
    assert!(
        health(&active).contains(&format!(
            r#""lease_holder":"{holder}","schedules_here":true"#
        )),
        "{}",
        health(&active)
    );
    let before = successes(store.clone()).await;
    let killed = std::time::Instant::now();
    let killed_at = chrono::Utc::now();
    active.kill();
    support::eventually("the standby to schedule", Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            store
                .latest_runs(id, None, 1000)
                .await
                .unwrap_or_default()
                .iter()
                .any(|r| r.state == RunState::Success && r.queued_at > killed_at)
        }
    })
    .await;
    eprintln!(
        "The standby scheduled a run {:?} after the kill",
        killed.elapsed()
    );
    support::eventually("more runs", Duration::from_secs(30), || {
        let store = store.clone();
        async move { successes(store).await >= before + 2 }
    })
    .await;
    let runs = store.latest_runs(id, None, 1000).await.unwrap();
    let mut dates: Vec<_> = runs.iter().map(|r| r.logical_date).collect();
    dates.sort();
    dates.dedup();
    assert_eq!(dates.len(), runs.len(), "one run per tick");
    let lines = std::fs::read_to_string(effects.join("runs")).unwrap();
    let mut ran: Vec<&str> = lines.lines().collect();
    let count = ran.len();
    ran.sort();
    ran.dedup();
    assert_eq!(ran.len(), count, "no run's task ran twice: {lines}");
    let holder = store
        .scheduler_lease()
        .await
        .unwrap()
        .expect("a lease")
        .holder;
    assert!(holder.ends_with(&format!(":{}", standby.pid())), "{holder}");
    assert!(
        health(&standby).contains(r#""schedules_here":true"#),
        "{}",
        health(&standby)
    );
    standby.terminate();
}

/// The `lines` events of an SSE log stream body: (the offset after them, their lines).
fn sse_lines(body: &str) -> (Vec<(u64, Vec<String>)>, bool) {
    let mut events = Vec::new();
    let mut ended = false;
    for block in body.split("\n\n") {
        let mut kind = "";
        let mut id = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event: ") {
                kind = value.trim();
            } else if let Some(value) = line.strip_prefix("id: ") {
                id = value.trim().parse::<u64>().ok();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push(value.to_owned());
            } else if line == "data:" {
                data.push(String::new());
            }
        }
        match (kind, id) {
            ("lines", Some(id)) => events.push((id, data)),
            ("end", _) => ended = true,
            _ => {}
        }
    }
    (events, ended)
}

/// The whole body of a GET (an SSE stream: until it ends), within 60 s.
async fn body_of(url: String) -> String {
    let response = tokio::time::timeout(Duration::from_secs(60), async {
        reqwest::get(&url).await?.text().await
    });
    response
        .await
        .unwrap_or_else(|_| panic!("{url} did not end within 60 s"))
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The text after each log line's timestamp.
fn messages(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| {
            line.split_once(' ')
                .map_or(line.clone(), |(_, m)| m.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workers_try_is_tailed_live_through_a_serve_on_another_logs_folder() {
    let (db, dir) = fresh("remotelog").await;
    let id = "talk";
    std::fs::write(
        dir.path().join("dags/talk.toml"),
        format!(
            "[dag]\nid = \"{id}\"\n[[task]]\nid = \"talk\"\noperator = \"shell\"\ncommand = \"for i in $(seq 1 30); do echo line $i; sleep 0.05; done\"\n[[task]]\nid = \"hang\"\noperator = \"shell\"\nupstream = [\"talk\"]\ncommand = \"for i in $(seq 1 20); do echo early $i; done; sleep 120\"\n"
        ),
    )
    .unwrap();
    let serve = scheduler(dir.path(), &db, &[("UPDRAFT_WORKER_TIMEOUT", "3s")]);
    let worker = WorkerProcess::start(dir.path(), "far", &env(&db));
    let store = Store::connect(&db).await.unwrap();
    let run_id = trigger(dir.path(), &db, id).await;
    let base = format!("/dags/{id}/runs/{run_id}/tasks");
    support::eventually(
        "talk to start on the worker",
        Duration::from_secs(30),
        || async {
            store
                .task_instance(id, &run_id, "talk")
                .await
                .ok()
                .flatten()
                .is_some_and(|t| t.try_number == 1)
        },
    )
    .await;
    // Followed live from its first byte through the serve, which never ran it.
    let stream_url = format!("{}{base}/talk/logs/1/stream", serve.base_url());
    let follow = tokio::spawn(body_of(stream_url.clone()));
    let body = follow.await.unwrap();
    let (events, ended) = sse_lines(&body);
    assert!(ended, "the stream says the log ended:\n{body}");
    let said: Vec<String> = messages(events.iter().flat_map(|(_, lines)| lines.clone()))
        .into_iter()
        .filter(|m| m.starts_with("line "))
        .collect();
    let expected: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(said, expected, "every line once, in order:\n{body}");
    assert!(
        !dir.path().join("logs").join(id).exists(),
        "the serve's own logs folder holds no file of the worker's try"
    );
    // A reconnect from an event's id resumes after it: nothing lost, nothing twice.
    let (resume_at, seen) = events
        .iter()
        .scan(Vec::new(), |seen, (id, lines)| {
            seen.extend(lines.clone());
            Some((*id, seen.clone()))
        })
        .find(|(_, seen)| seen.len() >= 10)
        .expect("ten lines in");
    let resumed = body_of(format!("{stream_url}?from={resume_at}")).await;
    let (rest, ended) = sse_lines(&resumed);
    assert!(ended);
    let mut all = seen;
    all.extend(rest.into_iter().flat_map(|(_, lines)| lines));
    let all_events: Vec<String> = events.into_iter().flat_map(|(_, l)| l).collect();
    assert_eq!(all, all_events, "the resumed stream continues exactly");
    // The CLI on another machine (another logs folder) reads it too.
    let printed = cli_output(
        cli(dir.path())
            .env("UPDRAFT_DB", &db)
            .env("UPDRAFT_LOGS_FOLDER", dir.path().join("elsewhere"))
            .args(["tasks", "logs", id, &run_id, "talk"]),
    );
    assert!(
        printed.contains("line 1\n") && printed.contains("line 30\n"),
        "{printed}"
    );
    // The next task writes 20 lines, then hangs: its worker is SIGKILLed mid-try, and the
    // lines it wrote stay readable.
    let page = format!("{base}/hang/logs/1");
    support::wait_until("hang's lines to show", Duration::from_secs(30), || {
        serve.get(&page).is_some_and(|p| p.contains("early 20"))
    });
    worker.kill();
    let tail = serve
        .get(&format!("{base}/hang/logs/1/chunk?before=999999999"))
        .unwrap();
    for i in [1, 20] {
        assert!(tail.contains(&format!("early {i}\\n")), "{tail}");
    }
    let end = wait_for_run(&store, id, &run_id, Duration::from_secs(60)).await;
    assert_eq!(
        end,
        RunState::Failed,
        "hang's only try died with its worker"
    );
    let after = body_of(format!("{}{base}/hang/logs/1/stream", serve.base_url())).await;
    let (events, ended) = sse_lines(&after);
    assert!(ended, "{after}");
    let early = messages(events.into_iter().flat_map(|(_, l)| l))
        .into_iter()
        .filter(|m| m.starts_with("early "))
        .count();
    assert_eq!(early, 20);
    serve.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_stopped_from_the_cli_stops_its_tries_on_a_worker() {
    let (db, dir) = fresh("workerstop").await;
    let pid_file = dir.path().join("pid");
    let id = "long";
    std::fs::write(
        dir.path().join("dags/long.toml"),
        format!(
            "[dag]\nid = \"{id}\"\n[[task]]\nid = \"wait\"\noperator = \"shell\"\ncommand = \"echo $$ > {}; sleep 120\"\n[[task]]\nid = \"after\"\noperator = \"noop\"\nupstream = [\"wait\"]\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let serve = scheduler(dir.path(), &db, &[]);
    let _worker = WorkerProcess::start(dir.path(), "w", &env(&db));
    let store = Store::connect(&db).await.unwrap();
    let run_id = trigger(dir.path(), &db, id).await;
    support::eventually("the shell to start", Duration::from_secs(30), || async {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Not the serve driving the run: the CLI, another process, asks for the stop.
    let out = cli_output(
        cli(dir.path())
            .env("UPDRAFT_DB", &db)
            .args(["runs", "stop", &run_id]),
    );
    assert!(out.contains("stopped"), "{out}");
    let state = wait_for_run(&store, id, &run_id, Duration::from_secs(30)).await;
    assert_eq!(state, RunState::Stopped, "serve:\n{}", serve.log_tail());
    let tis = by_task(store.task_instances(id, &run_id).await.unwrap());
    assert_eq!(tis["wait"].state, TiState::Failed, "its try was stopped");
    assert_eq!(tis["after"].state, TiState::Skipped);
    support::wait_until("the shell to be killed", Duration::from_secs(10), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
    });
    serve.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_a_long_try_back_without_using_a_retry() {
    let (db, dir) = fresh("workerterm").await;
    let id = "handback";
    std::fs::write(
        dir.path().join("dags/handback.toml"),
        format!(
            "[dag]\nid = \"{id}\"\n[[task]]\nid = \"quick\"\noperator = \"shell\"\ncommand = \"echo quick\"\n[[task]]\nid = \"slow\"\noperator = \"shell\"\ncommand = \"if [ {{{{ task.try_number }}}} = 1 ]; then sleep 120; fi; echo ran\"\n"
        ),
    )
    .unwrap();
    let serve = scheduler(dir.path(), &db, &[]);
    let mut worker_env = env(&db);
    worker_env.push(("UPDRAFT_GRACE_PERIOD", "1s"));
    let first = WorkerProcess::start(dir.path(), "first", &worker_env);
    let store = Store::connect(&db).await.unwrap();
    let run_id = trigger(dir.path(), &db, id).await;
    support::eventually(
        "slow to run and quick to succeed",
        Duration::from_secs(30),
        || async {
            let tis = by_task(store.task_instances(id, &run_id).await.unwrap_or_default());
            tis.get("slow").is_some_and(|t| t.state == TiState::Running)
                && tis
                    .get("quick")
                    .is_some_and(|t| t.state == TiState::Success)
        },
    )
    .await;
    first.terminate();
    let slow = store
        .task_instance(id, &run_id, "slow")
        .await
        .unwrap()
        .unwrap();
    // Handed back: up for retry at once, or already queued again by the run's driver.
    assert!(
        matches!(slow.state, TiState::UpForRetry | TiState::Queued),
        "{:?}",
        slow.state
    );
    assert_eq!(
        (slow.try_number, slow.max_tries),
        (1, 2),
        "the interrupted try does not use the task's only try"
    );
    let _second = WorkerProcess::start(dir.path(), "second", &worker_env);
    let state = wait_for_run(&store, id, &run_id, Duration::from_secs(30)).await;
    assert_eq!(state, RunState::Success, "serve:\n{}", serve.log_tail());
    let slow = store
        .task_instance(id, &run_id, "slow")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (slow.try_number, slow.hostname.as_deref()),
        (2, Some("second"))
    );
    serve.terminate();
}
