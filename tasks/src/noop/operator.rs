use async_trait::async_trait;

use super::NoopConfig;
use crate::{Operator, TaskContext, TaskError, TaskResult};

/// Succeeds at once with an empty result.
pub(crate) struct NoopOperator;

impl NoopOperator {
    pub(crate) fn new(_config: NoopConfig) -> Self {
        Self
    }
}

#[async_trait]
impl Operator for NoopOperator {
    async fn execute(&self, _ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        Ok(TaskResult::new())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::test_context::{Lines, context};

    #[tokio::test]
    async fn succeeds_with_an_empty_result_and_no_log() {
        let lines = Arc::new(Lines::default());
        let result = NoopOperator::new(NoopConfig {})
            .execute(&context(&lines))
            .await
            .unwrap();
        assert!(result.is_empty());
        assert!(lines.all().is_empty());
    }
}
