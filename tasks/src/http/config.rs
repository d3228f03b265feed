use std::collections::BTreeMap;

use serde::Deserialize;

use reqwest::Method;

use crate::{ConfigError, HumanDuration, checks};

/// `http` makes one request and fails unless the status is expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Request URL.
    pub url: String,
    /// HTTP method; `GET` by default.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that count as success; any 2xx when empty.
    #[serde(default)]
    pub expected_status: Vec<u16>,
    /// Timeout of the whole request; 30 s by default.
    #[serde(default)]
    pub request_timeout: Option<HumanDuration>,
    /// How many bytes of the response body to keep in the result summary (64 KiB by default).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_method() -> String {
    "GET".into()
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        checks::http_url("url", &self.url)?;
        checks::headers("headers", &self.headers)?;
        self.method()?;
        checks::above_zero("request_timeout", self.request_timeout)
    }

    /// The request method, upper-cased.
    pub fn method(&self) -> Result<Method, ConfigError> {
        Method::from_bytes(self.method.to_uppercase().as_bytes()).map_err(|_| {
            ConfigError::new("method", format!("unknown HTTP method {:?}", self.method))
        })
    }
}
