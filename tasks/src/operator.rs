use async_trait::async_trait;

use crate::{TaskContext, TaskError};

/// The result summary of a task: a JSON object that downstream templates read as
/// `upstream.<task_id>.<field>`.
pub type TaskResult = serde_json::Map<String, serde_json::Value>;

/// One operator instance, built from a rendered config, run once per try.
///
/// Implementations must return promptly once `ctx.cancel` fires (timeout, shutdown, or the
/// run being stopped): long-running operators finish what they can (flush, commit) and return.
#[async_trait]
pub trait Operator: Send + Sync {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError>;
}
