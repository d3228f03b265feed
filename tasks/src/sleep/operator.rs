use async_trait::async_trait;

use super::SleepConfig;
use crate::{Operator, TaskContext, TaskError, TaskResult};

/// Waits for the configured duration; stops early (as cancelled) when asked to.
pub(crate) struct SleepOperator {
    config: SleepConfig,
}

impl SleepOperator {
    pub(crate) fn new(config: SleepConfig) -> Self {
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

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::{
        HumanDuration,
        test_context::{Lines, context},
    };

    fn sleep(duration: Duration) -> SleepOperator {
        SleepOperator::new(SleepConfig {
            duration: HumanDuration(duration),
        })
    }

    #[tokio::test]
    async fn sleeps_for_the_duration() {
        let lines = Arc::new(Lines::default());
        let started = Instant::now();
        let result = sleep(Duration::from_millis(120))
            .execute(&context(&lines))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(120));
        assert_eq!(result["slept_ms"], 120);
        assert_eq!(lines.all(), ["Sleeping for 120ms"]);
    }

    #[tokio::test]
    async fn a_cancelled_sleep_returns_at_once() {
        let lines = Arc::new(Lines::default());
        let ctx = context(&lines);
        ctx.cancel.cancel();
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            sleep(Duration::from_secs(3600)).execute(&ctx),
        )
        .await
        .expect("returns long before the hour");
        assert!(matches!(outcome, Err(TaskError::Cancelled)));
    }
}
