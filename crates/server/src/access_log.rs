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
//!
//! New addresses: the flush, not the request, asks whether a token was ever used from an
//! address before (`new_address` events, [`NewAddress`]). It asks only for the (token,
//! address) pairs it has not seen in a bounded memo ([`ADDRESS_MEMO`] pairs), so a token used
//! again and again from the same places costs no query; a pair that left the memo costs one
//! index probe at the next flush.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{millis, BatchRun, Store, ACCESS_LINES_PER_TRANSACTION};
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
/// The most `new_address` events one token records within an hour.
pub const NEW_ADDRESS_EVENTS_PER_HOUR: u32 = 10;
/// (token, address) pairs the flush remembers as already known.
pub const ADDRESS_MEMO: usize = 50_000;

/// A pair of the batch the memo does not know: the flush asks the store whether the token was
/// used from this address before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddress {
    pub token_uuid: String,
    pub address: String,
    /// The agent of the earliest use from the address in the batch.
    pub user_agent: String,
    /// That use (Unix ms).
    pub at: i64,
}

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
    /// The (token, address) pairs known to be in the stored log.
    known_addresses: AddressMemo,
}

/// (token, address) pairs known to be in the stored log, by hash; cloned (cheaply: the same
/// memo) to be used on the store's background thread. A quick_cache map, as the token cache:
/// under a load of distinct tokens most of a flush's pairs are asked about and then
/// remembered, tens of thousands every two seconds, and moka's insert (its write queue and
/// admission bookkeeping) was a tenth of the flushes' thread.
#[derive(Debug, Clone)]
struct AddressMemo {
    hasher: std::collections::hash_map::RandomState,
    known: Arc<quick_cache::sync::Cache<u64, ()>>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            enabled: AtomicBool::new(true),
            pending: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            writing: tokio::sync::Mutex::default(),
            known_addresses: AddressMemo {
                hasher: std::collections::hash_map::RandomState::new(),
                known: Arc::new(quick_cache::sync::Cache::new(ADDRESS_MEMO)),
            },
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

    /// Writes every pending line, in key order, one short transaction per
    /// [`ACCESS_LINES_PER_TRANSACTION`] lines (see `Store::record_access`); what was not
    /// written goes back to the pending set. Before, finds which addresses a token is used
    /// from for the first time in this batch (not the token's first use ever); once their
    /// lines are written, records a `new_address` event for each, in its account's own
    /// transaction (a failure there is logged: the lines are written and the event is not
    /// retried).
    pub async fn flush(&self, store: &Store) -> Result<()> {
        let _writing = self.writing.lock().await;
        let batch = {
            let mut pending = lock(&self.pending);
            // The next batch starts at this one's size (see `UsageLog::flush`).
            let next = HashMap::with_capacity(pending.len());
            std::mem::replace(&mut *pending, next)
        };
        if batch.is_empty() {
            return Ok(());
        }
        // Finding the unknown pairs and sorting tens of thousands of lines is CPU work: it
        // runs below the token checks' priority. (It cannot fail but by a panic, which loses
        // this batch's lines; the thread itself lives as long as the store.)
        let memo = self.known_addresses.clone();
        let (unknown, candidates, lines) = store
            .in_background(move || {
                let unknown = memo.unknown_in(&batch);
                let candidates = unknown.values().cloned().collect();
                (unknown, candidates, sorted(batch))
            })
            .await?;
        let found = match store.new_addresses(candidates).await {
            Ok(found) => found,
            Err(err) => {
                self.give_back(lines);
                return Err(err);
            }
        };
        // Each run of the sorted lines goes to the store as it is, shared, not copied.
        let lines = Arc::new(lines);
        let mut written = Ok(());
        let mut done_lines = lines.len();
        for start in (0..lines.len()).step_by(ACCESS_LINES_PER_TRANSACTION) {
            let run = BatchRun::of(&lines, start..start + ACCESS_LINES_PER_TRANSACTION);
            if let Err(err) = store.record_access(run).await {
                written = Err(err);
                done_lines = start;
                break;
            }
        }
        // Only what was written is known now: an address whose lines go back to the pending
        // set is found again at the next flush. The lines not written come back; the rest
        // are freed there.
        let memo = self.known_addresses.clone();
        let (new_addresses, unwritten) = store
            .in_background(move || memo.remember_written(&lines, done_lines, &unknown, found))
            .await?;
        for new in &new_addresses {
            if let Err(err) = store.record_new_address(new).await {
                tracing::warn!(token = %new.token_uuid, error = %err, "recording a new_address event failed");
            }
        }
        if written.is_err() {
            self.give_back(unwritten);
        }
        written
    }

    /// Puts lines that were not written back into the pending set, merged with what was
    /// noted meanwhile.
    fn give_back(&self, lines: Vec<AccessLine>) {
        let mut pending = lock(&self.pending);
        for line in lines {
            // The key it was pending under (an overflow line's fields are its key's).
            let key = self.key(
                &line.token_uuid,
                line.day,
                &line.address,
                &line.user_agent,
                &line.action,
            );
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

impl AddressMemo {
    /// The batch's (token, address) pairs the memo does not know, each with its earliest
    /// use, keyed by the pair's hash.
    fn unknown_in(&self, batch: &HashMap<u64, AccessLine>) -> HashMap<u64, NewAddress> {
        let mut unknown: HashMap<u64, NewAddress> = HashMap::new();
        for line in batch.values().filter(|line| line.address != OVERFLOW) {
            let pair = self
                .hasher
                .hash_one((line.token_uuid.as_str(), line.address.as_str()));
            if self.known.contains_key(&pair) {
                continue;
            }
            let earliest = unknown.entry(pair).or_insert_with(|| NewAddress {
                token_uuid: line.token_uuid.clone(),
                address: line.address.clone(),
                user_agent: line.user_agent.clone(),
                at: line.first_at,
            });
            if line.first_at < earliest.at {
                earliest.user_agent.clone_from(&line.user_agent);
                earliest.at = line.first_at;
            }
        }
        unknown
    }

    /// Remembers the pairs of `unknown` whose lines are among the first `done` of `lines`
    /// (those written), and returns `found`'s new addresses among them with the lines not
    /// written.
    fn remember_written(
        &self,
        lines: &[AccessLine],
        done: usize,
        unknown: &HashMap<u64, NewAddress>,
        found: Vec<NewAddress>,
    ) -> (Vec<NewAddress>, Vec<AccessLine>) {
        let unwritten = lines[done..].to_vec();
        // Usually every line was written, and the set of written pairs is not needed.
        let written: Option<HashSet<(&str, &str)>> = (done < lines.len()).then(|| {
            lines[..done]
                .iter()
                .map(|line| (line.token_uuid.as_str(), line.address.as_str()))
                .collect()
        });
        let is_written = |candidate: &NewAddress| {
            written
                .as_ref()
                .is_none_or(|written| written.contains(&candidate.pair()))
        };
        for (pair, candidate) in unknown {
            if is_written(candidate) {
                self.known.insert(*pair, ());
            }
        }
        let new_addresses = found.into_iter().filter(|new| is_written(new)).collect();
        (new_addresses, unwritten)
    }
}

/// `batch`'s lines in key order: two instances' flushes lock shared lines in one order.
fn sorted(batch: HashMap<u64, AccessLine>) -> Vec<AccessLine> {
    let mut lines: Vec<AccessLine> = batch.into_values().collect();
    lines.sort_unstable_by(|a, b| {
        (&a.token_uuid, a.day, &a.address, &a.user_agent, &a.action).cmp(&(
            &b.token_uuid,
            b.day,
            &b.address,
            &b.user_agent,
            &b.action,
        ))
    });
    lines
}

impl NewAddress {
    /// Its (token, address) pair, borrowed.
    pub fn pair(&self) -> (&str, &str) {
        (self.token_uuid.as_str(), self.address.as_str())
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

    #[tokio::test]
    async fn lines_a_flush_could_not_write_come_back_under_their_own_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hubkeyd.db");
        let store = Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let log = AccessLog::default();
        let now = DateTime::from_timestamp(86_400 * 20_000 + 5, 0).unwrap();
        log.record("t", "10.0.0.1", "docker", "pull", now);
        for i in 0..MAX_PENDING {
            log.record("t", &format!("10.9.{}.{}", i / 256, i % 256), "x", "a", now);
        }
        assert_eq!(
            log.pending_lines(),
            MAX_PENDING + 1,
            "full, with its overflow line"
        );

        // The log's table is out of reach: the flush fails and keeps every line.
        let hide = |from: &str, to: &str| {
            let sql = format!("ALTER TABLE {from} RENAME TO {to}");
            rusqlite::Connection::open(&file)
                .unwrap()
                .execute(&sql, [])
                .unwrap();
        };
        hide("token_access", "token_access_away");
        assert!(log.flush(&store).await.is_err());
        assert_eq!(log.pending_lines(), MAX_PENDING + 1);

        // Back under the keys they were noted under: a use of the same line, or one past the
        // bound, joins its line instead of starting another.
        log.record("t", "10.0.0.1", "docker", "pull", now);
        log.record("t", "10.200.0.1", "x", "a", now);
        assert_eq!(log.pending_lines(), MAX_PENDING + 1);
        let uses = |address: &str| {
            lock(&log.pending)
                .values()
                .find(|line| line.address == address)
                .map(|line| line.uses)
        };
        assert_eq!((uses("10.0.0.1"), uses(OVERFLOW)), (Some(2), Some(2)));

        hide("token_access_away", "token_access");
        log.flush(&store).await.unwrap();
        assert_eq!(log.pending_lines(), 0);
        store.close().await;
    }
}
