//! Forgetting what no longer matters: ended sessions (with their spent refresh tokens) once
//! reuse detection has no more use for them, expired 2FA challenges, expired device grants,
//! and the change table's rows every running server has forgotten.

use chrono::{DateTime, Utc};

use super::{millis, Store};
use crate::error::Result;

/// Rows one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub challenges: u64,
    pub device_grants: u64,
    /// Rows of the change table (SQLite's cache invalidation) every listener had read.
    pub cache_changes: u64,
    /// Listeners of the change table silent too long (servers that did not stop cleanly).
    pub cache_listeners: u64,
}

impl Store {
    /// Deletes the sessions that ended (revoked or expired) before `ended_before`, with their
    /// spent refresh tokens, the 2FA challenges expired at `now`, and the device grants that
    /// expired before `grants_expired_before` (kept a while after expiry so that a late poll
    /// hears `expired_token`, not `invalid_grant`), the change table's listeners silent since
    /// before `listeners_silent_before` and its rows every remaining listener has read
    /// ([`Store::sweep_changes`]).
    pub async fn sweep(
        &self,
        ended_before: DateTime<Utc>,
        now: DateTime<Utc>,
        grants_expired_before: DateTime<Utc>,
        listeners_silent_before: DateTime<Utc>,
    ) -> Result<Swept> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM spent_refresh_tokens WHERE session_id IN (SELECT id FROM sessions \
               WHERE revoked_at < $1 OR expires_at < $1)",
        )
        .bind(millis(ended_before))
        .execute(&mut *tx)
        .await?;
        let sessions = sqlx::query("DELETE FROM sessions WHERE revoked_at < $1 OR expires_at < $1")
            .bind(millis(ended_before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let challenges = sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let device_grants = sqlx::query("DELETE FROM device_grants WHERE expires_at < $1")
            .bind(millis(grants_expired_before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let (cache_changes, cache_listeners) =
            Self::sweep_changes(&mut tx, listeners_silent_before).await?;
        tx.commit().await?;
        Ok(Swept {
            sessions,
            challenges,
            device_grants,
            cache_changes,
            cache_listeners,
        })
    }
}
