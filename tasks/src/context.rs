use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Where a task writes its log lines (the orchestrator writes them to the try's log file and
/// to live subscribers).
pub trait LogSink: Send + Sync {
    fn line(&self, line: &str);
}

/// Live metrics of a running task (records in/out, lag, ...), read by the executor and the UI.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    values: Arc<Mutex<serde_json::Map<String, serde_json::Value>>>,
}

impl Metrics {
    pub fn set(&self, name: &str, value: impl Into<serde_json::Value>) {
        if let Ok(mut values) = self.values.lock() {
            values.insert(name.to_owned(), value.into());
        }
    }

    pub fn snapshot(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .lock()
            .map(|values| values.clone())
            .unwrap_or_default()
    }
}

/// What an operator gets for one try.
#[derive(Clone)]
pub struct TaskContext {
    /// Fires when the try must stop: timeout, shutdown, or the run being stopped.
    pub cancel: CancellationToken,
    /// The try's log.
    pub log: Arc<dyn LogSink>,
    /// Live metrics of the try.
    pub metrics: Metrics,
}

impl TaskContext {
    pub fn log(&self, line: &str) {
        self.log.line(line);
    }
}
