//! What failed-sign-in throttling keeps across restarts: recent failures per subject and the
//! addresses each account fully signed in from.

use chrono::{DateTime, Utc};

use super::{millis, Store};
use crate::error::Result;

impl Store {
    /// Every failure since `since`, oldest first: (subject, time).
    pub async fn failures_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT subject, at FROM login_failures WHERE at > $1 ORDER BY at")
                .bind(millis(since))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Records one failure for each subject, and forgets failures older than `forget_before`.
    pub async fn record_failure(
        &self,
        subjects: &[String],
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for subject in subjects {
            sqlx::query("INSERT INTO login_failures (subject, at) VALUES ($1, $2)")
                .bind(subject)
                .bind(millis(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM login_failures WHERE subject = $1 AND at <= $2")
                .bind(subject)
                .bind(millis(forget_before))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The (account, address) subjects with a full sign-in after `since`.
    pub async fn sign_in_addresses_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT account, address, last_at FROM sign_in_addresses WHERE last_at > $1",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Notes a full sign-in of `account` from `address` at `now`, and forgets those older
    /// than `forget_before`.
    pub async fn record_sign_in_address(
        &self,
        account: &str,
        address: &str,
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sign_in_addresses (account, address, last_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account, address) DO UPDATE SET last_at = excluded.last_at",
        )
        .bind(account)
        .bind(address)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sign_in_addresses WHERE last_at <= $1")
            .bind(millis(forget_before))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
