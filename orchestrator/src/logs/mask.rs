//! Secret values masked as `***` in every line of a task log, as Airflow masks the values it
//! knows to be secret: the passwords in the metadata database's and the sinks' URLs, the
//! first admin's password, the metrics token. A task that prints its environment or a
//! connection string leaves no secret in a log that others read.

use std::{borrow::Cow, sync::Arc};

/// Values shorter than this are not masked: a short password would turn common words of
/// every line into `***` (Airflow's `min_length_masked_secret` is 5 too).
pub const MIN_SECRET_LEN: usize = 5;

/// The secret values to mask; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so a secret that contains another is masked whole.
    values: Arc<[String]>,
}

impl Secrets {
    /// Masks `values`, each also in its percent-decoded form (a password as written in a URL
    /// and as a program prints it).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for value in values {
            let decoded = percent_encoding::percent_decode_str(&value)
                .decode_utf8()
                .map(Cow::into_owned)
                .ok();
            all.extend(decoded.filter(|decoded| *decoded != value));
            all.push(value);
        }
        all.retain(|value| value.chars().count() >= MIN_SECRET_LEN);
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        Self { values: all.into() }
    }

    /// The passwords of `urls` (the ones that have one) and `values` as they are.
    pub fn of(urls: &[&str], values: impl IntoIterator<Item = String>) -> Self {
        let passwords = urls
            .iter()
            .filter_map(|url| crate::store::password_of_url(url))
            .map(str::to_owned);
        Self::new(passwords.chain(values))
    }

    /// `text` with every secret, and the password of every URL in it, replaced by `***`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut masked = crate::store::redact_urls(text);
        for value in self.values.iter() {
            if masked.contains(value.as_str()) {
                masked = Cow::Owned(masked.replace(value.as_str(), "***"));
            }
        }
        masked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_as_written_and_decoded() {
        let secrets = Secrets::of(
            &[
                "postgres://app:s3cr%40t!@db:5432/updraft",
                "sqlite://updraft.db",
            ],
            ["metrics-token-1".to_string(), "abc".to_string()],
        );
        assert_eq!(
            secrets
                .mask("url postgres://app:s3cr%40t!@db, password s3cr@t!, token metrics-token-1"),
            "url postgres://app:***@db, password ***, token ***"
        );
        // Too short to mask: it would hide common words.
        assert_eq!(secrets.mask("abc"), "abc");
        // A URL's password is masked whoever's it is (a task's own sink, say).
        assert_eq!(
            secrets.mask("writing to mongodb://me:mine@h/db"),
            "writing to mongodb://me:***@h/db"
        );
        assert!(matches!(secrets.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_inside_another_is_masked_whole() {
        let secrets = Secrets::new(["hunter2".to_string(), "hunter2hunter2".to_string()]);
        assert_eq!(secrets.mask("x hunter2hunter2 y"), "x *** y");
    }
}
