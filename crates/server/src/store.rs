//! Persistence: every SQL statement hubkeyd runs lives here.
//!
//! The SQL is kept portable (numbered `$n` parameters, BIGINT millisecond times, no
//! SQLite-only syntax outside migrations) so that a PostgreSQL store is a second
//! implementation of the same statements, not a redesign. SQLite runs in WAL mode with
//! `synchronous=FULL`: a write acknowledged to a client survives a crash.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hubkey_api::{AccessToken, Origin, Scope, TokenEvent, TokenEventKind, TokenState};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::usage::PendingUse;

/// How many auto tokens an account keeps.
pub const AUTO_TOKENS_KEPT: i64 = 5;

/// The database, opened and migrated.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

/// Milliseconds since the Unix epoch: how times are stored.
pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

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

/// A session as stored.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub source: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A personal access token as stored (the secret itself is not).
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub uuid: String,
    pub user_id: String,
    pub digest: String,
    pub hint: String,
    pub label: String,
    pub scopes: String,
    pub origin: String,
    pub client_id: String,
    pub creator_ip: String,
    pub creator_ua: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub expires_at: Option<i64>,
    pub is_active: bool,
}

impl TokenRow {
    /// True when `expires_at` is at or before `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= millis(now))
    }

    /// Whether the token would be accepted at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.is_expired(now) {
            TokenState::Expired
        } else if self.is_active {
            TokenState::Active
        } else {
            TokenState::Inactive
        }
    }

    pub fn origin(&self) -> Origin {
        Origin::from_stored(&self.origin)
    }

    /// The scopes; a stored value that no longer parses grants nothing.
    pub fn scopes(&self) -> Vec<Scope> {
        Scope::parse_list(&self.scopes).unwrap_or_default()
    }

    /// The API form, with the secret left out and no usage figures.
    pub fn to_api(&self, now: DateTime<Utc>) -> AccessToken {
        AccessToken {
            uuid: Uuid::parse_str(&self.uuid).unwrap_or_default(),
            client_id: self.client_id.clone(),
            creator_ip: self.creator_ip.clone(),
            creator_ua: self.creator_ua.clone(),
            created_at: time(self.created_at),
            last_used: self.last_used.map(time),
            generated_by: self.origin(),
            is_active: self.is_active,
            token: String::new(),
            token_label: self.label.clone(),
            scopes: self.scopes(),
            expires_at: self.expires_at.map(time),
            token_hint: self.hint.clone(),
            state: self.state(now),
            usage: Vec::new(),
        }
    }
}

/// A token found by its digest, with the name of its owner.
#[derive(Debug, Clone, FromRow)]
pub struct TokenOwner {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub username: String,
}

/// One row of the events feed.
#[derive(Debug, Clone, FromRow)]
struct EventRow {
    id: i64,
    kind: String,
    token_uuid: String,
    label: String,
    origin: String,
    client_id: String,
    last_used: Option<i64>,
    at: i64,
}

impl EventRow {
    fn to_api(&self) -> Option<TokenEvent> {
        Some(TokenEvent {
            cursor: encode_cursor(self.id),
            kind: TokenEventKind::from_stored(&self.kind)?,
            token_uuid: Uuid::parse_str(&self.token_uuid).ok()?,
            token_label: self.label.clone(),
            generated_by: Origin::from_stored(&self.origin),
            at: time(self.at),
            last_used: self.last_used.map(time),
            client_id: self.client_id.clone(),
        })
    }
}

/// The feed cursor: opaque to clients, an event id inside.
pub fn encode_cursor(id: i64) -> String {
    format!("ev{id}")
}

/// Reads a cursor made by [`encode_cursor`]; `None` for anything else.
pub fn decode_cursor(cursor: &str) -> Option<i64> {
    cursor
        .strip_prefix("ev")?
        .parse()
        .ok()
        .filter(|id| *id >= 0)
}

/// A new token's stored fields.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub uuid: Uuid,
    pub user_id: &'a str,
    pub digest: &'a str,
    pub hint: &'a str,
    pub label: &'a str,
    pub scopes: &'a [Scope],
    pub origin: Origin,
    pub client_id: &'a str,
    pub creator_ip: &'a str,
    pub creator_ua: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

const TOKEN_COLUMNS: &str =
    "uuid, user_id, digest, hint, label, scopes, origin, client_id, creator_ip, \
     creator_ua, created_at, last_used, expires_at, is_active";

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`
    /// (`sqlite://PATH` or `sqlite::memory:`).
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| Error::Internal(format!("database URL {url:?}: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(15))
            // 16 MiB of page cache per connection (SQLite's default is 2 MiB): the flush of
            // token uses touches rows spread over the whole table.
            .pragma("cache_size", "-16384");
        if let Some(parent) = Path::new(options.get_filename()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|err| {
                    Error::Internal(format!("creating {}: {err}", parent.display()))
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|err| Error::Internal(format!("database migration failed: {err}")))?;
        Ok(Store { pool })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    // ---- users -------------------------------------------------------------------------

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

    // ---- sessions and 2FA challenges ---------------------------------------------------

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

    /// The user a live challenge belongs to, if it is live and has attempts left.
    pub async fn challenge_user(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        max_attempts: i64,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM mfa_challenges WHERE digest = $1 AND expires_at > $2 AND attempts < $3",
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

    /// Counts a wrong code against a challenge, and forgets expired challenges.
    pub async fn fail_challenge(&self, digest: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- throttling --------------------------------------------------------------------

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

    // ---- tokens ------------------------------------------------------------------------

    /// Takes the account's token lock inside `tx` and returns the time to stamp the
    /// transaction's changes with: `now`, or just after the account's previous stamp if the
    /// clock read earlier. Every transaction that changes an account's tokens starts here, so
    /// they run one at a time per account (a row lock on PostgreSQL, the write lock on
    /// SQLite) and their times follow commit order. Taking it first also means an SQLite
    /// transaction never has to upgrade a read lock, which could fail under contention.
    pub async fn lock_account_tokens(
        tx: &mut SqliteConnection,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let stamp: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET token_clock = \
                 CASE WHEN token_clock + 1 > $2 THEN token_clock + 1 ELSE $2 END \
             WHERE id = $1 RETURNING token_clock",
        )
        .bind(user_id)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        stamp
            .map(time)
            .ok_or_else(|| Error::Unauthorized("the account no longer exists".into()))
    }

    /// Inserts a token.
    pub async fn insert_token(tx: &mut SqliteConnection, token: &NewToken<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_tokens (uuid, user_id, digest, hint, label, scopes, origin, \
                 client_id, creator_ip, creator_ua, created_at, last_used, expires_at, is_active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, TRUE)",
        )
        .bind(token.uuid.to_string())
        .bind(token.user_id)
        .bind(token.digest)
        .bind(token.hint)
        .bind(token.label)
        .bind(Scope::join_list(token.scopes))
        .bind(token.origin.as_str())
        .bind(token.client_id)
        .bind(token.creator_ip)
        .bind(token.creator_ua)
        .bind(millis(token.now))
        .bind(token.expires_at.map(millis))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Deletes the account's auto tokens beyond the [`AUTO_TOKENS_KEPT`] most recently used
    /// (never-used ones rank by creation time), always keeping `keep`. Records a `pruned`
    /// event for each and returns them. Must run in the transaction that created `keep`,
    /// after [`Store::lock_account_tokens`].
    pub async fn prune_auto_tokens(
        tx: &mut SqliteConnection,
        user_id: &str,
        keep: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenRow>> {
        let keep = keep.to_string();
        let doomed: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens \
             WHERE user_id = $1 AND origin = 'auto' AND uuid <> $2 \
             ORDER BY COALESCE(last_used, created_at) DESC, created_at DESC, uuid DESC \
             LIMIT $4 OFFSET $3"
        ))
        .bind(user_id)
        .bind(&keep)
        .bind(AUTO_TOKENS_KEPT - 1)
        .bind(i64::MAX)
        .fetch_all(&mut *tx)
        .await?;
        for token in &doomed {
            sqlx::query("DELETE FROM access_tokens WHERE uuid = $1")
                .bind(&token.uuid)
                .execute(&mut *tx)
                .await?;
            Self::insert_event(tx, user_id, TokenEventKind::Pruned, token, now).await?;
        }
        Ok(doomed)
    }

    /// One page of the account's tokens, newest first.
    pub async fn list_tokens(
        &self,
        user_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = $1 \
             ORDER BY created_at DESC, uuid DESC LIMIT $2 OFFSET $3"
        ))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many tokens the account has, and how many of them work at `now`.
    pub async fn count_tokens(&self, user_id: &str, now: DateTime<Utc>) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), \
                    COALESCE(SUM(CASE WHEN is_active AND (expires_at IS NULL OR expires_at > $2) \
                                 THEN 1 ELSE 0 END), 0) \
             FROM access_tokens WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The account's token with this uuid, if it has one.
    pub async fn token(&self, user_id: &str, uuid: Uuid) -> Result<Option<TokenRow>> {
        Self::token_in(&mut *self.pool.acquire().await?, user_id, uuid).await
    }

    /// As [`Store::token`], inside a transaction.
    pub async fn token_in(
        conn: &mut SqliteConnection,
        user_id: &str,
        uuid: Uuid,
    ) -> Result<Option<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = $1 AND uuid = $2"
        ))
        .bind(user_id)
        .bind(uuid.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// Changes a token's label and/or active flag.
    pub async fn update_token(
        tx: &mut SqliteConnection,
        uuid: &str,
        label: &str,
        is_active: bool,
    ) -> Result<()> {
        sqlx::query("UPDATE access_tokens SET label = $1, is_active = $2 WHERE uuid = $3")
            .bind(label)
            .bind(is_active)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Deletes a token.
    pub async fn delete_token(tx: &mut SqliteConnection, uuid: &str) -> Result<()> {
        sqlx::query("DELETE FROM access_tokens WHERE uuid = $1")
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The token with this digest and its owner's name, whatever its state.
    pub async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenOwner>> {
        Ok(sqlx::query_as(
            "SELECT t.uuid, t.user_id, t.digest, t.hint, t.label, t.scopes, t.origin, t.client_id, \
                    t.creator_ip, t.creator_ua, t.created_at, t.last_used, t.expires_at, \
                    t.is_active, u.username \
             FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Writes coalesced uses: `last_used` (never backwards) and the per-day counts. Uses of
    /// tokens deleted meanwhile are dropped.
    pub async fn record_uses(&self, uses: &HashMap<String, PendingUse>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (uuid, pending) in uses {
            sqlx::query(
                "UPDATE access_tokens SET last_used = $1 \
                 WHERE uuid = $2 AND (last_used IS NULL OR last_used < $1)",
            )
            .bind(pending.last_used)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
            for (day, count) in &pending.days {
                sqlx::query(
                    "INSERT INTO token_usage (token_uuid, day, uses) \
                     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM access_tokens WHERE uuid = $1) \
                     ON CONFLICT (token_uuid, day) DO UPDATE SET uses = token_usage.uses + excluded.uses",
                )
                .bind(uuid)
                .bind(day)
                .bind(count)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per-day uses since `since_day` of the tokens on one page of the account's list (the
    /// same order, offset and limit as [`Store::list_tokens`]).
    pub async fn usage_of_page(
        &self,
        user_id: &str,
        offset: i64,
        limit: i64,
        since_day: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT token_uuid, day, uses FROM token_usage \
             WHERE day >= $4 AND token_uuid IN ( \
                 SELECT uuid FROM access_tokens WHERE user_id = $1 \
                 ORDER BY created_at DESC, uuid DESC LIMIT $2 OFFSET $3) \
             ORDER BY day",
        )
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Per-day uses of one token since `since_day`.
    pub async fn usage_of_token(
        &self,
        uuid: &str,
        since_day: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT token_uuid, day, uses FROM token_usage WHERE token_uuid = $1 AND day >= $2 ORDER BY day",
        )
        .bind(uuid)
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?)
    }

    // ---- repositories ------------------------------------------------------------------

    /// Whether `namespace/name` is public; unknown repositories are private.
    pub async fn repository_is_public(&self, namespace: &str, name: &str) -> Result<bool> {
        let public: Option<bool> = sqlx::query_scalar(
            "SELECT is_public FROM repositories WHERE namespace = $1 AND name = $2",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(public.unwrap_or(false))
    }

    /// Sets the visibility of `namespace/name`.
    pub async fn set_repository_visibility(
        &self,
        namespace: &str,
        name: &str,
        is_public: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO repositories (namespace, name, is_public, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, name) DO UPDATE SET is_public = excluded.is_public, updated_at = excluded.updated_at",
        )
        .bind(namespace)
        .bind(name)
        .bind(is_public)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every repository with a recorded visibility: (namespace, name, is_public).
    pub async fn list_repositories(&self) -> Result<Vec<(String, String, bool)>> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, is_public FROM repositories ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    // ---- events ------------------------------------------------------------------------

    /// Appends an event about `token` to the account's feed.
    pub async fn insert_event(
        tx: &mut SqliteConnection,
        user_id: &str,
        kind: TokenEventKind,
        token: &TokenRow,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_events (user_id, kind, token_uuid, label, origin, client_id, last_used, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user_id)
        .bind(kind.as_str())
        .bind(&token.uuid)
        .bind(&token.label)
        .bind(&token.origin)
        .bind(&token.client_id)
        .bind(token.last_used)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records an `expired` event for each of the account's tokens whose expiry passed and
    /// was not yet recorded. Called before reading the list or the feed.
    pub async fn note_expired_tokens(&self, user_id: &str, now: DateTime<Utc>) -> Result<()> {
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM access_tokens \
             WHERE user_id = $1 AND expiry_noted = FALSE AND expires_at IS NOT NULL AND expires_at <= $2",
        )
        .bind(user_id)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?;
        if pending == 0 {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let now = Self::lock_account_tokens(&mut tx, user_id, now).await?;
        let expired: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens \
             WHERE user_id = $1 AND expiry_noted = FALSE AND expires_at IS NOT NULL AND expires_at <= $2"
        ))
        .bind(user_id)
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await?;
        for token in &expired {
            sqlx::query("UPDATE access_tokens SET expiry_noted = TRUE WHERE uuid = $1")
                .bind(&token.uuid)
                .execute(&mut *tx)
                .await?;
            let at = token.expires_at.map_or(now, time);
            Self::insert_event(&mut tx, user_id, TokenEventKind::Expired, token, at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` events of the account after the event `after` (0 = from the start),
    /// and whether more follow.
    pub async fn events_after(
        &self,
        user_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<TokenEvent>, bool)> {
        let mut rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, kind, token_uuid, label, origin, client_id, last_used, at FROM token_events \
             WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok((rows.iter().filter_map(EventRow::to_api).collect(), has_more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("42"), None);
        assert_eq!(decode_cursor("ev-1"), None);
        assert_eq!(decode_cursor("ev"), None);
    }
}
