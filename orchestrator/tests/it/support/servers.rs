//! Servers a test owns alone, so it can stop and restart them: a tansu broker on SQLite
//! storage (topics, records and committed offsets survive a restart) and an nx-27017 server on
//! a data directory. `scripts/test` exports their binaries (`UPDRAFT_TANSU_BIN`,
//! `UPDRAFT_NX_BIN`).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::free_port;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// One server process on a fixed loopback port, stopped when dropped.
pub struct Server {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    log: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

fn binary(variable: &str, install: &str) -> PathBuf {
    let path = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: export {variable}=\"$({install})\" or run the whole suite with scripts/test")
    });
    assert!(
        Path::new(&path).is_file(),
        "{variable}={path} does not exist: run `{install}`"
    );
    PathBuf::from(path)
}

impl Server {
    /// A tansu broker keeping its data in `dir/tansu.db`, started.
    pub async fn tansu(dir: &Path) -> Self {
        let port = free_port();
        let listener = format!("tcp://127.0.0.1:{port}");
        // tansu reads the path of a sqlite:// URL as relative: it runs in `dir`.
        let storage = "sqlite://tansu.db";
        let args = [
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
            "--storage-engine",
            storage,
        ];
        Self::started(
            "tansu",
            binary("UPDRAFT_TANSU_BIN", "scripts/kafka install"),
            &args,
            port,
            dir,
        )
        .await
    }

    /// An nx-27017 MongoDB-wire server keeping its databases in `dir/mongo`, started.
    pub async fn mongo(dir: &Path) -> Self {
        let port = free_port();
        let port_text = port.to_string();
        let data = dir.join("mongo").display().to_string();
        let log = dir.join("nx.log").display().to_string();
        let pid = dir.join("nx.pid").display().to_string();
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &port_text,
            "--data-dir",
            &data,
            "--log-file",
            &log,
            "--pid-file",
            &pid,
        ];
        Self::started(
            "nx-27017",
            binary("UPDRAFT_NX_BIN", "scripts/mongo install"),
            &args,
            port,
            dir,
        )
        .await
    }

    async fn started(
        name: &'static str,
        program: PathBuf,
        args: &[&str],
        port: u16,
        dir: &Path,
    ) -> Self {
        let mut server = Self {
            name,
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            port,
            log: dir.join(format!("{name}.out")),
            dir: dir.to_owned(),
            child: None,
        };
        server.start().await;
        server
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits (30 s at most) until it accepts connections.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "{} exited ({exited:?}) before listening on {}; its output: {}",
                self.name,
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} did not listen on {} within 30 s; its output: {}",
                self.name,
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and waits for it to exit.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
