//! The account's security feed: refresh-token reuse, password and 2FA changes, sessions
//! revoked. Written in the transaction of the change it records.

use chrono::{DateTime, Utc};
use hubkey_api::{AccountEvent, AccountEventKind};
use sqlx::FromRow;

use super::sessions::EventOrigin;
use super::tokens::encode_cursor;
use super::{millis, time, DbConnection, Store};
use crate::error::Result;

/// Longest User-Agent kept with an event (a header can be far longer).
const MAX_USER_AGENT: usize = 256;

#[derive(Debug, Clone, FromRow)]
struct AccountEventRow {
    id: i64,
    kind: String,
    address: Option<String>,
    user_agent: Option<String>,
    at: i64,
}

impl AccountEventRow {
    fn to_api(&self) -> Option<AccountEvent> {
        Some(AccountEvent {
            cursor: encode_cursor(self.id),
            kind: AccountEventKind::from_stored(&self.kind)?,
            at: time(self.at),
            address: self.address.clone(),
            user_agent: self.user_agent.clone(),
        })
    }
}

/// Appends an event to the account's feed inside the caller's transaction, under the
/// account's row lock ([`lock_account`]): the feed is read by id, and ids must follow commit
/// order per account, which PostgreSQL's concurrent writers would not otherwise give.
pub(super) async fn insert_account_event(
    conn: &mut DbConnection,
    user_id: &str,
    kind: AccountEventKind,
    origin: EventOrigin<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    lock_account(&mut *conn, user_id).await?;
    let user_agent = origin
        .user_agent
        .map(|agent| agent.chars().take(MAX_USER_AGENT).collect::<String>());
    sqlx::query(
        "INSERT INTO account_events (user_id, kind, address, user_agent, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(kind.as_str())
    .bind(origin.address)
    .bind(user_agent)
    .bind(millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes the account's row lock until the transaction ends (the row [`Store::lock_account_tokens`]
/// locks too; SQLite has one writer anyway). A transaction that changes sessions and records an
/// event takes it first, so that every such transaction locks the account before its sessions
/// and two of them cannot deadlock.
pub(super) async fn lock_account(conn: &mut DbConnection, user_id: &str) -> Result<()> {
    sqlx::query("UPDATE users SET token_clock = token_clock WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// Appends an event to the account's feed.
    pub async fn record_account_event(
        &self,
        user_id: &str,
        kind: AccountEventKind,
        origin: EventOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_account_event(&mut tx, user_id, kind, origin, now).await?;
        Ok(tx.commit().await?)
    }

    /// Up to `limit` events of the account after the event `after` (0 = from the start),
    /// oldest first, and whether more follow.
    pub async fn account_events_after(
        &self,
        user_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<AccountEvent>, bool)> {
        let rows: Vec<AccountEventRow> = sqlx::query_as(
            "SELECT id, kind, address, user_agent, at FROM account_events \
             WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let (rows, has_more) = super::feed_page(rows, limit);
        Ok((
            rows.iter().filter_map(AccountEventRow::to_api).collect(),
            has_more,
        ))
    }
}
