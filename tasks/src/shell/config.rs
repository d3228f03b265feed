use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

/// `shell` runs `command` through `bash -c` in its own process group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// The command line, run by `bash -c`.
    pub command: String,
    /// The command's environment variables besides the few it always gets from the
    /// orchestrator's ([`BASE_ENV`], `LC_*`) and those `env_passthrough` names.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the orchestrator's environment variables the command also gets (the DAG's
    /// `[dag] env_passthrough` is added to every shell task's). `UPDRAFT_*` names are
    /// refused: they hold the database URL, the admin password and tokens.
    #[serde(default)]
    pub env_passthrough: Vec<String>,
    /// Working directory; defaults to the orchestrator's.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

/// The orchestrator's variables every shell command gets (with every `LC_*`), as a login
/// shell would have them; nothing else passes unless named in `env_passthrough`.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM",
];

impl ShellConfig {
    /// `env_passthrough` names no `UPDRAFT_*` variable.
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        check_passthrough(&self.env_passthrough)
            .map_err(|message| crate::ConfigError::new("env_passthrough", message))
    }

    /// Whether the orchestrator's variable `name` reaches the command: a base one, or one
    /// named by the task (with its DAG) or in `everywhere` (`--env-passthrough`).
    pub fn passes(&self, name: &str, everywhere: &[String]) -> bool {
        !name.starts_with("UPDRAFT_")
            && (BASE_ENV.contains(&name)
                || name.starts_with("LC_")
                || self
                    .env_passthrough
                    .iter()
                    .chain(everywhere)
                    .any(|n| n == name))
    }
}

/// Refuses an `env_passthrough` list (a task's, a DAG's or `--env-passthrough`) that names an
/// `UPDRAFT_*` variable.
pub fn check_passthrough(names: &[String]) -> Result<(), String> {
    match names.iter().find(|name| name.starts_with("UPDRAFT_")) {
        Some(name) => Err(format!(
            "{name:?}: the orchestrator's UPDRAFT_* variables hold its secrets and never reach a task"
        )),
        None => Ok(()),
    }
}
