//! Sessions and the 2FA challenges of sign-ins in progress.

use chrono::{DateTime, Utc};
use hubkey_api::AccountEventKind;
use sqlx::FromRow;

use super::account_events::{insert_account_event, lock_account};
use super::{millis, DbConnection, Flag, Store};
use crate::error::Result;

/// A session as stored.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub source: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// Why it was revoked ([`RevokeReason`]'s stored form).
    pub revoked_reason: Option<String>,
    /// Whether its account is disabled (read by [`Store::session`] only).
    #[sqlx(default, try_from = "Flag")]
    pub user_disabled: bool,
    /// The personal access token it was made from, if any (read by [`Store::session`]).
    #[sqlx(default)]
    pub token_uuid: Option<String>,
    /// That token's state: whether it still exists and is active, its expiry, and its
    /// rotation (read by [`Store::session`]).
    #[sqlx(default)]
    pub token_active: Option<i64>,
    #[sqlx(default)]
    pub token_expires_at: Option<i64>,
    #[sqlx(default)]
    pub token_rotated_to: Option<String>,
    #[sqlx(default)]
    pub token_overlap_until: Option<i64>,
}

impl SessionRow {
    /// False when the session was made from a personal access token that no longer works
    /// at `now` (deleted, deactivated, expired, or rotated away past its overlap): its
    /// bearer is refused with it.
    pub fn token_works(&self, now: DateTime<Utc>) -> bool {
        if self.token_uuid.is_none() {
            return true;
        }
        let now = millis(now);
        self.token_active.is_some_and(|active| active != 0)
            && self.token_expires_at.is_none_or(|at| at > now)
            && (self.token_rotated_to.is_none()
                || self.token_overlap_until.is_some_and(|until| until > now))
    }

    /// True when the session was revoked because one of its spent refresh tokens came back.
    pub fn revoked_for_reuse(&self) -> bool {
        self.revoked_reason.as_deref() == Some(RevokeReason::RefreshReuse.as_str())
    }
}

/// A session to store.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    /// `password` or `pat`.
    pub source: &'a str,
    /// The digest of a password session's refresh token.
    pub refresh_digest: Option<&'a str>,
    /// The personal access token a `pat` session was made from.
    pub token_uuid: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// Its own sign-out.
    Logout,
    /// A spent refresh token of it was presented again.
    RefreshReuse,
    /// "Sign out everywhere", by the account or the administrator.
    RevokedAll,
    /// The account's password changed.
    PasswordChanged,
    /// The account's second factor changed.
    TwoFactorChanged,
    /// The administrator disabled the account.
    AccountDisabled,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::RefreshReuse => "refresh_reuse",
            RevokeReason::RevokedAll => "revoked_all",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::TwoFactorChanged => "two_factor_changed",
            RevokeReason::AccountDisabled => "account_disabled",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum Refresh {
    /// It was the session's current token, or its replaced token within the one grace use:
    /// the session now answers to the new token.
    Rotated(SessionRow),
    /// It was a token the session had handed out and no longer accepts: the session is
    /// revoked (`newly`: by this call, which recorded the `refresh_reuse` event).
    Reused { session: SessionRow, newly: bool },
    /// No session ever handed it out, or its session ended for another reason.
    Unknown,
}

/// Where a request came from, for the account events it causes.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventOrigin<'a> {
    pub address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

const SESSION_COLUMNS: &str = "id, user_id, source, expires_at, revoked_at, revoked_reason";

impl Store {
    /// Stores a new session, unless its account is disabled (then false).
    pub async fn insert_session(&self, new: &NewSession<'_>) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        insert_session(&mut conn, new).await
    }

    /// The session with this id, if any, and whether its account is disabled.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT s.id, s.user_id, s.source, s.expires_at, s.revoked_at, s.revoked_reason, \
                    CAST((u.disabled_at IS NOT NULL) AS INTEGER) AS user_disabled, s.token_uuid, \
                    CAST(t.is_active AS INTEGER) AS token_active, t.expires_at AS token_expires_at, \
                    t.rotated_to AS token_rotated_to, t.overlap_until AS token_overlap_until \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             LEFT JOIN access_tokens t ON t.uuid = s.token_uuid WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Exchanges a refresh token, in one write transaction (so concurrent presentations of
    /// one token are decided one after another):
    ///
    /// - the session's current token: `new_digest` replaces it, and the replaced one may be
    ///   presented once more until `grace_since` passes its rotation (a client that never got
    ///   the answer asks again with the token it has);
    /// - that replaced token, for its one grace use: `new_digest` replaces the current token,
    ///   the lost answer's, which is spent from now on;
    /// - any other token the session handed out (spent): the session is revoked at once, with
    ///   an `refresh_reuse` account event from `origin` (OAuth 2.0 Security BCP §4.14: the thief
    ///   or the client presents a spent token, and neither keeps the session).
    ///
    /// The session's lifetime never changes: it ends when it was set to at sign-in.
    ///
    /// Locks: the account's row, then the session's, on every path. A revocation records an
    /// event, so it needs the account's lock, and on PostgreSQL an `UPDATE` that waited for a
    /// row keeps that row's lock even when the row no longer matches: a presentation that took
    /// the session's lock first and the account's second deadlocked with one that took them
    /// the other way (64 concurrent replays of a spent token, a few runs in ten under load).
    pub async fn rotate_refresh(
        &self,
        old_digest: &str,
        new_digest: &str,
        now: DateTime<Utc>,
        grace_since: DateTime<Utc>,
        origin: EventOrigin<'_>,
    ) -> Result<Refresh> {
        // Whose token it is, read without a lock: the session it is current in, or the one
        // that spent it (which is also where a replaced token's grace use is).
        let owner: Option<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = \
               (SELECT id FROM sessions WHERE refresh_digest = $1 \
                UNION ALL SELECT session_id FROM spent_refresh_tokens WHERE digest = $1 \
                LIMIT 1)"
        ))
        .bind(old_digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(owner) = owner else {
            return Ok(Refresh::Unknown);
        };
        if owner.revoked_at.is_some() {
            // Replays after the first revocation are answered from that read, not queued one
            // behind another on the account's lock.
            return Ok(ended(owner));
        }

        let mut tx = self.pool.begin().await?;
        // A write first: on SQLite the transaction holds the write lock from here to its
        // commit; on PostgreSQL, the account's row lock.
        lock_account(&mut tx, &owner.user_id).await?;
        let rotated: Option<SessionRow> = sqlx::query_as(&format!(
            "UPDATE sessions SET previous_refresh_digest = refresh_digest, rotated_at = $3, \
               grace_used = FALSE, refresh_digest = $1 \
             WHERE refresh_digest = $2 AND revoked_at IS NULL AND expires_at > $3 \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(new_digest)
        .bind(old_digest)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(session) = rotated {
            mark_spent(&mut tx, old_digest, &session.id).await?;
            tx.commit().await?;
            return Ok(Refresh::Rotated(session));
        }
        let replaced: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT id, refresh_digest FROM sessions \
             WHERE previous_refresh_digest = $1 AND grace_used = FALSE AND rotated_at > $2 \
               AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(old_digest)
        .bind(millis(grace_since))
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, lost)) = replaced {
            // The grace use is taken by this UPDATE's condition, not by the read above (the
            // account's lock already orders presentations; the condition keeps it exact).
            let session: Option<SessionRow> = sqlx::query_as(&format!(
                "UPDATE sessions SET refresh_digest = $1, grace_used = TRUE \
                 WHERE id = $2 AND previous_refresh_digest = $3 AND grace_used = FALSE \
                   AND revoked_at IS NULL \
                 RETURNING {SESSION_COLUMNS}"
            ))
            .bind(new_digest)
            .bind(&id)
            .bind(old_digest)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(session) = session {
                if let Some(lost) = lost {
                    mark_spent(&mut tx, &lost, &id).await?;
                }
                tx.commit().await?;
                return Ok(Refresh::Rotated(session));
            }
        }
        let spent_in: Option<String> =
            sqlx::query_scalar("SELECT session_id FROM spent_refresh_tokens WHERE digest = $1")
                .bind(old_digest)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = spent_in else {
            // Current a moment ago, gone since (the session was swept or its account deleted).
            tx.commit().await?;
            return Ok(Refresh::Unknown);
        };
        let newly = revoke_in(&mut tx, &id, now, RevokeReason::RefreshReuse).await?;
        let session: SessionRow = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        ))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        if newly {
            insert_account_event(
                &mut tx,
                &session.user_id,
                AccountEventKind::RefreshReuse,
                origin,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(if newly {
            Refresh::Reused {
                session,
                newly: true,
            }
        } else {
            ended(session)
        })
    }

    /// Revokes a session and its refresh tokens.
    pub async fn revoke_session(
        &self,
        id: &str,
        now: DateTime<Utc>,
        reason: RevokeReason,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        revoke_in(&mut tx, id, now, reason).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes every live session of the account but `except` (all of them for `None`), and
    /// records `event` (when given) in the same transaction. Answers how many were live.
    pub async fn revoke_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        now: DateTime<Utc>,
        reason: RevokeReason,
        event: Option<(AccountEventKind, EventOrigin<'_>)>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        lock_account(&mut tx, user_id).await?;
        let revoked = revoke_all_in(&mut tx, user_id, except, now, reason).await?;
        if let Some((kind, origin)) = event {
            insert_account_event(&mut tx, user_id, kind, origin, now).await?;
        }
        tx.commit().await?;
        Ok(revoked)
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

/// Records that `digest` was handed out by session `session_id` and is no longer accepted.
/// The answer for a spent refresh token whose session has ended: a reuse when it ended for
/// one (the thief and the client both hear `session_revoked`), else just unknown (a sign-out
/// or its expiry: nothing to protect).
fn ended(session: SessionRow) -> Refresh {
    if session.revoked_for_reuse() {
        Refresh::Reused {
            session,
            newly: false,
        }
    } else {
        Refresh::Unknown
    }
}

async fn mark_spent(conn: &mut DbConnection, digest: &str, session_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO spent_refresh_tokens (digest, session_id) VALUES ($1, $2) \
         ON CONFLICT (digest) DO NOTHING",
    )
    .bind(digest)
    .bind(session_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Revokes one session inside a transaction; its current refresh token joins the spent ones
/// (so presenting it later names this session). True when it was not revoked before.
pub(super) async fn revoke_in(
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
    reason: RevokeReason,
) -> Result<bool> {
    // The session's row lock first (PostgreSQL; SQLite has one writer anyway): the refresh
    // token read next is the one a rotation committed just before, not the one it replaced.
    sqlx::query("UPDATE sessions SET revoked_at = revoked_at WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO spent_refresh_tokens (digest, session_id) \
         SELECT refresh_digest, id FROM sessions WHERE id = $1 AND refresh_digest IS NOT NULL \
         ON CONFLICT (digest) DO NOTHING",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let revoked = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2, refresh_digest = NULL, \
           previous_refresh_digest = NULL \
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(millis(now))
    .bind(reason.as_str())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(revoked.rows_affected() == 1)
}

/// Revokes every live session of `user_id` but `except`, inside a transaction, and forgets
/// the account's 2FA challenges (a sign-in half done before the change does not finish).
/// Answers how many sessions were live.
pub(super) async fn revoke_all_in(
    conn: &mut DbConnection,
    user_id: &str,
    except: Option<&str>,
    now: DateTime<Utc>,
    reason: RevokeReason,
) -> Result<u64> {
    let revoked = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2, refresh_digest = NULL, \
           previous_refresh_digest = NULL \
         WHERE user_id = $3 AND ($4 IS NULL OR id <> $4) AND revoked_at IS NULL \
           AND expires_at > $1",
    )
    .bind(millis(now))
    .bind(reason.as_str())
    .bind(user_id)
    .bind(except)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(revoked.rows_affected())
}

/// Opens the session `new` inside `conn` (a transaction's, or a pooled one) unless its account
/// is disabled; whether it was opened.
pub(super) async fn insert_session(conn: &mut DbConnection, new: &NewSession<'_>) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO sessions (id, user_id, source, refresh_digest, created_at, expires_at, \
             token_uuid) \
         SELECT $1, $2, $3, $4, $5, $6, $7 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND disabled_at IS NULL)",
    )
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.source)
    .bind(new.refresh_digest)
    .bind(millis(new.created_at))
    .bind(millis(new.expires_at))
    .bind(new.token_uuid)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
