//! Sessions and the 2FA challenges of sign-ins in progress.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{millis, Store};
use crate::error::Result;

/// A session as stored.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub source: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Stores a new session.
    pub async fn insert_session(
        &self,
        id: &str,
        user_id: &str,
        source: &str,
        refresh_digest: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, source, refresh_digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(user_id)
        .bind(source)
        .bind(refresh_digest)
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this id, if any.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, source, expires_at, revoked_at FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Swaps a live session's refresh token for a new one and extends it. Returns the session
    /// when `old_digest` names a live one: its current refresh token, or the one the last
    /// rotation replaced if that rotation was after `grace_since` (the client never got the
    /// answer, so it tries again with the token it has; the token of the lost answer stops
    /// working). The grace runs from the rotation and is not extended by using it. A used,
    /// revoked or expired refresh token gives None.
    pub async fn rotate_refresh(
        &self,
        old_digest: &str,
        new_digest: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        grace_since: DateTime<Utc>,
    ) -> Result<Option<SessionRow>> {
        // Every SET expression reads the row as it was before the update.
        Ok(sqlx::query_as(
            "UPDATE sessions SET \
               previous_refresh_digest = CASE WHEN refresh_digest = $3 \
                 THEN refresh_digest ELSE previous_refresh_digest END, \
               rotated_at = CASE WHEN refresh_digest = $3 THEN $4 ELSE rotated_at END, \
               refresh_digest = $1, expires_at = $2 \
             WHERE (refresh_digest = $3 OR (previous_refresh_digest = $3 AND rotated_at > $5)) \
               AND revoked_at IS NULL AND expires_at > $4 \
             RETURNING id, user_id, source, expires_at, revoked_at",
        )
        .bind(new_digest)
        .bind(millis(expires_at))
        .bind(old_digest)
        .bind(millis(now))
        .bind(millis(grace_since))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Revokes a session and its refresh token.
    pub async fn revoke_session(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, refresh_digest = NULL, \
             previous_refresh_digest = NULL WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(millis(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a 2FA challenge.
    pub async fn insert_challenge(
        &self,
        digest: &str,
        user_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO mfa_challenges (digest, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(digest)
            .bind(user_id)
            .bind(millis(expires_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user a live challenge with attempts left belongs to, read without taking an
    /// attempt: to throttle by account before [`Store::attempt_challenge`], which decides.
    pub async fn challenge_owner(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        max_attempts: i64,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM mfa_challenges \
             WHERE digest = $1 AND expires_at > $2 AND attempts < $3",
        )
        .bind(digest)
        .bind(millis(now))
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Takes one of a live challenge's `max_attempts` before its code is compared: the user it
    /// belongs to, or None when it is unknown, expired or out of attempts. One statement, so
    /// that of any number of attempts in flight at most `max_attempts` get a user.
    pub async fn attempt_challenge(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        max_attempts: i64,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "UPDATE mfa_challenges SET attempts = attempts + 1 \
             WHERE digest = $1 AND expires_at > $2 AND attempts < $3 RETURNING user_id",
        )
        .bind(digest)
        .bind(millis(now))
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Uses up a challenge. False when another request used it first.
    pub async fn consume_challenge(&self, digest: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM mfa_challenges WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Voids every open challenge of `user_id`: the password is needed again.
    pub async fn void_challenges(&self, user_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
