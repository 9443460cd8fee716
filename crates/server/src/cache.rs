//! A cache of store answers for the hot path, keyed by string, bounded by its weight in
//! bytes, that never keeps a miss and forgets an entry the moment what it describes changes.
//!
//! The registry token endpoint checks a PAT on every `docker pull`; the hub keeps the tokens
//! recently looked up (by digest) and repository visibility here. The caches are per process;
//! instances sharing a PostgreSQL database tell each other what changed
//! ([`crate::invalidation`]), and while that channel is down a cache is suspended
//! ([`LookupCache::suspend`]): every answer comes from the database.
//!
//! The map itself is quick_cache's: sharded, bounded by weight, with S3-FIFO admission (an
//! entry used once leaves from a probation queue, half the cache here ([`HOT_SHARE`]), so a
//! flood of one-off keys does not push out the entries used again and again). It replaced
//! moka here because moka's bookkeeping (a queue of writes that readers drain, a hash table that rehashes as entries
//! expire) was 5 % of the token check's CPU under a load of 200 000 distinct tokens, where
//! most lookups insert; moka stays for the small rate-limit maps. Time to live is kept here:
//! an entry carries the instant it expires, and an expired entry is a miss.

use crate::metrics::CacheCounters;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use crate::error::Result;

/// What an entry costs besides its key and value's heap parts: the cache's slot and hash
/// table index, its expiry, rounded up.
const ENTRY_OVERHEAD: usize = 64;

/// A typical entry's weight, to size the hash tables up front.
const TYPICAL_ENTRY: u64 = 256;

/// The share of the cache's weight for entries used more than once (S3-FIFO's main queue);
/// the rest is the probation queue, where a new entry waits for its second use. quick_cache's
/// default, 0.97, suits keys used again and again for a long time; these entries live 5 s at
/// most (their time to live), so what they are worth is recency: a token used again within
/// seconds should still be here. With 0.97 the main queue kept the first tokens it was given
/// (quick_cache admits new entries there while it has room), and every later token went
/// through a probation queue that dropped it after about 2 600 more misses. Under a load of
/// 200 000 distinct tokens (10 s runs) the token cache found 25-26 % of them; with half,
/// 27-29 %, where about 30 % is the most a 5 s life allows. Half still keeps tens of
/// thousands of entries used again and again out of a flood's way.
const HOT_SHARE: f64 = 0.5;

/// Answers of the store kept in memory for the hot path, keyed by string. Only found answers
/// (`Some`) are kept: a lookup of something that does not exist costs a query every time, so
/// made-up keys cannot fill the cache. An entry is dropped the moment what it describes
/// changes ([`LookupCache::forget`], called after the change commits); a load that began
/// before such a change does not put the old answer back.
pub struct LookupCache<V> {
    entries: Cache<String, Entry<V>, ByBytes<V>>,
    /// How long an entry is trusted, if not for ever.
    time_to_live: Option<Duration>,
    /// Bumped by every [`LookupCache::forget`].
    generation: AtomicU64,
    /// Held shared while a loaded answer is inserted, exclusively while forgetting, so an
    /// insert cannot slip between a forget's generation bump and its removal.
    inserting: RwLock<()>,
    /// While set, nothing is kept: every lookup loads (the change channel is down).
    suspended: AtomicBool,
    /// Hits and misses, for the metrics endpoint.
    counters: CacheCounters,
}

/// A kept answer and when it stops being trusted.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    expires: Option<Instant>,
}

/// Weighs an entry by its key, its value's size and heap parts, and [`ENTRY_OVERHEAD`].
struct ByBytes<V> {
    heap_size: fn(&V) -> usize,
}

impl<V> Clone for ByBytes<V> {
    fn clone(&self) -> Self {
        ByBytes {
            heap_size: self.heap_size,
        }
    }
}

impl<V> Weighter<String, Entry<V>> for ByBytes<V> {
    fn weight(&self, key: &String, entry: &Entry<V>) -> u64 {
        let bytes = key.len()
            + std::mem::size_of::<Entry<V>>()
            + ENTRY_OVERHEAD
            + (self.heap_size)(&entry.value);
        bytes as u64
    }
}

impl<V: Clone> std::fmt::Debug for LookupCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupCache")
            .field("entries", &self.entries.len())
            .field("weight", &self.entries.weight())
            .finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> LookupCache<V> {
    /// A cache of at most `max_bytes` (keys, values' heap parts as `heap_size` tells them, and
    /// a fixed overhead per entry). With `time_to_live`, an entry is loaded again once that
    /// old: for answers another process may change.
    pub fn new(max_bytes: u64, time_to_live: Option<Duration>, heap_size: fn(&V) -> usize) -> Self {
        let estimated_entries = usize::try_from(max_bytes / TYPICAL_ENTRY).unwrap_or(usize::MAX);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(estimated_entries)
            .weight_capacity(max_bytes)
            .hot_allocation(HOT_SHARE)
            .build();
        // Every option `build` requires is set just above: it cannot fail.
        #[allow(clippy::expect_used)]
        let options = options.expect("the cache's options are complete");
        LookupCache {
            entries: Cache::with_options(
                options,
                ByBytes { heap_size },
                DefaultHashBuilder::default(),
                DefaultLifecycle::default(),
            ),
            time_to_live,
            generation: AtomicU64::new(0),
            inserting: RwLock::new(()),
            suspended: AtomicBool::new(false),
            counters: CacheCounters::default(),
        }
    }

    /// The same cache counting its hits and misses into `counters`.
    #[must_use]
    pub fn counted(mut self, counters: CacheCounters) -> Self {
        self.counters = counters;
        self
    }

    /// The cached answer for `key`, or `load`'s; only a `Some` answer is cached.
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<Option<V>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>>>,
    {
        if let Some(hit) = self.fresh(key) {
            self.counters.hits.inc();
            return Ok(Some(hit));
        }
        self.counters.misses.inc();
        let generation = self.generation.load(Ordering::Acquire);
        let Some(loaded) = load().await? else {
            return Ok(None);
        };
        let _inserting = self
            .inserting
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) == generation
            && !self.suspended.load(Ordering::Acquire)
        {
            let entry = Entry {
                value: loaded.clone(),
                expires: self.time_to_live.map(|ttl| Instant::now() + ttl),
            };
            self.entries.insert(key.to_owned(), entry);
        }
        Ok(Some(loaded))
    }

    /// The kept answer for `key` if it has not expired.
    fn fresh(&self, key: &str) -> Option<V> {
        let entry = self.entries.get(key)?;
        match entry.expires {
            Some(expires) if expires <= Instant::now() => None,
            _ => Some(entry.value),
        }
    }

    /// Drops `key`: call after committing any change to what it describes.
    pub fn forget(&self, key: &str) {
        self.forgetting(|entries| {
            entries.remove(key);
        });
    }

    /// Drops every entry whose value `stale` says is stale (an account's tokens, when the
    /// account is disabled). Costs a scan; for rare changes.
    pub fn forget_where(&self, stale: impl Fn(&V) -> bool + Send + Sync + 'static) {
        self.forgetting(|entries| entries.retain(|_, entry| !stale(&entry.value)));
    }

    /// Drops every entry and keeps nothing until [`LookupCache::resume`]: for while this
    /// instance cannot hear about changes other instances make.
    pub fn suspend(&self) {
        self.forgetting(|entries| {
            self.suspended.store(true, Ordering::Release);
            entries.clear();
        });
    }

    /// Keeps answers again, starting empty: a load that began before (while changes might
    /// have gone unheard) is not kept.
    pub fn resume(&self) {
        self.forgetting(|entries| {
            entries.clear();
            self.suspended.store(false, Ordering::Release);
        });
    }

    /// Whether the cache keeps nothing for now ([`LookupCache::suspend`]).
    pub fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Runs `invalidate` with inserts held off and the generation bumped, so that a load
    /// which raced it cannot put an old answer back.
    fn forgetting(&self, invalidate: impl FnOnce(&Cache<String, Entry<V>, ByBytes<V>>)) {
        let _forgetting = self
            .inserting
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        invalidate(&self.entries);
    }

    /// How many entries and bytes (by the weigher) are kept.
    pub fn usage(&self) -> CacheUsage {
        CacheUsage {
            entries: self.entries.len() as u64,
            bytes: self.entries.weight(),
        }
    }
}

/// What a cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_bytes: u64) -> LookupCache<String> {
        LookupCache::new(max_bytes, None, String::len)
    }

    #[tokio::test]
    async fn misses_are_not_kept() {
        let cache = cache(1 << 20);
        for i in 0..1000 {
            let found = cache
                .get_or_load(&format!("nobody-{i}"), || async { Ok(None) })
                .await
                .unwrap();
            assert!(found.is_none());
        }
        assert_eq!(cache.usage().entries, 0);
    }

    #[tokio::test]
    async fn the_weight_bound_holds_under_a_flood_of_large_entries() {
        let cache = cache(64 * 1024);
        for i in 0..2000 {
            let key = format!("{i}-{}", "k".repeat(1000));
            cache
                .get_or_load(&key, || async { Ok(Some("v".repeat(1000))) })
                .await
                .unwrap();
        }
        let usage = cache.usage();
        assert!(usage.bytes <= 64 * 1024, "{usage:?}");
        assert!(usage.entries < 40, "{usage:?}");
    }

    #[tokio::test]
    async fn forget_drops_an_entry_and_a_hit_needs_no_load() {
        let cache = cache(1 << 20);
        let loaded = cache
            .get_or_load("a", || async { Ok(Some("one".to_owned())) })
            .await
            .unwrap();
        assert_eq!(loaded.as_deref(), Some("one"));
        let hit = cache
            .get_or_load("a", || async { panic!("a hit loads nothing") })
            .await
            .unwrap();
        assert_eq!(hit.as_deref(), Some("one"));
        cache.forget("a");
        let again = cache
            .get_or_load("a", || async { Ok(Some("two".to_owned())) })
            .await
            .unwrap();
        assert_eq!(again.as_deref(), Some("two"));
    }

    #[tokio::test]
    async fn a_load_that_raced_a_forget_is_not_kept() {
        let cache = cache(1 << 20);
        let stale = cache
            .get_or_load("a", || async {
                cache.forget("a");
                Ok(Some("stale".to_owned()))
            })
            .await
            .unwrap();
        assert_eq!(stale.as_deref(), Some("stale"));
        assert_eq!(cache.usage().entries, 0);
    }

    #[tokio::test]
    async fn a_suspended_cache_keeps_nothing_and_resumes_empty() {
        let cache = cache(1 << 20);
        cache
            .get_or_load("a", || async { Ok(Some("old".to_owned())) })
            .await
            .unwrap();
        cache.suspend();
        for answer in ["one", "two"] {
            let loaded = cache
                .get_or_load("a", || async { Ok(Some(answer.to_owned())) })
                .await
                .unwrap();
            assert_eq!(loaded.as_deref(), Some(answer));
        }
        assert_eq!(cache.usage().entries, 0);
        // A load that began while suspended is not kept after the resume.
        let raced = cache
            .get_or_load("a", || async {
                cache.resume();
                Ok(Some("raced".to_owned()))
            })
            .await
            .unwrap();
        assert_eq!(raced.as_deref(), Some("raced"));
        assert_eq!(cache.usage().entries, 0);
        cache
            .get_or_load("a", || async { Ok(Some("kept".to_owned())) })
            .await
            .unwrap();
        let hit = cache
            .get_or_load("a", || async { panic!("a hit loads nothing") })
            .await
            .unwrap();
        assert_eq!(hit.as_deref(), Some("kept"));
    }

    #[tokio::test]
    async fn forget_where_drops_the_matching_entries_only() {
        let cache = cache(1 << 20);
        for (key, value) in [("a", "ann-1"), ("b", "ann-2"), ("c", "bob-1")] {
            cache
                .get_or_load(key, || async { Ok(Some(value.to_owned())) })
                .await
                .unwrap();
        }
        cache.forget_where(|value: &String| value.starts_with("ann"));
        for (key, kept) in [("a", false), ("b", false), ("c", true)] {
            let found = cache
                .get_or_load(key, || async { Ok(Some("reloaded".to_owned())) })
                .await
                .unwrap();
            assert_eq!(found.as_deref() != Some("reloaded"), kept, "{key}");
        }
    }

    /// Whether `key` is cached now as [`put`] put it (a miss loads, and keeps, "loaded").
    async fn is_cached(cache: &LookupCache<String>, key: &str) -> bool {
        let found = cache
            .get_or_load(key, || async { Ok(Some("loaded".to_owned())) })
            .await
            .unwrap();
        found.as_deref() != Some("loaded")
    }

    /// Loads `key` (as "v") unless it is cached.
    async fn put(cache: &LookupCache<String>, key: &str) {
        cache
            .get_or_load(key, || async { Ok(Some("v".to_owned())) })
            .await
            .unwrap();
    }

    /// Room for 10 000 entries of a 7-byte key and a 1-byte value.
    fn ten_thousand_entries() -> LookupCache<String> {
        let entry = 7 + std::mem::size_of::<Entry<String>>() + ENTRY_OVERHEAD + 1;
        cache(10_000 * entry as u64)
    }

    #[tokio::test]
    async fn a_new_entry_is_still_there_for_its_second_use_after_thousands_of_others() {
        let cache = ten_thousand_entries();
        // Full (each of its shards): the first entries went to the main queue while it had
        // room, the rest wait in the probation queue.
        for i in 0..12_000 {
            put(&cache, &format!("a{i:06}")).await;
        }
        assert!(cache.usage().entries > 9_900, "{:?}", cache.usage());
        put(&cache, "k000000").await;
        // A third of the cache's room in one-off entries (quick_cache's default probation
        // queue, 3 % of it, dropped the entry after about 300).
        for i in 1..3_000 {
            put(&cache, &format!("k{i:06}")).await;
        }
        assert!(is_cached(&cache, "k000000").await);
    }

    #[tokio::test]
    async fn entries_used_again_outlast_a_flood_of_one_off_entries() {
        let cache = ten_thousand_entries();
        for i in 0..2_000 {
            put(&cache, &format!("h{i:06}")).await;
        }
        for i in 0..2_000 {
            assert!(
                is_cached(&cache, &format!("h{i:06}")).await,
                "second use of {i}"
            );
        }
        for i in 0..30_000 {
            put(&cache, &format!("f{i:06}")).await;
        }
        let mut kept = 0;
        for i in 0..2_000 {
            kept += usize::from(is_cached(&cache, &format!("h{i:06}")).await);
        }
        assert_eq!(
            kept, 2_000,
            "entries used twice, after three times the room in one-offs"
        );
    }

    #[tokio::test]
    async fn entries_expire_after_their_time_to_live() {
        let cache = LookupCache::new(1 << 20, Some(Duration::from_millis(50)), String::len);
        cache
            .get_or_load("a", || async { Ok(Some("old".to_owned())) })
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(80));
        let fresh = cache
            .get_or_load("a", || async { Ok(Some("new".to_owned())) })
            .await
            .unwrap();
        assert_eq!(fresh.as_deref(), Some("new"));
    }
}
