//! Secret values masked as `***` in every line of a task log, as Airflow masks the values it
//! knows to be secret: the passwords in the metadata database's and the sinks' URLs, the
//! first admin's password, the metrics token. A task that prints its environment or a
//! connection string leaves no secret in a log that others read. A try also masks the
//! values its own config holds under a secret-looking name ([`task_secrets`]).

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

    /// These secrets and `values` (as [`Secrets::new`] takes them).
    pub fn with(&self, values: impl IntoIterator<Item = String>) -> Self {
        Self::new(self.values.iter().cloned().chain(values))
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

/// Parts of a name that mark what it holds as secret (a config key, a variable, a header),
/// as Airflow's `DEFAULT_SENSITIVE_FIELDS` do.
const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "credential",
    "access_key",
];

/// Whether a name says its value is a secret (`API_TOKEN`, `password`, `Authorization`).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

/// The secrets of one try, from its rendered config: every text under a secret-looking key
/// (a shell task's `env` entry `API_TOKEN`, an `Authorization` header, with and without its
/// `Bearer ` scheme), and the values (looked up by `var`: this process's environment) of
/// the variables with secret-looking names that reach the task through its
/// `env_passthrough` or `everywhere` (`--env-passthrough`).
pub fn task_secrets(
    config: &serde_json::Value,
    everywhere: &[String],
    var: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut secrets = Vec::new();
    texts_under_secret_names(config, false, &mut secrets);
    let passed = config
        .get("env_passthrough")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str);
    for name in passed.chain(everywhere.iter().map(String::as_str)) {
        if is_secret_name(name)
            && let Some(value) = var(name)
        {
            secrets.push(value);
        }
    }
    secrets
}

fn texts_under_secret_names(value: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) if secret => {
            // "Bearer abc": the credential alone may be printed too.
            if let Some((_, credential)) = text.split_once(' ') {
                out.push(credential.trim().to_owned());
            }
            out.push(text.clone());
        }
        serde_json::Value::Array(items) => {
            for item in items {
                texts_under_secret_names(item, secret, out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                texts_under_secret_names(field, secret || is_secret_name(name), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tasks_own_secrets_are_found_by_name() {
        let config = serde_json::json!({
            "command": "curl -H \"Authorization: Bearer $API_TOKEN\" https://api.example",
            "env": {"API_TOKEN": "tok-123456", "REGION": "eu-west-1"},
            "headers": {"Authorization": "Bearer abcdef-ghij"},
            "auth": {"client_secret": ["s1-value"]},
            "env_passthrough": ["GITHUB_TOKEN", "HOME"],
        });
        let var = |name: &str| Some(format!("{name}-value-from-the-process"));
        let mut found = task_secrets(&config, &["DB_PASSWORD".into()], var);
        found.sort();
        assert_eq!(
            found,
            [
                "Bearer abcdef-ghij",
                "DB_PASSWORD-value-from-the-process",
                "GITHUB_TOKEN-value-from-the-process",
                "abcdef-ghij",
                "s1-value",
                "tok-123456"
            ]
        );
        let masked = Secrets::default().with(found);
        assert_eq!(
            masked.mask("token tok-123456 header abcdef-ghij region eu-west-1"),
            "token *** header *** region eu-west-1"
        );
        assert!(is_secret_name("AWS_SECRET_ACCESS_KEY") && is_secret_name("db_Password"));
        assert!(!is_secret_name("REGION") && !is_secret_name("HOME"));
    }

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
