//! The desktop flows: sign in (with a second factor when asked), the silent provisioning of
//! the auto token, restoring the session after a restart, and signing out.
//!
//! Invariants: the auto token's plaintext goes from the server's answer into the keyring and
//! nowhere else; the session's refresh token lives in the keyring (entry `session:<server>`)
//! and is rewritten after every refresh, since refresh tokens are single use; the keyring is
//! only called on blocking threads, as a Secret Service call can hang until its timeout.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hubkey_api::{DesktopGenerateRequest, LoginResponse};
use hubkey_client::{ClientError, HubClient, LoginOutcome};
use hubkey_keyring::{docker, SecretError, SecretStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::docker_config::{DockerConfig, DockerConfigError, HELPER};
use crate::error::DesktopError;

/// The address of Docker Hub, which has no discovery document.
pub const DOCKER_HUB: &str = "https://hub.docker.com";
/// The registry name the docker CLI uses for Docker Hub's credentials.
pub const DOCKER_HUB_REGISTRY: &str = "https://index.docker.io/v1/";
/// The client name the auto token is created with (part of its label on the server).
pub const CLIENT_NAME: &str = "hubkey";
/// Prefix of the keyring account that holds a server's session.
pub const SESSION_ACCOUNT_PREFIX: &str = "session:";

/// The keyring account of the session with `server_url` (as [`canonical_server_url`] gives it).
pub fn session_account(server_url: &str) -> String {
    format!("{SESSION_ACCOUNT_PREFIX}{server_url}")
}

/// The server address as the core keys it: checked, and without a trailing `/`, so that
/// `http://h:1` and `http://h:1/` are one server.
pub fn canonical_server_url(server_url: &str) -> Result<String, DesktopError> {
    let trimmed = server_url.trim();
    let client = HubClient::new(trimmed).map_err(|err| DesktopError::from_client(trimmed, err))?;
    Ok(client.base_url().trim_end_matches('/').to_owned())
}

/// The result of the password step.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SignInStep {
    /// Signed in and provisioned.
    SignedIn(Account),
    /// The account has two-factor authentication: call [`Desktop::submit_code`] with the
    /// authenticator's current code. The challenge stays in the core.
    CodeRequired,
}

/// A signed-in account, as the UI shows it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    /// The server, as [`canonical_server_url`] gives it.
    pub server_url: String,
    /// The account's user name.
    pub username: String,
    /// The registry the auto token is for, when the hub announces one.
    pub registry: Option<String>,
    /// Whether the docker CLI was pointed at the token.
    pub docker_hand_off: HandOff,
}

/// Whether the docker CLI now uses the auto token.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HandOff {
    /// `config.json` sends `registry`'s credentials to `docker-credential-hubkey`.
    Done {
        /// The registry host.
        registry: String,
        /// The file that says so.
        config_path: PathBuf,
    },
    /// The docker CLI was not set up; the sign-in itself succeeded.
    Skipped {
        /// Why, for the UI to branch on.
        reason: SkipReason,
        /// Why, for a person.
        message: String,
    },
}

/// Why the docker hand-off was skipped.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The hub announces no registry, so there is nothing to point the docker CLI at.
    NoRegistry,
    /// `config.json` does not parse; it was left untouched.
    DockerConfigUnparsable,
    /// `config.json` could not be written.
    DockerConfigUnwritable,
}

/// What [`Desktop::sign_out`] could not do; local entries are always cleaned when possible.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SignOutReport {
    /// The steps that failed, with why.
    pub not_done: Vec<Leftover>,
}

/// One sign-out step that failed.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leftover {
    /// Which step.
    pub step: SignOutStep,
    /// Why, for a person.
    pub message: String,
}

/// The steps of a sign-out.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOutStep {
    /// Deleting this device's auto token on the server.
    DeleteAutoToken,
    /// Ending the session on the server.
    RevokeSession,
    /// Erasing the docker credential from the keyring.
    EraseDockerCredential,
    /// Erasing the session from the keyring.
    EraseSession,
    /// Removing the `credHelpers` entry from `config.json`.
    DockerConfig,
}

/// The session as kept in the keyring, as JSON. The refresh token is wiped on drop and never
/// printed.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    server_url: String,
    username: String,
    /// Absent when the hub gives no refresh tokens (Docker Hub): then the session cannot
    /// outlive the app.
    refresh_token: Option<String>,
    auto_token_uuid: Option<Uuid>,
    registry: Option<String>,
}

impl Drop for StoredSession {
    fn drop(&mut self) {
        self.refresh_token.zeroize();
    }
}

/// A session this process holds: its bearer client and what sign-out needs.
#[derive(Clone)]
struct LiveSession {
    client: HubClient,
    username: String,
    auto_token_uuid: Option<Uuid>,
    registry: Option<String>,
    /// Which bearer this is: each sign-in, restore and renewal installs a new one, so a
    /// request refused with an older bearer knows the renewal already happened.
    generation: u64,
}

/// A password step waiting for its code.
struct PendingCode {
    server_url: String,
    username: String,
    challenge: Zeroizing<String>,
}

/// The desktop app's core: one secret store, one docker `config.json`, one device name.
/// Methods take `&self`; the state is behind short-lived locks, never held across a request.
pub struct Desktop {
    store: Arc<dyn SecretStore>,
    docker_config: DockerConfig,
    device_name: String,
    timeout: Duration,
    pending: Mutex<Option<PendingCode>>,
    live: Mutex<HashMap<String, LiveSession>>,
    /// The last [`LiveSession::generation`] handed out.
    generations: AtomicU64,
    /// Held while a bearer is renewed: a refresh token is spent by its use, so two renewals
    /// at once would make the second look like an ended session.
    renewing: tokio::sync::Mutex<()>,
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
            pending: Mutex::new(None),
            live: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// Gives up on each request to the hub after `timeout` (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Which secret store holds the secrets, for the Settings screen.
    pub fn store_description(&self) -> String {
        self.store.describe()
    }

    /// The docker `config.json` this core edits.
    pub fn docker_config_path(&self) -> PathBuf {
        self.docker_config.path().to_path_buf()
    }

    /// A client acting as the live session with `server_url`, for the screens that list and
    /// manage tokens; `None` before sign-in or restore.
    pub fn session_client(&self, server_url: &str) -> Option<HubClient> {
        let server_url = canonical_server_url(server_url).ok()?;
        lock(&self.live)
            .get(&server_url)
            .map(|live| live.client.clone())
    }

    /// The uuid of the auto token this app made for the live session with `server_url`, so
    /// the Security screen can mark it "this device".
    pub fn session_auto_token(&self, server_url: &str) -> Option<Uuid> {
        let server_url = canonical_server_url(server_url).ok()?;
        lock(&self.live)
            .get(&server_url)
            .and_then(|live| live.auto_token_uuid)
    }

    /// The user name of the live session with `server_url`.
    pub fn session_username(&self, server_url: &str) -> Option<String> {
        let server_url = canonical_server_url(server_url).ok()?;
        self.live(&server_url).map(|live| live.username)
    }

    /// Runs `op` as the live session with `server_url` (its client and this device's auto
    /// token). The bearer lives 15 minutes: when the server refuses it, it is renewed once
    /// with the keyring's refresh token and `op` runs again. Only an `op` the server refuses
    /// before doing anything may be passed (any single API call is).
    pub async fn with_session<T, F, Fut>(&self, server_url: &str, op: F) -> Result<T, DesktopError>
    where
        F: Fn(HubClient, Option<Uuid>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let server = canonical_server_url(server_url)?;
        let live = self.live(&server).ok_or(DesktopError::SessionEnded)?;
        match op(live.client, live.auto_token_uuid).await {
            Err(ClientError::Unauthorized { .. }) => {}
            answer => return answer.map_err(|err| DesktopError::from_client(&server, err)),
        }
        self.renew(&server, live.generation).await?;
        let live = self.live(&server).ok_or(DesktopError::SessionEnded)?;
        op(live.client, live.auto_token_uuid)
            .await
            .map_err(|err| DesktopError::from_client(&server, err))
    }

    /// Replaces the bearer of generation `stale` with a fresh one, unless another request
    /// already did. A session the server ended is [`DesktopError::SessionEnded`] (and its
    /// local traces are gone, see [`Desktop::restore`]).
    async fn renew(&self, server: &str, stale: u64) -> Result<(), DesktopError> {
        let _one_at_a_time = self.renewing.lock().await;
        let current = self.live(server).map(|live| live.generation);
        if current.is_some_and(|generation| generation != stale) {
            return Ok(());
        }
        match self.restore(server).await? {
            Some(_) => Ok(()),
            None => Err(DesktopError::SessionEnded),
        }
    }

    fn live(&self, server: &str) -> Option<LiveSession> {
        lock(&self.live).get(server).cloned()
    }

    /// Makes `live` the session with `server`, as a new generation.
    fn install_live(&self, server: &str, mut live: LiveSession) {
        live.generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.live).insert(server.to_owned(), live);
    }

    /// The password step. With a second factor on, the answer is
    /// [`SignInStep::CodeRequired`] and the challenge waits in the core for
    /// [`Desktop::submit_code`]; otherwise the account is provisioned (see
    /// [`Desktop::submit_code`]) and returned.
    pub async fn sign_in(
        &self,
        server_url: &str,
        username: &str,
        password: &str,
    ) -> Result<SignInStep, DesktopError> {
        let server_url = canonical_server_url(server_url)?;
        let username = username.trim();
        if username.is_empty() || password.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter your user name and your password.".into(),
            });
        }
        let client = self.client(&server_url)?;
        *lock(&self.pending) = None;
        // A keyring that cannot be used is said before the password goes anywhere.
        match self.read_session(&server_url).await {
            Ok(_) | Err(SecretError::Corrupt(_)) => {}
            Err(err) => return Err(err.into()),
        }
        let outcome = client
            .login(username, password)
            .await
            .map_err(|err| match err {
                ClientError::Unauthorized { .. } => DesktopError::WrongCredentials,
                err => DesktopError::from_client(&server_url, err),
            })?;
        match outcome {
            LoginOutcome::Session(session) => {
                let account = self
                    .provision(&server_url, &client, username, session)
                    .await?;
                Ok(SignInStep::SignedIn(account))
            }
            LoginOutcome::SecondFactor { login_2fa_token } => {
                *lock(&self.pending) = Some(PendingCode {
                    server_url,
                    username: username.to_owned(),
                    challenge: Zeroizing::new(login_2fa_token),
                });
                Ok(SignInStep::CodeRequired)
            }
        }
    }

    /// The code step. A wrong code is [`DesktopError::WrongCode`] and the challenge stays for
    /// another try; an expired challenge is [`DesktopError::SessionEnded`] (start over).
    ///
    /// Once signed in, silently: the auto token is generated for this device, stored as the
    /// docker credential of the hub's registry, the session is stored in the keyring, and
    /// `config.json` points the registry at `docker-credential-hubkey`. A keyring failure
    /// undoes the sign-in on the server and is the error; a `config.json` that cannot be
    /// changed only skips the hand-off ([`HandOff::Skipped`]).
    pub async fn submit_code(&self, code: &str) -> Result<Account, DesktopError> {
        let (server_url, username, challenge) = {
            let pending = lock(&self.pending);
            let Some(pending) = pending.as_ref() else {
                return Err(DesktopError::InvalidInput {
                    message: "No sign-in is waiting for a code; sign in with your password first."
                        .into(),
                });
            };
            (
                pending.server_url.clone(),
                pending.username.clone(),
                pending.challenge.clone(),
            )
        };
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter the code from your authenticator app.".into(),
            });
        }
        let client = self.client(&server_url)?;
        let session = match client.login_2fa(&challenge, &code).await {
            Ok(session) => session,
            Err(ClientError::Unauthorized { message }) if message.contains("challenge") => {
                *lock(&self.pending) = None;
                return Err(DesktopError::SessionEnded);
            }
            Err(ClientError::Unauthorized { .. }) => return Err(DesktopError::WrongCode),
            Err(err) => return Err(DesktopError::from_client(&server_url, err)),
        };
        *lock(&self.pending) = None;
        self.provision(&server_url, &client, &username, session)
            .await
    }

    /// Brings back the session kept in the keyring after a restart: `Ok(None)` when there is
    /// none. The session is refreshed (and the new refresh token stored); when the server
    /// says it has ended, every local trace (keyring entries, `config.json` entry) is removed
    /// and the answer is [`DesktopError::SessionEnded`]. Other failures (an unreachable
    /// server) keep everything for a later try. The hand-off is applied again, so a
    /// `config.json` fixed since sign-in is set up now.
    pub async fn restore(&self, server_url: &str) -> Result<Option<Account>, DesktopError> {
        let server_url = canonical_server_url(server_url)?;
        let stored = match self.read_session(&server_url).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            Err(SecretError::Corrupt(_)) => {
                // Nothing usable to refresh; what it pointed at is unknown.
                self.erase_local(&server_url, None).await;
                return Err(DesktopError::SessionEnded);
            }
            Err(err) => return Err(err.into()),
        };
        let Some(refresh_token) = stored.refresh_token.as_deref() else {
            self.erase_local(&server_url, stored.registry.as_deref())
                .await;
            return Err(DesktopError::SessionEnded);
        };
        let client = self.client(&server_url)?;
        let session = match client.refresh(refresh_token).await {
            Ok(session) => session,
            Err(ClientError::Unauthorized { .. }) => {
                self.erase_local(&server_url, stored.registry.as_deref())
                    .await;
                lock(&self.live).remove(&server_url);
                return Err(DesktopError::SessionEnded);
            }
            Err(err) => return Err(DesktopError::from_client(&server_url, err)),
        };
        let live = LiveSession {
            client: client.with_token(session.token.clone()),
            username: stored.username.clone(),
            auto_token_uuid: stored.auto_token_uuid,
            registry: stored.registry.clone(),
            generation: 0,
        };
        let renewed = StoredSession {
            server_url: server_url.clone(),
            username: stored.username.clone(),
            refresh_token: session.refresh_token.clone(),
            auto_token_uuid: stored.auto_token_uuid,
            registry: stored.registry.clone(),
        };
        self.save_session(&renewed).await?;
        let docker_hand_off = self.hand_off(live.registry.as_deref());
        self.install_live(&server_url, live);
        Ok(Some(Account {
            server_url,
            username: stored.username.clone(),
            registry: stored.registry.clone(),
            docker_hand_off,
        }))
    }

    /// Signs out of `server_url`: deletes this device's auto token on the server (already
    /// gone is fine) and ends the session there, then erases the keyring entries (session
    /// and docker credential) and the `config.json` entry. Server failures do not stop the
    /// local cleanup; the report lists every step that could not be done. Only a keyring
    /// that cannot even be read is an error, as then nothing is known about what to clean.
    pub async fn sign_out(&self, server_url: &str) -> Result<SignOutReport, DesktopError> {
        let server_url = canonical_server_url(server_url)?;
        *lock(&self.pending) = None;
        let mut report = SignOutReport::default();
        let live = lock(&self.live).remove(&server_url);
        let stored = match self.read_session(&server_url).await {
            Ok(stored) => stored,
            Err(SecretError::Corrupt(_)) => None,
            Err(err) if live.is_some() => {
                report.not_done.push(Leftover {
                    step: SignOutStep::EraseSession,
                    message: DesktopError::from(err).to_string(),
                });
                None
            }
            Err(err) => return Err(err.into()),
        };
        let mut live = match (live, &stored) {
            (Some(live), _) => Some(live),
            (None, Some(stored)) => self.reopen(&server_url, stored, &mut report).await,
            (None, None) => None,
        };
        let auto_token = live
            .as_ref()
            .and_then(|live| Some((live.client.clone(), live.auto_token_uuid?)));
        if let Some((client, uuid)) = auto_token {
            let mut deleted = client.delete_token(uuid).await;
            // The bearer of a long-lived app may have expired; the refresh token still works.
            if let (Err(ClientError::Unauthorized { .. }), Some(stored)) = (&deleted, &stored) {
                live = self.reopen(&server_url, stored, &mut report).await;
                if let Some(live) = &live {
                    deleted = live.client.delete_token(uuid).await;
                }
            }
            match deleted {
                Ok(()) | Err(ClientError::NotFound { .. }) => {}
                Err(err) => report.not_done.push(Leftover {
                    step: SignOutStep::DeleteAutoToken,
                    message: DesktopError::from_client(&server_url, err).to_string(),
                }),
            }
        }
        if let Some(live) = &live {
            match live.client.logout().await {
                Ok(()) | Err(ClientError::Unauthorized { .. }) => {}
                Err(err) => report.not_done.push(Leftover {
                    step: SignOutStep::RevokeSession,
                    message: DesktopError::from_client(&server_url, err).to_string(),
                }),
            }
        }
        let registry = live
            .as_ref()
            .and_then(|live| live.registry.clone())
            .or_else(|| stored.as_ref().and_then(|stored| stored.registry.clone()));
        report
            .not_done
            .extend(self.erase_local(&server_url, registry.as_deref()).await);
        Ok(report)
    }

    /// A bearer for a stored session this process has not opened (sign-out before restore).
    async fn reopen(
        &self,
        server_url: &str,
        stored: &StoredSession,
        report: &mut SignOutReport,
    ) -> Option<LiveSession> {
        let refresh_token = stored.refresh_token.as_deref()?;
        let client = self.client(server_url).ok()?;
        match client.refresh(refresh_token).await {
            Ok(session) => Some(LiveSession {
                client: client.with_token(session.token.clone()),
                username: stored.username.clone(),
                auto_token_uuid: stored.auto_token_uuid,
                registry: stored.registry.clone(),
                generation: 0,
            }),
            // The session already ended; the auto token will be pruned by the server.
            Err(ClientError::Unauthorized { .. }) => None,
            Err(err) => {
                report.not_done.push(Leftover {
                    step: SignOutStep::DeleteAutoToken,
                    message: DesktopError::from_client(server_url, err).to_string(),
                });
                None
            }
        }
    }

    /// The silent part of a sign-in; undoes the server side when the keyring fails.
    async fn provision(
        &self,
        server_url: &str,
        anonymous: &HubClient,
        username: &str,
        session: LoginResponse,
    ) -> Result<Account, DesktopError> {
        let client = anonymous.with_token(session.token.clone());
        // Before anything is created: an auto token made for a keyring that then fails
        // would still have pruned another device's oldest auto token.
        let previous = match self.previous_auto_token(server_url, username).await {
            Ok(previous) => previous,
            Err(err) => {
                let _ = client.logout().await;
                return Err(err.into());
            }
        };
        let (registry, no_registry) = self.discover_registry(server_url, &client).await;
        let generated = match &registry {
            Some(_) => {
                let request = DesktopGenerateRequest {
                    client_name: Some(CLIENT_NAME.to_owned()),
                    device_name: Some(self.device_name.clone()),
                };
                match client.desktop_generate(Some(&request)).await {
                    Ok(response) => Some(response.data),
                    Err(err) => {
                        let _ = client.logout().await;
                        return Err(DesktopError::from_client(server_url, err));
                    }
                }
            }
            None => None,
        };
        let auto_token_uuid = generated.as_ref().map(|generated| generated.uuid);

        let stored = StoredSession {
            server_url: server_url.to_owned(),
            username: username.to_owned(),
            refresh_token: session.refresh_token.clone(),
            auto_token_uuid,
            registry: registry.clone(),
        };
        let saved = match (&registry, generated) {
            (Some(registry), Some(generated)) => {
                let token = Zeroizing::new(generated.token);
                let (registry, username) = (registry.clone(), username.to_owned());
                self.keyring(move |store| docker::store(store, &registry, &username, &token))
                    .await
            }
            _ => Ok(()),
        };
        let saved = match saved {
            Ok(()) => self.save_session(&stored).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = saved {
            if let Some(uuid) = auto_token_uuid {
                let _ = client.delete_token(uuid).await;
            }
            let _ = client.logout().await;
            return Err(err);
        }
        if let Some(previous) = previous.filter(|previous| Some(*previous) != auto_token_uuid) {
            // The auto token of an earlier sign-in of this account on this device.
            let _ = client.delete_token(previous).await;
        }

        let docker_hand_off = match &registry {
            Some(registry) => self.hand_off(Some(registry)),
            None => HandOff::Skipped {
                reason: SkipReason::NoRegistry,
                message: no_registry,
            },
        };
        self.install_live(
            server_url,
            LiveSession {
                client,
                username: username.to_owned(),
                auto_token_uuid,
                registry: registry.clone(),
                generation: 0,
            },
        );
        Ok(Account {
            server_url: server_url.to_owned(),
            username: username.to_owned(),
            registry,
            docker_hand_off,
        })
    }

    /// The registry the hub's tokens are for, or why there is none.
    async fn discover_registry(
        &self,
        server_url: &str,
        client: &HubClient,
    ) -> (Option<String>, String) {
        if is_docker_hub(server_url) {
            return (Some(DOCKER_HUB_REGISTRY.to_owned()), String::new());
        }
        match client.info().await {
            Ok(info) => match info.registry_host.filter(|host| !host.trim().is_empty()) {
                Some(host) => (Some(host), String::new()),
                None => (
                    None,
                    format!("{server_url} announces no registry, so the docker CLI was not set up."),
                ),
            },
            Err(err) => (
                None,
                format!(
                    "{server_url} does not say which registry its tokens are for ({}), so the docker CLI was not set up.",
                    DesktopError::from_client(server_url, err)
                ),
            ),
        }
    }

    /// The auto token of an earlier session of the same account here, to delete it. Reading
    /// the keyring also proves it is usable before anything is created on the server.
    async fn previous_auto_token(
        &self,
        server_url: &str,
        username: &str,
    ) -> Result<Option<Uuid>, SecretError> {
        let stored = match self.read_session(server_url).await {
            Ok(stored) => stored,
            Err(SecretError::Corrupt(_)) => None,
            Err(err) => return Err(err),
        };
        let live = lock(&self.live)
            .get(server_url)
            .map(|live| (live.username.clone(), live.auto_token_uuid));
        let earlier = live.or_else(|| {
            stored
                .as_ref()
                .map(|stored| (stored.username.clone(), stored.auto_token_uuid))
        });
        Ok(earlier
            .filter(|(earlier_user, _)| earlier_user == username)
            .and_then(|(_, uuid)| uuid))
    }

    /// The session entry of `server_url`; an entry that is not ours is `Corrupt`.
    async fn read_session(&self, server_url: &str) -> Result<Option<StoredSession>, SecretError> {
        let account = session_account(server_url);
        let Some(text) = self.keyring(move |store| store.get(&account)).await? else {
            return Ok(None);
        };
        serde_json::from_str::<StoredSession>(text.expose())
            .map(Some)
            .map_err(|_| {
                SecretError::Corrupt(format!(
                    "the entry {} is not a hubkey session",
                    session_account(server_url)
                ))
            })
    }

    /// Points the docker CLI at `registry`; a `config.json` that cannot be changed is
    /// reported, not an error.
    fn hand_off(&self, registry: Option<&str>) -> HandOff {
        let Some(registry) = registry else {
            return HandOff::Skipped {
                reason: SkipReason::NoRegistry,
                message: "The hub announces no registry, so the docker CLI was not set up.".into(),
            };
        };
        match self.docker_config.point_at_helper(registry, HELPER) {
            Ok(_) => HandOff::Done {
                registry: registry.to_owned(),
                config_path: self.docker_config.path().to_path_buf(),
            },
            Err(err @ DockerConfigError::Unparsable { .. }) => HandOff::Skipped {
                reason: SkipReason::DockerConfigUnparsable,
                message: DesktopError::from(err).to_string(),
            },
            Err(err @ DockerConfigError::Io { .. }) => HandOff::Skipped {
                reason: SkipReason::DockerConfigUnwritable,
                message: format!("The docker CLI was not set up: {err}."),
            },
        }
    }

    /// Writes the session entry.
    async fn save_session(&self, stored: &StoredSession) -> Result<(), DesktopError> {
        let json = serde_json::to_string(stored).map_err(|err| DesktopError::ServerError {
            status: None,
            message: format!("cannot encode the session: {err}"),
        })?;
        let json = Zeroizing::new(json);
        let account = session_account(&stored.server_url);
        self.keyring(move |store| store.set(&account, &json))
            .await
            .map_err(DesktopError::from)
    }

    /// Erases the session entry, the docker credential of `registry` and its `config.json`
    /// entry; returns what failed.
    async fn erase_local(&self, server_url: &str, registry: Option<&str>) -> Vec<Leftover> {
        let mut not_done = Vec::new();
        if let Some(registry) = registry {
            let owned = registry.to_owned();
            if let Err(err) = self
                .keyring(move |store| docker::erase(store, &owned))
                .await
            {
                not_done.push(Leftover {
                    step: SignOutStep::EraseDockerCredential,
                    message: DesktopError::from(err).to_string(),
                });
            }
            if let Err(err) = self.docker_config.remove_helper(registry) {
                not_done.push(Leftover {
                    step: SignOutStep::DockerConfig,
                    message: match err {
                        DockerConfigError::Unparsable { path } => format!(
                            "{} does not parse, so its entry for {registry} was left in place.",
                            path.display()
                        ),
                        err => err.to_string(),
                    },
                });
            }
        }
        let account = session_account(server_url);
        if let Err(err) = self.keyring(move |store| store.delete(&account)).await {
            not_done.push(Leftover {
                step: SignOutStep::EraseSession,
                message: DesktopError::from(err).to_string(),
            });
        }
        not_done
    }

    /// Runs a keyring call on a blocking thread.
    async fn keyring<T, F>(&self, call: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn SecretStore) -> Result<T, SecretError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .unwrap_or_else(|_| Err(SecretError::Other("the keyring call failed".into())))
    }

    fn client(&self, server_url: &str) -> Result<HubClient, DesktopError> {
        HubClient::builder(server_url)
            .user_agent(format!(
                "hubkey/{} ({})",
                env!("CARGO_PKG_VERSION"),
                self.device_name
            ))
            .timeout(self.timeout)
            .build()
            .map_err(|err| DesktopError::from_client(server_url, err))
    }
}

/// Whether `server_url` is Docker Hub, which has no discovery document.
fn is_docker_hub(server_url: &str) -> bool {
    server_url.trim_end_matches('/') == DOCKER_HUB
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_keyed_without_a_trailing_slash() {
        assert_eq!(
            canonical_server_url(" http://127.0.0.1:5080/ ").unwrap(),
            "http://127.0.0.1:5080"
        );
        assert_eq!(
            session_account(&canonical_server_url("https://hub.docker.com").unwrap()),
            "session:https://hub.docker.com"
        );
        assert!(is_docker_hub("https://hub.docker.com"));
        assert_eq!(
            canonical_server_url("hub.example").unwrap_err().code(),
            "invalid_input"
        );
    }

    #[test]
    fn account_serialises_for_the_ui() {
        let account = Account {
            server_url: "http://127.0.0.1:5080".into(),
            username: "ann".into(),
            registry: None,
            docker_hand_off: HandOff::Skipped {
                reason: SkipReason::NoRegistry,
                message: "none".into(),
            },
        };
        let json = serde_json::to_value(SignInStep::SignedIn(account)).unwrap();
        assert_eq!(json["step"], "signed_in");
        assert_eq!(json["docker_hand_off"]["state"], "skipped");
        assert_eq!(json["docker_hand_off"]["reason"], "no_registry");
        assert_eq!(
            serde_json::to_value(SignInStep::CodeRequired).unwrap(),
            serde_json::json!({"step": "code_required"})
        );
    }
}
