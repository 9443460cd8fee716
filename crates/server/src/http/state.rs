//! What every handler can reach: the hub, how the server is reached, and its clock.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};

use super::client_address::TrustedProxies;
use crate::clock::Clock;
use crate::hub::Hub;

/// How this server is reached, for links and the discovery document.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The URL clients reach this server at; else taken from each request's `Host`.
    pub public_url: Option<String>,
    /// The registry (`host:port`) that uses this server as its token server.
    pub registry_host: Option<String>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Shared, not cloned: axum clones the state for every request, and a `Hub` is some fifteen
    /// reference counts (3% of the token endpoint's CPU went to cloning and dropping them).
    pub hub: Arc<Hub>,
    public_url: Option<Arc<str>>,
    pub registry_host: Option<Arc<str>>,
    clock: Clock,
    sweep_interval: std::time::Duration,
    trusted_proxies: TrustedProxies,
    /// Whether the listener speaks TLS (links then start with `https://`).
    https: bool,
    /// GitHub's secret-scanning key set; without it the partner endpoint is off (404).
    secret_scanning: Option<Arc<crate::secret_scanning::PartnerKeys>>,
}

impl AppState {
    /// The state of a server on the system clock.
    pub fn new(hub: Hub, site: Site) -> Self {
        AppState {
            hub: Arc::new(hub),
            public_url: site
                .public_url
                .map(|url| Arc::from(url.trim_end_matches('/'))),
            registry_host: site.registry_host.map(Arc::from),
            clock: Clock::system(),
            sweep_interval: crate::session::SWEEP_INTERVAL,
            trusted_proxies: TrustedProxies::default(),
            https: false,
            secret_scanning: None,
        }
    }

    /// The same state on a TLS listener (when `https`): links taken from `Host` are
    /// `https://`.
    #[must_use]
    pub fn with_https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    /// The same state believing the forwarded headers of `proxies` (none by default: the
    /// TCP peer is the client).
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The proxies whose forwarded headers name the client.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    /// The same state answering GitHub's secret-scanning reports signed with `keys`.
    #[must_use]
    pub fn with_secret_scanning(mut self, keys: crate::secret_scanning::PartnerKeys) -> Self {
        self.secret_scanning = Some(Arc::new(keys));
        self
    }

    /// The secret-scanning key set, when the partner endpoint is on.
    pub fn secret_scanning(&self) -> Option<&crate::secret_scanning::PartnerKeys> {
        self.secret_scanning.as_deref()
    }

    /// The same state sweeping ended sessions every `interval` instead of
    /// [`crate::session::SWEEP_INTERVAL`] (tests turn the clock and want the sweep soon).
    #[must_use]
    pub fn with_sweep_interval(mut self, interval: std::time::Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The server's clock, for tasks that run beside the requests.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// How often ended sessions and expired challenges are swept.
    pub fn sweep_interval(&self) -> std::time::Duration {
        self.sweep_interval
    }

    /// The same state on another clock: tests run the server on a
    /// [`crate::clock::ManualClock`] instead of sleeping.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The `now` of a request.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The URL clients reach this server at, when configured.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The base of absolute links in answers.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| host.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{host}")
    }
}
