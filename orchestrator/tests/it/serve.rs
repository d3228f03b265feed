//! `orchestrator serve` as a process: CLI triggers, DAG folder reloads, SIGTERM.

use crate::support;

use std::time::Duration;

use support::{
    serve::{Serve, cli, cli_output},
    wait_until,
};

#[test]
fn serve_runs_cli_triggers_reloads_dags_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(dir.path().join("dags/first.toml"), "[dag]\nid = \"first\"\n[dag.params]\nwho = \"nobody\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = \"echo from {{ params.who }}\"\n").unwrap();
    let serve = Serve::start_healthy(dir.path());

    let queued = cli_output(cli(dir.path()).args([
        "dags",
        "trigger",
        "first",
        "--conf",
        r#"{"who": "the CLI"}"#,
    ]));
    let run_id = queued
        .split_whitespace()
        .nth(2)
        .expect("the run id")
        .to_owned();
    wait_until(
        "the triggered run to succeed",
        Duration::from_secs(20),
        || cli_output(cli(dir.path()).args(["runs", "list", "--dag", "first"])).contains("success"),
    );
    let log = cli_output(cli(dir.path()).args(["tasks", "logs", "first", &run_id, "say"]));
    assert!(log.contains("from the CLI"), "{log}");
    // The scheduler's hand-off of the queued run is in /metrics.
    let metrics = serve.get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains(r#"updraft_scheduler_handoff_seconds_count{dag_id="first"} 1"#),
        "{metrics}"
    );

    std::fs::write(
        dir.path().join("dags/second.toml"),
        "[dag]\nid = \"second\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dags/broken.toml"),
        "[dag]\nid = \"broken\"\n[[task]]\nid = \"a\"\noperator = \"nope\"\n",
    )
    .unwrap();
    wait_until("the new DAG file to load", Duration::from_secs(2), || {
        serve
            .get("/api/v1/dags")
            .is_some_and(|r| r.contains("\"second\"") && r.contains("unknown operator"))
    });

    let log = serve.log();
    assert!(log.contains("Web UI listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log written to a file:\n{log}"
    );
    serve.terminate();
}

/// `serve` SIGKILLed while a shell try sleeps before its side effect: the try dies with it,
/// so once the next `serve` has retried the task, the side effect happened exactly once.
#[test]
fn a_try_dies_with_a_killed_serve_and_only_its_retry_finishes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let effects = dir.path().join("effects.txt");
    std::fs::write(
        dir.path().join("dags/append.toml"),
        format!(
            "[dag]\nid = \"append\"\n[[task]]\nid = \"slow\"\noperator = \"shell\"\ncommand = 'sleep 4; echo once >> \"{}\"'\nretries = 1\nretry_delay = \"0s\"\n",
            effects.display()
        ),
    )
    .unwrap();
    let first = Serve::start_healthy(dir.path());
    cli_output(cli(dir.path()).args(["dags", "trigger", "append"]));
    wait_until("the try to run", Duration::from_secs(10), || {
        first
            .get("/api/v1/dags/append/dagRuns")
            .and_then(|r| {
                r.split("\"dag_run_id\":\"")
                    .nth(1)
                    .map(|s| s.split('"').next().unwrap_or("").to_owned())
            })
            .and_then(|run| first.get(&format!("/api/v1/dags/append/dagRuns/{run}/taskInstances")))
            .is_some_and(|r| r.contains("\"state\":\"running\""))
    });
    std::thread::sleep(Duration::from_secs(2));
    first.kill();
    let second = Serve::start_healthy(dir.path());
    wait_until("the retry to succeed", Duration::from_secs(30), || {
        cli_output(cli(dir.path()).args(["runs", "list", "--dag", "append"])).contains("success")
    });
    // Try 1 would have appended ~2 s after the restart; give it twice that.
    std::thread::sleep(Duration::from_secs(4));
    let lines = std::fs::read_to_string(&effects).unwrap_or_default();
    assert_eq!(
        lines.lines().count(),
        1,
        "the side effect happened {} times:\n{lines}",
        lines.lines().count()
    );
    second.kill();
}

/// The secrets the process knows (the passwords of its URLs, the first admin's password) are
/// `***` in a task's log, in the file and in what `orchestrator run` prints.
#[test]
fn known_secrets_are_masked_in_task_logs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/leak.toml"),
        "[dag]\nid = \"leak\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = 'echo \"sink postgres://app:pg-secret-pw@db/x\"; echo \"admin admin-secret-pw\"'\n",
    )
    .unwrap();
    let printed = cli_output(
        cli(dir.path())
            .args(["run", "leak"])
            .env("UPDRAFT_POSTGRES_URL", "postgres://app:pg-secret-pw@db/x")
            .env("UPDRAFT_ADMIN_PASSWORD", "admin-secret-pw"),
    );
    let runs = dir.path().join("logs/leak");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    let log = std::fs::read_to_string(run.path().join("say.1.log")).unwrap();
    for text in [&printed, &log] {
        assert!(text.contains("sink postgres://app:***@db/x"), "{text}");
        assert!(text.contains("admin ***"), "{text}");
        assert!(!text.contains("secret-pw"), "{text}");
    }
}

/// A task's own secrets (values under secret-looking names in its config, variables with
/// such names passed through to it) are `***` in its log too; `--env-passthrough` names reach
/// every shell task, and an `UPDRAFT_*` name there is refused.
#[test]
fn a_tasks_own_secrets_are_masked_and_passed_variables_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/own.toml"),
        r#"[dag]
id = "own"
[[task]]
id = "say"
operator = "shell"
command = 'echo "token $API_TOKEN"; echo "gh $GH_TOKEN"; echo "region $REGION"; echo "home $HOME_DIR_HINT"'
env = { API_TOKEN = "task-token-value", REGION = "eu-west-1" }
"#,
    )
    .unwrap();
    let printed = cli_output(
        cli(dir.path())
            .args(["run", "own"])
            .env("UPDRAFT_ENV_PASSTHROUGH", "GH_TOKEN,HOME_DIR_HINT")
            .env("GH_TOKEN", "gh-token-value")
            .env("HOME_DIR_HINT", "/srv/data"),
    );
    let runs = dir.path().join("logs/own");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    let log = std::fs::read_to_string(run.path().join("say.1.log")).unwrap();
    for text in [&printed, &log] {
        assert!(text.contains("token ***"), "{text}");
        // Passed through (not empty), and masked for its name.
        assert!(text.contains("gh ***"), "{text}");
        assert!(text.contains("region eu-west-1"), "{text}");
        assert!(text.contains("home /srv/data"), "{text}");
        assert!(!text.contains("token-value"), "{text}");
    }
    let refused = cli(dir.path())
        .args(["run", "own"])
        .env("UPDRAFT_ENV_PASSTHROUGH", "UPDRAFT_DB")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("--env-passthrough") && stderr.contains("UPDRAFT_DB"),
        "{stderr}"
    );
}

/// A line too long to read whole (3 MiB; reads return at most 1 MiB) comes cut, and the
/// chunk says how long the whole line is.
#[test]
fn a_cut_log_line_says_its_whole_length() {
    const LONG: usize = 3 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/long.toml"),
        format!("[dag]\nid = \"long\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = \"head -c {LONG} /dev/zero | tr '\\\\0' x; echo; echo done\"\n"),
    )
    .unwrap();
    cli_output(cli(dir.path()).args(["run", "long"]));
    let run = std::fs::read_dir(dir.path().join("logs/long"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let run_id = run.file_name().into_string().unwrap();
    let log = std::fs::read_to_string(run.path().join("say.1.log")).unwrap();
    let done = log.find("Z done\n").expect("the line after the long one");
    let done_line = log[..done].rfind('\n').unwrap() + 1;
    let long_line = log[..done_line - 1].rfind('\n').unwrap() + 1;
    let whole = done_line - 1 - long_line;
    assert!(whole > LONG, "the long line with its time stamp: {whole}");

    let serve = Serve::start_healthy(dir.path());
    let chunk = serve
        .get(&format!(
            "/dags/long/runs/{run_id}/tasks/say/logs/1/chunk?before={done_line}"
        ))
        .unwrap_or_default();
    let expected = format!("\"first_line_cut\":{{\"bytes\":{whole},\"exact\":true}}");
    assert!(
        chunk.contains(&expected),
        "{}",
        &chunk[..chunk.len().min(600)]
    );
}

/// The run page of a run with more task instances than a page holds shows 200 rows at a
/// time, the count in each state with a link to the rows in that state, and pages through
/// the rest; its live part keeps the same rows; a page number that is not one is refused.
#[test]
fn a_big_run_page_shows_a_page_of_rows_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let mut source = String::from("[dag]\nid = \"wide\"\n");
    for i in 0..250 {
        source.push_str(&format!(
            "[[task]]\nid = \"t{i:03}\"\noperator = \"noop\"\n"
        ));
    }
    source.push_str("[[task]]\nid = \"bad\"\noperator = \"shell\"\ncommand = \"exit 3\"\n");
    std::fs::write(dir.path().join("dags/wide.toml"), source).unwrap();
    let out = cli(dir.path()).args(["run", "wide"]).output().unwrap();
    assert!(!out.status.success(), "bad fails the run");
    let run_id = std::fs::read_dir(dir.path().join("logs/wide"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let serve = Serve::start_healthy(dir.path());
    let base = format!("/dags/wide/runs/{run_id}");
    let rows = |page: &str| -> Vec<String> {
        page.split("<tr data-task=\"")
            .skip(1)
            .map(|row| row.split('"').next().unwrap().to_owned())
            .collect()
    };

    let first = serve.get(&base).unwrap_or_default();
    let shown = rows(&first);
    assert_eq!(shown.len(), 200, "{}", &first[..first.len().min(2000)]);
    assert_eq!((shown[0].as_str(), shown[199].as_str()), ("t000", "t199"));
    assert!(
        first.contains("251 task instances:")
            && first.contains("1-200 of 251")
            && first.contains("page 1 of 2"),
        "{first}"
    );
    assert!(
        first.contains(&format!("href=\"{base}?state=failed\"")),
        "{first}"
    );
    assert!(
        first.contains(&format!("data-live-src=\"{base}/live\"")),
        "{first}"
    );

    let second = serve.get(&format!("{base}?page=2")).unwrap_or_default();
    let shown = rows(&second);
    assert_eq!(shown.len(), 51);
    assert_eq!((shown[0].as_str(), shown[50].as_str()), ("t200", "bad"));
    assert!(second.contains(&format!("data-live-src=\"{base}/live?page=2\"")));
    let live = serve
        .get(&format!("{base}/live?page=2"))
        .unwrap_or_default();
    assert_eq!(rows(&live), shown, "the live part keeps the page's rows");

    let failed = serve
        .get(&format!("{base}?state=failed"))
        .unwrap_or_default();
    assert_eq!(rows(&failed), ["bad"]);
    assert!(failed.contains("1-1 of 1"), "{failed}");
    let running = serve
        .get(&format!("{base}?state=running"))
        .unwrap_or_default();
    assert!(
        running.contains("0-0 of 0")
            && running.contains("id=\"no-task-instances\">No task instances are running now."),
        "a state none is in any more says so: {running}"
    );

    let refused = serve.get(&format!("{base}?page=two")).unwrap_or_default();
    assert!(
        refused.starts_with("HTTP/1.1 400") && refused.contains("page"),
        "{refused}"
    );
}

/// The DAG page of a DAG with more tasks than the grid's page holds shows 200 task rows of
/// the grid at a time, and draws no graph past 500 tasks (it says why).
#[test]
fn a_big_dag_page_pages_its_grid_and_draws_no_graph() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let mut source = String::from("[dag]\nid = \"many\"\n");
    for i in 0..520 {
        source.push_str(&format!(
            "[[task]]\nid = \"t{i:03}\"\noperator = \"noop\"\n"
        ));
    }
    std::fs::write(dir.path().join("dags/many.toml"), source).unwrap();
    cli_output(cli(dir.path()).args(["run", "many"]));
    let serve = Serve::start_healthy(dir.path());
    let task_rows = |page: &str| -> Vec<String> {
        page.split("<tr><th scope=\"row\">")
            .skip(1)
            .map(|row| row.split('<').next().unwrap().to_owned())
            .collect()
    };

    let first = serve.get("/dags/many").unwrap_or_default();
    let rows = task_rows(&first);
    assert_eq!(rows.len(), 200, "{}", &first[..first.len().min(2000)]);
    assert_eq!((rows[0].as_str(), rows[199].as_str()), ("t000", "t199"));
    assert!(first.contains("tasks 1-200 of 520"), "{first}");
    assert!(
        first.contains("id=\"grid-tasks-top\">tasks 1-200 of 520")
            && first.contains("task_page=2\" id=\"grid-tasks-top-next\""),
        "the pages of tasks are named above the grid too: {first}"
    );
    assert!(
        first.contains("task_page=2\" id=\"grid-tasks-next\""),
        "{first}"
    );
    assert!(
        !first.contains("id=\"graph\"")
            && first.contains("graph is drawn for DAGs of up to 500 tasks; this one has 520"),
        "{first}"
    );

    let last = serve.get("/dags/many?task_page=3").unwrap_or_default();
    let rows = task_rows(&last);
    assert_eq!(rows.len(), 120);
    assert_eq!((rows[0].as_str(), rows[119].as_str()), ("t400", "t519"));
    assert!(last.contains("tasks 401-520 of 520"), "{last}");
    assert_eq!(
        last.matches("data-state=\"success\"").count(),
        120,
        "each of the page's tasks has its cell in the run: {last}"
    );
    assert!(last.contains("data-task=\"t519\""), "{last}");
    assert!(
        last.contains("task_page=2\" id=\"grid-tasks-previous\""),
        "{last}"
    );
    assert!(last.contains("data-live-src=\"/dags/many/live?"), "{last}");
    let live = serve
        .get(&format!(
            "/dags/many/live?{}",
            last.split("data-live-src=\"/dags/many/live?")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .replace("&#38;", "&")
        ))
        .unwrap_or_default();
    assert_eq!(
        task_rows(&live),
        rows,
        "the live part keeps the page's task rows"
    );
}

/// Each new text of a DAG file is a version: a run records the one it was created with and
/// runs with it even after the file changed (a task since renamed runs as it was), the run
/// page shows that code, and `dags show --version N` prints it.
#[test]
fn a_run_keeps_the_dag_version_it_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let file = dir.path().join("dags/ver.toml");
    let text = |word: &str| {
        let task = if word == "first" { "say" } else { "speak" };
        format!(
            "[dag]\nid = \"ver\"\n[[task]]\nid = \"{task}\"\noperator = \"shell\"\ncommand = \"echo said {word}\"\n"
        )
    };
    std::fs::write(&file, text("first")).unwrap();
    let queued = cli_output(cli(dir.path()).args(["dags", "trigger", "ver"]));
    let run_id = queued.split_whitespace().nth(2).unwrap().to_owned();
    std::fs::write(&file, text("second")).unwrap();
    cli_output(cli(dir.path()).args(["dags", "trigger", "ver"]));
    let shown = cli_output(cli(dir.path()).args(["dags", "show", "ver"]));
    assert!(shown.contains("1, 2 (the file now is v2)"), "{shown}");
    let first = cli_output(cli(dir.path()).args(["dags", "show", "ver", "--version", "1"]));
    assert_eq!(first, text("first"));
    let missing = cli(dir.path())
        .args(["dags", "show", "ver", "--version", "7"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no version 7 (versions: 1, 2)"), "{stderr}");

    // Both runs start only now, after the edit: each with its own version.
    let serve = Serve::start_healthy(dir.path());
    support::wait_until("both runs to succeed", Duration::from_secs(30), || {
        let runs = cli_output(cli(dir.path()).args(["runs", "list", "--dag", "ver"]));
        runs.matches(" success ").count() == 2
    });
    let log =
        std::fs::read_to_string(dir.path().join(format!("logs/ver/{run_id}/say.1.log"))).unwrap();
    assert!(
        log.contains("said first") && !log.contains("said second"),
        "the first run ran its own version's task: {log}"
    );
    let page = serve
        .get(&format!("/dags/ver/runs/{run_id}"))
        .unwrap_or_default();
    assert!(
        page.contains(">v1</a>") && page.contains("file changed since"),
        "{page}"
    );
    let (diff, version_text) = page
        .split_once("As it was")
        .expect("a diff to the file now, then the text as it was");
    assert!(
        version_text.contains("echo said first") && !version_text.contains("echo said second"),
        "{page}"
    );
    assert!(
        diff.contains("d-del\">-command")
            && diff.contains("d-add\">+command")
            && diff.contains("said second"),
        "{diff}"
    );
    let dag_page = serve.get("/dags/ver").unwrap_or_default();
    assert!(
        dag_page.contains("version-change\" title=\"DAG version v2 from this run on\""),
        "the grid marks where the version changed: {dag_page}"
    );
    let versions = serve
        .get("/api/v1/dags/ver/dagVersions")
        .unwrap_or_default();
    assert!(versions.contains("\"total_entries\":2"), "{versions}");
    let source = serve
        .get(&format!("/dags/ver/runs/{run_id}/source"))
        .unwrap_or_default();
    assert_eq!(body_of(&source), text("first"), "{source}");
}

/// A DAG file too long to show on its pages (a 20,000-task file is 3.2 MB) is linked as
/// plain text there instead: the file now from the DAG page, the run's version from the run
/// page, which still shows a short diff between them.
#[test]
fn a_dag_file_too_long_for_its_pages_is_linked_as_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let file = dir.path().join("dags/long.toml");
    let comment_line = format!("# {}\n", "x".repeat(100));
    let text = |word: &str| {
        format!(
            "[dag]\nid = \"long\"\n{}[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = \"echo said {word}\"\n",
            comment_line.repeat(3_000)
        )
    };
    std::fs::write(&file, text("first")).unwrap();
    let queued = cli_output(cli(dir.path()).args(["dags", "trigger", "long"]));
    let run_id = queued.split_whitespace().nth(2).unwrap().to_owned();
    std::fs::write(&file, text("second")).unwrap();
    let serve = Serve::start_healthy(dir.path());

    let dag_page = serve.get("/dags/long").unwrap_or_default();
    assert!(
        dag_page.contains("id=\"source-too-long\">3,006 lines, 301.8 KB: too long")
            && dag_page.contains("href=\"/dags/long/source\""),
        "{dag_page}"
    );
    assert!(
        !dag_page.contains(comment_line.trim()),
        "the text is not on the page"
    );
    let now = serve.get("/dags/long/source").unwrap_or_default();
    assert!(
        now.to_ascii_lowercase()
            .contains("content-type: text/plain; charset=utf-8"),
        "{now}"
    );
    assert_eq!(body_of(&now), text("second"));

    let run_page = serve
        .get(&format!("/dags/long/runs/{run_id}"))
        .unwrap_or_default();
    assert!(
        run_page.contains("id=\"dag-version-too-long\">3,006 lines, 301.8 KB")
            && run_page.contains(&format!("href=\"/dags/long/runs/{run_id}/source\"")),
        "{run_page}"
    );
    assert!(
        run_page.contains("id=\"dag-version-diff\"")
            && run_page.contains("d-del\">-command")
            && run_page.contains("d-add\">+command"),
        "a short diff is still shown: {run_page}"
    );
    assert!(
        !run_page.contains(comment_line.trim()),
        "the text is not on the page"
    );
    let then = serve
        .get(&format!("/dags/long/runs/{run_id}/source"))
        .unwrap_or_default();
    assert_eq!(body_of(&then), text("first"));
    let unknown = serve
        .get("/dags/long/runs/manual__nope/source")
        .unwrap_or_default();
    assert!(
        unknown.starts_with("HTTP/1.1 404") && unknown.contains("has no run"),
        "{unknown}"
    );
}

/// A run, a task instance and a try's log are read by their keys, not with the run's other
/// task instances: an unknown run or task is a 404 that names it.
#[test]
fn a_run_and_its_task_instances_are_read_by_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/keyed.toml"),
        "[dag]\nid = \"keyed\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = \"echo said\"\n",
    )
    .unwrap();
    let queued = cli_output(cli(dir.path()).args(["dags", "trigger", "keyed"]));
    let run_id = queued.split_whitespace().nth(2).unwrap().to_owned();
    let serve = Serve::start_healthy(dir.path());
    let run_path = format!("/api/v1/dags/keyed/dagRuns/{run_id}");
    support::wait_until("the run to succeed", Duration::from_secs(30), || {
        serve
            .get(&run_path)
            .is_some_and(|r| r.contains("\"state\":\"success\""))
    });
    let run = serve.get(&run_path).unwrap_or_default();
    assert!(
        run.contains(&format!("\"dag_run_id\":\"{run_id}\"")),
        "{run}"
    );

    let task = serve
        .get(&format!("/dags/keyed/runs/{run_id}/tasks/say"))
        .unwrap_or_default();
    assert!(
        task.starts_with("HTTP/1.1 303")
            && task.contains(&format!("/dags/keyed/runs/{run_id}/tasks/say/logs/1")),
        "{task}"
    );
    let unknown_task = serve
        .get(&format!("/dags/keyed/runs/{run_id}/tasks/nope"))
        .unwrap_or_default();
    assert!(
        unknown_task.starts_with("HTTP/1.1 404") && unknown_task.contains("has no task"),
        "{unknown_task}"
    );
    let unknown_run = serve
        .get("/dags/keyed/runs/manual__nope/tasks/say")
        .unwrap_or_default();
    assert!(
        unknown_run.starts_with("HTTP/1.1 404") && unknown_run.contains("has no run"),
        "{unknown_run}"
    );
    let log = serve
        .get(&format!("/dags/keyed/runs/{run_id}/tasks/say/logs/1"))
        .unwrap_or_default();
    assert!(
        log.starts_with("HTTP/1.1 200") && log.contains("said"),
        "{log}"
    );
    let unknown_log = serve
        .get(&format!("/dags/keyed/runs/{run_id}/tasks/nope/logs/1"))
        .unwrap_or_default();
    assert!(
        unknown_log.starts_with("HTTP/1.1 404") && unknown_log.contains("has no task"),
        "{unknown_log}"
    );
}

/// The body of a whole HTTP response.
fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// As shipped, `serve` shows nothing to someone not signed in: pages go to the sign-in page,
/// the API answers 401; `/health` and the sign-in page stay open.
#[test]
fn reading_needs_a_sign_in_by_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let mut serve = Serve::start_as_configured(dir.path(), &[]);
    serve.wait_healthy(Duration::from_secs(20));
    let status = |path: &str| {
        let response = serve.get(path).unwrap_or_default();
        response.lines().next().unwrap_or_default().to_owned()
    };
    assert!(
        status("/api/v1/dags").contains(" 401 "),
        "{}",
        status("/api/v1/dags")
    );
    let page = serve.get("/dags").unwrap_or_default();
    assert!(page.starts_with("HTTP/1.1 303"), "{page}");
    assert!(
        page.to_ascii_lowercase().contains("location: /login"),
        "{page}"
    );
    assert!(status("/login").contains(" 200 "), "{}", status("/login"));
    assert!(
        status("/metrics").contains(" 401 "),
        "{}",
        status("/metrics")
    );
    serve.terminate();
}

/// Roles and the audit log over a real `serve`: users and tokens made with the CLI, writes
/// through the API refused or done by role, and every one of them in `/api/v1/eventLogs`
/// with who, from where and what.
#[test]
fn roles_decide_who_writes_and_the_audit_log_keeps_every_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/quiet.toml"),
        "[dag]\nid = \"quiet\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n",
    )
    .unwrap();
    let mut serve = Serve::start_as_configured(dir.path(), &[]);
    serve.wait_healthy(Duration::from_secs(20));
    let add = |name: &str, role: &str| {
        let out = cli_output(
            cli(dir.path())
                .env("UPDRAFT_PASSWORD", "a long password")
                .args(["users", "add", name, "--role", role]),
        );
        assert!(out.contains(&format!("({role})")), "{out}");
        cli_output(cli(dir.path()).args(["tokens", "create", "--user", name]))
            .trim()
            .to_owned()
    };
    let vera = add("vera", "viewer");
    let olga = add("olga", "op");
    let auditor = add("audra", "admin");
    let pause = |token: &str| {
        let response = serve.send(
            "PATCH",
            "/api/v1/dags/quiet",
            token,
            r#"{"is_paused": true}"#,
        );
        response.lines().next().unwrap_or_default().to_owned()
    };
    assert!(pause(&vera).contains(" 403 "), "{}", pause(&vera));
    assert!(pause(&olga).contains(" 200 "), "{}", pause(&olga));
    let read = serve.send("GET", "/api/v1/dags/quiet", &vera, "");
    assert!(read.starts_with("HTTP/1.1 200"), "a viewer reads: {read}");

    let listed = cli_output(cli(dir.path()).args(["users", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.contains("vera") && l.contains("viewer")),
        "{listed}"
    );
    cli_output(cli(dir.path()).args(["users", "set-role", "vera", "--role", "op"]));
    assert!(pause(&vera).contains(" 200 "), "a new role counts at once");
    cli_output(cli(dir.path()).args(["dags", "trigger", "quiet"]));
    let short = cli(dir.path())
        .env("UPDRAFT_PASSWORD", "short")
        .args(["users", "set-password", "vera"])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&short.stderr);
    assert!(
        !short.status.success() && error.contains("at least 8"),
        "{error}"
    );
    cli_output(
        cli(dir.path())
            .env("UPDRAFT_PASSWORD", "another long password")
            .args(["users", "set-password", "vera"]),
    );

    let refused = serve.send("GET", "/api/v1/eventLogs", &olga, "");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let response = serve.send("GET", "/api/v1/eventLogs?limit=100", &auditor, "");
    let body: serde_json::Value = serde_json::from_str(body_of(&response)).expect("a JSON body");
    let entries: Vec<(String, String, String)> = body["event_logs"]
        .as_array()
        .expect("event_logs")
        .iter()
        .map(|e| {
            let extra: serde_json::Value =
                serde_json::from_str(e["extra"].as_str().unwrap_or("{}")).unwrap();
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["owner"].as_str().unwrap_or_default().to_owned(),
                extra["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let has = |event: &str, owner: Option<&str>, source: &str| {
        entries
            .iter()
            .any(|(e, o, s)| e == event && owner.is_none_or(|owner| o == owner) && s == source)
    };
    assert!(has("user_add", None, "cli"), "{entries:?}");
    assert!(has("token_create", None, "cli"), "{entries:?}");
    assert!(has("forbidden", Some("vera"), "127.0.0.1"), "{entries:?}");
    assert!(has("pause", Some("olga"), "127.0.0.1"), "{entries:?}");
    assert!(has("pause", Some("vera"), "127.0.0.1"), "{entries:?}");
    assert!(has("user_set_role", None, "cli"), "{entries:?}");
    assert!(has("trigger", None, "cli"), "{entries:?}");
    assert!(has("user_set_password", None, "cli"), "{entries:?}");
    assert_eq!(body["total_entries"], entries.len());
    serve.terminate();
}
