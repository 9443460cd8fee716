//! Device authorization grants (RFC 8628): the codes handed out, their polls, and the
//! decision of the account that approved or denied them.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use hubkey_api::AccountEventKind;

use super::account_events::insert_account_event;
use super::sessions::{insert_session, EventOrigin, NewSession};
use super::{millis, Store};
use crate::error::Result;
use crate::session::SessionSource;

/// A device grant as stored.
#[derive(Debug, Clone, FromRow)]
pub struct DeviceGrantRow {
    pub user_code: String,
    pub client_id: String,
    pub client_name: Option<String>,
    pub device_name: Option<String>,
    pub os: Option<String>,
    pub requested_address: String,
    pub requested_at: i64,
    pub expires_at: i64,
    pub interval_s: i64,
    pub status: String,
    pub user_id: Option<String>,
}

/// A new grant, as [`Store::insert_device_grant`] stores it.
#[derive(Debug, Clone)]
pub struct NewDeviceGrant<'a> {
    pub device_digest: &'a [u8],
    pub user_code: &'a str,
    pub client_id: &'a str,
    pub scope: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub device_name: Option<&'a str>,
    pub os: Option<&'a str>,
    pub requested_address: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub interval_s: i64,
}

/// What a poll found, read by the poll's own `UPDATE`.
#[derive(Debug, Clone, FromRow)]
pub struct DevicePollRow {
    pub status: String,
    pub expires_at: i64,
    pub interval_s: i64,
    /// 1 when the poll came sooner than the interval in force before it (which it then
    /// grew). Read as an integer: a boolean result is `CAST(… AS INTEGER)` on both stores.
    pub slowed: i64,
}

const GRANT_COLUMNS: &str = "user_code, client_id, client_name, device_name, os, \
    requested_address, requested_at, expires_at, interval_s, status, user_id";

impl Store {
    /// Stores a new grant. False when its user code is taken (the caller draws another).
    pub async fn insert_device_grant(&self, grant: &NewDeviceGrant<'_>) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO device_grants (device_digest, user_code, client_id, scope, client_name, \
               device_name, os, requested_address, requested_at, expires_at, interval_s, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending') \
             ON CONFLICT DO NOTHING",
        )
        .bind(grant.device_digest)
        .bind(grant.user_code)
        .bind(grant.client_id)
        .bind(grant.scope)
        .bind(grant.client_name)
        .bind(grant.device_name)
        .bind(grant.os)
        .bind(grant.requested_address)
        .bind(millis(grant.now))
        .bind(millis(grant.expires_at))
        .bind(grant.interval_s)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The grant whose user code is `user_code` (normalised: 8 letters, no dash), if any.
    pub async fn device_grant_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceGrantRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {GRANT_COLUMNS} FROM device_grants WHERE user_code = $1"
        ))
        .bind(user_code)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a poll of the grant with this device digest at `now`, in one statement: when
    /// it came sooner than the interval in force after the previous poll, the interval grows
    /// by `slow_down_s` and `slowed` says so (RFC 8628 §3.5). None for an unknown code.
    pub async fn poll_device_grant(
        &self,
        device_digest: &[u8],
        now: DateTime<Utc>,
        slow_down_s: i64,
    ) -> Result<Option<DevicePollRow>> {
        Ok(sqlx::query_as(
            "UPDATE device_grants SET \
               slowed = (CASE WHEN last_poll_at IS NOT NULL AND $2 - last_poll_at < interval_s * 1000 \
                         THEN TRUE ELSE FALSE END), \
               interval_s = (CASE WHEN last_poll_at IS NOT NULL AND $2 - last_poll_at < interval_s * 1000 \
                             THEN interval_s + $3 ELSE interval_s END), \
               last_poll_at = $2 \
             WHERE device_digest = $1 \
             RETURNING status, expires_at, interval_s, CAST(slowed AS INTEGER) AS slowed",
        )
        .bind(device_digest)
        .bind(millis(now))
        .bind(slow_down_s)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Takes an approved, unexpired grant for its device and opens the approving account's
    /// password session `session_id` (refresh token digest `refresh_digest`, ending at
    /// `expires_at`), in one transaction: a failure on the way leaves the grant approved for
    /// the next poll. The claim is one statement, so of any number of polls racing after the
    /// approval exactly one gets it.
    pub async fn claim_device_grant(
        &self,
        device_digest: &[u8],
        now: DateTime<Utc>,
        session_id: &str,
        refresh_digest: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<DeviceClaim> {
        let mut tx = self.pool.begin().await?;
        let user_id: Option<String> = sqlx::query_scalar(
            "UPDATE device_grants SET status = 'used' \
             WHERE device_digest = $1 AND status = 'approved' AND expires_at > $2 \
             RETURNING user_id",
        )
        .bind(device_digest)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        let Some(user_id) = user_id else {
            return Ok(DeviceClaim::Gone);
        };
        let username: Option<String> =
            sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
                .bind(&user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let opened = match &username {
            Some(_) => {
                insert_session(
                    &mut tx,
                    &NewSession {
                        id: session_id,
                        user_id: &user_id,
                        source: SessionSource::Password.as_str(),
                        refresh_digest: Some(refresh_digest),
                        token_uuid: None,
                        created_at: now,
                        expires_at,
                    },
                )
                .await?
            }
            None => false,
        };
        tx.commit().await?;
        Ok(match username {
            Some(username) if opened => DeviceClaim::Opened { user_id, username },
            // Disabled (or deleted) since the approval: the grant is spent, refused.
            _ => DeviceClaim::Refused,
        })
    }

    /// Approves (or denies) a pending, unexpired grant for `user_id`; an approval records a
    /// `device_approved` account event from `origin` in the same transaction. False when it
    /// was decided already, has expired or does not exist: a grant is decided once.
    pub async fn decide_device_grant(
        &self,
        user_code: &str,
        user_id: &str,
        approve: bool,
        origin: EventOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE device_grants SET status = $1, user_id = $2, decided_at = $3 \
             WHERE user_code = $4 AND status = 'pending' AND expires_at > $3",
        )
        .bind(if approve { "approved" } else { "denied" })
        .bind(user_id)
        .bind(millis(now))
        .bind(user_code)
        .execute(&mut *tx)
        .await?;
        let decided = result.rows_affected() == 1;
        if decided && approve {
            insert_account_event(
                &mut tx,
                user_id,
                AccountEventKind::DeviceApproved,
                origin,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(decided)
    }
}

/// What claiming an approved device grant came to ([`Store::claim_device_grant`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceClaim {
    /// Not (or no longer) approved: unknown, pending, decided otherwise, expired, or taken by
    /// another poll.
    Gone,
    /// Approved by an account disabled since: spent, and no session.
    Refused,
    /// The session is open, for this account.
    Opened { user_id: String, username: String },
}
