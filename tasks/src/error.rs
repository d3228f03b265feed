/// Why a task try failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The config, after templating, is not valid for the operator.
    #[error("invalid config: {0}")]
    Config(String),
    /// The task ran and failed.
    #[error("{0}")]
    Failed(String),
    /// The task was cancelled before it finished (timeout, shutdown or stop).
    #[error("cancelled")]
    Cancelled,
}
