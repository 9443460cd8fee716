//! Accounts: users, their password hashes and their sealed TOTP secrets.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use hubkey_api::AccountEventKind;

use super::account_events::insert_account_event;
use super::sessions::{revoke_all_in, EventOrigin, RevokeReason};
use super::{millis, Flag, Store};
use crate::error::{Error, Result};

/// A user account.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub totp_sealed: Option<String>,
    /// When the administrator disabled the account (Unix ms); `None` while it is enabled.
    pub disabled_at: Option<i64>,
}

/// A user with counts, for `hubkeyd user list`.
#[derive(Debug, Clone, FromRow)]
pub struct UserSummary {
    pub username: String,
    #[sqlx(try_from = "Flag")]
    pub totp_enabled: bool,
    #[sqlx(try_from = "Flag")]
    pub disabled: bool,
    pub tokens: i64,
}

impl Store {
    /// Adds a user; a taken name is a 400 on `username`.
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(username)
        .bind(password_hash)
        .bind(millis(now))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Err(Error::invalid(
                "username",
                format!("a user named {username:?} already exists"),
            )),
            Err(err) => Err(err.into()),
        }
    }

    /// The user with this name, if any. Names are compared exactly.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT id, username, password_hash, totp_sealed, disabled_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT id, username, password_hash, totp_sealed, disabled_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// All users, by name.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>> {
        Ok(sqlx::query_as(
            "SELECT u.username, CAST((u.totp_sealed IS NOT NULL) AS INTEGER) AS totp_enabled, \
                    CAST((u.disabled_at IS NOT NULL) AS INTEGER) AS disabled, \
                    (SELECT COUNT(*) FROM access_tokens t WHERE t.user_id = u.id) AS tokens \
             FROM users u ORDER BY u.username",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Turns TOTP on with a new sealed secret; earlier codes no longer count. Every session
    /// of the account ends and a `two_factor_changed` event is recorded, in one transaction:
    /// a session opened before the change never outlives it.
    pub async fn set_totp(&self, user_id: &str, sealed: &str, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET totp_sealed = $1, totp_last_step = NULL, \
               totp_pending_sealed = NULL, totp_pending_expires = NULL WHERE id = $2",
        )
        .bind(sealed)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        // Recovery codes stand in for the old authenticator: they end with it.
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let revoked =
            revoke_all_in(&mut tx, user_id, None, now, RevokeReason::TwoFactorChanged).await?;
        insert_account_event(
            &mut tx,
            user_id,
            AccountEventKind::TwoFactorChanged,
            EventOrigin::default(),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Replaces the password hash; every session of the account but `keep` ends and a
    /// `password_changed` event from `origin` is recorded, in one transaction. Answers how many
    /// sessions ended.
    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        origin: EventOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let revoked =
            revoke_all_in(&mut tx, user_id, keep, now, RevokeReason::PasswordChanged).await?;
        insert_account_event(
            &mut tx,
            user_id,
            AccountEventKind::PasswordChanged,
            origin,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Disables the account (no sign-in, no token, no session works; every session ends) or
    /// enables it again (sessions stay ended). Answers how many sessions ended.
    pub async fn set_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        stale: &[crate::invalidation::Stale],
        id: Option<crate::invalidation::AnnouncementId>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled.then(|| millis(now)))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let revoked = if disabled {
            revoke_all_in(&mut tx, user_id, None, now, RevokeReason::AccountDisabled).await?
        } else {
            0
        };
        self.commit(tx, stale, id).await?;
        Ok(revoked)
    }

    /// Records that the TOTP code of `step` was used. False when that step or a later one was
    /// already used: the code is a replay. Atomic, so two requests racing with one code
    /// cannot both win.
    pub async fn accept_totp_step(&self, user_id: &str, step: i64) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE users SET totp_last_step = $1 \
             WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

impl Store {
    /// The account's `revoke_on_reuse` setting.
    pub async fn revoke_on_reuse(&self, user_id: &str) -> Result<bool> {
        let on: Option<i64> =
            sqlx::query_scalar("SELECT CAST(revoke_on_reuse AS INTEGER) FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(on.is_some_and(|on| on != 0))
    }

    /// As [`Store::revoke_on_reuse`], inside the transaction holding the account's lock.
    pub async fn revoke_on_reuse_in(tokens: &mut super::AccountTokens<'_>) -> Result<bool> {
        let user_id = tokens.user_id().to_owned();
        let on: Option<i64> =
            sqlx::query_scalar("SELECT CAST(revoke_on_reuse AS INTEGER) FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tokens.conn)
                .await?;
        Ok(on.is_some_and(|on| on != 0))
    }

    /// Turns the account's `revoke_on_reuse` on or off.
    pub async fn set_revoke_on_reuse(&self, user_id: &str, on: bool) -> Result<()> {
        sqlx::query("UPDATE users SET revoke_on_reuse = $1 WHERE id = $2")
            .bind(on)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
