//! Token use: the coalesced record of uses.
//!
//! [`UsageLog`] collects `last_used` and per-day counts in memory and writes them every
//! [`FLUSH_INTERVAL`], in batched upserts of short transactions (`Store::record_uses`) (at most that much is lost on a crash); readers merge
//! the unflushed uses in, so the token list and the pruning rule always see the latest use.
//! A batch a flush has taken stays visible until it is written (`in_flight`), and one flush
//! runs at a time: a flush called while another is writing waits for it, so when the pruning
//! rule's own flush returns, every use recorded before it is in the database.

use crate::metrics::FlushMetrics;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{millis, BatchRun, PendingUse, Store, USES_PER_STATEMENT};

/// How often unflushed uses are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// A write of token uses slower than this is logged (by count and time, not its SQL: the
/// store turns sqlx's own statement logging off, which would print every parameter
/// placeholder of a 1 500-parameter statement).
const SLOW_WRITE: Duration = Duration::from_secs(1);

/// Uses not yet written to the store.
#[derive(Debug, Default)]
pub struct UsageLog {
    pending: Mutex<HashMap<String, PendingUse>>,
    /// The batch a flush took and is writing; readers merge it in until it is written. Shared
    /// with the flush rather than copied: taking a batch of 100 000 tokens must not hold up
    /// the requests that record uses meanwhile.
    in_flight: Mutex<Arc<HashMap<String, PendingUse>>>,
    /// Held by a flush from taking its batch until it is written (or given back).
    writing: tokio::sync::Mutex<()>,
    /// Test hook: a flush that took a batch waits here (shared) before writing it, so a test
    /// holding it exclusively ([`UsageLog::hold_writes`]) keeps a flush in flight.
    gate: tokio::sync::RwLock<()>,
    /// Non-empty batches taken so far (for the test hook).
    batches_taken: AtomicU64,
    /// Each write's time and size, for the metrics endpoint.
    metrics: FlushMetrics,
}

/// While held, every flush that has taken its batch waits before writing it.
pub type WriteHold<'a> = tokio::sync::RwLockWriteGuard<'a, ()>;

/// Days since the Unix epoch of `at`, in UTC.
pub fn epoch_day(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

impl UsageLog {
    /// An empty log whose flushes are observed into `metrics`.
    pub fn observed(metrics: FlushMetrics) -> Self {
        UsageLog {
            metrics,
            ..UsageLog::default()
        }
    }

    /// Notes a use of token `uuid` at `now`.
    pub fn record(&self, uuid: &str, now: DateTime<Utc>) {
        let mut pending = lock(&self.pending);
        // A token already pending costs no allocation.
        let entry = match pending.get_mut(uuid) {
            Some(entry) => entry,
            None => pending.entry(uuid.to_owned()).or_default(),
        };
        entry.last_used = entry.last_used.max(millis(now));
        entry.days.add(epoch_day(now), 1);
    }

    /// The unflushed uses of `uuid`, if any: those recorded since the last flush and those a
    /// flush is writing. (A reader that read the store just before a flush committed may
    /// count that flush's uses twice for a moment; `last_used` is a maximum and stays right.)
    pub fn pending(&self, uuid: &str) -> Option<PendingUse> {
        let pending = lock(&self.pending);
        let in_flight = lock(&self.in_flight);
        match (pending.get(uuid), in_flight.get(uuid)) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (Some(newer), Some(older)) => {
                let mut merged = older.clone();
                merge(&mut merged, newer);
                Some(merged)
            }
        }
    }

    /// Test hook: holds every flush between taking its batch and writing it, until the
    /// returned guard is dropped (a slow disk, made deterministic).
    #[doc(hidden)]
    pub async fn hold_writes(&self) -> WriteHold<'_> {
        self.gate.write().await
    }

    /// Test hook: how many non-empty batches flushes have taken so far.
    #[doc(hidden)]
    pub fn batches_taken(&self) -> u64 {
        self.batches_taken.load(Ordering::Acquire)
    }

    /// Writes every pending use, in token order, one short transaction per
    /// [`USES_PER_STATEMENT`] tokens. On failure the uses not yet written are kept for the
    /// next attempt.
    pub async fn flush(&self, store: &Store) -> Result<()> {
        let _writing = self.writing.lock().await;
        // Under the pending lock, so that a reader finds every use in one of the two; only
        // pointers move while it is held (a copy of the batch here held up every request's
        // `record` for as long as it took).
        let batch = {
            let mut pending = lock(&self.pending);
            // The next batch starts at this one's size: growing a map of tens of thousands
            // of tokens from nothing, rehashing at every doubling, was the requests' work.
            let next = HashMap::with_capacity(pending.len());
            let batch = Arc::new(std::mem::replace(&mut *pending, next));
            *lock(&self.in_flight) = Arc::clone(&batch);
            batch
        };
        if batch.is_empty() {
            return Ok(());
        }
        self.batches_taken.fetch_add(1, Ordering::AcqRel);
        drop(self.gate.read().await);
        let started = std::time::Instant::now();
        let count = batch.len();
        // In token order, a short transaction per USES_PER_STATEMENT tokens: no flush holds
        // the write lock (SQLite) or its rows (PostgreSQL) for long, and two instances'
        // flushes take shared rows in the same order. Sorting tens of thousands of tokens is
        // CPU work: it runs below the token checks' priority.
        let sorted = {
            let batch = Arc::clone(&batch);
            store.in_background(move || sorted(&batch)).await
        };
        // Each run of the sorted batch goes to the store as it is, shared, not copied.
        let (sorted, written, done) = match sorted {
            Ok(sorted) => {
                let sorted = Arc::new(sorted);
                let (written, done) = write_runs(store, &sorted).await;
                (sorted, written, done)
            }
            // Not sorted: nothing written, everything kept.
            Err(err) => {
                let unsorted = batch
                    .iter()
                    .map(|(uuid, uses)| (uuid.clone(), uses.clone()));
                (Arc::new(unsorted.collect()), Err(err), 0)
            }
        };
        self.metrics.observe(count, started.elapsed());
        {
            let mut pending = lock(&self.pending);
            // Written transactions stay written; the rest is tried again at the next flush.
            for (uuid, uses) in &sorted[done..] {
                merge(pending.entry(uuid.clone()).or_default(), uses);
            }
            *lock(&self.in_flight) = Arc::default();
        }
        // Freed outside both locks, and off the runtime: tens of thousands of entries.
        let _ = store.in_background(move || drop((batch, sorted))).await;
        written
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

/// Writes `sorted` in runs of [`USES_PER_STATEMENT`] tokens, in order, until one fails: how
/// that went, and how many tokens' uses were written.
async fn write_runs(store: &Store, sorted: &Arc<Vec<(String, PendingUse)>>) -> (Result<()>, usize) {
    for start in (0..sorted.len()).step_by(USES_PER_STATEMENT) {
        let run = BatchRun::of(sorted, start..start + USES_PER_STATEMENT);
        let tokens = run.len();
        let run_started = std::time::Instant::now();
        if let Err(err) = store.record_uses(run).await {
            return (Err(err), start);
        }
        let took = run_started.elapsed();
        if took > SLOW_WRITE {
            tracing::warn!(
                tokens,
                took_ms = took.as_millis(),
                "writing token uses was slow"
            );
        }
    }
    (Ok(()), sorted.len())
}

/// `batch`'s uses in token order.
fn sorted(batch: &HashMap<String, PendingUse>) -> Vec<(String, PendingUse)> {
    let mut sorted: Vec<(String, PendingUse)> = batch
        .iter()
        .map(|(uuid, uses)| (uuid.clone(), uses.clone()))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    sorted
}

/// Adds `other`'s uses to `into`.
fn merge(into: &mut PendingUse, other: &PendingUse) {
    into.last_used = into.last_used.max(other.last_used);
    for (day, uses) in other.days.iter() {
        into.days.add(day, uses);
    }
}

/// The guarded value, also after a panic elsewhere left the mutex poisoned (the pending uses
/// are plain counters: a half-finished update loses at most that one use).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DayCounts;

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
        assert_eq!(pending.days, DayCounts::from_iter([(10, 2), (11, 1)]));
        assert!(log.pending("other").is_none());
    }
}
