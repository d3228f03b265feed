use std::process::Stdio;

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

    async fn spawn(&self) -> Result<Child, TaskError> {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(&self.config.command)
            .envs(&self.config.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &self.config.cwd {
            command.current_dir(cwd);
        }
        crate::child::spawn(command)
            .await
            .map_err(|e| TaskError::Failed(format!("cannot start bash: {e}")))
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

fn kill_group(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

#[async_trait]
impl Operator for ShellOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        ctx.log(&format!("Running: {}", self.config.command));
        let mut child = self.spawn().await?;
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
                    kill_group(&child);
                    let _ = child.wait().await;
                    return Err(TaskError::Cancelled);
                }
            }
        };
        // Children left in the group (e.g. `sleep 100 &`) must not outlive the task, nor keep
        // its pipes open.
        kill_group(&child);
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
