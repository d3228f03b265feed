//! A [`TaskContext`] for unit tests that keeps the log lines.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::{LogSink, Metrics, TaskContext};

#[derive(Default)]
pub(crate) struct Lines(Mutex<Vec<String>>);

impl Lines {
    pub(crate) fn all(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl LogSink for Lines {
    fn line(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.to_owned());
        }
    }
}

/// A context logging into `lines`, with default connections.
pub(crate) fn context(lines: &Arc<Lines>) -> TaskContext {
    TaskContext {
        cancel: CancellationToken::new(),
        log: lines.clone(),
        metrics: Metrics::default(),
        connections: Default::default(),
        share: Default::default(),
        env_passthrough: Arc::new([]),
    }
}
