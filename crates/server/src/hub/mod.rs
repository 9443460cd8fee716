//! The account and token service: every operation of the API as a plain async function of
//! its inputs and `now`. The HTTP layer only extracts inputs and maps results.
//!
//! One file per feature, each adding to `impl Hub`: `accounts` (admin), `sign_in`
//! (sessions, 2FA, and [`Hub::authenticate`], where every authenticated request starts),
//! `security` (containing a compromised account: password change, sign-out everywhere,
//! disabling, the security events and the sweep of ended sessions),
//! `tokens` (with their events and pruning), `leaks` (secret-scanning reports and the
//! public revocation), `rotation`, `usage` (the PAT check on the hot path and
//! the usage figures), `registry` (the registry's `/token`) and `repositories`.

mod access;
mod accounts;
mod device;
mod leaks;
mod registry;
mod repositories;
mod rotation;
mod security;
mod sign_in;
mod tokens;
mod two_factor;
mod usage;

use std::net::IpAddr;
use std::sync::Arc;

use hubkey_api::error::PAT_SESSION_FORBIDDEN;

use crate::cache::LookupCache;
use crate::error::{Error, Result};
use crate::invalidation::{Ears, Stale};
use crate::keys::ServerKeys;
use crate::metrics::{CacheName, Metrics};
use crate::password::PasswordHasher;
use crate::registry::TokenIssuer;
use crate::session::{self, Caller, SessionSource};
use crate::store::{Backend, DbTransaction, EventOrigin, Store, TokenCheck};
use crate::throttle::Throttle;
use crate::usage::UsageLog;

pub use accounts::check_username;
pub use device::{
    normalise_user_code, DeviceGrant, DeviceGrantStart, DevicePoll, GRANT_TTL, POLL_INTERVAL,
};
pub use leaks::{MAX_SCANNING_MATCHES, REVOKE_PER_ADDRESS, REVOKE_WINDOW};
pub use registry::{RegistryCredential, RegistryTokenRequest};
pub use repositories::{check_repository_name, REPOSITORY_CACHE_AGE};
pub use rotation::{REUSE_COALESCE, REUSE_EVENTS_PER_TOKEN};
pub use tokens::{
    check_create_request, check_patch_request, CheckedCreate, TokenPage, MAX_EVENTS, MAX_LABEL,
    MAX_PAGE_SIZE,
};

/// Where a request came from: recorded on the tokens it creates, used for throttling.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl ClientInfo {
    /// Where an account event this request causes came from (`address`: the IP as text).
    pub fn event_origin<'a>(&'a self, address: &'a str) -> EventOrigin<'a> {
        EventOrigin {
            address: Some(address),
            user_agent: Some(self.user_agent.as_str()).filter(|agent| !agent.is_empty()),
        }
    }
}

/// Days of usage shown with each token.
pub const USAGE_DAYS: i64 = 30;

/// Tokens by digest, for the token check on every registry request.
pub type TokenCache = LookupCache<Arc<TokenCheck>>;

/// The token cache's bound: about 88 000 tokens (~380 bytes each with the key and the
/// cache's own overhead: what the check needs, [`TokenCheck`], not the whole row).
pub const TOKEN_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// How long a cached token is trusted without looking again. Changes are seen at once: made
/// through this instance, they are forgotten when they commit; on PostgreSQL, other
/// instances and the admin commands announce theirs ([`crate::invalidation`]); on SQLite the
/// admin commands write theirs into the change table, which the server polls
/// ([`crate::change_table`]). This bounds the rest: a change channel that died silently (a
/// network partition TCP has not noticed yet), a server that stalled while an admin command
/// waited for it. One indexed lookup per token every 5 s is nothing on the hot path.
pub const TOKEN_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(5);
/// The repository visibility cache's bound: about 20 000 public repositories (only found
/// rows are kept, so only repositories someone made public or private).
pub const REPOSITORY_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// The service: the store, the keys, the password hasher, the registry token signer, and
/// the token-use cache and log.
#[derive(Clone)]
pub struct Hub {
    store: Store,
    keys: ServerKeys,
    hasher: PasswordHasher,
    issuer: Arc<TokenIssuer>,
    tokens: Arc<TokenCache>,
    /// Visibility by `namespace/name`: true when public.
    repositories: Arc<LookupCache<bool>>,
    usage: Arc<UsageLog>,
    throttle: Arc<Throttle>,
    /// Per-address limits of the public revocation endpoint.
    revoke_limiter: Arc<leaks::RevokeLimiter>,
    /// Tokens the public revocation found, for the background writer.
    revocations: Arc<leaks::RevocationQueue>,
    /// Reuse of rotated-away tokens recorded lately (coalescing).
    reuse_seen: Arc<rotation::ReuseSeen>,
    /// Every accepted token use, for the per-token access log.
    access_log: Arc<crate::access_log::AccessLog>,
    /// Days the access log keeps.
    access_log_days: u32,
    /// How long a bearer JWT lives ([`session::ACCESS_TTL`] unless set).
    access_ttl: chrono::Duration,
    metrics: Arc<Metrics>,
    /// Other instances' confirmations of this instance's announcements (PostgreSQL).
    confirmations: Arc<crate::invalidation::Confirmations>,
}

impl Hub {
    pub fn new(
        store: Store,
        keys: ServerKeys,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        throttle: Throttle,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let hub = Hub {
            store,
            keys,
            hasher,
            issuer: Arc::new(issuer),
            // Token changes through the API are forgotten at once; an admin command run in
            // another process is announced (PostgreSQL) or polled (SQLite's change table).
            tokens: Arc::new(
                TokenCache::new(TOKEN_CACHE_BYTES, Some(TOKEN_CACHE_AGE), |owner| {
                    owner.heap_size()
                })
                .counted(metrics.cache_counters(CacheName::Token)),
            ),
            // `hubkeyd repo` changes visibility from another process, announced or polled as
            // the tokens' changes; look again after a while all the same.
            repositories: Arc::new(
                LookupCache::new(REPOSITORY_CACHE_BYTES, Some(REPOSITORY_CACHE_AGE), |_| 0)
                    .counted(metrics.cache_counters(CacheName::Repository)),
            ),
            usage: Arc::new(UsageLog::observed(metrics.flush())),
            throttle: Arc::new(throttle),
            revoke_limiter: Arc::default(),
            revocations: Arc::default(),
            reuse_seen: Arc::default(),
            access_log: Arc::default(),
            access_log_days: crate::access_log::DEFAULT_RETENTION_DAYS,
            access_ttl: session::ACCESS_TTL,
            metrics,
            confirmations: Arc::default(),
        };
        // Other instances may change what the caches would hold: on PostgreSQL they keep
        // nothing until the change channel is subscribed (`invalidation::listen_forever`).
        if hub.store.backend() == Backend::Postgres {
            hub.suspend_caches();
        }
        hub
    }

    /// Bearer JWTs live `ttl` instead of [`session::ACCESS_TTL`] (clients renew them with
    /// their refresh token; tests use a short one to see that they do).
    #[must_use]
    pub fn with_access_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// The access log keeps `days` days (default
    /// [`crate::access_log::DEFAULT_RETENTION_DAYS`]); `enabled` false records nothing.
    #[must_use]
    pub fn with_access_log(mut self, enabled: bool, days: u32) -> Self {
        self.access_log.set_enabled(enabled);
        self.access_log_days = days.max(1);
        self
    }

    /// The hub with a token cache of `bytes` (weighed as [`TOKEN_CACHE_BYTES`] is) instead of
    /// the default: what bounds hubkeyd's memory when many distinct tokens are in use. Called
    /// before the hub is cloned into the server's tasks (a clone keeps the cache it had).
    pub fn with_token_cache_bytes(mut self, bytes: u64) -> Self {
        self.tokens = Arc::new(
            TokenCache::new(bytes, Some(TOKEN_CACHE_AGE), |owner| owner.heap_size())
                .counted(self.metrics.cache_counters(CacheName::Token)),
        );
        self
    }

    /// The per-token access log not yet written; the server flushes it periodically.
    pub fn access_log(&self) -> &Arc<crate::access_log::AccessLog> {
        &self.access_log
    }

    /// The bearer lifetime in seconds, as `expires_in` says it.
    fn access_ttl_seconds(&self) -> u64 {
        u64::try_from(self.access_ttl.num_seconds()).unwrap_or(0)
    }

    /// The server's derived keys (the verification page signs its cookie with them).
    pub fn keys(&self) -> &ServerKeys {
        &self.keys
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This server's metrics (what `GET /metrics` renders).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Failed sign-in throttling; the server sweeps it on a timer
    /// ([`Throttle::sweep_forever`]).
    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// What the token and repository caches hold (for tests and figures).
    pub fn cache_usage(&self) -> (crate::cache::CacheUsage, crate::cache::CacheUsage) {
        (self.tokens.usage(), self.repositories.usage())
    }

    /// Commits `tx`, a change that makes `stale` cached answers wrong: announces them to
    /// the other instances inside the transaction (they hear it exactly when it commits),
    /// commits, forgets them here, and waits until every other instance has confirmed it
    /// forgot them too (at most [`crate::invalidation::CONFIRM_WITHIN`], after which the
    /// silent ones are cut off). Every change that a cache could hide ends here. Fails only
    /// when the change did not commit. On SQLite it writes the change table instead and waits
    /// for nothing (an admin command waits afterwards: [`crate::change_table::await_servers`]).
    pub async fn commit(&self, tx: DbTransaction, stale: &[Stale]) -> Result<()> {
        let ears = self.ears(stale).await;
        self.store
            .commit(tx, stale, ears.as_ref().map(Ears::id))
            .await?;
        self.forget(stale);
        self.confirmed(ears).await;
        Ok(())
    }

    /// How a change making `stale` wrong hears the other instances confirm it: `None` on
    /// SQLite and when nothing is stale.
    async fn ears(&self, stale: &[Stale]) -> Option<Ears> {
        if stale.is_empty() || self.store.backend() != Backend::Postgres {
            return None;
        }
        Ears::open(self).await
    }

    /// Waits for the confirmations `ears` hear (after the change committed).
    async fn confirmed(&self, ears: Option<Ears>) {
        if let Some(ears) = ears {
            crate::invalidation::await_confirmations(
                &self.store,
                ears,
                &self.metrics.notify_cut_off(),
            )
            .await;
        }
    }

    /// Routes other instances' confirmations to this instance's waiting commits.
    pub fn confirmations(&self) -> &Arc<crate::invalidation::Confirmations> {
        &self.confirmations
    }

    /// Forgets what `stale` names from this instance's caches (a change committed here, or
    /// announced by another instance).
    pub fn forget(&self, stale: &[Stale]) {
        for item in stale {
            match item {
                Stale::Token(key) => self.tokens.forget(key),
                Stale::Account(user_id) => {
                    let user_id = user_id.clone();
                    self.tokens
                        .forget_where(move |check| check.user_id == user_id);
                }
                Stale::Repository(name) => self.repositories.forget(name),
            }
        }
    }

    /// Drops every cached answer (an announcement this instance cannot read).
    pub fn forget_everything(&self) {
        self.tokens.forget_where(|_| true);
        self.repositories.forget_where(|_| true);
    }

    /// Drops every cached answer and keeps none until [`Hub::resume_caches`]: while this
    /// instance cannot hear the others' changes.
    pub fn suspend_caches(&self) {
        self.tokens.suspend();
        self.repositories.suspend();
    }

    /// Caches again, starting empty: the change channel is subscribed.
    pub fn resume_caches(&self) {
        self.tokens.resume();
        self.repositories.resume();
    }

    /// Whether the caches keep nothing for now (the change channel is down).
    pub fn caches_suspended(&self) -> bool {
        self.tokens.is_suspended()
    }

    /// The log of token uses not yet written; the server flushes it periodically and on
    /// shutdown.
    pub fn usage(&self) -> &Arc<UsageLog> {
        &self.usage
    }
}

/// Only a password session manages tokens and repositories: a session minted from a PAT gets
/// Hub's 403, so a leaked PAT cannot mint itself successors.
fn require_password_session(caller: &Caller) -> Result<()> {
    match caller.source {
        SessionSource::Password => Ok(()),
        SessionSource::Pat | SessionSource::DevicePage => {
            Err(Error::Forbidden(PAT_SESSION_FORBIDDEN.into()))
        }
    }
}

/// Where a read of an events feed (tokens' or the account's) starts: the id of the event
/// `after` names (none or empty: the start), once `limit` is checked against [`MAX_EVENTS`].
fn feed_start(after: Option<&str>, limit: u32) -> Result<i64> {
    let after_id = match after {
        None | Some("") => 0,
        Some(cursor) => crate::store::decode_cursor(cursor)
            .ok_or_else(|| Error::invalid("after", "not a cursor this server gave out"))?,
    };
    if limit == 0 || limit > MAX_EVENTS {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_EVENTS}"),
        ));
    }
    Ok(after_id)
}

/// Where a feed continues: the last event's cursor, or where the read started when nothing
/// new happened.
fn feed_cursor(last: Option<&str>, after_id: i64) -> String {
    last.map_or_else(|| crate::store::encode_cursor(after_id), str::to_owned)
}
