//! MongoDB plumbing shared by the operators.

use mongodb::Client;

use crate::TaskError;

/// The environment variable naming the default MongoDB connection string.
pub const URI_ENV: &str = "UPDRAFT_MONGO_URI";
const DEFAULT_URI: &str = "mongodb://127.0.0.1:27017";

/// A task's `uri` setting, else `$UPDRAFT_MONGO_URI`, else mongodb://127.0.0.1:27017.
pub fn uri(configured: Option<&str>) -> String {
    configured
        .map(str::to_owned)
        .or_else(|| std::env::var(URI_ENV).ok())
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URI.to_owned())
}

/// A client that gives up on an unreachable server after 5 s (unless the URI says
/// otherwise) so the task can fail and be restarted, instead of hanging for 30 s.
pub async fn client(uri: &str) -> Result<Client, TaskError> {
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
    Client::with_uri_str(&full)
        .await
        .map_err(|e| TaskError::Failed(format!("bad MongoDB connection string {uri:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_uri_wins() {
        assert_eq!(uri(Some("mongodb://h:1")), "mongodb://h:1");
    }
}
