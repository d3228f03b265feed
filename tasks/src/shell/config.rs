use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

/// `shell` runs `command` through `bash -c` in its own process group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// The command line, run by `bash -c`.
    pub command: String,
    /// Extra environment variables for the command, added to the orchestrator's own less its
    /// `UPDRAFT_*` variables (which hold the database URL, the admin password and tokens).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; defaults to the orchestrator's.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}
