//! The deployment files: both compose files validate with docker-compose (no Docker engine
//! needed for `config`), the app one runs two `serve` and two workers, and the image runs
//! as a user that is not root.

use std::{path::Path, process::Command};

fn compose() -> Command {
    let bin = std::env::var("UPDRAFT_DOCKER_COMPOSE").unwrap_or_else(|_| {
        panic!("UPDRAFT_DOCKER_COMPOSE is not set: install docker-compose with `export UPDRAFT_DOCKER_COMPOSE=$(scripts/compose install)` or run the whole suite with scripts/test")
    });
    Command::new(bin)
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `docker-compose -f file config <args>`: (success, stdout, stderr).
fn config(file: &Path, args: &[&str]) -> (bool, String, String) {
    let out = compose()
        .arg("-f")
        .arg(file)
        .arg("config")
        .args(args)
        .output()
        .expect("docker-compose runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn both_compose_files_validate() {
    for name in ["docker-compose-kafka.yaml", "docker-compose-app.yaml"] {
        let (ok, _, stderr) = config(&repo().join(name), &["-q"]);
        assert!(ok, "{name} does not validate: {stderr}");
    }
}

#[test]
fn a_broken_compose_file_is_refused_by_the_same_check() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "services:\n  serve:\n    image: updraft\n    restart: sometimes-maybe\n    portz: [\"8080:8080\"]\n",
    )
    .unwrap();
    let (ok, _, stderr) = config(&broken, &["-q"]);
    assert!(!ok, "the broken file passed");
    assert!(
        stderr.contains("portz"),
        "the error names the key: {stderr}"
    );
}

#[test]
fn the_app_runs_an_active_and_a_standby_serve_and_two_workers() {
    let (ok, services, stderr) = config(&repo().join("docker-compose-app.yaml"), &["--services"]);
    assert!(ok, "{stderr}");
    let services: Vec<&str> = services.lines().collect();
    for service in ["postgres", "serve-a", "serve-b", "worker-1", "worker-2"] {
        assert!(services.contains(&service), "{service} in {services:?}");
    }
    let (_, resolved, _) = config(&repo().join("docker-compose-app.yaml"), &[]);
    assert_eq!(
        resolved.matches("- --no-local-tasks").count(),
        2,
        "{resolved}"
    );
    assert_eq!(resolved.matches("- worker\n").count(), 2, "{resolved}");
    assert!(
        resolved.matches("UPDRAFT_DB: postgres://").count() >= 4,
        "every orchestrator process shares PostgreSQL: {resolved}"
    );
}

#[test]
fn the_image_runs_as_a_user_that_is_not_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = last_stage
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("USER "))
        .expect("the final stage sets USER");
    let name = user.split(':').next().unwrap().trim();
    assert!(!["root", "0", ""].contains(&name), "USER {user}");
}
