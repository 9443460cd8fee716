//! A cache of store answers for the hot path, keyed by string, that forgets an entry the
//! moment what it describes changes.
//!
//! The registry token endpoint checks a PAT on every `docker pull`; the hub keeps the tokens
//! recently looked up (by digest) and repository visibility here. The caches are per process:
//! instances sharing a database would need to tell each other about changes (not built yet).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::error::Result;

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

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
