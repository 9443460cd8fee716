//! Token use: a cache of token lookups for the hot path, and the coalesced record of uses.
//!
//! The registry token endpoint checks a PAT on every `docker pull`. [`TokenCache`] keeps the
//! tokens recently looked up, keyed by digest, and forgets one the moment it changes, so a
//! deactivated or deleted token is refused on the very next request. Repository visibility
//! is cached the same way. The caches are per process: instances sharing a database would
//! need to tell each other about changes (not built yet). [`UsageLog`] collects
//! `last_used` and per-day counts in memory and writes them in one transaction every
//! [`FLUSH_INTERVAL`] (at most that much is lost on a crash); readers merge the unflushed uses in, so the token
//! list and the pruning rule always see the latest use.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{millis, Store, TokenOwner};

/// How often unflushed uses are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Answers of the store kept in memory for the hot path, keyed by string. An entry is
/// dropped the moment what it describes changes ([`LookupCache::forget`], called after the
/// change commits); a load that began before such a change does not put the old answer back.
#[derive(Debug)]
pub struct LookupCache<V> {
    entries: RwLock<HashMap<String, (V, Instant)>>,
    /// Bumped by every [`LookupCache::forget`].
    generation: AtomicU64,
    capacity: usize,
    /// Entries older than this are loaded again; `None` keeps them until forgotten.
    max_age: Option<Duration>,
}

impl<V> Default for LookupCache<V> {
    fn default() -> Self {
        LookupCache {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            capacity: 100_000,
            max_age: None,
        }
    }
}

impl<V> LookupCache<V> {
    /// A cache whose entries are loaded again once older than `max_age`, for answers that
    /// another process may change.
    pub fn with_max_age(max_age: Duration) -> Self {
        LookupCache {
            max_age: Some(max_age),
            ..Self::default()
        }
    }
}

impl<V: Clone> LookupCache<V> {
    /// The cached answer for `key`, or `load`'s; a `Some` answer is cached. When the cache is
    /// full it is emptied and refills from later lookups.
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<Option<V>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>>>,
    {
        if let Some((hit, loaded_at)) = read(&self.entries).get(key) {
            if self.max_age.is_none_or(|age| loaded_at.elapsed() < age) {
                return Ok(Some(hit.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(loaded) = load().await? else {
            return Ok(None);
        };
        let mut entries = write(&self.entries);
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(key.to_owned(), (loaded.clone(), Instant::now()));
        }
        Ok(Some(loaded))
    }

    /// Drops `key`: call after committing any change to what it describes.
    pub fn forget(&self, key: &str) {
        let mut entries = write(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(key);
    }
}

/// Tokens by digest, for the token check on every registry request.
pub type TokenCache = LookupCache<Arc<TokenOwner>>;

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
