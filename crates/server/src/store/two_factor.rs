//! Two-factor sign-in a person controls: a TOTP enrolment waiting for its first code, and
//! the single-use recovery codes (kept as digests). Every change ends the account's other
//! sessions and records a `two_factor_changed` event, in its own transaction.

use chrono::{DateTime, Utc};
use hubkey_api::AccountEventKind;

use super::account_events::insert_account_event;
use super::sessions::{revoke_all_in, EventOrigin, RevokeReason};
use super::{millis, DbConnection, Store};
use crate::error::Result;

/// Replaces the account's recovery codes with `digests`.
///
/// The account's row is written first, so that concurrent replacements of one account run
/// one after another on PostgreSQL too (SQLite has one writer anyway).
async fn replace_codes_in(
    conn: &mut DbConnection,
    user_id: &str,
    digests: &[Vec<u8>],
) -> Result<()> {
    sqlx::query("UPDATE users SET totp_last_step = totp_last_step WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    for digest in digests {
        sqlx::query("INSERT INTO recovery_codes (digest, user_id) VALUES ($1, $2)")
            .bind(digest.as_slice())
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Ends the account's sessions but `keep` and records a `two_factor_changed` event.
async fn changed_in(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
    origin: EventOrigin<'_>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let revoked = revoke_all_in(conn, user_id, keep, now, RevokeReason::TwoFactorChanged).await?;
    insert_account_event(
        conn,
        user_id,
        AccountEventKind::TwoFactorChanged,
        origin,
        now,
    )
    .await?;
    Ok(revoked)
}

impl Store {
    /// Stores a TOTP secret waiting for its first code (replacing any earlier one).
    pub async fn set_pending_totp(
        &self,
        user_id: &str,
        sealed: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE users SET totp_pending_sealed = $1, totp_pending_expires = $2 WHERE id = $3",
        )
        .bind(sealed)
        .bind(millis(expires_at))
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The sealed TOTP secret waiting for its first code, unless expired at `now`.
    pub async fn pending_totp(&self, user_id: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT totp_pending_sealed FROM users \
             WHERE id = $1 AND totp_pending_sealed IS NOT NULL AND totp_pending_expires > $2",
        )
        .bind(user_id)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Puts the pending secret `sealed` in force (its first code's `step` used), with new
    /// recovery codes; ends every session but `keep`, recording the change from `origin`.
    /// False when that enrolment is no longer
    /// pending (confirmed by a racing request, replaced or expired).
    pub async fn confirm_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        recovery_digests: &[Vec<u8>],
        (keep, origin): (Option<&str>, EventOrigin<'_>),
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let confirmed = sqlx::query(
            "UPDATE users SET totp_sealed = totp_pending_sealed, totp_last_step = $1, \
               totp_pending_sealed = NULL, totp_pending_expires = NULL \
             WHERE id = $2 AND totp_pending_sealed = $3 AND totp_pending_expires > $4",
        )
        .bind(step)
        .bind(user_id)
        .bind(sealed)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !confirmed {
            return Ok(false);
        }
        replace_codes_in(&mut tx, user_id, recovery_digests).await?;
        changed_in(&mut tx, user_id, keep, origin, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Turns TOTP off and forgets the recovery codes; ends every session but `keep`.
    pub async fn disable_totp(
        &self,
        user_id: &str,
        keep: Option<&str>,
        origin: EventOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET totp_sealed = NULL, totp_last_step = NULL, \
               totp_pending_sealed = NULL, totp_pending_expires = NULL WHERE id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        replace_codes_in(&mut tx, user_id, &[]).await?;
        changed_in(&mut tx, user_id, keep, origin, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the recovery codes; ends every session but `keep`.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        digests: &[Vec<u8>],
        keep: Option<&str>,
        origin: EventOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        replace_codes_in(&mut tx, user_id, digests).await?;
        changed_in(&mut tx, user_id, keep, origin, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses up the account's unused recovery code with this digest: true once, false for
    /// any other code or a second use. One statement, so two requests racing with one code
    /// cannot both win.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &[u8],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE digest = $2 AND user_id = $3 AND used_at IS NULL",
        )
        .bind(millis(now))
        .bind(digest)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Recovery codes of the account not used yet.
    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?)
    }
}
