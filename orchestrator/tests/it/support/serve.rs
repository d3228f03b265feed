//! `orchestrator serve` as a process over a test folder (`dags/`, `updraft.db`, `logs/`), the
//! CLI against the same folder, and a guard that kills `serve` when dropped, so a failed
//! assertion never leaves one running.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::{free_port, wait_until};

/// The `orchestrator` binary with its folders in `dir`.
pub fn cli(dir: &Path) -> Command {
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

/// Runs `command` and returns its standard output; fails with both outputs if it fails.
pub fn cli_output(command: &mut Command) -> String {
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

/// One `serve` process; its output is appended to `dir/serve.log`.
pub struct Serve {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Serve {
    /// Starts `serve` on a free port with `env` added (e.g. `UPDRAFT_ADMIN_PASSWORD`), its
    /// pages and read API public (`env` may say otherwise) so that tests read them as they are.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut all = vec![("UPDRAFT_PUBLIC_READ", "true")];
        all.extend_from_slice(env);
        Self::start_as_configured(dir, &all)
    }

    /// Starts `serve` on a free port with `env` added and nothing else set.
    pub fn start_as_configured(dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .expect("dir/serve.log opens");
        let port = free_port();
        let child = cli(dir)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("orchestrator serve starts");
        Self {
            dir: dir.to_owned(),
            port,
            child,
        }
    }

    /// [`Serve::start`], then waits (20 s at most) until its metadata database is healthy.
    pub fn start_healthy(dir: &Path) -> Self {
        let mut serve = Self::start(dir, &[]);
        serve.wait_healthy(Duration::from_secs(20));
        serve
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `/health` until the metadata database is healthy; fails early if `serve` exits.
    pub fn wait_healthy(&mut self, limit: Duration) {
        wait_until("serve's /health", limit, || {
            assert!(
                !self.exited(),
                "serve exited; its log:\n{}",
                self.log_tail()
            );
            self.get("/health")
                .is_some_and(|r| r.contains(r#""metadatabase":{"status":"healthy"}"#))
        });
    }

    /// A GET on the web server; the whole response (status line, headers, body), or None when
    /// it cannot be reached.
    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.port, path, Duration::from_secs(10))
    }

    /// A request with a bearer token; the whole response ("" when it cannot be reached).
    pub fn send(&self, method: &str, path: &str, token: &str, body: &str) -> String {
        let limit = Duration::from_secs(10);
        http_send(self.port, method, path, Some(token), body, limit).unwrap_or_default()
    }

    /// SIGKILL: no flush, no commit, no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (30 s at most) for a clean exit.
    pub fn terminate(mut self) {
        let log = self.dir.join("serve.log");
        terminate_child(&mut self.child, "serve", move || last_lines(&log, 40));
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// Its warnings and errors but the expected zombie adoptions, then its last 20 lines.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let warnings = lines
            .iter()
            .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && !l.contains("zombie"));
        let tail = lines[lines.len().saturating_sub(20)..].iter();
        warnings.chain(tail).copied().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `orchestrator worker` process named `name`; its output goes to `dir/worker-<name>.log`.
/// Killed when dropped.
pub struct WorkerProcess {
    dir: PathBuf,
    name: String,
    child: Child,
}

impl WorkerProcess {
    /// Starts a worker over `dir`'s DAGs with its own logs folder (`dir/logs-<name>`), `env`
    /// added (`UPDRAFT_DB` at least: workers need PostgreSQL).
    pub fn start(dir: &Path, name: &str, env: &[(&str, &str)]) -> Self {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join(format!("worker-{name}.log")))
            .expect("the worker's log opens");
        let child = cli(dir)
            .env("RUST_LOG", "info")
            .env("UPDRAFT_LOGS_FOLDER", dir.join(format!("logs-{name}")))
            .envs(env.iter().copied())
            .args(["worker", "--name", name])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("orchestrator worker starts");
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            child,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("worker-{}.log", self.name)))
            .unwrap_or_default()
    }

    /// SIGKILL: no hand-back, no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (30 s at most) for a clean exit.
    pub fn terminate(mut self) {
        let log = self.dir.join(format!("worker-{}.log", self.name));
        terminate_child(&mut self.child, "worker", move || last_lines(&log, 40));
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET on 127.0.0.1:`port`; the whole response, waiting up to `limit` between reads.
pub fn http_get(port: u16, path: &str, limit: Duration) -> Option<String> {
    http_send(port, "GET", path, None, "", limit)
}

/// A request on 127.0.0.1:`port` with a bearer `token` and a JSON `body`; the whole response.
pub fn http_send(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
    limit: Duration,
) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Sends `child` SIGTERM and waits (30 s at most) for it to exit with success; fails with
/// `log()` otherwise.
fn terminate_child(child: &mut Child, what: &str, log: impl Fn() -> String) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM is sent");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the process's status") {
            assert!(
                status.success(),
                "{what} exited with {status}; its log:\n{}",
                log()
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `count` lines of the file at `path` (empty when it cannot be read).
fn last_lines(path: &Path, count: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}
