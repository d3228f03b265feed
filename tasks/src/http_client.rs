//! The HTTP client the operators share.

use std::sync::OnceLock;

use crate::TaskError;

/// One HTTP client for the process (timeouts are set per request): building one loads the
/// system's root certificates, tens of milliseconds per task, and a shared one keeps its
/// connections for the next call.
pub(crate) fn shared() -> Result<reqwest::Client, TaskError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| TaskError::Failed(format!("cannot build HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}
