//! Token use: a cache of token lookups for the hot path, and the coalesced record of uses.
//!
//! The registry token endpoint checks a PAT on every `docker pull`. [`TokenCache`] keeps the
//! tokens recently looked up, keyed by digest, and forgets one the moment it changes, so a
//! deactivated or deleted token is refused on the very next request. [`UsageLog`] collects
//! `last_used` and per-day counts in memory and writes them in one transaction a second
//! (at most that much is lost on a crash); readers merge the unflushed uses in, so the token
//! list and the pruning rule always see the latest use.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{millis, Store, TokenOwner};

/// How often unflushed uses are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Tokens recently looked up by digest. Entries are dropped when their token changes.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, Arc<TokenOwner>>>,
    /// Bumped by every [`TokenCache::forget`]: a lookup that started before a change must
    /// not put the old state back.
    generation: AtomicU64,
}

/// Most entries kept before the cache is emptied and refilled by later lookups.
const CACHE_CAPACITY: usize = 100_000;

impl TokenCache {
    /// The token with `digest`, from the cache or the store.
    pub async fn lookup(&self, store: &Store, digest: &str) -> Result<Option<Arc<TokenOwner>>> {
        if let Some(hit) = read(&self.entries).get(digest) {
            return Ok(Some(hit.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(found) = store.token_by_digest(digest).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        let mut entries = write(&self.entries);
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(digest.to_owned(), found.clone());
        }
        Ok(Some(found))
    }

    /// Drops the token with `digest`: call after committing any change to it.
    pub fn forget(&self, digest: &str) {
        let mut entries = write(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(digest);
    }
}

/// Uses not yet written to the store.
#[derive(Debug, Default)]
pub struct UsageLog {
    pending: Mutex<HashMap<String, PendingUse>>,
}

/// The unflushed uses of one token.
#[derive(Debug, Default, Clone)]
pub struct PendingUse {
    /// Latest use, Unix milliseconds.
    pub last_used: i64,
    /// Uses per UTC day (days since the epoch).
    pub days: BTreeMap<i64, i64>,
}

/// Days since the Unix epoch of `at`, in UTC.
pub fn epoch_day(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

impl UsageLog {
    /// Notes a use of token `uuid` at `now`.
    pub fn record(&self, uuid: &str, now: DateTime<Utc>) {
        let mut pending = lock(&self.pending);
        let entry = pending.entry(uuid.to_owned()).or_default();
        entry.last_used = entry.last_used.max(millis(now));
        *entry.days.entry(epoch_day(now)).or_insert(0) += 1;
    }

    /// The unflushed uses of `uuid`, if any.
    pub fn pending(&self, uuid: &str) -> Option<PendingUse> {
        lock(&self.pending).get(uuid).cloned()
    }

    /// Writes every pending use in one transaction. On failure the uses are kept for the
    /// next attempt.
    pub async fn flush(&self, store: &Store) -> Result<()> {
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(err) = store.record_uses(&batch).await {
            let mut pending = lock(&self.pending);
            for (uuid, unwritten) in batch {
                let entry = pending.entry(uuid).or_default();
                entry.last_used = entry.last_used.max(unwritten.last_used);
                for (day, uses) in unwritten.days {
                    *entry.days.entry(day).or_insert(0) += uses;
                }
            }
            return Err(err);
        }
        Ok(())
    }

    /// Flushes every [`FLUSH_INTERVAL`] until the log is dropped elsewhere; run as a task.
    pub async fn flush_forever(self: Arc<Self>, store: Store) {
        let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = self.flush(&store).await {
                tracing::warn!(error = %err, "writing token uses failed; will retry");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_coalesce_per_token_and_day() {
        let log = UsageLog::default();
        let day1 = DateTime::from_timestamp(86_400 * 10 + 5, 0).unwrap();
        let day2 = DateTime::from_timestamp(86_400 * 11 + 5, 0).unwrap();
        log.record("t", day1);
        log.record("t", day1);
        log.record("t", day2);
        let pending = log.pending("t").unwrap();
        assert_eq!(pending.last_used, millis(day2));
        assert_eq!(pending.days, BTreeMap::from([(10, 2), (11, 1)]));
        assert!(log.pending("other").is_none());
    }
}
