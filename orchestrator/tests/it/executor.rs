//! Real DAG runs through the real executor, on SQLite and on PostgreSQL.

use crate::support;

use std::time::Duration;

use orchestrator::{
    executor::{RunOutcome, recover_zombies},
    scheduler::new_manual_run,
    store::{Fence, RunState, Store, StoreError, TiChange, TiState},
};

async fn run_dag(
    store: Store,
    source: &str,
    conf: serde_json::Value,
) -> (
    String,
    Vec<orchestrator::store::TaskInstanceRow>,
    RunOutcome,
    tempfile::TempDir,
) {
    let logs = tempfile::tempdir().unwrap();
    let dag = support::dag(source);
    let executor = support::executor(store.clone(), logs.path());
    let run = support::start_run(&executor, &dag, conf).await;
    let outcome = support::drive_to_end(&executor, &dag, &run, Duration::from_secs(60)).await;
    let mut tis = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap();
    tis.sort_by_key(|ti| ti.start);
    (run.run_id, tis, outcome, logs)
}

fn state_of(tis: &[orchestrator::store::TaskInstanceRow], task: &str) -> TiState {
    tis.iter()
        .find(|ti| ti.task_id == task)
        .unwrap_or_else(|| panic!("no task {task}"))
        .state
}

async fn chain_passes_results_downstream(store: Store) {
    let id = support::unique("chain");
    let source = format!(
        r#"
[dag]
id = "{id}"
[dag.params]
who = "nobody"
[[task]]
id = "first"
operator = "shell"
command = "echo hello {{{{ params.who }}}}"
[[task]]
id = "second"
operator = "shell"
upstream = ["first"]
command = "echo got: {{{{ upstream.first.output }}}}"
[[task]]
id = "third"
operator = "shell"
upstream = ["second"]
command = "echo first is {{{{ 'visible' if upstream['first'] is defined else 'hidden' }}}}, second is {{{{ 'visible' if upstream.second is defined else 'hidden' }}}}"
"#
    );
    let (run_id, tis, outcome, logs) =
        run_dag(store.clone(), &source, serde_json::json!({"who": "conf"})).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Success));
    let order: Vec<&str> = tis.iter().map(|ti| ti.task_id.as_str()).collect();
    assert_eq!(order, vec!["first", "second", "third"]);
    for pair in tis.windows(2) {
        assert!(
            pair[1].start >= pair[0].end,
            "{} started before {} ended",
            pair[1].task_id,
            pair[0].task_id
        );
    }
    assert_eq!(
        tis[1].result.as_ref().unwrap()["output"],
        "got: hello conf",
        "conf overrides params and results flow downstream"
    );
    let log =
        std::fs::read_to_string(logs.path().join(&id).join(&run_id).join("second.1.log")).unwrap();
    assert!(log.contains("got: hello conf"), "{log}");
    let third =
        std::fs::read_to_string(logs.path().join(&id).join(&run_id).join("third.1.log")).unwrap();
    assert!(
        third.contains("first is hidden, second is visible"),
        "a template reads its upstreams' results only (the loader refuses `upstream.first` here; a subscript gets past it and finds nothing): {third}"
    );
    let run = store.get_run(&id, &run_id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Success);
    assert!(run.end.is_some());
}

async fn retries_and_trigger_rules(store: Store) {
    let id = support::unique("retries");
    let source = format!(
        r#"
[dag]
id = "{id}"
[[task]]
id = "flaky"
operator = "shell"
command = "exit 3"
retries = 2
retry_delay = "50ms"
retry_exponential_backoff = true
[[task]]
id = "needs_success"
operator = "noop"
upstream = ["flaky"]
[[task]]
id = "after_needs_success"
operator = "noop"
upstream = ["needs_success"]
[[task]]
id = "cleanup"
operator = "noop"
upstream = ["flaky"]
trigger_rule = "all_done"
[[task]]
id = "on_failure"
operator = "shell"
command = "echo alert"
upstream = ["flaky"]
trigger_rule = "one_failed"
[[task]]
id = "on_success_only"
operator = "noop"
upstream = ["cleanup"]
trigger_rule = "one_failed"
"#
    );
    let (_, tis, outcome, _logs) = run_dag(store, &source, serde_json::json!({})).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Failed));
    let flaky = tis.iter().find(|t| t.task_id == "flaky").unwrap();
    assert_eq!(
        (flaky.state, flaky.try_number, flaky.max_tries),
        (TiState::Failed, 3, 3)
    );
    assert!(
        flaky.error.as_deref().unwrap().contains("exit status: 3"),
        "{:?}",
        flaky.error
    );
    assert_eq!(state_of(&tis, "needs_success"), TiState::UpstreamFailed);
    assert_eq!(
        state_of(&tis, "after_needs_success"),
        TiState::UpstreamFailed
    );
    assert_eq!(state_of(&tis, "cleanup"), TiState::Success);
    assert_eq!(state_of(&tis, "on_failure"), TiState::Success);
    assert_eq!(state_of(&tis, "on_success_only"), TiState::Skipped);
}

/// A template or config error is the user's to fix: no retry, and no restart of a stream.
async fn timeout_and_template_errors_fail_the_task(store: Store) {
    let id = support::unique("timeout");
    let source = format!(
        r#"
[dag]
id = "{id}"
[dag.params]
topic = "^("
[[task]]
id = "slow"
operator = "shell"
command = "sleep 30"
timeout = "300ms"
[[task]]
id = "typo"
operator = "shell"
command = "echo {{{{ params.missing }}}}"
retries = 3
retry_delay = "10ms"
[[task]]
id = "bad_stream"
operator = "stream"
topics = ["{{{{ params.topic }}}}"]
group_id = "g"
[task.sink]
kind = "kafka"
topic = "out"
"#
    );
    let (_, tis, outcome, _logs) = run_dag(store, &source, serde_json::json!({})).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Failed));
    let slow = tis.iter().find(|t| t.task_id == "slow").unwrap();
    assert_eq!(slow.state, TiState::Failed);
    assert!(
        slow.error
            .as_deref()
            .unwrap()
            .contains("timed out after 300ms"),
        "{:?}",
        slow.error
    );
    let typo = tis.iter().find(|t| t.task_id == "typo").unwrap();
    assert_eq!(typo.state, TiState::Failed);
    assert!(
        typo.error
            .as_deref()
            .unwrap()
            .contains("invalid config: command: template error"),
        "{:?}",
        typo.error
    );
    assert_eq!(typo.try_number, 1, "a template error is not retried");
    let stream = tis.iter().find(|t| t.task_id == "bad_stream").unwrap();
    assert_eq!((stream.state, stream.try_number), (TiState::Failed, 1));
    assert!(
        stream
            .error
            .as_deref()
            .unwrap()
            .contains("invalid config: topics[0]: bad regular expression \"^(\""),
        "{:?}",
        stream.error
    );
}

async fn zombies_are_retried_and_the_run_resumed(store: Store) {
    let id = support::unique("zombie");
    let dag = support::dag(&format!(
        "[dag]\nid = \"{id}\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\nretries = 1\n[[task]]\nid = \"b\"\noperator = \"noop\"\nupstream = [\"a\"]\n"
    ));
    let dead_owner = "ghost-host-of-this-test:1".to_owned();
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let dead_owner = dead_owner
        .replace("ghost-host-of-this-test", &hostname)
        .replace(":1", ":2147483646");
    let run = store
        .create_run(
            &new_manual_run(&dag, Default::default(), Some(dead_owner.clone())),
            &dag.new_task_instances(),
        )
        .await
        .unwrap()
        .unwrap();
    let mut a = store
        .task_instance(&id, &run.run_id, "a")
        .await
        .unwrap()
        .unwrap();
    // The dead owner queued `a` and started its first try.
    for (from, to) in [
        (TiState::Scheduled, TiState::Queued),
        (TiState::Queued, TiState::Running),
    ] {
        a.state = to;
        a.try_number = u32::from(to == TiState::Running);
        a.claimed_by = Some(dead_owner.clone());
        let change = TiChange {
            row: &a,
            from,
            via: None,
            fence: Fence::RunOwner(&dead_owner),
        };
        store.transition_task_instance(&change).await.unwrap();
    }
    let logs = tempfile::tempdir().unwrap();
    let executor = support::executor(store.clone(), logs.path());
    let adopted = recover_zombies(&executor, |_, _| false).await.unwrap();
    let adopted = adopted
        .into_iter()
        .find(|r| r.run_id == run.run_id && r.dag_id == id)
        .expect("the zombie run is adopted");
    let a = store
        .task_instance(&id, &run.run_id, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.state, TiState::UpForRetry);
    assert!(a.error.as_deref().unwrap().contains("zombie"));
    // The dead owner, were it alive after all, can no longer write the instance or end the run.
    let late_write = TiChange {
        row: &a,
        from: TiState::Running,
        via: None,
        fence: Fence::Claim(&dead_owner),
    };
    assert!(matches!(
        store.transition_task_instance(&late_write).await,
        Err(StoreError::Lost { .. })
    ));
    assert!(matches!(
        store
            .finish_run(&run.key(), &dead_owner, RunState::Failed)
            .await,
        Err(StoreError::Lost { .. })
    ));
    let outcome = support::drive_to_end(&executor, &dag, &adopted, Duration::from_secs(60)).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Success));
    let a = store
        .task_instance(&id, &run.run_id, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.state, a.try_number), (TiState::Success, 2));
}

macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(super::support::sqlite(dir.path()).await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::support::postgres().await).await;
                }
            )+
        }
    };
}

on_both_engines!(
    chain_passes_results_downstream,
    retries_and_trigger_rules,
    timeout_and_template_errors_fail_the_task,
    zombies_are_retried_and_the_run_resumed
);

/// A task whose upstream ends starts in the same commit as that end: its move reads
/// scheduled -> running via queued, and its try is begun as a runner begins one.
#[tokio::test]
async fn a_chain_starts_each_downstream_in_the_commit_of_its_upstreams_end() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let mut text = String::from("[dag]\nid = \"hand\"\n");
    for i in 0..4 {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n"));
        if i > 0 {
            text.push_str(&format!("upstream = [\"t{}\"]\n", i - 1));
        }
    }
    std::fs::write(dir.path().join("dags/hand.toml"), text).unwrap();
    let out = support::serve::cli(dir.path())
        .env("RUST_LOG", "info")
        .args(["run", "hand"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for task in ["t1", "t2", "t3"] {
        assert!(
            log.lines()
                .any(|line| line.contains(&format!("task_id={task} "))
                    && line.contains("from=scheduled via=queued to=running")),
            "{task} started in its upstream's commit: {log}"
        );
    }
    let tis = support::task_instances_of_only_run(dir.path(), "hand").await;
    for ti in &tis {
        assert_eq!((ti.state, ti.try_number), (TiState::Success, 1), "{ti:?}");
        assert!(
            ti.hostname.is_some() && ti.pid.is_some() && ti.start <= ti.end,
            "{ti:?}"
        );
    }
}

/// `orchestrator run` ends a run of more than 100 task instances with the ones that did not
/// succeed and the counts by state, not a row per task instance; a smaller run lists each.
#[tokio::test]
async fn a_big_run_ends_with_what_did_not_succeed_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let mut big = String::from("[dag]\nid = \"big\"\n");
    for i in 0..120 {
        big.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n"));
    }
    big.push_str("[[task]]\nid = \"bad\"\noperator = \"shell\"\ncommand = \"exit 3\"\n");
    big.push_str("[[task]]\nid = \"after\"\noperator = \"noop\"\nupstream = [\"bad\"]\n");
    std::fs::write(dir.path().join("dags/big.toml"), big).unwrap();
    std::fs::write(
        dir.path().join("dags/small.toml"),
        "[dag]\nid = \"small\"\n[[task]]\nid = \"one\"\noperator = \"noop\"\n\
         [[task]]\nid = \"two\"\noperator = \"noop\"\n",
    )
    .unwrap();

    let out = support::serve::cli(dir.path())
        .args(["run", "big"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("task_id "))
        .collect();
    assert_eq!(table.len(), 5, "{stdout}");
    assert!(table[1].starts_with("after ") && table[1].contains("upstream_failed"));
    assert!(table[2].starts_with("bad ") && table[2].contains("exit status: 3"));
    let run_id = support::task_instances_of_only_run(dir.path(), "big").await[0]
        .run_id
        .clone();
    assert_eq!(
        table[3],
        format!(
            "122 task instances: 1 failed, 120 success, 1 upstream_failed. \
             All of them: orchestrator runs show {run_id} --dag big"
        )
    );
    assert_eq!(table[4], format!("Run {run_id} ended failed"));

    let small = support::serve::cli_output(support::serve::cli(dir.path()).args(["run", "small"]));
    let rows: Vec<&str> = small
        .lines()
        .skip_while(|line| !line.starts_with("task_id "))
        .collect();
    assert!(
        rows.len() == 4 && rows[1].starts_with("one ") && rows[2].starts_with("two "),
        "{small}"
    );
}

/// A task that may run while its DAG's `max_active_tasks` are taken waits in its driver's line
/// with its row left `scheduled`, as in Airflow: no write moves it to `queued` on its own,
/// each start reads scheduled -> running via queued. One that a second upstream's end looks
/// at again while it waits (`one_success`) still runs once.
#[tokio::test]
async fn a_task_waiting_for_a_slot_stays_scheduled_and_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/held.toml"),
        r#"
[dag]
id = "held"
max_active_tasks = 1
[[task]]
id = "a"
operator = "shell"
command = "sleep 0.2"
[[task]]
id = "b"
operator = "shell"
command = "sleep 0.2"
[[task]]
id = "c"
operator = "noop"
upstream = ["a", "b"]
trigger_rule = "one_success"
"#,
    )
    .unwrap();
    let out = support::serve::cli(dir.path())
        .env("RUST_LOG", "info")
        .args(["run", "held"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let moves: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("Task state changed"))
        .collect();
    assert!(
        !moves.iter().any(|line| line.contains(" to=queued")),
        "no move to queued alone: {moves:#?}"
    );
    for task in ["a", "b", "c"] {
        let starts: Vec<_> = moves
            .iter()
            .filter(|line| {
                line.contains(&format!("task_id={task} ")) && line.contains("to=running")
            })
            .collect();
        assert_eq!(starts.len(), 1, "{task} started once: {moves:#?}");
        assert!(
            starts[0].contains("from=scheduled via=queued to=running"),
            "{task}: {moves:#?}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("Try 1 of 1 of held.c").count(),
        1,
        "{stdout}"
    );
    let tis = support::task_instances_of_only_run(dir.path(), "held").await;
    for ti in &tis {
        assert_eq!((ti.state, ti.try_number), (TiState::Success, 1), "{ti:?}");
    }
}
