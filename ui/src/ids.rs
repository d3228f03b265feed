//! Typed identifiers taken from URLs: a DAG, a run of it, a task instance, one try of it.
//! Each part is checked to be a plausible id (no path separators, no `..`), so nothing taken
//! from a URL can name a file outside the logs folder even before the backend looks it up.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::backend::BackendError;

/// The most characters an id may hold.
const MAX_ID_LEN: usize = 250;

/// Checks one id taken from a URL: letters, digits and `_ - . : +` (run ids hold dates).
fn check(kind: &'static str, text: &str) -> Result<(), BackendError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '+');
    if text.is_empty() || text.len() > MAX_ID_LEN || !text.chars().all(legal) || text.contains("..")
    {
        return Err(BackendError::NotFound(format!("no {kind} {text:?}")));
    }
    Ok(())
}

/// A DAG id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DagId(String);

impl DagId {
    pub fn parse(text: &str) -> Result<Self, BackendError> {
        check("DAG", text)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DagId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One run of a DAG.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub dag_id: DagId,
    pub run_id: String,
}

impl RunKey {
    pub fn parse(dag_id: &str, run_id: &str) -> Result<Self, BackendError> {
        check("run", run_id)?;
        Ok(Self {
            dag_id: DagId::parse(dag_id)?,
            run_id: run_id.to_owned(),
        })
    }
}

/// One task instance: a task in a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    pub run: RunKey,
    pub task_id: String,
}

impl TaskKey {
    pub fn parse(dag_id: &str, run_id: &str, task_id: &str) -> Result<Self, BackendError> {
        check("task", task_id)?;
        Ok(Self {
            run: RunKey::parse(dag_id, run_id)?,
            task_id: task_id.to_owned(),
        })
    }
}

/// One try of a task instance (tries count from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryKey {
    pub task: TaskKey,
    pub try_number: u32,
}

impl TryKey {
    pub fn parse(
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        try_number: &str,
    ) -> Result<Self, BackendError> {
        let task = TaskKey::parse(dag_id, run_id, task_id)?;
        match try_number.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Self {
                task,
                try_number: n,
            }),
            _ => Err(BackendError::NotFound(format!(
                "no try {try_number:?} of {}.{}: tries count from 1",
                task.run.dag_id, task.task_id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_path_parts_are_refused() {
        assert!(DagId::parse("hello").is_ok());
        assert!(RunKey::parse("hello", "manual__2026-11-25T10:00:00.123+00:00").is_ok());
        for bad in ["", "..", "a/b", "a..b", "a b", "%2e%2e", "a\\b"] {
            assert!(DagId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TryKey::parse("d", "r", "t", "0").is_err());
        assert!(TryKey::parse("d", "r", "t", "x").is_err());
        assert_eq!(TryKey::parse("d", "r", "t", "3").unwrap().try_number, 3);
    }
}
