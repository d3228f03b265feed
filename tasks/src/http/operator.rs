use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;

use super::HttpConfig;
use crate::{Operator, TaskContext, TaskError, TaskResult};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes one HTTP request. The result holds `status`, `elapsed_ms` and `body` (parsed JSON
/// when the response is JSON, else text, cut to `max_body_bytes`).
pub(crate) struct HttpOperator {
    config: HttpConfig,
}

impl HttpOperator {
    pub(crate) fn new(config: HttpConfig) -> Self {
        Self { config }
    }

    fn request(&self) -> Result<reqwest::RequestBuilder, TaskError> {
        let method = self.config.method()?;
        let timeout = self
            .config
            .request_timeout
            .map_or(DEFAULT_TIMEOUT, |t| t.as_duration());
        let client = crate::http_client::shared()?;
        let mut request = client.request(method, &self.config.url).timeout(timeout);
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &self.config.body {
            request = request.body(body.clone());
        }
        Ok(request)
    }

    fn is_expected(&self, status: StatusCode) -> bool {
        if self.config.expected_status.is_empty() {
            status.is_success()
        } else {
            self.config.expected_status.contains(&status.as_u16())
        }
    }
}

fn body_summary(bytes: &[u8], max_bytes: usize) -> serde_json::Value {
    if bytes.len() <= max_bytes
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        return json;
    }
    let cut = &bytes[..bytes.len().min(max_bytes)];
    String::from_utf8_lossy(cut).into_owned().into()
}

#[async_trait]
impl Operator for HttpOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let request = self.request()?;
        ctx.log(&format!(
            "{} {}",
            self.config.method.to_uppercase(),
            self.config.url
        ));
        let started = Instant::now();
        let response = tokio::select! {
            response = request.send() => response.map_err(|e| TaskError::Failed(format!("request to {} failed: {e}", self.config.url)))?,
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        };
        let status = response.status();
        let bytes = tokio::select! {
            bytes = response.bytes() => bytes.map_err(|e| TaskError::Failed(format!("reading the response body failed: {e}")))?,
            _ = ctx.cancel.cancelled() => return Err(TaskError::Cancelled),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        ctx.log(&format!(
            "Response {status} ({} bytes) in {elapsed_ms} ms",
            bytes.len()
        ));
        if !self.is_expected(status) {
            let preview = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
            return Err(TaskError::Failed(format!(
                "unexpected status {status}: {preview}"
            )));
        }
        let mut result = TaskResult::new();
        result.insert("status".into(), status.as_u16().into());
        result.insert("elapsed_ms".into(), elapsed_ms.into());
        result.insert(
            "body".into(),
            body_summary(&bytes, self.config.max_body_bytes),
        );
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_is_kept_as_json() {
        assert_eq!(
            body_summary(br#"{"a":1}"#, 100),
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn long_body_is_cut_to_text() {
        assert_eq!(body_summary(b"abcdef", 3), serde_json::json!("abc"));
    }
}
