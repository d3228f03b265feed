//! HTTP Basic credentials, as Airflow's clients send them: checked against the user's password
//! once, then remembered for a short while, so that a script's every request does not cost an
//! argon2 hash. What is remembered is a SHA-256 of the name and password, never the password.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A name and password from an `Authorization: Basic` header.
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// The credentials of `Authorization: Basic <base64 of name:password>`, if that is the
    /// header (a malformed one is no credentials).
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let encoded = value.strip_prefix("Basic ")?.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (username, password) = text.split_once(':')?;
        Some(Self {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    fn key(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.username.as_bytes());
        hasher.update([0]);
        hasher.update(self.password.as_bytes());
        hasher.finalize().into()
    }
}

/// Credentials verified lately, and when.
pub(crate) struct VerifiedCredentials {
    lifetime: Duration,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

/// Credentials remembered at once (beyond, the oldest are dropped).
const REMEMBERED: usize = 1024;

impl VerifiedCredentials {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            verified: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When these credentials were verified, if that was within the lifetime.
    pub(crate) fn verified_at(&self, credentials: &Credentials) -> Option<Instant> {
        let at = *self.lock().get(&credentials.key())?;
        (at.elapsed() < self.lifetime).then_some(at)
    }

    pub(crate) fn remember(&self, credentials: &Credentials) {
        let mut verified = self.lock();
        let now = Instant::now();
        verified.retain(|_, at| now.duration_since(*at) < self.lifetime);
        if verified.len() >= REMEMBERED
            && let Some(oldest) = verified.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
        {
            verified.remove(&oldest);
        }
        verified.insert(credentials.key(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn credentials_are_read_from_the_header() {
        // base64("ada:pass:word")
        let read = Credentials::of(&headers("Basic YWRhOnBhc3M6d29yZA==")).unwrap();
        assert_eq!(
            (read.username.as_str(), read.password.as_str()),
            ("ada", "pass:word")
        );
        assert!(Credentials::of(&headers("Basic !!!")).is_none());
        assert!(Credentials::of(&headers("Bearer x")).is_none());
    }

    #[test]
    fn verified_credentials_are_remembered_for_their_lifetime_only() {
        let remembered = VerifiedCredentials::new(Duration::from_millis(200));
        let right = Credentials::of(&headers("Basic YWRhOnBhc3M6d29yZA==")).unwrap();
        let other = Credentials {
            username: "ada".into(),
            password: "guess".into(),
        };
        assert!(remembered.verified_at(&right).is_none());
        remembered.remember(&right);
        assert!(remembered.verified_at(&right).is_some());
        assert!(remembered.verified_at(&other).is_none(), "another password");
        std::thread::sleep(Duration::from_millis(300));
        assert!(remembered.verified_at(&right).is_none(), "expired");
    }
}
