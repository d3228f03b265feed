use async_trait::async_trait;

use super::NoopConfig;
use crate::{Operator, TaskContext, TaskError, TaskResult};

/// Succeeds at once with an empty result.
pub struct NoopOperator;

impl NoopOperator {
    pub fn new(_config: NoopConfig) -> Self {
        Self
    }
}

#[async_trait]
impl Operator for NoopOperator {
    async fn execute(&self, _ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        Ok(TaskResult::new())
    }
}
