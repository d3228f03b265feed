//! The REST API against Apache Airflow 2.10's own OpenAPI spec: schemathesis (PyPI) generates
//! requests for every operation Updraft serves and checks that no answer is a server error and
//! that every answer matches the spec's schema for its status. `scripts/test` installs both
//! (`scripts/airflow-api install`).

use crate::support;

use std::{path::PathBuf, process::Command, time::Duration};

use support::{
    serve::{Serve, cli, cli_output},
    wait_until,
};

/// Airflow's operation ids that Updraft serves.
const OPERATIONS: &[&str] = &[
    "get_dags",
    "get_dag",
    "patch_dag",
    "get_dag_runs",
    "post_dag_run",
    "get_dag_run",
    "get_dag_runs_batch",
    "get_task_instances",
    "get_task_instance",
    "get_task_instances_batch",
    "patch_task_instance",
    "post_clear_task_instances",
    "get_log",
    "get_event_logs",
    "get_import_errors",
    "get_health",
    "get_version",
    "get_pools",
    "get_pool",
    "post_pool",
    "patch_pool",
    "delete_pool",
];

fn tool(name: &str) -> PathBuf {
    let path = std::env::var(name).map(PathBuf::from).unwrap_or_default();
    assert!(
        path.is_file(),
        "{name} is not set or missing: `eval \"export $(scripts/airflow-api install)\"` (scripts/test does)"
    );
    path
}

#[test]
fn every_answer_of_the_api_matches_airflows_spec() {
    let (tester, spec) = (tool("UPDRAFT_SCHEMATHESIS"), tool("UPDRAFT_AIRFLOW_SPEC"));
    let dir = tempfile::tempdir().unwrap();
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags).unwrap();
    std::fs::write(
        dags.join("hello.toml"),
        "[dag]\nid = \"hello\"\ntags = [\"demo\"]\nschedule = \"0 * * * *\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = \"echo hello\"\n[[task]]\nid = \"after\"\noperator = \"noop\"\nupstream = [\"say\"]\n",
    )
    .unwrap();
    std::fs::write(
        dags.join("broken.toml"),
        "[dag]\nid = \"broken\"\n[[task]]\n",
    )
    .unwrap();
    let mut serve = Serve::start_as_configured(
        dir.path(),
        &[("UPDRAFT_ADMIN_PASSWORD", "an admin password")],
    );
    serve.wait_healthy(Duration::from_secs(20));
    let token = cli_output(cli(dir.path()).args(["tokens", "create", "--user", "admin"]));
    let queued = cli_output(cli(dir.path()).args(["dags", "trigger", "hello"]));
    let run_id = queued
        .split_whitespace()
        .nth(2)
        .expect("the run id")
        .to_owned();
    wait_until("the run to succeed", Duration::from_secs(20), || {
        cli_output(cli(dir.path()).args(["runs", "list", "--dag", "hello"])).contains("success")
    });

    // Once with the ids schemathesis makes up (unknown ones: the error answers), once with
    // the DAG, run and task that exist (the answers with data).
    let known = format!(
        "[parameters]\n\"path.dag_id\" = \"hello\"\n\"path.dag_run_id\" = \"{run_id}\"\n\"path.task_id\" = \"say\"\n\"path.task_try_number\" = 1\n"
    );
    // The first with a bearer token, the second with HTTP Basic (as Airflow's clients do).
    let bearer = [
        "--header".to_owned(),
        format!("Authorization: Bearer {}", token.trim()),
    ];
    let basic = ["--auth".to_owned(), "admin:an admin password".to_owned()];
    for (round, parameters, auth) in [
        ("made-up ids", String::new(), bearer),
        ("known ids", known, basic),
    ] {
        let stdout = schemathesis(&tester, &spec, &serve.base_url(), &auth, &parameters);
        assert!(
            stdout.contains(&format!("{} selected", OPERATIONS.len())),
            "{round}: {stdout}"
        );
    }
    // The known ids reached the handlers that change things, not only their error answers.
    let events = serve.send(
        "GET",
        "/api/v1/eventLogs?dag_id=hello&limit=1000",
        token.trim(),
        "",
    );
    assert!(
        events.contains("\"event\":\"pause\"") || events.contains("\"event\":\"unpause\""),
        "no PATCH of hello got through: {events}"
    );
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
    serve.terminate();
}

/// Runs schemathesis over [`OPERATIONS`] of `base`'s API with `parameters` (a TOML
/// `[parameters]` table, or nothing); its output, after failing with it if it found issues.
fn schemathesis(
    tool: &PathBuf,
    spec: &PathBuf,
    base: &str,
    auth: &[String],
    parameters: &str,
) -> String {
    // No cache or example database in the work tree; no methods the spec does not list.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("schemathesis.toml"),
        format!(
            "[cache]\nenabled = false\n[phases.coverage]\nunexpected-methods = []\n{parameters}"
        ),
    )
    .unwrap();
    let mut command = Command::new(tool);
    command
        .current_dir(work.path())
        .env(
            "HYPOTHESIS_STORAGE_DIRECTORY",
            work.path().join("hypothesis"),
        )
        .args(["--no-color", "--config-file", "schemathesis.toml", "run"])
        .arg(spec)
        .args(["--url", &format!("{base}/api/v1")])
        .args(auth)
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--mode", "positive", "--max-examples", "25", "--seed", "1"])
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "10",
        ])
        .args([
            "--generation-database",
            "none",
            "--warnings",
            "off",
            "--continue-on-failure",
        ]);
    for operation in OPERATIONS {
        command.args(["--include-operation-id", operation]);
    }
    let out = command.output().expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis found answers that break Airflow's spec:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
