/// A config that deserialized but breaks a rule of its operator: the field (a dotted path such
/// as `window.slide`, or `topics[1]`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a task try failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The config, after templating, is not valid for the operator: the user's to fix, so the
    /// try is not retried.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    /// The task ran and failed (a broker down, a command's exit code): retried as configured.
    #[error("{0}")]
    Failed(String),
    /// The task was cancelled before it finished (timeout, shutdown or stop).
    #[error("cancelled")]
    Cancelled,
}

impl TaskError {
    /// Whether another try could go differently; a config error will not.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Config(_))
    }
}
