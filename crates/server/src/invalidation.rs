//! Several hubkeyd instances on one PostgreSQL database behave as one: what one instance
//! changes that another may hold in its caches (a token deactivated, deleted, pruned,
//! rotated away or reported; an account disabled; a repository's visibility) is announced on
//! the channel [`CHANNEL`] with `pg_notify` inside the change's own transaction, so every
//! other instance hears it exactly when it commits, and forgets the matching entries.
//!
//! Every such change ends in [`crate::Hub::commit`]: announce, commit, forget locally. Each
//! instance serving on PostgreSQL runs [`listen_forever`]: a `LISTEN` on a connection of its
//! own (`application_name` `hubkeyd-notify-PID`). While that connection is down, changes go
//! unheard, so the instance drops its caches and keeps nothing (every answer comes from the
//! database) until it has subscribed again; it reconnects with a backoff from
//! [`MIN_BACKOFF`] to [`MAX_BACKOFF`], counting each re-subscription in
//! `hubkeyd_notify_reconnects_total`. A connection that dies without a word (a silent network
//! partition) is noticed only by TCP; the caches' time to live
//! ([`crate::hub::TOKEN_CACHE_AGE`]) bounds staleness then.
//!
//! On SQLite there is one instance: nothing is announced and nothing listens (the admin
//! commands, another process, are seen after the caches' time to live).
//!
//! Payloads carry no secret: a token is named by the first [`TOKEN_KEY_LEN`] hex digits of its
//! SHA-256 digest (the token cache's key; the full digest is checked on every hit), an account
//! by its id, a repository by its name.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::error::Result;
use crate::store::{Backend, DbConnection};
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

/// Announces `stale` to the other instances inside the transaction `conn` (PostgreSQL
/// delivers it when the transaction commits, and not at all if it rolls back). Nothing on
/// SQLite.
pub async fn announce(backend: Backend, conn: &mut DbConnection, stale: &[Stale]) -> Result<()> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    for item in stale {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(item.payload())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Where the listener connects: the store's database, under an `application_name` that
/// names this process. Its `Debug` shows nothing (the options hold the password).
#[derive(Clone)]
pub struct ListenTarget(PgConnectOptions);

impl ListenTarget {
    /// The listener's options for the database at `url`.
    pub fn new(url: &str) -> std::result::Result<Self, sqlx::Error> {
        let options: PgConnectOptions = url.parse()?;
        Ok(ListenTarget(options.application_name(&format!(
            "hubkeyd-notify-{}",
            std::process::id()
        ))))
    }
}

impl std::fmt::Debug for ListenTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenTarget(..)")
    }
}

/// Subscribes to [`CHANNEL`] and forgets what other instances announce, for as long as the
/// server runs; see the module documentation for what happens when the channel is lost.
/// `subscribed` is told once, after the first attempt to subscribe (whatever its outcome), so
/// that the server starts serving with its caches on when it can. Returns at once when the
/// store is not PostgreSQL.
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
            Ok((pool, mut listener)) => {
                hub.resume_caches();
                hub.metrics().notify_listening(true);
                backoff = MIN_BACKOFF;
                if lost_before {
                    hub.metrics().notify_reconnects().inc();
                    tracing::info!("change channel subscribed again; caching resumed");
                } else {
                    tracing::debug!(channel = CHANNEL, "listening for other instances' changes");
                }
                let why = loop {
                    match listener.try_recv().await {
                        Ok(Some(message)) => {
                            match Stale::parse(message.payload()) {
                                Some(stale) => hub.forget(std::slice::from_ref(&stale)),
                                None => {
                                    tracing::warn!("an unknown change announcement: dropping every cached answer");
                                    hub.forget_everything();
                                }
                            }
                        }
                        Ok(None) => break "the connection was closed".to_owned(),
                        Err(err) => break err.to_string(),
                    }
                };
                hub.suspend_caches();
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
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A connection of its own, listening on [`CHANNEL`]; the pool only holds it.
async fn subscribe(
    target: &ListenTarget,
) -> std::result::Result<(sqlx::PgPool, PgListener), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(target.0.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection ends this listener; `listen_forever` subscribes anew, after dropping
    // the caches.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok((pool, listener))
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
}
