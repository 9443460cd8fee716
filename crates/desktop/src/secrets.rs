//! What the core keeps in the keyring for a server: the session entry (`session:<server>`,
//! JSON with the refresh token) and, through [`hubkey_keyring::docker`], the docker
//! credential the helper hands out.
//!
//! Invariants: the keyring is only called on blocking threads, as a Secret Service call can
//! hang until its timeout; the refresh token is wiped from memory on drop and never printed;
//! the session entry is rewritten after every refresh, since refresh tokens are single use.

use std::sync::Arc;

use hubkey_keyring::{docker, SecretError, SecretStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::desktop::Desktop;
use crate::docker_config::DockerConfigError;
use crate::error::DesktopError;
use crate::hand_off::DockerEntry;
use crate::outcome::{Leftover, SignOutStep};
use crate::server_url::ServerUrl;

/// Prefix of the keyring account that holds a server's session.
pub const SESSION_ACCOUNT_PREFIX: &str = "session:";

/// The keyring account of the session with `server`.
pub fn session_account(server: &ServerUrl) -> String {
    format!("{SESSION_ACCOUNT_PREFIX}{server}")
}

/// The session as kept in the keyring, as JSON. The refresh token is wiped on drop and never
/// printed.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub(crate) server_url: String,
    pub(crate) username: String,
    /// Absent when the hub gives no refresh tokens (Docker Hub): then the session cannot
    /// outlive the app.
    pub(crate) refresh_token: Option<String>,
    pub(crate) auto_token_uuid: Option<Uuid>,
    pub(crate) registry: Option<String>,
    /// Who wrote the registry's `config.json` entry; absent in sessions kept by earlier
    /// versions.
    #[serde(default)]
    pub(crate) docker_entry: DockerEntry,
}

impl Drop for StoredSession {
    fn drop(&mut self) {
        self.refresh_token.zeroize();
    }
}

impl Desktop {
    /// The session entry of `server`; an entry that is not ours is `Corrupt`.
    pub(crate) async fn read_session(
        &self,
        server: &ServerUrl,
    ) -> Result<Option<StoredSession>, SecretError> {
        let account = session_account(server);
        let Some(text) = self.keyring(move |store| store.get(&account)).await? else {
            return Ok(None);
        };
        serde_json::from_str::<StoredSession>(text.expose())
            .map(Some)
            .map_err(|_| {
                SecretError::Corrupt(format!(
                    "the entry {} is not a hubkey session",
                    session_account(server)
                ))
            })
    }

    /// Writes the session entry of `server`.
    pub(crate) async fn save_session(
        &self,
        server: &ServerUrl,
        stored: &StoredSession,
    ) -> Result<(), DesktopError> {
        let json = serde_json::to_string(stored).map_err(|err| DesktopError::ServerError {
            status: None,
            message: format!("cannot encode the session: {err}"),
        })?;
        let json = Zeroizing::new(json);
        let account = session_account(server);
        self.keyring(move |store| store.set(&account, &json))
            .await
            .map_err(DesktopError::from)
    }

    /// Stores `token` as the docker credential of `username` on `registry`.
    pub(crate) async fn save_docker_credential(
        &self,
        registry: &str,
        username: &str,
        token: Zeroizing<String>,
    ) -> Result<(), SecretError> {
        let (registry, username) = (registry.to_owned(), username.to_owned());
        self.keyring(move |store| docker::store(store, &registry, &username, &token))
            .await
    }

    /// Erases the session entry and the docker credential of `registry`, and undoes what
    /// hubkey did to its `config.json` entry, as `docker_entry` records; returns what failed.
    pub(crate) async fn erase_local(
        &self,
        server: &ServerUrl,
        registry: Option<&str>,
        docker_entry: &DockerEntry,
    ) -> Vec<Leftover> {
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
            let released = match docker_entry.to_restore() {
                Some(previous) => self.docker_config.release(registry, previous).map(|_| ()),
                None => Ok(()),
            };
            if let Err(err) = released {
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
        let account = session_account(server);
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
}
