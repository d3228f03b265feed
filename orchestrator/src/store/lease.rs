//! The scheduler lease: with several `serve` on one database, the holder alone schedules and
//! drives runs; the others serve the UI and API and take the lease when it expires.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, from_micros, to_micros};

const LEASE: &str = "scheduler";

/// Who holds the scheduler lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseHolder {
    pub holder: String,
    pub acquired: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// What an attempt on the lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAttempt {
    /// Renewed: it was ours already.
    Renewed,
    /// Taken: free, or expired in the hands of `from` (None: nobody held it before).
    Taken { from: Option<String> },
    /// Someone else holds it.
    HeldBy(String),
}

impl Store {
    /// The current lease, expired or not.
    pub async fn scheduler_lease(&self) -> Result<Option<LeaseHolder>> {
        let row = sqlx::query(
            "SELECT holder, acquired_us, expires_us FROM scheduler_lease WHERE name = $1",
        )
        .bind(LEASE)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(LeaseHolder {
                holder: row.try_get("holder")?,
                acquired: from_micros(row.try_get("acquired_us")?),
                expires: from_micros(row.try_get("expires_us")?),
            })
        })
        .transpose()
    }

    /// Renews the lease for `holder` until `ttl` from now, or takes it if it is free or
    /// expired; the write is guarded on the holder it read, so two takers cannot both win.
    pub async fn acquire_scheduler_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<LeaseAttempt> {
        let now = Utc::now();
        let expires = to_micros(now + chrono::Duration::from_std(ttl).unwrap_or_default());
        let current = self.scheduler_lease().await?;
        let Some(current) = current else {
            let inserted = sqlx::query(
                "INSERT INTO scheduler_lease (name, holder, acquired_us, expires_us) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(LEASE)
            .bind(holder)
            .bind(to_micros(now))
            .bind(expires)
            .execute(&self.pool)
            .await?;
            return Ok(if inserted.rows_affected() == 1 {
                LeaseAttempt::Taken { from: None }
            } else {
                LeaseAttempt::HeldBy(String::new())
            });
        };
        let ours = current.holder == holder;
        if !ours && current.expires > now {
            return Ok(LeaseAttempt::HeldBy(current.holder));
        }
        let written = sqlx::query(
            "UPDATE scheduler_lease SET holder = $1, acquired_us = $2, expires_us = $3
             WHERE name = $4 AND holder = $5 AND expires_us = $6",
        )
        .bind(holder)
        .bind(if ours {
            to_micros(current.acquired)
        } else {
            to_micros(now)
        })
        .bind(expires)
        .bind(LEASE)
        .bind(current.holder.as_str())
        .bind(to_micros(current.expires))
        .execute(&self.pool)
        .await?;
        Ok(match (written.rows_affected() == 1, ours) {
            (true, true) => LeaseAttempt::Renewed,
            (true, false) => LeaseAttempt::Taken {
                from: Some(current.holder),
            },
            (false, _) => LeaseAttempt::HeldBy(String::new()),
        })
    }

    /// Gives the lease up (clean shutdown), so a standby takes it at once.
    pub async fn release_scheduler_lease(&self, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM scheduler_lease WHERE name = $1 AND holder = $2")
            .bind(LEASE)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The running runs held by `owner`.
    pub async fn runs_owned_by(&self, owner: &str) -> Result<Vec<super::DagRunRow>> {
        let mut runs = self.runs_in_state(super::RunState::Running).await?;
        runs.retain(|run| run.owner.as_deref() == Some(owner));
        Ok(runs)
    }
}
