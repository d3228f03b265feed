//! Rules shared by the operators' `validate()`: each returns the [`ConfigError`] naming the
//! field.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};

use crate::{ConfigError, HumanDuration};

/// An absolute http(s) URL.
pub(crate) fn http_url(field: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::new(field, format!("bad URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(ConfigError::new(
            field,
            format!("unsupported URL scheme {other:?} in {url:?}: use http or https"),
        )),
    }
}

/// Header names and values that HTTP allows.
pub(crate) fn headers(field: &str, headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::new(field, format!("bad header name {name:?}")));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::new(
                format!("{field}.{name}"),
                "bad header value: use visible ASCII, no line breaks",
            ));
        }
    }
    Ok(())
}

/// A duration, when set, above zero.
pub(crate) fn above_zero(field: &str, duration: Option<HumanDuration>) -> Result<(), ConfigError> {
    match duration {
        Some(d) if d.as_duration().is_zero() => Err(ConfigError::new(field, "must be more than 0")),
        _ => Ok(()),
    }
}

/// The partitions of topics a producer task creates: at least 1.
pub(crate) fn partitions(field: &str, partitions: i32) -> Result<(), ConfigError> {
    if partitions < 1 {
        return Err(ConfigError::new(
            field,
            format!("must be at least 1, got {partitions}"),
        ));
    }
    Ok(())
}

/// A name that must not be empty or blank.
pub(crate) fn not_blank(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(http_url("url", "https://randomuser.me/api/?results=5").is_ok());
        let relative = http_url("url", "/api").unwrap_err();
        assert_eq!(relative.field, "url");
        assert!(relative.message.contains("bad URL"), "{relative}");
        let ftp = http_url("url", "ftp://host/x").unwrap_err();
        assert!(
            ftp.message.contains("unsupported URL scheme \"ftp\""),
            "{ftp}"
        );
    }

    #[test]
    fn zero_durations_are_refused() {
        assert!(above_zero("t", None).is_ok());
        assert!(above_zero("t", Some(HumanDuration(Duration::from_millis(1)))).is_ok());
        let zero = above_zero("t", Some(HumanDuration(Duration::ZERO))).unwrap_err();
        assert_eq!(zero.to_string(), "t: must be more than 0");
    }
}
