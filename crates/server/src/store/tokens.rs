//! Personal access tokens and their events feed: every statement that changes an account's
//! tokens takes the [`AccountTokens`] guard, so it runs under the account's token lock.

use chrono::{DateTime, Utc};
use hubkey_api::{AccessToken, Origin, Scope, TokenEvent, TokenEventKind, TokenState};
use sqlx::FromRow;
use uuid::Uuid;

use super::{millis, time, AccountTokens, DbConnection, Flag, Store};
use crate::error::Result;

/// Rows one statement of [`Store::insert_tokens`] inserts (12 parameters each). Kept small:
/// sqlx's SQLite driver finds each parameter by name, a walk of the statement's list, so
/// binding costs the square of the parameters (a quarter of seeding's time at 200 rows).
pub const TOKENS_PER_INSERT: usize = 50;

/// How many auto tokens an account keeps.
pub const AUTO_TOKENS_KEPT: i64 = 5;

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
    #[sqlx(try_from = "Flag")]
    pub is_active: bool,
    /// The token this one replaced by a rotation.
    #[sqlx(default)]
    pub rotated_from: Option<String>,
    /// The token that replaced this one by a rotation.
    #[sqlx(default)]
    pub rotated_to: Option<String>,
    /// For a rotated-away token: when it stops working (Unix ms).
    #[sqlx(default)]
    pub overlap_until: Option<i64>,
    /// Whether a use from a new address records a `new_address` event.
    #[sqlx(try_from = "Flag")]
    pub new_address_alerts: bool,
}

impl TokenRow {
    /// True when `expires_at` is at or before `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= millis(now))
    }

    /// True when the token was rotated away and its overlap ended at or before `now`: it is
    /// refused everywhere, and presenting it is reuse.
    pub fn is_rotated_away(&self, now: DateTime<Utc>) -> bool {
        self.rotated_to.is_some() && self.overlap_until.is_none_or(|until| until <= millis(now))
    }

    /// Whether the token would be accepted at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.is_expired(now) {
            TokenState::Expired
        } else if self.is_active && !self.is_rotated_away(now) {
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
            rotated_from: parse_uuid(self.rotated_from.as_deref()),
            rotated_to: parse_uuid(self.rotated_to.as_deref()),
            overlap_until: self.overlap_until.map(time),
            last_addresses: Vec::new(),
            new_address_alerts: self.new_address_alerts,
        }
    }
}

fn parse_uuid(uuid: Option<&str>) -> Option<Uuid> {
    uuid.and_then(|uuid| Uuid::parse_str(uuid).ok())
}

/// A token found by its digest, with the name of its owner.
#[derive(Debug, Clone, FromRow)]
pub struct TokenOwner {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub username: String,
    /// The owner's account is disabled: the token is refused whatever its state.
    #[sqlx(default, try_from = "Flag")]
    pub user_disabled: bool,
}

impl TokenOwner {
    /// The bytes this answer holds, for the token cache's weight bound.
    pub fn heap_size(&self) -> usize {
        let row = &self.token;
        std::mem::size_of::<Self>()
            + [
                &row.uuid,
                &row.user_id,
                &row.digest,
                &row.hint,
                &row.label,
                &row.scopes,
                &row.origin,
                &row.client_id,
                &row.creator_ip,
                &row.creator_ua,
                &self.username,
            ]
            .into_iter()
            .chain(row.rotated_from.iter())
            .chain(row.rotated_to.iter())
            .map(String::capacity)
            .sum::<usize>()
    }
}

/// The token check's one statement with `$hint` after the token table's alias: nothing, or
/// SQLite's `INDEXED BY` ([`SQLITE_TOKEN_CHECK_SQL`]).
macro_rules! token_check_sql {
    ($hint:literal) => {
        concat!(
            "SELECT t.uuid, t.digest, t.user_id, t.scopes, t.expires_at, \
                    CAST(t.is_active AS INTEGER) AS is_active, \
                    CAST((t.rotated_to IS NOT NULL) AS INTEGER) AS rotated, t.overlap_until, \
                    u.username, CAST((u.disabled_at IS NOT NULL) AS INTEGER) AS user_disabled \
             FROM access_tokens t ",
            $hint,
            " JOIN users u ON u.id = t.user_id WHERE t.digest = $1"
        )
    };
}

/// The token check's one statement ([`Store::token_check_by_digest`]) through sqlx, the same
/// text on both backends.
pub(super) const TOKEN_CHECK_SQL: &str = token_check_sql!("");

/// The same statement on SQLite's hot path ([`super::token_reads`]), read from the covering
/// index `access_tokens_check` (migration 0017): the digest's entry holds every column the
/// check reads, so a lookup descends one B-tree instead of the digest's index and then the
/// table. SQLite's planner prefers the digest's unique index, hence the hint. SQLite reads `$1`
/// as a parameter's name, bound first.
pub(super) const SQLITE_TOKEN_CHECK_SQL: &str = token_check_sql!("INDEXED BY access_tokens_check");

/// What the token check on the hot path needs of a token found by its digest: whether it may
/// be used now, by whom, with which scopes. Read by one indexed lookup joined to its owner
/// ([`Store::token_check_by_digest`]) and kept in the token cache; the token's other columns
/// (label, creator, latest use) are not read for a check.
#[derive(Debug, Clone, FromRow)]
pub struct TokenCheck {
    pub uuid: String,
    /// The token's digest (hex): the cache is keyed by its first digits, so a hit is checked
    /// against the whole of it.
    pub digest: String,
    pub user_id: String,
    /// The stored scopes, as [`TokenRow::scopes`] reads them.
    pub scopes: String,
    pub expires_at: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub is_active: bool,
    /// The token was rotated away (it has a successor).
    #[sqlx(try_from = "Flag")]
    pub rotated: bool,
    /// For a rotated-away token: when it stops working (Unix ms).
    pub overlap_until: Option<i64>,
    pub username: String,
    /// The owner's account is disabled: the token is refused whatever its state.
    #[sqlx(try_from = "Flag")]
    pub user_disabled: bool,
}

impl TokenCheck {
    /// True when `expires_at` is at or before `now` (as [`TokenRow::is_expired`]).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= millis(now))
    }

    /// True when the token was rotated away and its overlap ended at or before `now` (as
    /// [`TokenRow::is_rotated_away`]).
    pub fn is_rotated_away(&self, now: DateTime<Utc>) -> bool {
        self.rotated && self.overlap_until.is_none_or(|until| until <= millis(now))
    }

    /// The scopes; a stored value that no longer parses grants nothing.
    pub fn scopes(&self) -> Vec<Scope> {
        Scope::parse_list(&self.scopes).unwrap_or_default()
    }

    /// The bytes this answer holds, for the token cache's weight bound.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + [&self.uuid, &self.user_id, &self.scopes, &self.username]
                .into_iter()
                .map(String::capacity)
                .sum::<usize>()
    }
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
    url: Option<String>,
    source: Option<String>,
    address: Option<String>,
    user_agent: Option<String>,
    related_uuid: Option<String>,
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
            url: self.url.clone(),
            source: self.source.clone(),
            address: self.address.clone(),
            user_agent: self.user_agent.clone(),
            related_token: self
                .related_uuid
                .as_deref()
                .and_then(|uuid| Uuid::parse_str(uuid).ok()),
        })
    }
}

/// What an event says beyond its kind and token (see `TokenEvent`'s optional fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventDetail<'a> {
    pub url: Option<&'a str>,
    pub source: Option<&'a str>,
    pub address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub related_uuid: Option<&'a str>,
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

/// What the caller chose about a new token: everything but its secret and where the request
/// came from.
#[derive(Debug, Clone, Copy)]
pub struct TokenSpec<'a> {
    pub label: &'a str,
    pub scopes: &'a [Scope],
    pub origin: Origin,
    /// The client an auto token was made for; empty for manual tokens.
    pub client_id: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new token's stored fields. Its owner and creation time come from the [`AccountTokens`]
/// guard it is inserted under.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub uuid: Uuid,
    pub digest: &'a str,
    pub hint: &'a str,
    pub spec: TokenSpec<'a>,
    pub creator_ip: &'a str,
    pub creator_ua: &'a str,
}

/// A token's columns, read `FROM` [`TOKENS`].
const TOKEN_COLUMNS: &str =
    "uuid, user_id, digest, hint, label, scopes, origin, client_id, creator_ip, \
     creator_ua, created_at, last_used, expires_at, CAST(is_active AS INTEGER) AS is_active, \
     rotated_from, rotated_to, overlap_until, \
     CAST(new_address_alerts AS INTEGER) AS new_address_alerts";

/// The tokens with their latest use: that of the token's latest day of `token_usage` (the
/// usage flush writes it in batches, out of the way of the token check). One descent of the
/// usage key for the latest day, one for its row.
const TOKENS: &str = "access_tokens LEFT JOIN token_usage \
     ON token_usage.token_uuid = access_tokens.uuid \
     AND token_usage.day = (SELECT MAX(latest.day) FROM token_usage latest \
                            WHERE latest.token_uuid = access_tokens.uuid)";

impl Store {
    /// Inserts a token of the locked account, created at the lock's stamp.
    pub async fn insert_token(tokens: &mut AccountTokens<'_>, token: &NewToken<'_>) -> Result<()> {
        let spec = &token.spec;
        sqlx::query(
            "INSERT INTO access_tokens (uuid, user_id, digest, hint, label, scopes, origin, \
                 client_id, creator_ip, creator_ua, created_at, expires_at, is_active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, TRUE)",
        )
        .bind(token.uuid.to_string())
        .bind(&tokens.user_id)
        .bind(token.digest)
        .bind(token.hint)
        .bind(spec.label)
        .bind(Scope::join_list(spec.scopes))
        .bind(spec.origin.as_str())
        .bind(spec.client_id)
        .bind(token.creator_ip)
        .bind(token.creator_ua)
        .bind(millis(tokens.stamp))
        .bind(spec.expires_at.map(millis))
        .execute(&mut *tokens.conn)
        .await?;
        Ok(())
    }

    /// Inserts many tokens of the locked account, created at the lock's stamp, in statements
    /// of [`TOKENS_PER_INSERT`] rows: what seeding a large store (the benchmark's million
    /// tokens) needs, where one statement per token spends its time in round trips.
    pub async fn insert_tokens(tokens: &mut AccountTokens<'_>, new: &[NewToken<'_>]) -> Result<()> {
        for chunk in new.chunks(TOKENS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO access_tokens (uuid, user_id, digest, hint, label, scopes, origin, \
                     client_id, creator_ip, creator_ua, created_at, expires_at, is_active) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, \
                     v.column7, v.column8, v.column9, v.column10, v.column11, v.column12, TRUE \
                 FROM (VALUES {}) AS v",
                super::Backend::of(tokens.conn).placeholders(chunk.len(), 12)
            );
            let mut query = sqlx::query(&sql);
            for token in chunk {
                let spec = &token.spec;
                query = query
                    .bind(token.uuid.to_string())
                    .bind(tokens.user_id.clone())
                    .bind(token.digest.to_owned())
                    .bind(token.hint.to_owned())
                    .bind(spec.label.to_owned())
                    .bind(Scope::join_list(spec.scopes))
                    .bind(spec.origin.as_str())
                    .bind(spec.client_id.to_owned())
                    .bind(token.creator_ip.to_owned())
                    .bind(token.creator_ua.to_owned())
                    .bind(millis(tokens.stamp))
                    .bind(spec.expires_at.map(millis));
            }
            query.execute(&mut *tokens.conn).await?;
        }
        Ok(())
    }

    /// Deletes the locked account's auto tokens beyond the [`AUTO_TOKENS_KEPT`] most recently
    /// used (never-used ones rank by creation time), always keeping `keep`. Records a
    /// `pruned` event for each and returns them. Must run in the transaction that created
    /// `keep`.
    pub async fn prune_auto_tokens(
        tokens: &mut AccountTokens<'_>,
        keep: Uuid,
    ) -> Result<Vec<TokenRow>> {
        let keep = keep.to_string();
        let doomed: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM {TOKENS} \
             WHERE user_id = $1 AND origin = 'auto' AND uuid <> $2 \
             ORDER BY COALESCE(last_used, created_at) DESC, created_at DESC, uuid DESC \
             LIMIT $4 OFFSET $3"
        ))
        .bind(&tokens.user_id)
        .bind(&keep)
        .bind(AUTO_TOKENS_KEPT - 1)
        .bind(i64::MAX)
        .fetch_all(&mut *tokens.conn)
        .await?;
        for token in &doomed {
            Self::delete_token(tokens, &token.uuid).await?;
            Self::insert_event(tokens, TokenEventKind::Pruned, token).await?;
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
            "SELECT {TOKEN_COLUMNS} FROM {TOKENS} WHERE user_id = $1 \
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
                    CAST(COALESCE(SUM(CASE WHEN is_active AND (expires_at IS NULL OR expires_at > $2) \
                                 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM access_tokens WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The account's token with this uuid, if it has one.
    pub async fn token(&self, user_id: &str, uuid: Uuid) -> Result<Option<TokenRow>> {
        Self::find_token(&mut *self.pool.acquire().await?, user_id, uuid).await
    }

    /// As [`Store::token`], inside the transaction that holds the account's token lock.
    pub async fn token_in(tokens: &mut AccountTokens<'_>, uuid: Uuid) -> Result<Option<TokenRow>> {
        Self::find_token(&mut *tokens.conn, &tokens.user_id, uuid).await
    }

    async fn find_token(
        conn: &mut DbConnection,
        user_id: &str,
        uuid: Uuid,
    ) -> Result<Option<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM {TOKENS} WHERE user_id = $1 AND uuid = $2"
        ))
        .bind(user_id)
        .bind(uuid.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// Changes the label and/or active flag of one of the locked account's tokens.
    pub async fn update_token(
        tokens: &mut AccountTokens<'_>,
        uuid: &str,
        label: &str,
        is_active: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE access_tokens SET label = $1, is_active = $2 WHERE uuid = $3 AND user_id = $4",
        )
        .bind(label)
        .bind(is_active)
        .bind(uuid)
        .bind(&tokens.user_id)
        .execute(&mut *tokens.conn)
        .await?;
        Ok(())
    }

    /// Turns the `new_address` events of one of the locked account's tokens on or off.
    pub async fn set_new_address_alerts(
        tokens: &mut AccountTokens<'_>,
        uuid: &str,
        on: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE access_tokens SET new_address_alerts = $1 WHERE uuid = $2 AND user_id = $3",
        )
        .bind(on)
        .bind(uuid)
        .bind(&tokens.user_id)
        .execute(&mut *tokens.conn)
        .await?;
        Ok(())
    }

    /// How many events of `kind` the token has at or after `since` (the `new_address` cap).
    pub async fn count_events_since(
        tokens: &mut AccountTokens<'_>,
        token_uuid: &str,
        kind: TokenEventKind,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM token_events \
             WHERE token_uuid = $1 AND kind = $2 AND user_id = $3 AND at >= $4",
        )
        .bind(token_uuid)
        .bind(kind.as_str())
        .bind(&tokens.user_id)
        .bind(millis(since))
        .fetch_one(&mut *tokens.conn)
        .await?)
    }

    /// The locked account's active tokens (expired ones included: they could be renewed by
    /// nothing, but deactivating them too leaves no doubt).
    pub async fn active_tokens_in(tokens: &mut AccountTokens<'_>) -> Result<Vec<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM {TOKENS} WHERE user_id = $1 AND is_active = TRUE \
             ORDER BY created_at"
        ))
        .bind(&tokens.user_id)
        .fetch_all(&mut *tokens.conn)
        .await?)
    }

    /// Links a rotation: `old` was replaced by `new` and works until `overlap_until`.
    pub async fn link_rotation(
        tokens: &mut AccountTokens<'_>,
        old: &str,
        new: &str,
        overlap_until: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE access_tokens SET rotated_to = $1, overlap_until = $2 \
             WHERE uuid = $3 AND user_id = $4",
        )
        .bind(new)
        .bind(millis(overlap_until))
        .bind(old)
        .bind(&tokens.user_id)
        .execute(&mut *tokens.conn)
        .await?;
        sqlx::query("UPDATE access_tokens SET rotated_from = $1 WHERE uuid = $2 AND user_id = $3")
            .bind(old)
            .bind(new)
            .bind(&tokens.user_id)
            .execute(&mut *tokens.conn)
            .await?;
        Ok(())
    }

    /// Deletes one of the locked account's tokens.
    pub async fn delete_token(tokens: &mut AccountTokens<'_>, uuid: &str) -> Result<()> {
        sqlx::query("DELETE FROM access_tokens WHERE uuid = $1 AND user_id = $2")
            .bind(uuid)
            .bind(&tokens.user_id)
            .execute(&mut *tokens.conn)
            .await?;
        Ok(())
    }

    /// The token with this digest and its owner's name, whatever its state.
    pub async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenOwner>> {
        Ok(sqlx::query_as(&format!(
            "SELECT t.*, u.username, CAST((u.disabled_at IS NOT NULL) AS INTEGER) AS user_disabled \
             FROM (SELECT {TOKEN_COLUMNS} FROM {TOKENS} WHERE digest = $1) t \
             JOIN users u ON u.id = t.user_id"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// What the token check needs of the token with this digest, whatever its state: one
    /// probe of the digest's unique index and one of the owner's primary key (the hot path's
    /// only query, on a token cache miss).
    /// On SQLite the read runs on the calling thread ([`super::token_reads`]) and probes the
    /// covering index `access_tokens_check` instead.
    pub async fn token_check_by_digest(&self, digest: &str) -> Result<Option<TokenCheck>> {
        if let Some(reads) = &self.token_reads {
            return reads.token_check(digest);
        }
        Ok(sqlx::query_as(TOKEN_CHECK_SQL)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Whether the token already has an event of `kind` with this `url` and `source` (a
    /// secret scanner reporting the same finding again).
    pub async fn has_event_about(
        tokens: &mut AccountTokens<'_>,
        token_uuid: &str,
        kind: TokenEventKind,
        url: &str,
        source: &str,
    ) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM token_events \
             WHERE token_uuid = $1 AND kind = $2 AND user_id = $3 AND url = $4 AND source = $5 \
             LIMIT 1",
        )
        .bind(token_uuid)
        .bind(kind.as_str())
        .bind(&tokens.user_id)
        .bind(url)
        .bind(source)
        .fetch_optional(&mut *tokens.conn)
        .await?;
        Ok(found.is_some())
    }

    /// Whether a token has this digest: one probe of the digest's unique index, the same
    /// work whether or not it exists (the public revocation's no-oracle lookup).
    pub async fn digest_exists(&self, digest: &str) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM access_tokens WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    // ---- events ------------------------------------------------------------------------

    /// Appends an event about `token` to the locked account's feed, at the lock's stamp.
    pub async fn insert_event(
        tokens: &mut AccountTokens<'_>,
        kind: TokenEventKind,
        token: &TokenRow,
    ) -> Result<()> {
        let at = tokens.stamp;
        Self::insert_event_at(tokens, kind, token, at, EventDetail::default()).await
    }

    /// As [`Store::insert_event`], with what the event says beyond its kind.
    pub async fn insert_event_with(
        tokens: &mut AccountTokens<'_>,
        kind: TokenEventKind,
        token: &TokenRow,
        detail: EventDetail<'_>,
    ) -> Result<()> {
        let at = tokens.stamp;
        Self::insert_event_at(tokens, kind, token, at, detail).await
    }

    async fn insert_event_at(
        tokens: &mut AccountTokens<'_>,
        kind: TokenEventKind,
        token: &TokenRow,
        at: DateTime<Utc>,
        detail: EventDetail<'_>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_events (user_id, kind, token_uuid, label, origin, client_id, last_used, at, \
                 url, source, address, user_agent, related_uuid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&tokens.user_id)
        .bind(kind.as_str())
        .bind(&token.uuid)
        .bind(&token.label)
        .bind(&token.origin)
        .bind(&token.client_id)
        .bind(token.last_used)
        .bind(millis(at))
        .bind(detail.url)
        .bind(detail.source)
        .bind(detail.address)
        .bind(detail.user_agent)
        .bind(detail.related_uuid)
        .execute(&mut *tokens.conn)
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
        let mut tokens = Self::lock_account_tokens(&mut tx, user_id, now).await?;
        let now = tokens.stamp;
        let expired: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM {TOKENS} \
             WHERE user_id = $1 AND expiry_noted = FALSE AND expires_at IS NOT NULL AND expires_at <= $2"
        ))
        .bind(user_id)
        .bind(millis(now))
        .fetch_all(&mut *tokens.conn)
        .await?;
        for token in &expired {
            sqlx::query("UPDATE access_tokens SET expiry_noted = TRUE WHERE uuid = $1")
                .bind(&token.uuid)
                .execute(&mut *tokens.conn)
                .await?;
            let at = token.expires_at.map_or(now, time);
            Self::insert_event_at(
                &mut tokens,
                TokenEventKind::Expired,
                token,
                at,
                EventDetail::default(),
            )
            .await?;
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
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, kind, token_uuid, label, origin, client_id, last_used, at, \
                    url, source, address, user_agent, related_uuid FROM token_events \
             WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let (rows, has_more) = super::feed_page(rows, limit);
        Ok((rows.iter().filter_map(EventRow::to_api).collect(), has_more))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("42"), None);
        assert_eq!(decode_cursor("ev-1"), None);
        assert_eq!(decode_cursor("ev"), None);
    }

    /// A store in `dir` with the user alice and `count` manual read tokens inserted in one
    /// transaction, every second one expired at `now`: the store, alice's id, and each
    /// token's (digest, uuid).
    pub(in crate::store) async fn store_with_bulk_tokens(
        dir: &std::path::Path,
        count: usize,
        now: DateTime<Utc>,
    ) -> (crate::Instance, String, Vec<(String, Uuid)>) {
        let url = format!("sqlite://{}", dir.join("hubkeyd.db").display());
        let instance = crate::open(dir, &url).await.unwrap();
        let hub = &instance.hub;
        hub.add_user("alice", "a long password 2026".to_owned().into(), now)
            .await
            .unwrap();
        let store = hub.store();
        let user = store.user_by_name("alice").await.unwrap().unwrap();
        let fields: Vec<(String, String)> = (0..count)
            .map(|_| {
                let token = hubkey_api::PlainToken::generate();
                (token.digest().as_str().to_owned(), token.hint())
            })
            .collect();
        let expired = now - chrono::Duration::minutes(1);
        let new: Vec<NewToken<'_>> = fields
            .iter()
            .enumerate()
            .map(|(i, (digest, hint))| NewToken {
                uuid: Uuid::new_v4(),
                digest,
                hint,
                spec: TokenSpec {
                    label: "bulk",
                    scopes: &[Scope::Read],
                    origin: Origin::Manual,
                    client_id: "",
                    expires_at: (i % 2 == 1).then_some(expired),
                },
                creator_ip: "127.0.0.1",
                creator_ua: "test",
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        let mut tokens = Store::lock_account_tokens(&mut tx, &user.id, now)
            .await
            .unwrap();
        Store::insert_tokens(&mut tokens, &new).await.unwrap();
        drop(tokens);
        tx.commit().await.unwrap();
        let made = new
            .iter()
            .map(|token| (token.digest.to_owned(), token.uuid))
            .collect();
        (instance, user.id, made)
    }

    /// The hot path's narrow read answers what the whole row says about the same token, for
    /// tokens inserted in bulk; the read-only pool refuses writes (the token check's own
    /// connections: `token_reads::tests`).
    #[tokio::test]
    async fn the_token_check_agrees_with_the_row_and_the_read_only_pool_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (instance, user_id, fields) = store_with_bulk_tokens(dir.path(), 450, now).await;
        let store = instance.hub.store();
        for (i, (digest, _)) in fields.iter().enumerate() {
            let row = store.token_by_digest(digest).await.unwrap().unwrap();
            let check = store.token_check_by_digest(digest).await.unwrap().unwrap();
            assert_eq!(check.uuid, row.token.uuid);
            assert_eq!(check.user_id, user_id);
            assert_eq!(check.username, "alice");
            assert_eq!(check.scopes(), vec![Scope::Read]);
            assert_eq!(check.is_expired(now), i % 2 == 1);
            assert_eq!(check.is_expired(now), row.token.is_expired(now));
            assert!(check.is_active && !check.rotated && !check.user_disabled);
        }
        assert!(store
            .token_check_by_digest(&"0".repeat(64))
            .await
            .unwrap()
            .is_none());

        let write = sqlx::query("DELETE FROM access_tokens")
            .execute(store.read_pool())
            .await;
        assert!(write.is_err(), "a read-only connection wrote");
        assert_eq!(store.count_tokens(&user_id, now).await.unwrap(), (450, 225));
    }
}
