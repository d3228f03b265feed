//! MongoDB plumbing shared by the operators.

use mongodb::Client;

use crate::TaskError;

/// A failed MongoDB call as a task error: `what` was being done.
pub(crate) fn failed(what: &str, error: &mongodb::error::Error) -> TaskError {
    TaskError::Failed(format!("MongoDB: {what} failed: {error}"))
}

/// A client that gives up on an unreachable server after 5 s (unless the URI says
/// otherwise) so the task can fail and be restarted, instead of hanging for 30 s.
pub(crate) async fn client(uri: &str) -> Result<Client, TaskError> {
    Client::with_uri_str(&with_defaults(uri))
        .await
        .map_err(|e| TaskError::Failed(format!("bad MongoDB connection string {uri:?}: {e}")))
}

/// Clients kept for readers that come back often (the results pages), by URI: a client holds
/// a connection pool and a monitor per server, so one per read would reconnect every time.
static SHARED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Client>>> =
    std::sync::LazyLock::new(Default::default);
/// Distinct URIs kept at once (beyond, the cache starts over).
const SHARED_URIS: usize = 32;

/// [`client`], made once per URI for the life of the process.
pub(crate) async fn shared_client(uri: &str) -> Result<Client, TaskError> {
    let cached = SHARED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(uri)
        .cloned();
    if let Some(client) = cached {
        return Ok(client);
    }
    let made = client(uri).await?;
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if shared.len() >= SHARED_URIS {
        shared.clear();
    }
    Ok(shared.entry(uri.to_owned()).or_insert(made).clone())
}

/// `uri` with Updraft's timeouts added where the URI does not set them.
fn with_defaults(uri: &str) -> String {
    let mut full = uri.to_owned();
    for (option, value) in [
        ("serverSelectionTimeoutMS", "5000"),
        ("connectTimeoutMS", "5000"),
        ("heartbeatFrequencyMS", "1000"),
        ("retryWrites", "false"),
    ] {
        if !full.contains(option) {
            let separator = if full.contains('?') {
                "&"
            } else if full.trim_start_matches("mongodb://").contains('/') {
                "?"
            } else {
                "/?"
            };
            full = format!("{full}{separator}{option}={value}");
        }
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_added_after_the_right_separator() {
        assert_eq!(
            with_defaults("mongodb://h:1"),
            "mongodb://h:1/?serverSelectionTimeoutMS=5000&connectTimeoutMS=5000&heartbeatFrequencyMS=1000&retryWrites=false"
        );
        assert_eq!(
            with_defaults("mongodb://h:1/db"),
            "mongodb://h:1/db?serverSelectionTimeoutMS=5000&connectTimeoutMS=5000&heartbeatFrequencyMS=1000&retryWrites=false"
        );
    }

    #[test]
    fn options_in_the_uri_are_kept() {
        let uri = with_defaults("mongodb://u:p@h:1/db?connectTimeoutMS=100&retryWrites=true");
        assert!(
            uri.starts_with("mongodb://u:p@h:1/db?connectTimeoutMS=100&retryWrites=true&"),
            "{uri}"
        );
        assert_eq!(uri.matches("connectTimeoutMS").count(), 1, "{uri}");
        assert_eq!(uri.matches("retryWrites").count(), 1, "{uri}");
        assert!(uri.contains("&serverSelectionTimeoutMS=5000"), "{uri}");
    }
}
