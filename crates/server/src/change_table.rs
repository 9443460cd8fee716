//! On SQLite, what another process changes (the admin commands: `hubkeyd user disable`,
//! `enable`, `repo public|private`) is refused by a running server on the first request after
//! the command returns, as [`crate::invalidation`] does between PostgreSQL instances:
//!
//! 1. **Record** inside the change's own transaction: every change a cache could hide writes
//!    one row into `cache_changes` naming what it made stale (the items of
//!    [`crate::invalidation::Stale`], one a line; no secret), in [`crate::store::Store::commit`].
//!    Ids follow commit order (SQLite has one writer).
//! 2. **Poll.** Each server ([`Poller`]) reads the table's newest id every [`POLL_EVERY`]
//!    through the read-only connections (one probe of the primary key's end: no statement on
//!    the token check, whose warm path stays free of queries), forgets what the rows after the
//!    last one it saw name, then records that id as seen in its `cache_listeners` row, which
//!    also carries its heartbeat (written at least every [`HEARTBEAT_EVERY`]).
//! 3. **Wait.** The admin command, after committing, waits until every live server (a
//!    heartbeat within [`LIVE_WITHIN`]) has recorded its change as seen, for at most
//!    [`crate::invalidation::CONFIRM_WITHIN`], and says so when one has not ([`Heard`]). With
//!    no live server it does not wait.
//!
//! A server reads the rows it has not seen before anything else after a pause (a SIGSTOP, a
//! stall); rows it never read because the sweep deleted them (its ids jump) make it forget
//! everything. The sweep deletes listeners silent for [`LISTENER_RETENTION`] (a server that
//! crashed) and the rows every remaining listener has seen, keeping the newest. A server's
//! own changes are forgotten at commit and again when its poll reads them (harmless). While a
//! poll fails, the caches keep nothing (as on a lost PostgreSQL channel). On PostgreSQL none
//! of this runs: the instances have their channel.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::Result;
use crate::invalidation::{Stale, CONFIRM_WITHIN};
use crate::store::{Backend, Store};
use crate::Hub;

/// How often a server reads the change table's newest id: the bound on how long an admin
/// command waits, and, with no command waiting, on how long a change goes unseen.
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// How often a server that saw no change still writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A server whose heartbeat is older is not waited for (it stopped without leaving, or is
/// stalled far beyond a heartbeat): generous, so that a server on a loaded machine is never
/// mistaken for a stopped one; a server killed within it costs the next admin command one
/// wait of [`CONFIRM_WITHIN`].
pub const LIVE_WITHIN: Duration = Duration::from_secs(10);
/// A listener silent this long is deleted by the sweep (and its unseen rows with it).
pub const LISTENER_RETENTION: chrono::Duration = chrono::Duration::hours(1);
/// How often a waiting admin command reads whether the servers have seen its change.
const WAIT_STEP: Duration = Duration::from_millis(5);
/// Rows read per statement while catching up.
const ROWS_PER_READ: i64 = 500;

/// One server's place among the change table's listeners.
#[derive(Debug, Clone)]
pub struct Poller {
    /// Its `cache_listeners` id: this process and a random part.
    id: String,
    /// The newest change it had seen when it joined.
    joined_at: i64,
    /// The wall clock of heartbeats: another process compares them with its own time, so it
    /// is the system's even when the server's domain clock is a test's.
    wall: Clock,
}

impl Poller {
    /// Joins the change table's listeners (SQLite; `None` on PostgreSQL), having seen every
    /// change so far: call before serving, while the caches are empty.
    pub async fn join(store: &Store, wall: Clock) -> Result<Option<Self>> {
        if store.backend() != Backend::Sqlite {
            return Ok(None);
        }
        let random = crate::random::random_secret();
        let id = format!(
            "{}-{}",
            std::process::id(),
            random.get(..12).unwrap_or(&random)
        );
        let joined_at = store.join_listeners(&id, wall.now()).await?;
        tracing::debug!(listener = %id, seen = joined_at, "polling the change table");
        Ok(Some(Poller {
            id,
            joined_at,
            wall,
        }))
    }

    /// Polls every [`POLL_EVERY`] for as long as the server runs (abort the task to stop).
    pub async fn poll_forever(self, hub: Hub) {
        let mut seen = self.joined_at;
        let mut written = Instant::now();
        let mut ticks = tokio::time::interval(POLL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let before = seen;
            match catch_up(&hub, seen).await {
                Ok(now_seen) => {
                    seen = now_seen;
                    if hub.caches_suspended() {
                        hub.resume_caches();
                        tracing::info!("the change table reads again: caching resumed");
                    }
                }
                Err(err) => {
                    if !hub.caches_suspended() {
                        hub.suspend_caches();
                        tracing::warn!(error = %err, "reading the change table failed: caching suspended until it reads again");
                    }
                    continue;
                }
            }
            if seen != before || written.elapsed() >= HEARTBEAT_EVERY {
                match hub
                    .store()
                    .record_seen(&self.id, seen, self.wall.now())
                    .await
                {
                    Ok(()) => written = Instant::now(),
                    Err(err) => {
                        tracing::warn!(error = %err, "recording the changes this server has seen failed; tried again at the next poll");
                    }
                }
            }
        }
    }

    /// Leaves the listeners (the server stops): no admin command waits for it any more.
    pub async fn leave(&self, store: &Store) {
        if let Err(err) = store.leave_listeners(&self.id).await {
            tracing::warn!(error = %err, "leaving the change table's listeners failed: admin commands may wait for this server until its heartbeat is old");
        }
    }
}

/// Forgets what the changes after `seen` name; answers the newest change read.
async fn catch_up(hub: &Hub, seen: i64) -> Result<i64> {
    let store = hub.store();
    let newest = store.newest_change().await?;
    let mut at = seen;
    while at < newest {
        let rows = store.changes_after(at, ROWS_PER_READ).await?;
        let Some(first) = rows.first() else {
            break;
        };
        if first.id != at + 1 {
            tracing::info!(
                seen = at,
                next = first.id,
                "changes this server never read were swept: dropping every cached answer"
            );
            hub.forget_everything();
        }
        for row in &rows {
            let stale: Option<Vec<Stale>> = row.items.lines().map(Stale::parse).collect();
            match stale {
                Some(stale) => hub.forget(&stale),
                None => {
                    tracing::warn!(
                        change = row.id,
                        "an unknown item in the change table: dropping every cached answer"
                    );
                    hub.forget_everything();
                }
            }
            at = row.id;
        }
    }
    Ok(at)
}

/// What an admin command heard from the running servers about its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// It changed nothing a cache could hide (or the store is PostgreSQL, which confirmed
    /// inside the commit).
    NothingToTell,
    /// No server is running on this database: nothing to wait for.
    NoServer,
    /// Every running server forgot what the change made stale.
    Confirmed { servers: u64, waited: Duration },
    /// `behind` of the `servers` running did not confirm within the bound: they forget it at
    /// their next poll, and refuse it within the caches' age
    /// ([`crate::hub::TOKEN_CACHE_AGE`]) at most.
    Unconfirmed {
        servers: u64,
        behind: u64,
        waited: Duration,
    },
}

/// After an admin command committed its changes through `store`: waits until every running
/// server has forgotten the newest of them, at most [`CONFIRM_WITHIN`]. `wall` is the system
/// clock, as the servers' heartbeats are.
pub async fn await_servers(store: &Store, wall: &Clock) -> Result<Heard> {
    let Some(change) = store.recorded_change() else {
        return Ok(Heard::NothingToTell);
    };
    let started = Instant::now();
    let deadline = started + CONFIRM_WITHIN;
    loop {
        let listeners = store
            .listeners_behind(change, live_since(wall.now()))
            .await?;
        let waited = started.elapsed();
        if listeners.live == 0 {
            return Ok(Heard::NoServer);
        }
        if listeners.behind == 0 {
            return Ok(Heard::Confirmed {
                servers: listeners.live,
                waited,
            });
        }
        if Instant::now() >= deadline {
            return Ok(Heard::Unconfirmed {
                servers: listeners.live,
                behind: listeners.behind,
                waited,
            });
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// The oldest heartbeat of a live server at `now`.
fn live_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(LIVE_WITHIN).unwrap_or_else(|_| chrono::Duration::zero())
}
