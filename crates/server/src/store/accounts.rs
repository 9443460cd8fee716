//! Accounts: users, their password hashes and their sealed TOTP secrets.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{millis, Store};
use crate::error::{Error, Result};

/// A user account.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub totp_sealed: Option<String>,
}

/// A user with counts, for `hubkeyd user list`.
#[derive(Debug, Clone, FromRow)]
pub struct UserSummary {
    pub username: String,
    pub totp_enabled: bool,
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
            "SELECT id, username, password_hash, totp_sealed FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT id, username, password_hash, totp_sealed FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// All users, by name.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>> {
        Ok(sqlx::query_as(
            "SELECT u.username, (u.totp_sealed IS NOT NULL) AS totp_enabled, \
                    (SELECT COUNT(*) FROM access_tokens t WHERE t.user_id = u.id) AS tokens \
             FROM users u ORDER BY u.username",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Turns TOTP on with a new sealed secret; earlier codes no longer count.
    pub async fn set_totp(&self, user_id: &str, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE users SET totp_sealed = $1, totp_last_step = NULL WHERE id = $2")
            .bind(sealed)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
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
