//! Token use: the coalesced record of uses.
//!
//! [`UsageLog`] collects `last_used` and per-day counts in memory and writes them in one
//! transaction every [`FLUSH_INTERVAL`] (at most that much is lost on a crash); readers merge
//! the unflushed uses in, so the token list and the pruning rule always see the latest use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{millis, PendingUse, Store};

/// How often unflushed uses are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Uses not yet written to the store.
#[derive(Debug, Default)]
pub struct UsageLog {
    pending: Mutex<HashMap<String, PendingUse>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
