//! [`Desktop`], the core's one value: what it holds (the live sessions, a sign-in waiting
//! for its code) and the plumbing every feature shares (the hub client it builds, the
//! clock). The features add their own `impl Desktop` blocks, and depend on this module, never
//! it on them: `account.rs` (sign in, sign out), `session.rs` (the live session and its
//! renewal), `secrets.rs` (the keyring entries), `hand_off.rs` (the docker CLI), `tokens.rs`,
//! `kept_list.rs` and `export.rs` (the Security screen), `activity.rs` (the timeline and the token detail).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hubkey_client::HubClient;
use hubkey_keyring::SecretStore;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::docker_config::DockerConfig;
use crate::error::DesktopError;
use crate::hand_off::DockerEntry;
use crate::server_url::ServerUrl;
use hubkey_api::clock::Clock;

/// A session this process holds: its bearer client and what sign-out needs.
#[derive(Clone)]
pub(crate) struct LiveSession {
    pub(crate) client: HubClient,
    pub(crate) username: String,
    pub(crate) auto_token_uuid: Option<Uuid>,
    pub(crate) registry: Option<String>,
    /// Who wrote the registry's `config.json` entry (as the keyring's session says).
    pub(crate) docker_entry: DockerEntry,
    /// Which bearer this is: each sign-in, restore and renewal installs a new one, so a
    /// request refused with an older bearer knows the renewal already happened.
    pub(crate) generation: u64,
}

/// A password step waiting for its code.
pub(crate) struct PendingCode {
    pub(crate) server: ServerUrl,
    pub(crate) username: String,
    pub(crate) challenge: Zeroizing<String>,
    pub(crate) kept: KeptSignIn,
}

/// What the keyring said of an earlier sign-in to the server, read once at the password step.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptSignIn {
    /// Its user and auto token, for the new sign-in to delete that token when it is the same
    /// user.
    pub(crate) auto_token: Option<(String, Option<Uuid>)>,
    /// Its registry and who wrote that registry's `config.json` entry, which the new sign-in
    /// inherits when it hands off the same registry.
    pub(crate) docker_entry: Option<(String, DockerEntry)>,
}

/// The desktop app's core: one secret store, one docker `config.json`, one device name.
/// Methods take `&self`; the state is behind short-lived locks, never held across a request.
pub struct Desktop {
    pub(crate) store: Arc<dyn SecretStore>,
    pub(crate) docker_config: DockerConfig,
    pub(crate) device_name: String,
    timeout: Duration,
    clock: Clock,
    pub(crate) pending: Mutex<Option<PendingCode>>,
    /// A browser sign-in waiting for its approval ([`crate::device_sign_in`]).
    pub(crate) browser: Mutex<Option<crate::device_sign_in::PendingBrowser>>,
    pub(crate) live: Mutex<HashMap<ServerUrl, LiveSession>>,
    /// The last [`LiveSession::generation`] handed out.
    pub(crate) generations: AtomicU64,
    /// Held while a bearer is renewed: a refresh token is spent by its use, so two renewals
    /// at once would make the second look like an ended session.
    pub(crate) renewing: tokio::sync::Mutex<()>,
    /// What the Activity view and the token detail keep per server ([`crate::activity`]).
    pub(crate) activity: Mutex<HashMap<ServerUrl, crate::activity::ActivityState>>,
    /// The show-once value not confirmed copied yet, and its server ([`crate::unconfirmed`]).
    pub(crate) unconfirmed: Mutex<Option<(ServerUrl, crate::tokens::CreatedToken)>>,
    /// The last token list served per server, to paint before the server answers again
    /// ([`crate::kept_list`]).
    pub(crate) kept_lists: Mutex<HashMap<ServerUrl, crate::kept_list::KeptList>>,
    /// Requests of the core, and of the shell on its behalf, under way ([`Desktop::busy`]).
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Desktop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desktop")
            .field("store", &self.store.describe())
            .field("docker_config", &self.docker_config.path())
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

impl Desktop {
    /// A core over `store`, pointing the docker CLI through the `config.json` at
    /// `docker_config` (see [`crate::docker_config::config_path`]), naming its auto tokens
    /// after `device_name`.
    pub fn new(
        store: Arc<dyn SecretStore>,
        docker_config: impl Into<PathBuf>,
        device_name: impl Into<String>,
    ) -> Self {
        Self {
            store,
            docker_config: DockerConfig::new(docker_config),
            device_name: device_name.into(),
            timeout: hubkey_client::DEFAULT_TIMEOUT,
            clock: Clock::system(),
            pending: Mutex::new(None),
            browser: Mutex::new(None),
            live: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            renewing: tokio::sync::Mutex::new(()),
            activity: Mutex::new(HashMap::new()),
            unconfirmed: Mutex::new(None),
            kept_lists: Mutex::new(HashMap::new()),
            in_flight: Arc::default(),
        }
    }

    /// Gives up on each request to the hub after `timeout` (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reads the time from `clock` (default: the computer's), so tests can set it.
    pub fn with_clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Now, by this core's clock: what the shell passes to the watcher's poll.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Which secret store holds the secrets, for the Settings screen.
    pub fn store_description(&self) -> String {
        self.store.describe()
    }

    /// The docker `config.json` this core edits.
    pub fn docker_config_path(&self) -> PathBuf {
        self.docker_config.path().to_path_buf()
    }

    /// The User-Agent this app sends: its version and this device's name. The server records
    /// it on the tokens this app creates, so the watcher tells them from another device's.
    pub fn user_agent(&self) -> String {
        format!(
            "hubkey/{} ({})",
            env!("CARGO_PKG_VERSION"),
            self.device_name
        )
    }

    /// An anonymous client of `server`, sending this app and device as its user agent.
    pub(crate) fn client(&self, server: &ServerUrl) -> Result<HubClient, DesktopError> {
        HubClient::builder(server.as_str())
            .user_agent(self.user_agent())
            .timeout(self.timeout)
            .build()
            .map_err(|err| DesktopError::from_client(server.as_str(), err))
    }
}

/// Locks `mutex`; a panic elsewhere while it was held leaves data that is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
