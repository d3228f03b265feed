//! GET with retries: connection errors, 5xx and 429 are retried with exponential backoff,
//! honouring Retry-After.

use std::{collections::BTreeMap, time::Duration};

use reqwest::{StatusCode, header::RETRY_AFTER};

use crate::{ConfigError, TaskContext, TaskError};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(super) struct Fetched {
    pub status: u16,
    pub body: bytes::Bytes,
    pub attempts: u32,
}

/// What one attempt gave: a body, or a reason with whether it is worth another attempt.
enum Attempt {
    Done(Fetched),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

pub(super) async fn get_with_retries(
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    retries: u32,
    ctx: &TaskContext,
) -> Result<Fetched, TaskError> {
    let client = crate::http_client::shared()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            outcome = get_once(&client, url, headers, timeout, attempt) => outcome?,
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        };
        let (reason, after) = match outcome {
            Attempt::Done(fetched) => return Ok(fetched),
            Attempt::Retry { reason, after } => (reason, after),
        };
        if attempt > retries {
            return Err(TaskError::Failed(format!(
                "GET {url} failed after {attempt} attempts: {reason}"
            )));
        }
        let wait = after.unwrap_or_else(|| backoff(attempt)).min(MAX_BACKOFF);
        ctx.log(&format!(
            "GET {url} attempt {attempt} failed ({reason}); retrying in {} ms",
            wait.as_millis()
        ));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        }
    }
}

/// 0.5 s, 1 s, 2 s, ... capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

async fn get_once(
    client: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    attempts: u32,
) -> Result<Attempt, TaskError> {
    let mut request = client.get(url).timeout(timeout);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_builder() => {
            return Err(ConfigError::new("url", format!("{url:?}: {e}")).into());
        }
        Err(e) => {
            return Ok(Attempt::Retry {
                reason: error_chain(&e),
                after: None,
            });
        }
    };
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Ok(Attempt::Retry {
            reason: format!("status {status}"),
            after,
        });
    }
    let body = response.bytes().await;
    match body {
        Ok(body) if status.is_success() => Ok(Attempt::Done(Fetched {
            status: status.as_u16(),
            body,
            attempts,
        })),
        Ok(body) => Err(TaskError::Failed(format!(
            "GET {url}: status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        ))),
        Err(e) => Ok(Attempt::Retry {
            reason: format!("reading the body: {}", error_chain(&e)),
            after: None,
        }),
    }
}

/// The error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_context::{Lines, context};

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    /// A server answering each connection with the next canned response; the base URL.
    async fn canned(responses: Vec<&'static str>) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for response in responses {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                socket.write_all(response.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        format!("http://{address}/api/")
    }

    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const TOO_MANY: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const OK: &str =
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
    const NOT_FOUND: &str =
        "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope";

    #[tokio::test]
    async fn server_errors_and_429_are_retried_honouring_retry_after() {
        let url = canned(vec![UNAVAILABLE, TOO_MANY, OK]).await;
        let lines = std::sync::Arc::new(Lines::default());
        let fetched = get_with_retries(
            &url,
            &BTreeMap::new(),
            Duration::from_secs(5),
            3,
            &context(&lines),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((fetched.status, fetched.attempts), (200, 3));
        assert_eq!(&fetched.body[..], br#"{"ok":true}"#);
        let lines = lines.all();
        assert!(
            lines[0].contains("status 503") && lines[0].contains("retrying in 500 ms"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("status 429") && lines[1].contains("retrying in 1000 ms"),
            "Retry-After: 1 sets the wait: {lines:?}"
        );
    }

    /// The error of GETting the canned `responses` with `retries`.
    async fn failure(responses: Vec<&'static str>, retries: u32) -> String {
        let url = canned(responses).await;
        let lines = std::sync::Arc::new(Lines::default());
        get_with_retries(
            &url,
            &BTreeMap::new(),
            Duration::from_secs(5),
            retries,
            &context(&lines),
        )
        .await
        .err()
        .expect("the GET fails")
        .to_string()
    }

    #[tokio::test]
    async fn retries_run_out_and_client_errors_are_not_retried() {
        let error = failure(vec![UNAVAILABLE, UNAVAILABLE], 1).await;
        assert!(
            error.contains("failed after 2 attempts: status 503"),
            "{error}"
        );
        let error = failure(vec![NOT_FOUND], 3).await;
        assert!(
            error.contains("status 404") && error.contains("nope"),
            "{error}"
        );
    }
}
