//! Users of the web UI and API, and their API tokens (stored as SHA-256 hashes).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, from_micros, to_micros};

#[derive(Debug, Clone)]
pub struct UserRow {
    pub username: String,
    /// An argon2 PHC string.
    pub password_hash: String,
    /// `viewer`, `op` or `admin`.
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub token_id: String,
    pub username: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Adds a user; false when the name is taken.
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .bind(to_micros(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub async fn user(&self, username: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT username, password_hash, role, created_at_us, password_changed_at_us FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT username, password_hash, role, created_at_us, password_changed_at_us FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_row).collect()
    }

    /// Replaces a user's password hash (now is when it changed); false when there is no such
    /// user.
    pub async fn set_password_hash(&self, username: &str, password_hash: &str) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at_us = $2 WHERE username = $3",
        )
        .bind(password_hash)
        .bind(to_micros(Utc::now()))
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Gives a user another role; false when there is no such user.
    pub async fn set_role(&self, username: &str, role: &str) -> Result<bool> {
        let updated = sqlx::query("UPDATE users SET role = $1 WHERE username = $2")
            .bind(role)
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Deletes a user and revokes their tokens; false when there was no such user.
    pub async fn delete_user(&self, username: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE api_tokens SET revoked_at_us = $1 WHERE username = $2 AND revoked_at_us IS NULL")
            .bind(to_micros(Utc::now()))
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    pub async fn insert_token(
        &self,
        token_id: &str,
        username: &str,
        token_hash: &str,
        description: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (token_id, username, token_hash, description, created_at_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_id)
        .bind(username)
        .bind(token_hash)
        .bind(description)
        .bind(to_micros(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live (unrevoked) token with this hash, if that user still exists.
    pub async fn token_user(&self, token_hash: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT u.username AS username, u.password_hash AS password_hash, u.role AS role,
                    u.created_at_us AS created_at_us,
                    u.password_changed_at_us AS password_changed_at_us
             FROM api_tokens t JOIN users u ON u.username = t.username
             WHERE t.token_hash = $1 AND t.revoked_at_us IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn tokens(&self) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query(
            "SELECT token_id, username, description, created_at_us, revoked_at_us FROM api_tokens ORDER BY created_at_us",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiTokenRow {
                    token_id: row.try_get("token_id")?,
                    username: row.try_get("username")?,
                    description: row.try_get("description")?,
                    created_at: from_micros(row.try_get("created_at_us")?),
                    revoked_at: row
                        .try_get::<Option<i64>, _>("revoked_at_us")?
                        .map(from_micros),
                })
            })
            .collect()
    }

    /// Revokes a token; false when there is no such live token.
    pub async fn revoke_token(&self, token_id: &str) -> Result<bool> {
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at_us = $1 WHERE token_id = $2 AND revoked_at_us IS NULL",
        )
        .bind(to_micros(Utc::now()))
        .bind(token_id)
        .execute(&self.pool)
        .await?;
        Ok(revoked.rows_affected() == 1)
    }
}

fn user_row(row: &sqlx::any::AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get("role")?,
        created_at: from_micros(row.try_get("created_at_us")?),
        password_changed_at: row
            .try_get::<Option<i64>, _>("password_changed_at_us")?
            .map(from_micros),
    })
}
