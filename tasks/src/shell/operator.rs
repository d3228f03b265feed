use std::{ffi::OsString, process::Stdio};

use async_trait::async_trait;
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use super::ShellConfig;
use crate::{Operator, TaskContext, TaskError, TaskResult};

/// Runs a bash command; stdout and stderr go to the task log line by line, a non-zero exit
/// fails the try, and cancellation kills the whole process group.
pub struct ShellOperator {
    config: ShellConfig,
}

impl ShellOperator {
    pub fn new(config: ShellConfig) -> Self {
        Self { config }
    }

    async fn spawn(&self, everywhere: &[String]) -> Result<Child, TaskError> {
        let mut command = self.command(std::env::vars_os(), everywhere);
        command.kill_on_drop(true);
        crate::child::spawn(command)
            .await
            .map_err(|e| TaskError::Failed(format!("cannot start bash: {e}")))
    }

    /// `bash -c <command>` with a clean environment: of `parent`'s variables only the base
    /// ones (`PATH`, `HOME`, `LANG`, ...) and those named in `env_passthrough` or
    /// `everywhere` (`--env-passthrough`), then the task's
    /// own `env`. Nothing else of the orchestrator's reaches a task (its `UPDRAFT_*` variables
    /// hold the metadata database's URL with its password, the admin password, tokens; a task
    /// running `env` or `set -x` would print them into a log).
    fn command(
        &self,
        parent: impl Iterator<Item = (OsString, OsString)>,
        everywhere: &[String],
    ) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(&self.config.command)
            .env_clear()
            .envs(parent.filter(|(name, _)| {
                name.to_str()
                    .is_some_and(|n| self.config.passes(n, everywhere))
            }))
            .envs(&self.config.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &self.config.cwd {
            command.current_dir(cwd);
        }
        command
    }
}

/// Sends every line of `stream` to `lines`.
fn forward_lines(stream: impl AsyncRead + Unpin + Send + 'static, lines: mpsc::Sender<String>) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if lines.send(line).await.is_err() {
                break;
            }
        }
    });
}

/// Kills every process of the group `bash` leads. Its id is taken at spawn: tokio forgets a
/// child's id once it has been reaped, and the group outlives its leader while members remain.
fn kill_group(group: Option<u32>) {
    if let Some(pid) = group {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

#[async_trait]
impl Operator for ShellOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        ctx.log(&format!("Running: {}", self.config.command));
        let mut child = self.spawn(&ctx.env_passthrough).await?;
        let group = child.id();
        let (tx, mut lines) = mpsc::channel::<String>(256);
        if let Some(stdout) = child.stdout.take() {
            forward_lines(stdout, tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward_lines(stderr, tx);
        }
        let mut last_line = String::new();
        let status = loop {
            tokio::select! {
                Some(line) = lines.recv() => {
                    ctx.log(&line);
                    last_line = line;
                }
                status = child.wait() => break status,
                _ = ctx.cancel.cancelled() => {
                    kill_group(group);
                    let _ = child.wait().await;
                    return Err(TaskError::Cancelled);
                }
            }
        };
        // Children left in the group (e.g. `sleep 100 &`) must not outlive the task, nor keep
        // its pipes open.
        kill_group(group);
        while let Some(line) = lines.recv().await {
            ctx.log(&line);
            last_line = line;
        }
        let status = status.map_err(|e| TaskError::Failed(format!("waiting for bash: {e}")))?;
        let code = status.code();
        ctx.log(&format!("Command exited with {status}"));
        if !status.success() {
            return Err(TaskError::Failed(format!("command exited with {status}")));
        }
        let mut result = TaskResult::new();
        result.insert("exit_code".into(), code.unwrap_or(0).into());
        result.insert("output".into(), last_line.into());
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::Arc,
        time::{Duration, Instant},
    };

    use nix::{errno::Errno, sys::signal::kill};

    use super::*;
    use crate::test_context::{Lines, context};

    #[tokio::test]
    async fn a_task_starts_from_a_clean_environment() {
        let operator = ShellOperator::new(ShellConfig {
            command: "env".into(),
            env: BTreeMap::from([("UPDRAFT_MINE".into(), "set by the task".into())]),
            cwd: None,
            env_passthrough: vec!["AWS_PROFILE".into()],
        });
        let parent = [
            ("PATH", "/usr/bin:/bin"),
            ("UPDRAFT_DB", "postgres://u:secret@h/db"),
            ("UPDRAFT_ADMIN_PASSWORD", "hunter2"),
            ("LANG", "C.UTF-8"),
            ("LC_TIME", "C"),
            ("AWS_PROFILE", "analytics"),
            ("AWS_SECRET_ACCESS_KEY", "not-passed-through"),
            ("KUBECONFIG", "/etc/kube"),
        ]
        .map(|(name, value)| (OsString::from(name), OsString::from(value)));
        let everywhere = ["KUBECONFIG".to_string()];
        let output = operator
            .command(parent.into_iter(), &everywhere)
            .output()
            .await
            .unwrap();
        let env = String::from_utf8(output.stdout).unwrap();
        assert!(
            env.contains("PATH=/usr/bin:/bin") && env.contains("LANG=C.UTF-8"),
            "{env}"
        );
        assert!(env.contains("UPDRAFT_MINE=set by the task"), "{env}");
        assert!(
            env.contains("LC_TIME=C")
                && env.contains("AWS_PROFILE=analytics")
                && env.contains("KUBECONFIG=/etc/kube"),
            "{env}"
        );
        assert!(
            !env.contains("secret") && !env.contains("hunter2") && !env.contains("AWS_SECRET"),
            "{env}"
        );
    }

    #[test]
    fn an_updraft_variable_cannot_be_passed_through() {
        let config = ShellConfig {
            command: "env".into(),
            env: BTreeMap::new(),
            cwd: None,
            env_passthrough: vec!["UPDRAFT_DB".into()],
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "env_passthrough");
        assert!(error.message.contains("UPDRAFT_DB"), "{error:?}");
    }

    fn shell(command: &str) -> ShellOperator {
        ShellOperator::new(ShellConfig {
            command: command.into(),
            env: BTreeMap::new(),
            cwd: None,
            env_passthrough: Vec::new(),
        })
    }

    /// Whether process `pid` is dead, waiting up to 5 s: gone, or a zombie (dead, waiting
    /// for whoever adopted it to reap it, which a container's init may never do).
    async fn gone(pid: i32) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            if zombie || matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_logged_and_the_last_line_is_the_output() {
        let lines = Arc::new(Lines::default());
        let result = shell("echo two >&2; echo one; echo three")
            .execute(&context(&lines))
            .await
            .unwrap();
        assert_eq!(result["exit_code"], 0);
        let logged = lines.all();
        // The two pipes are read side by side: only stdout's own order is certain.
        let one = logged.iter().position(|l| l == "one").unwrap();
        let three = logged.iter().position(|l| l == "three").unwrap();
        assert!(one < three, "{logged:?}");
        assert!(["two", "three"].contains(&result["output"].as_str().unwrap()));
        for line in ["one", "two", "three", "Command exited with exit status: 0"] {
            assert!(logged.iter().any(|l| l == line), "{line:?} in {logged:?}");
        }
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_the_try_with_its_code() {
        let lines = Arc::new(Lines::default());
        let error = shell("echo about to fail; exit 3")
            .execute(&context(&lines))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, TaskError::Failed(m) if m.contains("exit status: 3")),
            "{error}"
        );
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn env_and_cwd_are_the_configured_ones() {
        let dir = tempfile::tempdir().unwrap();
        let operator = ShellOperator::new(ShellConfig {
            command: "echo \"$WHO in $(pwd)\"".into(),
            env: BTreeMap::from([("WHO".to_string(), "the task".to_string())]),
            cwd: Some(dir.path().to_owned()),
            env_passthrough: Vec::new(),
        });
        let lines = Arc::new(Lines::default());
        let result = operator.execute(&context(&lines)).await.unwrap();
        let expected = format!(
            "the task in {}",
            dir.path().canonicalize().unwrap().display()
        );
        assert_eq!(result["output"], expected.as_str());
    }

    #[tokio::test]
    async fn cancelling_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let command = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let lines = Arc::new(Lines::default());
        let ctx = context(&lines);
        let cancel = ctx.cancel.clone();
        let operator = shell(&command);
        let running = tokio::spawn(async move { operator.execute(&ctx).await });
        let mut pid = None;
        let started = Instant::now();
        while pid.is_none() && started.elapsed() < Duration::from_secs(5) {
            pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid = pid.expect("the background sleep started");
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the try returns promptly once cancelled")
            .unwrap();
        assert!(matches!(outcome, Err(TaskError::Cancelled)), "{outcome:?}");
        assert!(
            gone(pid).await,
            "the background sleep {pid} outlived the task"
        );
    }

    #[tokio::test]
    async fn children_left_behind_by_a_finished_command_are_killed() {
        let lines = Arc::new(Lines::default());
        // The background sleep keeps the pipes open too: the try must not wait for it.
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            shell("sleep 60 & echo $!").execute(&context(&lines)),
        )
        .await
        .expect("the try ends with its command, not with the sleep it left behind")
        .unwrap();
        let pid: i32 = result["output"].as_str().unwrap().parse().unwrap();
        assert!(
            gone(pid).await,
            "the background sleep {pid} outlived the task"
        );
    }
}
