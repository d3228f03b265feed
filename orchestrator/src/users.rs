//! Users (argon2 password hashes) and API tokens (random, shown once, stored as SHA-256).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use sha2::{Digest, Sha256};

pub use ui::views::{Role, User};

use crate::store::{Store, StoreError, UserRow};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 8;

fn check_username(username: &str) -> Result<(), UserError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@');
    if username.is_empty() || username.len() > 64 || !username.chars().all(legal) {
        return Err(UserError::Invalid(format!(
            "user name {username:?}: use 1-64 letters, digits and _ - . @"
        )));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::Invalid(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Changes a user's password: their sessions signed in before now end at their next request
/// (their API tokens stay).
pub async fn set_password(store: &Store, username: &str, password: &str) -> Result<(), UserError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    if !store.set_password_hash(username, &hash).await? {
        return Err(UserError::Unknown(username.to_owned()));
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String, UserError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| UserError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| UserError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// The user of a stored row; a role the store holds but this build does not know counts as
/// `viewer` (the least).
pub fn user_of(row: UserRow) -> User {
    User {
        role: row.role.parse().unwrap_or(Role::Viewer),
        username: row.username,
        password_changed_at: row.password_changed_at,
    }
}

pub async fn add_user(
    store: &Store,
    username: &str,
    password: &str,
    role: Role,
) -> Result<(), UserError> {
    check_username(username)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    if !store.insert_user(username, &hash, role.as_str()).await? {
        return Err(UserError::Exists(username.to_owned()));
    }
    Ok(())
}

/// Hashes run at once by sign-ins: argon2 takes ~19 MiB and tens of milliseconds each by
/// design, so a burst of sign-ins waits here instead of holding hundreds of them in memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A hash no password matches, checked for unknown user names so that they cost what a known
/// name costs (a name cannot be found out by timing).
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_secret()).unwrap_or_default());

/// Whether `password` is the user's; false for unknown users too, after the same work. The
/// hash check runs on a blocking thread, at most [`HASHING`]'s permits at once.
pub async fn verify_password(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<bool, UserError> {
    let user = store.user(username).await?;
    let known = user.is_some();
    let stored = user.map_or_else(|| DUMMY_HASH.clone(), |user| user.password_hash);
    let password = password.to_owned();
    let _permit = HASHING.acquire().await.ok();
    let verified = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    Ok(known && verified)
}

/// A random secret: 32 bytes as hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates an API token for `username`; returns (token id, token). The token is shown once.
pub async fn create_token(
    store: &Store,
    username: &str,
    description: &str,
) -> Result<(String, String), UserError> {
    if store.user(username).await?.is_none() {
        return Err(UserError::Unknown(username.to_owned()));
    }
    let token = format!("updraft_{}", random_secret());
    let token_id = token_hash(&token)[..12].to_owned();
    store
        .insert_token(&token_id, username, &token_hash(&token), description)
        .await?;
    Ok((token_id, token))
}

/// The user a bearer token belongs to, if it is live (tokens act with their user's role).
pub async fn token_user(store: &Store, token: &str) -> Result<Option<User>, UserError> {
    Ok(store.token_user(&token_hash(token)).await?.map(user_of))
}

/// Gives a user another role (their sessions and tokens act with it from their next request).
pub async fn set_role(store: &Store, username: &str, role: Role) -> Result<(), UserError> {
    if !store.set_role(username, role.as_str()).await? {
        return Err(UserError::Unknown(username.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked() {
        assert!(check_username("admin").is_ok());
        assert!(check_username("a b").is_err());
        assert!(check_username("").is_err());
    }

    #[test]
    fn password_hashes_verify_only_their_password() {
        let hash = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }

    #[tokio::test]
    async fn sign_in_checks_known_and_unknown_names_alike() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("u.db").display()))
            .await
            .unwrap();
        add_user(&store, "ada", "correct horse", Role::Viewer)
            .await
            .unwrap();
        assert!(
            verify_password(&store, "ada", "correct horse")
                .await
                .unwrap()
        );
        assert!(!verify_password(&store, "ada", "wrong horse").await.unwrap());
        // An unknown name is checked against the dummy hash: false, whatever the password.
        assert!(PasswordHash::new(&DUMMY_HASH).is_ok(), "a real argon2 hash");
        assert!(
            !verify_password(&store, "nobody", "correct horse")
                .await
                .unwrap()
        );
    }
}
