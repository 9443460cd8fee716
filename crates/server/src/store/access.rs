//! The per-token access log as stored: lines coalesced per token, address, agent, action and
//! UTC day, written in batches by [`crate::access_log::AccessLog`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hubkey_api::{TokenAccess, TokenEventKind};
use rusqlite::OptionalExtension;
use sqlx::FromRow;
use uuid::Uuid;

use super::sqlite_flushes::Upsert;
use super::{encode_cursor, time, BatchRun, EventDetail, Store};
use crate::access_log::{AccessLine, NewAddress, NEW_ADDRESS_EVENTS_PER_HOUR, OVERFLOW};
use crate::error::Result;

/// Lines one upsert of [`Store::record_access`] writes (8 parameters each).
pub const ACCESS_LINES_PER_STATEMENT: usize = 100;
/// (token, address) pairs, or tokens, one probe statement of [`Store::new_addresses`] asks
/// about on PostgreSQL (SQLite asks one prepared query per probe).
pub const ADDRESS_PROBES_PER_STATEMENT: usize = 250;
/// Lines one transaction of [`Store::record_access`] writes at most.
pub const ACCESS_LINES_PER_TRANSACTION: usize = 500;

/// How a line merges into the stored one of the same key: the earliest first use, the latest
/// last use, the counts added. Shared by the batched upserts of both stores (SQLite's on the
/// flushes' connection, [`super::sqlite_flushes`]).
const ACCESS_LINE_CONFLICT: &str =
    "ON CONFLICT (token_uuid, day, address, user_agent, action) DO UPDATE SET \
         first_at = CASE WHEN excluded.first_at < token_access.first_at \
                    THEN excluded.first_at ELSE token_access.first_at END, \
         last_at = CASE WHEN excluded.last_at > token_access.last_at \
                   THEN excluded.last_at ELSE token_access.last_at END, \
         uses = token_access.uses + excluded.uses";

/// What the stored log says about a flush's candidates ([`Store::prior_use`]).
#[derive(Debug, Default)]
struct PriorUse {
    /// The (token, address) pairs it holds a line of.
    pairs: HashSet<(String, String)>,
    /// Of the tokens of the other pairs, those it holds any line of.
    tokens: HashSet<String>,
}

#[derive(Debug, FromRow)]
struct AccessRow {
    id: i64,
    day: i64,
    address: String,
    user_agent: String,
    action: String,
    first_at: i64,
    last_at: i64,
    uses: i64,
}

impl AccessRow {
    fn to_api(&self) -> Option<TokenAccess> {
        Some(TokenAccess {
            cursor: encode_cursor(self.id),
            day: chrono::DateTime::from_timestamp(self.day.checked_mul(86_400)?, 0)?.date_naive(),
            address: self.address.clone(),
            user_agent: self.user_agent.clone(),
            action: self.action.clone(),
            first_at: time(self.first_at),
            last_at: time(self.last_at),
            uses: u64::try_from(self.uses).ok()?,
        })
    }
}

impl PriorUse {
    /// `pairs` as borrowed (token, address) pairs, to look candidates up in.
    fn held_pairs(&self) -> HashSet<(&str, &str)> {
        self.pairs
            .iter()
            .map(|(token, address)| (token.as_str(), address.as_str()))
            .collect()
    }

    /// Which of `candidates` are new addresses, given what the stored log held: those of a
    /// pair it did not hold, except a token's earliest one when the token had no line with
    /// an address (its first use ever).
    fn new_among(&self, candidates: &[NewAddress]) -> Vec<NewAddress> {
        let held = self.held_pairs();
        let mut unknown: HashMap<&str, Vec<&NewAddress>> = HashMap::new();
        for candidate in candidates {
            if !held.contains(&candidate.pair()) {
                unknown
                    .entry(candidate.token_uuid.as_str())
                    .or_default()
                    .push(candidate);
            }
        }
        let mut new = Vec::new();
        for (token, mut found) in unknown {
            found.sort_by(|a, b| (a.at, &a.address).cmp(&(b.at, &b.address)));
            let skip = usize::from(!self.tokens.contains(token));
            new.extend(found.into_iter().skip(skip).cloned());
        }
        new
    }
}

impl Store {
    /// Which of `candidates` are a token's use from an address it was never used from before:
    /// not in the stored log, and not the token's first use ever (for a token with no stored
    /// use, its earliest candidate is that first use). Read before the batch is written.
    pub async fn new_addresses(&self, candidates: Vec<NewAddress>) -> Result<Vec<NewAddress>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let candidates = Arc::new(candidates);
        let prior = self.prior_use(Arc::clone(&candidates)).await?;
        // Sorting out tens of thousands of candidates is CPU work: below the token checks'
        // priority ([`Store::in_background`]).
        self.in_background(move || prior.new_among(&candidates))
            .await
    }

    /// Which (token, address) pairs of `candidates` the stored log holds, and which of the
    /// tokens of the other pairs it holds a line of with an address. A token's overflow line
    /// ([`OVERFLOW`]: uses counted while the pending set was full) names no address, so it
    /// does not count: the first address recorded for such a token is its first, not a new
    /// one (counting it made every token of a busy flush alert on its next use). Both are
    /// answered by the prefix of the log's unique key. On SQLite, prepared probes on the
    /// flushes' connection: a token's first candidate is one query that asks for the pair's
    /// line and, only when there is none, for any line of the token with an address (a pair
    /// seen before, the usual case of a busy server, costs one descent of the key; a token's
    /// first use, two, in the same query); its other candidates ask only for their pair,
    /// and none at all when the token had no line. On PostgreSQL in
    /// statements of [`ADDRESS_PROBES_PER_STATEMENT`] probes (a flush of a busy server asks
    /// about tens of thousands of pairs; one round trip each cost it most of a second).
    async fn prior_use(&self, candidates: Arc<Vec<NewAddress>>) -> Result<PriorUse> {
        if let Some(flushes) = &self.sqlite_flushes {
            return flushes
                .read(move |conn| {
                    // One probe answers both questions for a token's first candidate: 1 if
                    // the log holds the pair (one descent of the key), else 0 if it holds any
                    // line of the token with an address, else no row (its first use).
                    let mut first_probe = conn.prepare_cached(&format!(
                        "SELECT 1 FROM token_access WHERE token_uuid = ?1 AND address = ?2 \
                         UNION ALL \
                         SELECT 0 FROM token_access \
                         WHERE token_uuid = ?1 AND address <> '{OVERFLOW}' \
                         LIMIT 1"
                    ))?;
                    let mut pair_used = conn.prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM token_access \
                         WHERE token_uuid = ?1 AND address = ?2)",
                    )?;
                    let mut prior = PriorUse::default();
                    // Whether each token probed so far has a line with an address.
                    let mut used: HashMap<&str, bool> = HashMap::new();
                    for NewAddress {
                        token_uuid: token,
                        address,
                        ..
                    } in candidates.iter()
                    {
                        let pair_held = match used.get(token.as_str()) {
                            Some(false) => continue,
                            Some(true) => {
                                pair_used.query_row([token, address], |row| row.get(0))?
                            }
                            None => {
                                let found: Option<bool> = first_probe
                                    .query_row([token, address], |row| row.get(0))
                                    .optional()?;
                                used.insert(token, found.is_some());
                                match found {
                                    Some(held) => held,
                                    None => continue,
                                }
                            }
                        };
                        if pair_held {
                            prior.pairs.insert((token.clone(), address.clone()));
                        } else {
                            prior.tokens.insert(token.clone());
                        }
                    }
                    Ok(prior)
                })
                .await;
        }
        let mut conn = self.pool.acquire().await?;
        let mut prior = PriorUse::default();
        for chunk in candidates.chunks(ADDRESS_PROBES_PER_STATEMENT) {
            let sql = format!(
                "SELECT v.column1, v.column2 FROM (VALUES {}) AS v WHERE EXISTS ( \
                     SELECT 1 FROM token_access a \
                     WHERE a.token_uuid = v.column1 AND a.address = v.column2)",
                self.backend.placeholders(chunk.len(), 2)
            );
            let mut query = sqlx::query_as(&sql);
            for candidate in chunk {
                query = query
                    .bind(candidate.token_uuid.as_str())
                    .bind(candidate.address.as_str());
            }
            prior.pairs.extend(query.fetch_all(&mut *conn).await?);
        }
        let tokens: Vec<&str> = {
            let held = prior.held_pairs();
            candidates
                .iter()
                .filter(|candidate| !held.contains(&candidate.pair()))
                .map(|candidate| candidate.token_uuid.as_str())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for chunk in tokens.chunks(ADDRESS_PROBES_PER_STATEMENT) {
            let sql = format!(
                "SELECT v.column1 FROM (VALUES {}) AS v WHERE EXISTS ( \
                     SELECT 1 FROM token_access a \
                     WHERE a.token_uuid = v.column1 AND a.address <> '{OVERFLOW}')",
                self.backend.placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query_scalar(&sql);
            for token in chunk {
                query = query.bind(*token);
            }
            prior.tokens.extend(query.fetch_all(&mut *conn).await?);
        }
        Ok(prior)
    }

    /// Adds coalesced lines to the log, in one transaction (lines of tokens deleted meanwhile
    /// are dropped), in upserts of at most [`ACCESS_LINES_PER_STATEMENT`] lines (on SQLite
    /// [`super::sqlite_flushes::ROWS_PER_UPSERT`], [`Upsert`]). The caller
    /// passes at most [`ACCESS_LINES_PER_TRANSACTION`] lines in key order: the write lock
    /// (SQLite) or the rows (PostgreSQL) are held for one short transaction, never for a whole
    /// flush of tens of thousands of lines (one statement per line held SQLite's write lock
    /// for seconds and the usage flush waited behind it), and two instances lock shared lines
    /// in one order.
    pub async fn record_access(&self, lines: BatchRun<AccessLine>) -> Result<()> {
        if let Some(flushes) = &self.sqlite_flushes {
            return flushes
                .write(move |tx| {
                    Upsert {
                        insert: "INSERT INTO token_access (token_uuid, day, address, user_agent, \
                                 action, first_at, last_at, uses) VALUES",
                        conflict: ACCESS_LINE_CONFLICT,
                        token: |line: &AccessLine| &line.token_uuid,
                        values: |line| {
                            [
                                &line.token_uuid,
                                &line.day,
                                &line.address,
                                &line.user_agent,
                                &line.action,
                                &line.first_at,
                                &line.last_at,
                                &line.uses,
                            ]
                        },
                    }
                    .write(tx, &lines)
                })
                .await;
        }
        let mut tx = self.begin_flush().await?;
        for chunk in lines.chunks(ACCESS_LINES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO token_access \
                     (token_uuid, day, address, user_agent, action, first_at, last_at, uses) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, \
                     v.column7, v.column8 FROM (VALUES {}) AS v \
                 JOIN access_tokens t ON t.uuid = v.column1 WHERE TRUE \
                 ORDER BY v.column1, v.column2, v.column3, v.column4, v.column5 \
                 {ACCESS_LINE_CONFLICT}",
                self.backend.placeholders(chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for line in chunk {
                query = query
                    .bind(line.token_uuid.as_str())
                    .bind(line.day)
                    .bind(line.address.as_str())
                    .bind(line.user_agent.as_str())
                    .bind(line.action.as_str())
                    .bind(line.first_at)
                    .bind(line.last_at)
                    .bind(line.uses);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a `new_address` event for `found` under its account's token lock, unless the
    /// token is gone, has `new_address_alerts` off, or already has
    /// [`NEW_ADDRESS_EVENTS_PER_HOUR`] such events within the hour before. Whether it did.
    pub async fn record_new_address(&self, found: &NewAddress) -> Result<bool> {
        let Ok(uuid) = Uuid::parse_str(&found.token_uuid) else {
            return Ok(false);
        };
        let owner: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM access_tokens WHERE uuid = $1")
                .bind(&found.token_uuid)
                .fetch_optional(&self.pool)
                .await?;
        let Some(owner) = owner else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        let mut tokens = Self::lock_account_tokens(&mut tx, &owner, time(found.at)).await?;
        let Some(token) = Self::token_in(&mut tokens, uuid).await? else {
            return Ok(false);
        };
        if !token.new_address_alerts {
            return Ok(false);
        }
        let hour_before = tokens.stamp() - chrono::TimeDelta::hours(1);
        let recent = Self::count_events_since(
            &mut tokens,
            &token.uuid,
            TokenEventKind::NewAddress,
            hour_before,
        )
        .await?;
        if recent >= i64::from(NEW_ADDRESS_EVENTS_PER_HOUR) {
            return Ok(false);
        }
        let detail = EventDetail {
            address: Some(&found.address),
            user_agent: Some(found.user_agent.as_str()).filter(|agent| !agent.is_empty()),
            ..EventDetail::default()
        };
        Self::insert_event_with(&mut tokens, TokenEventKind::NewAddress, &token, detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Up to `limit` lines of the token's log after the line `after` (0: from the start),
    /// oldest first, and whether more follow.
    pub async fn access_page(
        &self,
        token_uuid: &str,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<TokenAccess>, bool)> {
        let rows: Vec<AccessRow> = sqlx::query_as(
            "SELECT id, day, address, user_agent, action, first_at, last_at, uses \
             FROM token_access WHERE token_uuid = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(token_uuid)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let (rows, has_more) = super::feed_page(rows, limit);
        Ok((
            rows.iter().filter_map(AccessRow::to_api).collect(),
            has_more,
        ))
    }

    /// The addresses the token was used from, with the latest use from each (Unix ms),
    /// newest first, at most `limit`.
    pub async fn last_addresses(&self, token_uuid: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT address, MAX(last_at) AS at FROM token_access \
             WHERE token_uuid = $1 AND address <> '*' \
             GROUP BY address ORDER BY at DESC LIMIT $2",
        )
        .bind(token_uuid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// [`Store::last_addresses`] of each token on a page of `user_id`'s token list (the
    /// order and page of `Store::tokens_page`), in one query: (token uuid, address, Unix ms).
    pub async fn last_addresses_of_page(
        &self,
        user_id: &str,
        offset: i64,
        limit: i64,
        per_token: i64,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT token_uuid, address, at FROM ( \
                 SELECT token_uuid, address, MAX(last_at) AS at, ROW_NUMBER() OVER ( \
                     PARTITION BY token_uuid ORDER BY MAX(last_at) DESC, address) AS nth \
                 FROM token_access \
                 WHERE address <> '*' AND token_uuid IN ( \
                     SELECT uuid FROM access_tokens WHERE user_id = $1 \
                     ORDER BY created_at DESC, uuid DESC LIMIT $2 OFFSET $3) \
                 GROUP BY token_uuid, address) ranked \
             WHERE nth <= $4",
        )
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .bind(per_token)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes the log's lines of days before `first_kept_day`; how many.
    pub async fn delete_access_before(&self, first_kept_day: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM token_access WHERE day < $1")
            .bind(first_kept_day)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
