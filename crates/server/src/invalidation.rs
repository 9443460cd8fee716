//! Several hubkeyd instances on one PostgreSQL database behave as one: what one instance
//! changes that another may hold in its caches (a token deactivated, deleted, pruned,
//! rotated away or reported; an account disabled; a repository's visibility) is refused by
//! every other instance on the first request after the change was acknowledged.
//!
//! Every such change ends in [`crate::Hub::commit`]:
//! 1. **Announce** inside the change's own transaction: one `pg_notify` on [`CHANNEL`] per
//!    stale item, then a marker `done:ORIGIN.SEQ` naming the announcement ([`AnnouncementId`]:
//!    the backend pid of the connection that hears this instance's confirmations, and a
//!    counter). PostgreSQL delivers them when the transaction commits, in order, and not at
//!    all if it rolls back.
//! 2. **Commit**, and forget the items locally.
//! 3. **Wait for confirmations.** Read which other listeners are connected to this database
//!    (`pg_stat_activity`, `application_name` `hubkeyd-notify-PID`), and wait until each has
//!    confirmed: a listener forgets the items it heard, then, on reading the marker, sends
//!    `SEQ:ITS_PID` on `hubkeyd_ack_ORIGIN` ([`ack_channel`]), which only the waiting
//!    instance listens to. A listener that has not confirmed within [`CONFIRM_WITHIN`]
//!    (a hung, stopped or partitioned instance) is cut off with `pg_terminate_backend`: it
//!    takes the lost-channel path below as soon as it runs again, and no later change waits
//!    for it. The change is acknowledged then, whatever happened: it committed; a
//!    confirmation problem is logged and counted (`hubkeyd_notify_cut_off_total`), never
//!    answered as an error.
//!
//! A listener names itself `hubkeyd-notify-PID` only once its `LISTEN` is in effect, so a
//! commit never waits for a listener that could not have heard it. (One that subscribes in
//! the instant between a commit and the read of `pg_stat_activity` is waited for in vain and
//! cut off: a re-subscription for it, never a stale answer, since its caches start empty.)
//!
//! Confirmations reach a commit through this instance's own listener ([`Confirmations`]).
//! While that listener is down (the instance's caches are suspended then), or in the admin
//! CLI, which runs no listener, the commit opens a connection of its own for its
//! confirmations (`hubkeyd-confirm-PID`, never waited for) before it commits, and closes it
//! after: exact still, at the price of one connection per change while the channel is down.
//! If even that fails, the change is acknowledged once announced (the other instances hear
//! it within milliseconds, unconfirmed) and the failure is logged.
//!
//! Each instance serving on PostgreSQL runs [`listen_forever`]: a `LISTEN` on a connection of
//! its own. While that connection is down, changes go unheard, so the instance drops its
//! caches and keeps nothing (every answer comes from the database) until it has subscribed
//! again; it reconnects with a backoff from [`MIN_BACKOFF`] to [`MAX_BACKOFF`] (a commit that
//! finds it down wakes it), counting each re-subscription in
//! `hubkeyd_notify_reconnects_total`. A connection that dies without a word (a silent network
//! partition) is noticed only by TCP; the caches' time to live
//! ([`crate::hub::TOKEN_CACHE_AGE`]) bounds staleness on such an instance then.
//!
//! On SQLite there is one instance: nothing is announced, nothing listens; the admin commands
//! (another process) write what they made stale into a table the server polls instead
//! ([`crate::change_table`]).
//!
//! Payloads carry no secret: a token is named by the first [`TOKEN_KEY_LEN`] hex digits of its
//! SHA-256 digest (the token cache's key; the full digest is checked on every hit), an account
//! by its id, a repository by its name.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::Result;
use crate::store::{Backend, DbConnection, Store};
use crate::Hub;

/// The PostgreSQL notification channel instances announce changes on.
pub const CHANNEL: &str = "hubkeyd_cache";
/// How many hex digits of a token's digest name it in the token cache and on the channel
/// (64 bits: a collision costs a database lookup, never a wrong answer).
pub const TOKEN_KEY_LEN: usize = 16;
/// The first wait before subscribing again after the channel was lost.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to subscribe.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a change waits for the other instances' confirmations before it cuts off the
/// listeners that have not confirmed. A healthy listener confirms within milliseconds; this
/// is for one that is hung or cut from the database, with room for a machine under load
/// (a listener cut off by mistake only re-subscribes).
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(2);
/// What every instance's listener session is named, followed by its process id, once its
/// `LISTEN` is in effect.
pub const LISTENER_NAME: &str = "hubkeyd-notify-";

/// The channel on which the instance whose announcements name `origin` hears confirmations.
pub fn ack_channel(origin: i32) -> String {
    format!("hubkeyd_ack_{origin}")
}

/// Something cached answers may no longer be true about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// A token (by its cache key, [`token_key`]): deactivated, deleted, pruned, rotated
    /// away, reported.
    Token(String),
    /// Every token of an account (by id): disabled or enabled.
    Account(String),
    /// A repository's visibility (`namespace/name`).
    Repository(String),
}

impl Stale {
    /// The token whose stored digest is `digest`.
    pub fn token(digest: &str) -> Self {
        Stale::Token(token_key(digest).to_owned())
    }

    /// What is sent on the channel.
    pub fn payload(&self) -> String {
        match self {
            Stale::Token(key) => format!("token:{key}"),
            Stale::Account(id) => format!("account:{id}"),
            Stale::Repository(name) => format!("repository:{name}"),
        }
    }

    /// Reads a payload [`Stale::payload`] wrote; `None` for anything else.
    pub fn parse(payload: &str) -> Option<Self> {
        let (kind, value) = payload.split_once(':')?;
        if value.is_empty() {
            return None;
        }
        match kind {
            "token" => Some(Stale::Token(value.to_owned())),
            "account" => Some(Stale::Account(value.to_owned())),
            "repository" => Some(Stale::Repository(value.to_owned())),
            _ => None,
        }
    }
}

/// The token cache's key for the token whose digest is `digest` (hex).
pub fn token_key(digest: &str) -> &str {
    digest.get(..TOKEN_KEY_LEN).unwrap_or(digest)
}

/// Names one announcement: the backend pid of the connection its confirmations go to, and a
/// counter of that connection's announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnnouncementId {
    pub origin: i32,
    pub seq: u64,
}

impl AnnouncementId {
    /// The marker that ends the announcement on [`CHANNEL`].
    pub fn marker(&self) -> String {
        format!("done:{}.{}", self.origin, self.seq)
    }

    /// Reads a marker [`AnnouncementId::marker`] wrote.
    pub fn parse_marker(payload: &str) -> Option<Self> {
        let (origin, seq) = payload.strip_prefix("done:")?.split_once('.')?;
        Some(AnnouncementId {
            origin: origin.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The confirmation listener `acker` sends on [`ack_channel`] of the origin.
    pub fn confirmation(&self, acker: i32) -> String {
        format!("{}:{acker}", self.seq)
    }
}

/// Reads a confirmation ([`AnnouncementId::confirmation`]): the announcement's counter and
/// the confirming listener's backend pid.
pub fn parse_confirmation(payload: &str) -> Option<(u64, i32)> {
    let (seq, acker) = payload.split_once(':')?;
    Some((seq.parse().ok()?, acker.parse().ok()?))
}

/// Announces `stale` to the other instances inside the transaction `conn` (PostgreSQL
/// delivers it when the transaction commits, and not at all if it rolls back), ended by the
/// marker of `id` when the commit waits for confirmations. Nothing on SQLite.
pub async fn announce(
    backend: Backend,
    conn: &mut DbConnection,
    stale: &[Stale],
    id: Option<AnnouncementId>,
) -> Result<()> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    let marker = id.map(|id| id.marker());
    for payload in stale.iter().map(Stale::payload).chain(marker) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Where the listener connects: the store's database. Its `Debug` shows nothing (the
/// options hold the password).
#[derive(Clone)]
pub struct ListenTarget(PgConnectOptions);

impl ListenTarget {
    /// The listener's options for the database at `url`.
    pub fn new(url: &str) -> std::result::Result<Self, sqlx::Error> {
        Ok(ListenTarget(url.parse()?))
    }

    /// The options of a connection named `name` followed by this process's id.
    fn named(&self, name: &str) -> PgConnectOptions {
        self.0
            .clone()
            .application_name(&format!("{name}{}", std::process::id()))
    }
}

impl std::fmt::Debug for ListenTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenTarget(..)")
    }
}

/// The confirmations this instance's listener hears, routed to the commits waiting for them.
#[derive(Debug, Default)]
pub struct Confirmations {
    state: Mutex<Routing>,
    /// Woken by a commit that found the listener down: subscribe again now.
    retry: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Routing {
    /// The listener's backend pid while it is subscribed.
    listener: Option<i32>,
    next_seq: u64,
    /// Waiting commits by their announcement's counter: the pids that confirmed go there.
    waiting: HashMap<u64, mpsc::UnboundedSender<i32>>,
}

impl Confirmations {
    fn routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The listener subscribed as backend `pid`: commits may wait through it.
    fn subscribed(&self, pid: i32) {
        let mut routing = self.routing();
        routing.listener = Some(pid);
        routing.waiting.clear();
    }

    /// The listener is down: the commits waiting through it can hear nothing more.
    fn lost(&self) {
        let mut routing = self.routing();
        routing.listener = None;
        routing.waiting.clear();
    }

    /// `acker` confirmed the announcement `seq` of this instance's listener.
    fn confirmed(&self, seq: u64, acker: i32) {
        if let Some(waiter) = self.routing().waiting.get(&seq) {
            let _ = waiter.send(acker);
        }
    }

    /// A new announcement whose confirmations the listener will route here; `None` while the
    /// listener is down.
    fn register(self: &Arc<Self>) -> Option<Registration> {
        let mut routing = self.routing();
        let origin = routing.listener?;
        let seq = routing.next_seq;
        routing.next_seq += 1;
        let (sender, confirmed) = mpsc::unbounded_channel();
        routing.waiting.insert(seq, sender);
        Some(Registration {
            id: AnnouncementId { origin, seq },
            confirmed,
            owner: Arc::clone(self),
        })
    }
}

/// A commit's place in [`Confirmations`]; leaves it when dropped.
#[derive(Debug)]
pub struct Registration {
    id: AnnouncementId,
    confirmed: mpsc::UnboundedReceiver<i32>,
    owner: Arc<Confirmations>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut routing = self.owner.routing();
        if routing.listener == Some(self.id.origin) {
            routing.waiting.remove(&self.id.seq);
        }
    }
}

/// How one commit hears the other instances confirm its announcement.
#[derive(Debug)]
pub enum Ears {
    /// Through this instance's listener.
    Shared(Registration),
    /// Through a connection of its own (the listener is down, or the admin CLI).
    OneOff {
        id: AnnouncementId,
        listener: PgListener,
        pool: sqlx::PgPool,
    },
}

impl Ears {
    /// How a commit through `hub` will hear its confirmations: `None` on SQLite, and when not
    /// even a connection of its own could be opened (logged).
    pub async fn open(hub: &Hub) -> Option<Self> {
        let target = hub.store().listen_target()?;
        if let Some(registration) = hub.confirmations().register() {
            return Some(Ears::Shared(registration));
        }
        hub.confirmations().retry.notify_one();
        match tokio::time::timeout(CONFIRM_WITHIN, one_off(target)).await {
            Ok(Ok(ears)) => Some(ears),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "no connection to hear the other instances confirm a change: it is announced unconfirmed");
                None
            }
            Err(_) => {
                tracing::warn!("no connection to hear the other instances confirm a change within {CONFIRM_WITHIN:?}: it is announced unconfirmed");
                None
            }
        }
    }

    /// The announcement these ears hear confirmations of.
    pub fn id(&self) -> AnnouncementId {
        match self {
            Ears::Shared(registration) => registration.id,
            Ears::OneOff { id, .. } => *id,
        }
    }

    /// The next listener that confirmed; `None` once nothing more can be heard.
    async fn next(&mut self) -> Option<i32> {
        match self {
            Ears::Shared(registration) => registration.confirmed.recv().await,
            Ears::OneOff { id, listener, .. } => loop {
                match listener.try_recv().await {
                    Ok(Some(message)) => match parse_confirmation(message.payload()) {
                        Some((seq, acker)) if seq == id.seq => return Some(acker),
                        _ => continue,
                    },
                    Ok(None) | Err(_) => return None,
                }
            },
        }
    }

    /// Closes a connection of its own.
    async fn close(self) {
        if let Ears::OneOff { listener, pool, .. } = self {
            drop(listener);
            pool.close().await;
        }
    }
}

/// A connection of its own for one commit's confirmations, listening on its [`ack_channel`].
async fn one_off(target: &ListenTarget) -> std::result::Result<Ears, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(CONFIRM_WITHIN)
        .connect_with(target.named("hubkeyd-confirm-"))
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.eager_reconnect(false);
    let origin: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    listener.listen(&ack_channel(origin)).await?;
    Ok(Ears::OneOff {
        id: AnnouncementId { origin, seq: 0 },
        listener,
        pool,
    })
}

/// After a commit announced as `ears.id()`: waits until every other listener connected to
/// the database has confirmed it, for at most [`CONFIRM_WITHIN`]; cuts off those that have
/// not (all of them, if the ears went deaf). Never fails: what goes wrong is logged, and
/// counted in `cut_off`.
pub async fn await_confirmations(
    store: &Store,
    mut ears: Ears,
    cut_off: &prometheus_client::metrics::counter::Counter,
) {
    let id = ears.id();
    let started = Instant::now();
    let deadline = started + CONFIRM_WITHIN;
    let others = tokio::time::timeout_at(deadline, store.other_listeners(id.origin)).await;
    let mut waiting: HashSet<i32> = match others {
        Ok(Ok(pids)) => pids.into_iter().collect(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "reading which instances listen failed: a change is acknowledged unconfirmed");
            HashSet::new()
        }
        Err(_) => {
            tracing::warn!("reading which instances listen took over {CONFIRM_WITHIN:?}: a change is acknowledged unconfirmed");
            HashSet::new()
        }
    };
    let mut deaf = false;
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, ears.next()).await {
            Ok(Some(acker)) => {
                waiting.remove(&acker);
            }
            Ok(None) => {
                deaf = true;
                break;
            }
            Err(_) => break,
        }
    }
    ears.close().await;
    if waiting.is_empty() {
        return;
    }
    let pids: Vec<i32> = waiting.into_iter().collect();
    let why = if deaf {
        "this instance stopped hearing confirmations"
    } else {
        "no confirmation in time"
    };
    match tokio::time::timeout(CONFIRM_WITHIN, store.cut_off_listeners(&pids)).await {
        Ok(Ok(ended)) => {
            cut_off.inc_by(ended);
            tracing::warn!(
                listeners = ?pids,
                ended,
                waited_ms = started.elapsed().as_millis(),
                reason = why,
                "other instances did not confirm a change: their change listeners were cut off (they drop their caches and subscribe again)"
            );
        }
        Ok(Err(err)) => {
            tracing::warn!(listeners = ?pids, reason = why, error = %err, "other instances did not confirm a change, and cutting off their listeners failed: they may answer from their caches until these expire");
        }
        Err(_) => {
            tracing::warn!(listeners = ?pids, reason = why, "other instances did not confirm a change, and cutting off their listeners did not finish in time");
        }
    }
}

/// Subscribes to [`CHANNEL`] and forgets what other instances announce, confirming each
/// announcement to the instance that waits for it, and routes the confirmations of this
/// instance's announcements to its commits, for as long as the server runs; see the module
/// documentation for what happens when the channel is lost. `subscribed` is told once, after
/// the first attempt to subscribe (whatever its outcome), so that the server starts serving
/// with its caches on when it can. Returns at once when the store is not PostgreSQL.
pub async fn listen_forever(hub: Hub, subscribed: tokio::sync::oneshot::Sender<()>) {
    let Some(target) = hub.store().listen_target().cloned() else {
        let _ = subscribed.send(());
        return;
    };
    let mut subscribed = Some(subscribed);
    let mut backoff = MIN_BACKOFF;
    let mut lost_before = false;
    loop {
        let attempt = subscribe(&target).await;
        if let Some(told) = subscribed.take() {
            let _ = told.send(());
        }
        match attempt {
            Ok((pool, mut listener, pid)) => {
                hub.confirmations().subscribed(pid);
                hub.resume_caches();
                hub.metrics().notify_listening(true);
                backoff = MIN_BACKOFF;
                if lost_before {
                    hub.metrics().notify_reconnects().inc();
                    tracing::info!("change channel subscribed again; caching resumed");
                } else {
                    tracing::debug!(channel = CHANNEL, "listening for other instances' changes");
                }
                let why = hear(&hub, &mut listener, pid).await;
                hub.suspend_caches();
                hub.confirmations().lost();
                hub.metrics().notify_listening(false);
                tracing::warn!(reason = %why, "change channel lost: caching suspended until it is back");
                drop(listener);
                drop(pool);
                lost_before = true;
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis(), "subscribing to the change channel failed: caching stays suspended");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = hub.confirmations().retry.notified() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Hears the channel on `listener` (backend `pid`) until it is lost; answers why.
async fn hear(hub: &Hub, listener: &mut PgListener, pid: i32) -> String {
    loop {
        let message = match listener.try_recv().await {
            Ok(Some(message)) => message,
            Ok(None) => return "the connection was closed".to_owned(),
            Err(err) => return err.to_string(),
        };
        let payload = message.payload();
        if message.channel() != CHANNEL {
            if let Some((seq, acker)) = parse_confirmation(payload) {
                hub.confirmations().confirmed(seq, acker);
            }
        } else if let Some(stale) = Stale::parse(payload) {
            hub.forget(std::slice::from_ref(&stale));
        } else if let Some(id) = AnnouncementId::parse_marker(payload) {
            // Everything the announcement named came before its marker, and is forgotten.
            if id.origin != pid {
                let confirmed = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(ack_channel(id.origin))
                    .bind(id.confirmation(pid))
                    .execute(&mut *listener)
                    .await;
                if let Err(err) = confirmed {
                    return format!("confirming a change failed: {err}");
                }
            }
        } else {
            tracing::warn!("an unknown change announcement: dropping every cached answer");
            hub.forget_everything();
        }
    }
}

/// A connection of its own, listening on [`CHANNEL`] and on its [`ack_channel`], named
/// [`LISTENER_NAME`] once both are in effect (before, commits do not wait for it); the pool
/// only holds it. Answers its backend pid.
async fn subscribe(
    target: &ListenTarget,
) -> std::result::Result<(sqlx::PgPool, PgListener, i32), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(target.named("hubkeyd-subscribing-"))
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection ends this listener; `listen_forever` subscribes anew, after dropping
    // the caches.
    listener.eager_reconnect(false);
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    let acks = ack_channel(pid);
    listener.listen_all([CHANNEL, acks.as_str()]).await?;
    sqlx::query("SELECT set_config('application_name', $1, false)")
        .bind(format!("{LISTENER_NAME}{}", std::process::id()))
        .execute(&mut listener)
        .await?;
    Ok((pool, listener, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_and_name_no_whole_digest() {
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for stale in [
            Stale::token(digest),
            Stale::Account("0b6f2a4e-1111-4c2b-9f00-000000000000".into()),
            Stale::Repository("ann/app/web".into()),
        ] {
            let payload = stale.payload();
            assert!(!payload.contains(digest), "{payload}");
            assert_eq!(Stale::parse(&payload), Some(stale));
        }
        assert_eq!(Stale::token(digest).payload(), "token:ba7816bf8f01cfea");
        for bad in ["", "token:", "token", "session:x", ":x"] {
            assert_eq!(Stale::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn markers_and_confirmations_read_back() {
        let id = AnnouncementId {
            origin: 4242,
            seq: 17,
        };
        assert_eq!(id.marker(), "done:4242.17");
        assert_eq!(AnnouncementId::parse_marker(&id.marker()), Some(id));
        assert_eq!(
            Stale::parse(&id.marker()),
            None,
            "a marker names nothing stale"
        );
        assert_eq!(parse_confirmation(&id.confirmation(99)), Some((17, 99)));
        assert_eq!(ack_channel(4242), "hubkeyd_ack_4242");
        for bad in [
            "done:",
            "done:1",
            "done:x.1",
            "done:1.x",
            "token:abc",
            "done:1.-2",
        ] {
            assert_eq!(AnnouncementId::parse_marker(bad), None, "{bad}");
        }
        for bad in ["", "1", "1:", ":1", "x:1", "1:x"] {
            assert_eq!(parse_confirmation(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn confirmations_reach_the_waiting_commit_and_a_lost_listener_ends_the_wait() {
        let confirmations = Arc::new(Confirmations::default());
        assert!(confirmations.register().is_none(), "no listener: no ears");
        confirmations.subscribed(7);
        let mut first = confirmations.register().expect("registered");
        let second = confirmations.register().expect("registered");
        assert_eq!(first.id.origin, 7);
        assert_ne!(first.id.seq, second.id.seq);
        confirmations.confirmed(first.id.seq, 11);
        confirmations.confirmed(first.id.seq + 100, 12);
        assert_eq!(first.confirmed.recv().await, Some(11));
        drop(second);
        assert_eq!(
            confirmations.routing().waiting.len(),
            1,
            "a dropped wait leaves"
        );
        confirmations.lost();
        assert_eq!(
            first.confirmed.recv().await,
            None,
            "nothing more can be heard"
        );
        assert!(confirmations.register().is_none());
    }
}
