use async_trait::async_trait;

use super::SleepConfig;
use crate::{Operator, TaskContext, TaskError, TaskResult};

/// Waits for the configured duration; stops early (as cancelled) when asked to.
pub struct SleepOperator {
    config: SleepConfig,
}

impl SleepOperator {
    pub fn new(config: SleepConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl Operator for SleepOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        ctx.log(&format!("Sleeping for {}", self.config.duration));
        tokio::select! {
            _ = tokio::time::sleep(self.config.duration.as_duration()) => {}
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        }
        let mut result = TaskResult::new();
        result.insert(
            "slept_ms".into(),
            (self.config.duration.as_duration().as_millis() as u64).into(),
        );
        Ok(result)
    }
}
