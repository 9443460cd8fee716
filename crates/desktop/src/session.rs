//! The live session: the bearer this process holds for a server, restoring it from the
//! keyring after a restart, and renewing it when it expires.
//!
//! Invariants: one renewal at a time (a refresh token is spent by its use); each sign-in,
//! restore and renewal installs a new generation, so a request refused with an older bearer
//! knows the renewal already happened; a session the server ended leaves no local trace.

use std::future::Future;
use std::sync::atomic::Ordering;

use hubkey_client::{ClientError, HubClient};
use hubkey_keyring::SecretError;
use uuid::Uuid;

use crate::desktop::{lock, Desktop, LiveSession};
use crate::error::DesktopError;
use crate::hand_off::DockerEntry;
use crate::outcome::Account;
use crate::secrets::StoredSession;
use crate::server_url::ServerUrl;

impl LiveSession {
    /// The session `stored` describes, acting with `client` (which carries the bearer).
    pub(crate) fn of_stored(client: HubClient, stored: &StoredSession) -> Self {
        LiveSession {
            client,
            username: stored.username.clone(),
            auto_token_uuid: stored.auto_token_uuid,
            registry: stored.registry.clone(),
            docker_entry: stored.docker_entry.clone(),
            generation: 0,
        }
    }
}

impl Desktop {
    /// A client acting as the live session with `server`, for the screens that list and
    /// manage tokens; `None` before sign-in or restore.
    pub fn session_client(&self, server: &ServerUrl) -> Option<HubClient> {
        self.live(server).map(|live| live.client)
    }

    /// The uuid of the auto token this app made for the live session with `server`, so
    /// the Security screen can mark it "this device".
    pub fn session_auto_token(&self, server: &ServerUrl) -> Option<Uuid> {
        self.live(server).and_then(|live| live.auto_token_uuid)
    }

    /// The user name of the live session with `server`.
    pub fn session_username(&self, server: &ServerUrl) -> Option<String> {
        self.live(server).map(|live| live.username)
    }

    /// Runs `op` as the live session with `server` (its client and this device's auto
    /// token). The bearer lives 15 minutes: when the server refuses it, it is renewed once
    /// with the keyring's refresh token and `op` runs again. Only an `op` the server refuses
    /// before doing anything may be passed (any single API call is).
    pub async fn with_session<T, F, Fut>(
        &self,
        server: &ServerUrl,
        op: F,
    ) -> Result<T, DesktopError>
    where
        F: Fn(HubClient, Option<Uuid>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        let live = self.live(server).ok_or(DesktopError::SessionEnded)?;
        match op(live.client, live.auto_token_uuid).await {
            Err(ClientError::Unauthorized { .. } | ClientError::SessionRevoked) => {}
            answer => return answer.map_err(|err| DesktopError::from_client(server.as_str(), err)),
        }
        self.renew(server, live.generation).await?;
        let live = self.live(server).ok_or(DesktopError::SessionEnded)?;
        op(live.client, live.auto_token_uuid)
            .await
            .map_err(|err| DesktopError::from_client(server.as_str(), err))
    }

    /// Replaces the bearer of generation `stale` with a fresh one, unless another request
    /// already did. A session the server ended is [`DesktopError::SessionEnded`], or
    /// [`DesktopError::SessionRevoked`] when it ended it for a reused refresh token (and its
    /// local traces are gone, see [`Desktop::restore`]).
    async fn renew(&self, server: &ServerUrl, stale: u64) -> Result<(), DesktopError> {
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

    pub(crate) fn live(&self, server: &ServerUrl) -> Option<LiveSession> {
        lock(&self.live).get(server).cloned()
    }

    /// Makes `live` the session with `server`, as a new generation.
    pub(crate) fn install_live(&self, server: &ServerUrl, mut live: LiveSession) {
        live.generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.live).insert(server.clone(), live);
    }

    /// Records who wrote the `config.json` entry of the live session with `server`.
    pub(crate) fn set_live_docker_entry(&self, server: &ServerUrl, docker_entry: DockerEntry) {
        if let Some(live) = lock(&self.live).get_mut(server) {
            live.docker_entry = docker_entry;
        }
    }

    /// Makes `uuid` the auto token of the live session with `server` (after its rotation).
    pub(crate) fn set_live_auto_token(&self, server: &ServerUrl, uuid: Uuid) {
        if let Some(live) = lock(&self.live).get_mut(server) {
            live.auto_token_uuid = Some(uuid);
        }
    }

    /// Forgets the live session with `server` (the bearer is dropped, nothing else).
    pub(crate) fn drop_live(&self, server: &ServerUrl) -> Option<LiveSession> {
        self.forget_activity(server);
        self.forget_unconfirmed(server);
        self.forget_kept_list(server);
        lock(&self.live).remove(server)
    }

    /// The account of this instance's live session with `server`, for a window made again
    /// while the app stayed signed in (in the tray): what [`Desktop::restore`] answers, from
    /// what the core holds, without refreshing the session or reading the keyring. The
    /// docker CLI hand-off is checked again as a restore does; only when that rewrites the
    /// `config.json` entry is the new record saved with the session. `Ok(None)` when there
    /// is no live session (the caller restores from the keyring instead).
    pub async fn resume(&self, server: &ServerUrl) -> Result<Option<Account>, DesktopError> {
        let Some(live) = self.live(server) else {
            return Ok(None);
        };
        let (docker_hand_off, docker_entry) =
            self.hand_off(live.registry.as_deref(), Some(&live.docker_entry));
        if let Some(entry) = docker_entry.filter(|entry| *entry != live.docker_entry) {
            if let Some(mut stored) = self.read_session(server).await? {
                stored.docker_entry = entry.clone();
                self.save_session(server, &stored).await?;
            }
            self.set_live_docker_entry(server, entry);
        }
        Ok(Some(Account {
            server_url: server.clone(),
            username: live.username,
            registry: live.registry,
            docker_hand_off,
        }))
    }

    /// Brings back the session kept in the keyring after a restart: `Ok(None)` when there is
    /// none. The session is refreshed (and the new refresh token stored); when the server
    /// says it has ended, every local trace (keyring entries, `config.json` entry) is removed
    /// and the answer is [`DesktopError::SessionEnded`] ([`DesktopError::SessionRevoked`]
    /// when the server revoked it because its refresh token was used twice). Other failures
    /// (an unreachable server) keep everything for a later try. The hand-off is applied again, so a
    /// `config.json` fixed since sign-in is set up now.
    pub async fn restore(&self, server: &ServerUrl) -> Result<Option<Account>, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        let stored = match self.read_session(server).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            Err(SecretError::Corrupt(_)) => {
                // Nothing usable to refresh; what it pointed at is unknown.
                self.erase_local(server, None, &DockerEntry::NotWritten)
                    .await;
                return Err(DesktopError::SessionEnded);
            }
            Err(err) => return Err(err.into()),
        };
        let Some(refresh_token) = stored.refresh_token.as_deref() else {
            self.erase_local(server, stored.registry.as_deref(), &stored.docker_entry)
                .await;
            return Err(DesktopError::SessionEnded);
        };
        let client = self.client(server)?;
        let session = match client.refresh(refresh_token).await {
            Ok(session) => session,
            Err(err @ (ClientError::Unauthorized { .. } | ClientError::SessionRevoked)) => {
                self.erase_local(server, stored.registry.as_deref(), &stored.docker_entry)
                    .await;
                self.drop_live(server);
                // Revoked for a reuse of its refresh token: the person is told why.
                return Err(DesktopError::from_client(server.as_str(), err));
            }
            Err(err) => return Err(DesktopError::from_client(server.as_str(), err)),
        };
        crate::entry_bounds::check_refresh_token(
            server.as_str(),
            session.refresh_token.as_deref(),
        )?;
        let (docker_hand_off, docker_entry) =
            self.hand_off(stored.registry.as_deref(), Some(&stored.docker_entry));
        let renewed = StoredSession {
            server_url: server.to_string(),
            username: stored.username.clone(),
            refresh_token: session.refresh_token.clone(),
            auto_token_uuid: stored.auto_token_uuid,
            registry: stored.registry.clone(),
            docker_entry: docker_entry.unwrap_or_else(|| stored.docker_entry.clone()),
        };
        self.save_session(server, &renewed).await?;
        let live = LiveSession::of_stored(client.with_token(session.token.clone()), &renewed);
        self.install_live(server, live);
        Ok(Some(Account {
            server_url: server.clone(),
            username: stored.username.clone(),
            registry: stored.registry.clone(),
            docker_hand_off,
        }))
    }
}
