//! The per-token access log: every accepted use of a token (address, User-Agent, what it
//! did, when), coalesced in memory per (token, address, agent, action, UTC day) and written
//! in batches off the hot path, as [`crate::usage::UsageLog`] writes `last_used`.
//!
//! The pending batch is bounded: at most [`MAX_PENDING`] distinct keys between two flushes.
//! Past that (an attacker using one token from thousands of addresses, agents and
//! repositories within two seconds), further new keys are counted in one overflow line per
//! token and day (`*` for address, agent and action), so every use is still counted and
//! the memory stays bounded. Strings are cut ([`MAX_AGENT`], [`MAX_ACTION`]).
//!
//! On the hot path a use that repeats a pending key allocates nothing: keys are found by a
//! hash of the borrowed parts and compared field by field.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{millis, Store, ACCESS_LINES_PER_TRANSACTION};
use crate::usage::{epoch_day, lock, FLUSH_INTERVAL};

/// Distinct pending keys kept between two flushes.
pub const MAX_PENDING: usize = 20_000;
/// The longest User-Agent kept, in bytes.
pub const MAX_AGENT: usize = 256;
/// The longest action kept, in bytes (a repository name is at most 255).
pub const MAX_ACTION: usize = 320;
/// Days the log keeps unless told otherwise (`--access-log-days`).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// The line uses past [`MAX_PENDING`] are counted in.
pub const OVERFLOW: &str = "*";

/// One pending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    pub token_uuid: String,
    pub day: i64,
    pub address: String,
    pub user_agent: String,
    pub action: String,
    /// Unix milliseconds.
    pub first_at: i64,
    pub last_at: i64,
    pub uses: i64,
}

/// Uses not yet written, and whether the log records at all.
#[derive(Debug)]
pub struct AccessLog {
    enabled: AtomicBool,
    pending: Mutex<HashMap<u64, AccessLine>>,
    hasher: std::collections::hash_map::RandomState,
    /// One flush at a time.
    writing: tokio::sync::Mutex<()>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            enabled: AtomicBool::new(true),
            pending: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            writing: tokio::sync::Mutex::default(),
        }
    }
}

impl AccessLog {
    /// Turns recording on or off (`--access-log off`, for the benchmark's comparison).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    /// Whether uses are recorded.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn key(&self, token: &str, day: i64, address: &str, agent: &str, action: &str) -> u64 {
        self.hasher.hash_one((token, day, address, agent, action))
    }

    /// Notes one accepted use of `token_uuid` from `address` with `agent`, doing `action`.
    pub fn record(
        &self,
        token_uuid: &str,
        address: &str,
        agent: &str,
        action: &str,
        now: DateTime<Utc>,
    ) {
        if !self.is_enabled() {
            return;
        }
        let agent = cut(agent, MAX_AGENT);
        let action = cut(action, MAX_ACTION);
        let day = epoch_day(now);
        let at = millis(now);
        let key = self.key(token_uuid, day, address, agent, action);
        let mut pending = lock(&self.pending);
        if let Some(line) = pending.get_mut(&key) {
            if line.token_uuid == token_uuid
                && line.day == day
                && line.address == address
                && line.user_agent == agent
                && line.action == action
            {
                line.note(at);
                return;
            }
        } else if pending.len() < MAX_PENDING {
            pending.insert(
                key,
                AccessLine {
                    token_uuid: token_uuid.to_owned(),
                    day,
                    address: address.to_owned(),
                    user_agent: agent.to_owned(),
                    action: action.to_owned(),
                    first_at: at,
                    last_at: at,
                    uses: 1,
                },
            );
            return;
        }
        // Full, or a hash collision: the token's overflow line for the day.
        let overflow = self.key(token_uuid, day, OVERFLOW, OVERFLOW, OVERFLOW);
        pending
            .entry(overflow)
            .and_modify(|line| line.note(at))
            .or_insert_with(|| AccessLine {
                token_uuid: token_uuid.to_owned(),
                day,
                address: OVERFLOW.to_owned(),
                user_agent: OVERFLOW.to_owned(),
                action: OVERFLOW.to_owned(),
                first_at: at,
                last_at: at,
                uses: 1,
            });
    }

    /// How many lines are pending (for tests and figures).
    pub fn pending_lines(&self) -> usize {
        lock(&self.pending).len()
    }

    /// The pending lines' addresses of `token_uuid` with their latest use.
    pub fn pending_addresses(&self, token_uuid: &str) -> Vec<(String, i64)> {
        lock(&self.pending)
            .values()
            .filter(|line| line.token_uuid == token_uuid && line.address != OVERFLOW)
            .map(|line| (line.address.clone(), line.last_at))
            .collect()
    }

    /// Writes every pending line in one transaction; on failure they are kept.
    pub async fn flush(&self, store: &Store) -> Result<()> {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return Ok(());
        }
        // In key order, one short transaction per ACCESS_LINES_PER_TRANSACTION lines (see
        // `Store::record_access`); what was not written goes back to the pending set.
        let mut lines: Vec<(u64, AccessLine)> = batch.into_iter().collect();
        lines.sort_unstable_by(|(_, a), (_, b)| {
            (&a.token_uuid, a.day, &a.address, &a.user_agent, &a.action).cmp(&(
                &b.token_uuid,
                b.day,
                &b.address,
                &b.user_agent,
                &b.action,
            ))
        });
        let mut written = Ok(());
        let mut unwritten = 0;
        for (index, chunk) in lines.chunks(ACCESS_LINES_PER_TRANSACTION).enumerate() {
            let refs: Vec<&AccessLine> = chunk.iter().map(|(_, line)| line).collect();
            if let Err(err) = store.record_access(&refs).await {
                written = Err(err);
                unwritten = index * ACCESS_LINES_PER_TRANSACTION;
                break;
            }
        }
        if written.is_err() {
            let mut pending = lock(&self.pending);
            for (key, line) in lines.into_iter().skip(unwritten) {
                match pending.get_mut(&key) {
                    Some(newer) if newer.token_uuid == line.token_uuid => {
                        newer.first_at = newer.first_at.min(line.first_at);
                        newer.last_at = newer.last_at.max(line.last_at);
                        newer.uses += line.uses;
                    }
                    Some(_) => {}
                    None => {
                        pending.insert(key, line);
                    }
                }
            }
        }
        written
    }

    /// Flushes every [`FLUSH_INTERVAL`]; run as a task.
    pub async fn flush_forever(self: Arc<Self>, store: Store) {
        let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = self.flush(&store).await {
                tracing::warn!(error = %err, "writing the access log failed; will retry");
            }
        }
    }
}

impl AccessLine {
    fn note(&mut self, at: i64) {
        self.first_at = self.first_at.min(at);
        self.last_at = self.last_at.max(at);
        self.uses += 1;
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_coalesce_per_key_and_the_pending_set_is_bounded() {
        let log = AccessLog::default();
        let now = DateTime::from_timestamp(86_400 * 20_000 + 5, 0).unwrap();
        for _ in 0..100 {
            log.record("t", "10.0.0.1", "docker/28", "registry:ann/app:pull", now);
        }
        assert_eq!(log.pending_lines(), 1);
        for i in 0..(MAX_PENDING + 5000) {
            log.record("t", &format!("10.{}.{}.1", i / 256, i % 256), "x", "a", now);
        }
        // The one line above, MAX_PENDING - 1 new ones, and the overflow line.
        assert_eq!(log.pending_lines(), MAX_PENDING + 1);
        let overflow = lock(&log.pending)
            .values()
            .find(|line| line.address == OVERFLOW)
            .map(|line| line.uses)
            .unwrap();
        assert_eq!(overflow, 5001);
        let huge = "u".repeat(10_000);
        let log = AccessLog::default();
        log.record("t", "1.2.3.4", &huge, &huge, now);
        let line = lock(&log.pending).values().next().cloned().unwrap();
        assert_eq!(
            (line.user_agent.len(), line.action.len()),
            (MAX_AGENT, MAX_ACTION)
        );
    }
}
