//! What an operator's Prometheus scrapes at `GET /metrics` (`serve --metrics-addr ADDR`, a
//! listener of its own, never the API's): token exchanges and sign-ins by outcome, throttled
//! requests, the lookup caches' hits and misses, the usage flush's time and size, the database
//! pool, and reconnections of the channel instances use to tell each other about changes.
//!
//! prometheus-client (the Prometheus project's Rust client): typed metrics in a registry this
//! server owns, rather than a process-global recorder, so two servers in one test process keep
//! their own counts. Labels are fixed words of this module (endpoints, outcomes, cache names):
//! no token, user name or address ever becomes a label value.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::error::Error;
use crate::store::PoolUse;

/// The content type of [`Metrics::render`]'s text (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label values in snake case (the derive would write the variant names as they are).
macro_rules! label_values {
    ($($name:ident { $($variant:ident => $text:literal),+ $(,)? })+) => {$(
        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                let text = match self {
                    $($name::$variant => $text),+
                };
                EncodeLabelValue::encode(&text, encoder)
            }
        }
    )+};
}

label_values! {
    Exchange { Registry => "registry", AuthToken => "auth_token" }
    SignInStep { Password => "password", SecondFactor => "second_factor" }
    Outcome {
        Granted => "granted",
        SecondFactorRequired => "second_factor_required",
        Refused => "refused",
        Throttled => "throttled",
        Invalid => "invalid",
        Error => "error",
    }
    CacheName { Token => "token", Repository => "repository" }
}

/// Which token exchange a request was.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Exchange {
    /// The registry's `/token` (GET and the OAuth2 POST).
    Registry,
    /// `POST /v2/auth/token`.
    AuthToken,
}

/// Which sign-in step a request was.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum SignInStep {
    /// `POST /v2/users/login`.
    Password,
    /// `POST /v2/users/2fa-login`.
    SecondFactor,
}

/// How a token exchange or sign-in ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Granted: a token or a session.
    Granted,
    /// The password was right; the second factor is next.
    SecondFactorRequired,
    /// Wrong credentials, an unknown or inactive token, an expired challenge.
    Refused,
    /// Too many failures: 429.
    Throttled,
    /// Malformed, or refused before any credential was read (400, 403, 413).
    Invalid,
    /// Our fault: 5xx.
    Error,
}

impl Outcome {
    /// The outcome of a service call.
    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => Outcome::Granted,
            Err(Error::SecondFactorRequired { .. }) => Outcome::SecondFactorRequired,
            Err(Error::Unauthorized(_) | Error::ChallengeExpired | Error::SessionRevoked) => {
                Outcome::Refused
            }
            Err(Error::Throttled { .. } | Error::RateLimited { .. }) => Outcome::Throttled,
            Err(Error::Invalid { .. } | Error::Forbidden(_) | Error::NotFound(_)) => {
                Outcome::Invalid
            }
            Err(Error::Storage(_) | Error::Internal(_)) => Outcome::Error,
        }
    }

    /// The outcome of an answer, by its status alone.
    pub fn of_status(status: axum::http::StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => Outcome::Granted,
            401 => Outcome::Refused,
            429 => Outcome::Throttled,
            500..=599 => Outcome::Error,
            _ => Outcome::Invalid,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    endpoint: Exchange,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    step: SignInStep,
    outcome: Outcome,
}

/// Which lookup cache.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum CacheName {
    /// Personal access tokens by digest.
    Token,
    /// Repository visibility.
    Repository,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: CacheName,
}

/// A cache's hit and miss counters, handed to the cache itself.
#[derive(Debug, Clone, Default)]
pub struct CacheCounters {
    pub hits: Counter,
    pub misses: Counter,
}

/// The usage flush's observations, handed to [`crate::usage::UsageLog`].
#[derive(Debug, Clone)]
pub struct FlushMetrics {
    /// Seconds each non-empty flush took to write.
    pub seconds: Histogram,
    /// Tokens (rows of the usage batch) each non-empty flush wrote.
    pub tokens: Histogram,
}

impl Default for FlushMetrics {
    fn default() -> Self {
        FlushMetrics {
            seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            tokens: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
        }
    }
}

impl FlushMetrics {
    /// Notes one flush of `tokens` tokens that took `took`.
    pub fn observe(&self, tokens: usize, took: Duration) {
        self.seconds.observe(took.as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        self.tokens.observe(tokens as f64);
    }
}

/// Every metric of one server, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    exchanges: Family<ExchangeLabels, Counter>,
    sign_ins: Family<SignInLabels, Counter>,
    throttled: Counter,
    cache_hits: Family<CacheLabels, Counter>,
    cache_misses: Family<CacheLabels, Counter>,
    flush: FlushMetrics,
    pool_size: Gauge,
    pool_idle: Gauge,
    notify_reconnects: Counter,
    notify_listening: Gauge,
    notify_cut_off: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "hubkeyd_token_exchanges",
            "Token exchanges (registry /token, /v2/auth/token) by outcome",
            exchanges.clone(),
        );
        let sign_ins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "hubkeyd_sign_ins",
            "Sign-in steps (password, second factor) by outcome",
            sign_ins.clone(),
        );
        let throttled = Counter::default();
        registry.register(
            "hubkeyd_throttled_requests",
            "Requests answered 429 (too many failed sign-ins)",
            throttled.clone(),
        );
        let cache_hits = Family::<CacheLabels, Counter>::default();
        registry.register(
            "hubkeyd_cache_hits",
            "Lookups answered from memory, by cache",
            cache_hits.clone(),
        );
        let cache_misses = Family::<CacheLabels, Counter>::default();
        registry.register(
            "hubkeyd_cache_misses",
            "Lookups that went to the database, by cache",
            cache_misses.clone(),
        );
        let flush = FlushMetrics::default();
        registry.register_with_unit(
            "hubkeyd_usage_flush_duration",
            "Time to write one batch of token uses",
            Unit::Seconds,
            flush.seconds.clone(),
        );
        registry.register(
            "hubkeyd_usage_flush_tokens",
            "Tokens whose uses one flush wrote",
            flush.tokens.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "hubkeyd_db_pool_connections",
            "Database connections open (idle or in use)",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "hubkeyd_db_pool_idle_connections",
            "Database connections open and idle",
            pool_idle.clone(),
        );
        let notify_reconnects = Counter::default();
        registry.register(
            "hubkeyd_notify_reconnects",
            "Times the change-notification channel between instances was lost and re-subscribed",
            notify_reconnects.clone(),
        );
        let notify_listening = Gauge::default();
        registry.register(
            "hubkeyd_notify_listening",
            "1 while this instance hears other instances' changes (PostgreSQL) and caches; 0 while the channel is down and every answer comes from the database",
            notify_listening.clone(),
        );
        let notify_cut_off = Counter::default();
        registry.register(
            "hubkeyd_notify_cut_off",
            "Other instances' change listeners this instance cut off (pg_terminate_backend) because they did not confirm a change in time",
            notify_cut_off.clone(),
        );
        let metrics = Metrics {
            registry,
            exchanges,
            sign_ins,
            throttled,
            cache_hits,
            cache_misses,
            flush,
            pool_size,
            pool_idle,
            notify_reconnects,
            notify_listening,
            notify_cut_off,
        };
        // Shown at zero from the start, so a rate over the first scrape is right.
        for cache in [CacheName::Token, CacheName::Repository] {
            let _ = metrics.cache_counters(cache);
        }
        metrics
    }

    /// Counts a token exchange.
    pub fn token_exchange(&self, endpoint: Exchange, outcome: Outcome) {
        self.exchanges
            .get_or_create(&ExchangeLabels { endpoint, outcome })
            .inc();
    }

    /// Counts a sign-in step.
    pub fn sign_in(&self, step: SignInStep, outcome: Outcome) {
        self.sign_ins
            .get_or_create(&SignInLabels { step, outcome })
            .inc();
    }

    /// Counts a 429 answer.
    pub fn throttled(&self) {
        self.throttled.inc();
    }

    /// The counters the `cache` cache increments.
    pub fn cache_counters(&self, cache: CacheName) -> CacheCounters {
        let labels = CacheLabels { cache };
        CacheCounters {
            hits: self.cache_hits.get_or_create(&labels).clone(),
            misses: self.cache_misses.get_or_create(&labels).clone(),
        }
    }

    /// What the usage flush observes into.
    pub fn flush(&self) -> FlushMetrics {
        self.flush.clone()
    }

    /// The counter of change-channel re-subscriptions after a loss
    /// ([`crate::invalidation::listen_forever`]).
    pub fn notify_reconnects(&self) -> Counter {
        self.notify_reconnects.clone()
    }

    /// Sets whether the change channel is subscribed (and the caches on).
    pub fn notify_listening(&self, listening: bool) {
        self.notify_listening.set(i64::from(listening));
    }

    /// The counter of other instances' listeners cut off for not confirming a change
    /// ([`crate::invalidation::await_confirmations`]).
    pub fn notify_cut_off(&self) -> Counter {
        self.notify_cut_off.clone()
    }

    /// The text a scrape answers, with the pool as it is now.
    pub fn render(&self, pool: PoolUse) -> Result<String, std::fmt::Error> {
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle
            .set(i64::try_from(pool.idle).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
