//! `orchestrator serve` as a process: CLI triggers, DAG folder reloads, SIGTERM.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn orchestrator(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    command
        .env("UPDRAFT_DAGS_FOLDER", dir.join("dags"))
        .env(
            "UPDRAFT_DB",
            format!("sqlite://{}", dir.join("updraft.db").display()),
        )
        .env("UPDRAFT_LOGS_FOLDER", dir.join("logs"))
        .env_remove("RUST_LOG");
    command
}

fn output(command: &mut Command) -> String {
    let out = command.output().expect("the CLI runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        command,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_runs_cli_triggers_reloads_dags_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(dir.path().join("dags/first.toml"), "[dag]\nid = \"first\"\n[dag.params]\nwho = \"nobody\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = \"echo from {{ params.who }}\"\n").unwrap();
    let port = free_port();
    let mut serve = orchestrator(dir.path())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the web UI", Duration::from_secs(20), || {
        http_get(port, "/health")
            .is_some_and(|r| r.contains(r#""metadatabase":{"status":"healthy"}"#))
    });

    let queued = output(orchestrator(dir.path()).args([
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
    wait_for(
        "the triggered run to succeed",
        Duration::from_secs(20),
        || {
            output(orchestrator(dir.path()).args(["runs", "list", "--dag", "first"]))
                .contains("success")
        },
    );
    let log = output(orchestrator(dir.path()).args(["tasks", "logs", "first", &run_id, "say"]));
    assert!(log.contains("from the CLI"), "{log}");

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
    wait_for("the new DAG file to load", Duration::from_secs(2), || {
        http_get(port, "/api/v1/dags")
            .is_some_and(|r| r.contains("\"second\"") && r.contains("unknown operator"))
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let start_serve = |port: u16| {
        let serve = orchestrator(dir.path())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the web UI", Duration::from_secs(20), || {
            http_get(port, "/health").is_some_and(|r| r.contains("metadatabase"))
        });
        serve
    };
    let port = free_port();
    let mut first = start_serve(port);
    output(orchestrator(dir.path()).args(["dags", "trigger", "append"]));
    wait_for("the try to run", Duration::from_secs(10), || {
        http_get(port, "/api/v1/dags/append/dagRuns")
            .and_then(|r| {
                r.split("\"dag_run_id\":\"")
                    .nth(1)
                    .map(|s| s.split('"').next().unwrap_or("").to_owned())
            })
            .and_then(|run| {
                http_get(
                    port,
                    &format!("/api/v1/dags/append/dagRuns/{run}/taskInstances"),
                )
            })
            .is_some_and(|r| r.contains("\"state\":\"running\""))
    });
    std::thread::sleep(Duration::from_secs(2));
    first.kill().unwrap();
    first.wait().unwrap();
    let port = free_port();
    let mut second = start_serve(port);
    wait_for("the retry to succeed", Duration::from_secs(30), || {
        output(orchestrator(dir.path()).args(["runs", "list", "--dag", "append"]))
            .contains("success")
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
    second.kill().unwrap();
    second.wait().unwrap();
}
