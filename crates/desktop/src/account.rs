//! The account on this device: signing in (with a second factor when asked), the silent
//! provisioning that follows (discovery document, `desktop-generate`, the auto token and
//! the session into the keyring, the docker hand-off), and signing out.
//!
//! Invariants: the auto token's plaintext goes from the server's answer into the keyring and
//! nowhere else; the keyring is read once per sign-in, before the password goes anywhere, so
//! a keyring that cannot be used is said first and nothing is created on the server for it.

use hubkey_api::{DesktopGenerateRequest, LoginResponse};
use hubkey_client::{ClientError, HubClient, LoginOutcome};
use hubkey_keyring::SecretError;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::desktop::{lock, Desktop, KeptSignIn, LiveSession, PendingCode};
use crate::entry_bounds;
use crate::error::DesktopError;
use crate::hand_off::DockerEntry;
use crate::outcome::{
    Account, HandOff, Leftover, SignInStep, SignOutReport, SignOutStep, SkipReason,
};
use crate::secrets::StoredSession;
use crate::server_url::{ServerUrl, Unencrypted};

/// The registry name the docker CLI uses for Docker Hub's credentials.
pub const DOCKER_HUB_REGISTRY: &str = "https://index.docker.io/v1/";
/// The client name the auto token is created with (part of its label on the server).
pub const CLIENT_NAME: &str = "hubkey";

/// What a sign-out ends on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// This session.
    ThisDevice,
    /// Every session of the account.
    Everywhere,
}

impl Desktop {
    /// The password step, refusing a plain `http://` server beyond this computer (see
    /// [`Desktop::sign_in_with`]).
    pub async fn sign_in(
        &self,
        server: &ServerUrl,
        username: &str,
        password: &str,
    ) -> Result<SignInStep, DesktopError> {
        self.sign_in_with(server, username, password, Unencrypted::Refuse)
            .await
    }

    /// The password step. With a second factor on, the answer is
    /// [`SignInStep::CodeRequired`] and the challenge waits in the core for
    /// [`Desktop::submit_code`]; otherwise the account is provisioned (see
    /// [`Desktop::submit_code`]) and returned.
    ///
    /// A server reached over plain HTTP across a network is
    /// [`DesktopError::UnencryptedServer`] unless `unencrypted` allows it: the password
    /// goes nowhere before the person chose that.
    pub async fn sign_in_with(
        &self,
        server: &ServerUrl,
        username: &str,
        password: &str,
        unencrypted: Unencrypted,
    ) -> Result<SignInStep, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        server.check_transport(unencrypted)?;
        let username = username.trim();
        if username.is_empty() || password.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter your user name and your password.".into(),
            });
        }
        entry_bounds::check_username(username)?;
        let client = self.client(server)?;
        *lock(&self.pending) = None;
        // A keyring that cannot be used is said before the password goes anywhere, and
        // before anything is created on the server: an auto token made for a keyring that
        // then fails would still have pruned another device's oldest auto token.
        let kept = self.kept_sign_in(server).await?;
        let outcome = client
            .login(username, password)
            .await
            .map_err(|err| match err {
                ClientError::Unauthorized { .. } => DesktopError::WrongCredentials,
                err => DesktopError::from_client(server.as_str(), err),
            })?;
        match outcome {
            LoginOutcome::Session(session) => {
                let account = self
                    .provision(server, &client, username, session, kept)
                    .await?;
                Ok(SignInStep::SignedIn(account))
            }
            LoginOutcome::SecondFactor { login_2fa_token } => {
                *lock(&self.pending) = Some(PendingCode {
                    server: server.clone(),
                    username: username.to_owned(),
                    challenge: Zeroizing::new(login_2fa_token),
                    kept,
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
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        let (server, username, challenge, kept) = {
            let pending = lock(&self.pending);
            let Some(pending) = pending.as_ref() else {
                return Err(DesktopError::InvalidInput {
                    message: "No sign-in is waiting for a code; sign in with your password first."
                        .into(),
                });
            };
            (
                pending.server.clone(),
                pending.username.clone(),
                pending.challenge.clone(),
                pending.kept.clone(),
            )
        };
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter the code from your authenticator app.".into(),
            });
        }
        let client = self.client(&server)?;
        let session = match client.login_2fa(&challenge, &code).await {
            Ok(session) => session,
            // The expired challenge: start over from the password.
            Err(ClientError::ChallengeExpired) => {
                *lock(&self.pending) = None;
                return Err(DesktopError::SessionEnded);
            }
            Err(ClientError::Unauthorized { .. }) => return Err(DesktopError::WrongCode),
            Err(err) => return Err(DesktopError::from_client(server.as_str(), err)),
        };
        *lock(&self.pending) = None;
        self.provision(&server, &client, &username, session, kept)
            .await
    }

    /// Signs out of `server`: deletes this device's auto token on the server (already
    /// gone is fine) and ends the session there, then erases the keyring entries (session
    /// and docker credential) and the `config.json` entry. Server failures do not stop the
    /// local cleanup; the report lists every step that could not be done. Only a keyring
    /// that cannot even be read is an error, as then nothing is known about what to clean.
    pub async fn sign_out(&self, server: &ServerUrl) -> Result<SignOutReport, DesktopError> {
        self.end_session(server, Ending::ThisDevice).await
    }

    /// "Sign out everywhere": as [`Desktop::sign_out`], but instead of ending only this
    /// session, every session of the account ends (`POST /v2/users/sessions/revoke-all`),
    /// on every device. When that fails, the report says so (step `revoke_session`) and the
    /// local cleanup happens all the same.
    pub async fn sign_out_everywhere(
        &self,
        server: &ServerUrl,
    ) -> Result<SignOutReport, DesktopError> {
        self.end_session(server, Ending::Everywhere).await
    }

    async fn end_session(
        &self,
        server: &ServerUrl,
        ending: Ending,
    ) -> Result<SignOutReport, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        *lock(&self.pending) = None;
        let mut report = SignOutReport::default();
        let live = self.drop_live(server);
        let stored = match self.read_session(server).await {
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
            (None, Some(stored)) => self.reopen(server, stored, &mut report).await,
            (None, None) => None,
        };
        let auto_token = live
            .as_ref()
            .and_then(|live| Some((live.client.clone(), live.auto_token_uuid?)));
        if let Some((client, uuid)) = auto_token {
            let mut deleted = client.delete_token(uuid).await;
            // The bearer of a long-lived app may have expired; the refresh token still works.
            if let (
                Err(ClientError::Unauthorized { .. } | ClientError::SessionRevoked),
                Some(stored),
            ) = (&deleted, &stored)
            {
                live = self.reopen(server, stored, &mut report).await;
                if let Some(live) = &live {
                    deleted = live.client.delete_token(uuid).await;
                }
            }
            match deleted {
                Ok(()) | Err(ClientError::NotFound { .. }) => {}
                Err(err) => report.not_done.push(Leftover {
                    step: SignOutStep::DeleteAutoToken,
                    message: DesktopError::from_client(server.as_str(), err).to_string(),
                }),
            }
        }
        match (ending, &live) {
            (Ending::ThisDevice, Some(live)) => match live.client.logout().await {
                Ok(()) | Err(ClientError::Unauthorized { .. } | ClientError::SessionRevoked) => {}
                Err(err) => report.not_done.push(Leftover {
                    step: SignOutStep::RevokeSession,
                    message: DesktopError::from_client(server.as_str(), err).to_string(),
                }),
            },
            (Ending::ThisDevice, None) => {}
            (Ending::Everywhere, _) => {
                let mut revoked = match &live {
                    Some(live) => live.client.revoke_all_sessions().await.map(|_| ()),
                    None => Err(ClientError::Unauthorized {
                        message: String::new(),
                    }),
                };
                // An expired bearer revokes nothing: renew it once and ask again.
                if let (Err(ClientError::Unauthorized { .. }), Some(stored)) = (&revoked, &stored) {
                    if let Some(renewed) = self.reopen(server, stored, &mut report).await {
                        revoked = renewed.client.revoke_all_sessions().await.map(|_| ());
                    }
                }
                if let Err(err) = revoked {
                    let why = match err {
                        ClientError::Unauthorized { .. } | ClientError::SessionRevoked => {
                            "this session had already ended".to_owned()
                        }
                        err => DesktopError::from_client(server.as_str(), err).to_string(),
                    };
                    report.not_done.push(Leftover {
                        step: SignOutStep::RevokeSession,
                        message: format!(
                            "Your other sessions could not be ended ({why}); sign in and try \"Sign out everywhere\" again."
                        ),
                    });
                }
            }
        }
        let (registry, docker_entry) = match (&live, &stored) {
            (Some(live), _) if live.registry.is_some() => {
                (live.registry.clone(), live.docker_entry.clone())
            }
            (_, Some(stored)) => (stored.registry.clone(), stored.docker_entry.clone()),
            (_, None) => (None, DockerEntry::NotWritten),
        };
        report.not_done.extend(
            self.erase_local(server, registry.as_deref(), &docker_entry)
                .await,
        );
        Ok(report)
    }

    /// What the keyring holds of an earlier sign-in to `server`, read once at the start of a
    /// sign-in (password or browser); a keyring that cannot be used is the error.
    pub(crate) async fn kept_sign_in(
        &self,
        server: &ServerUrl,
    ) -> Result<KeptSignIn, DesktopError> {
        match self.read_session(server).await {
            Ok(stored) => Ok(KeptSignIn {
                auto_token: stored
                    .as_ref()
                    .map(|stored| (stored.username.clone(), stored.auto_token_uuid)),
                docker_entry: stored.as_ref().and_then(|stored| {
                    Some((stored.registry.clone()?, stored.docker_entry.clone()))
                }),
            }),
            Err(SecretError::Corrupt(_)) => Ok(KeptSignIn::default()),
            Err(err) => Err(err.into()),
        }
    }

    /// The silent part of a sign-in (password, code or browser); undoes the server side when
    /// the keyring fails. `kept` is what the keyring held when the sign-in started.
    pub(crate) async fn provision(
        &self,
        server: &ServerUrl,
        anonymous: &HubClient,
        username: &str,
        session: LoginResponse,
        kept: KeptSignIn,
    ) -> Result<Account, DesktopError> {
        entry_bounds::check_refresh_token(server.as_str(), session.refresh_token.as_deref())?;
        let client = anonymous.with_token(session.token.clone());
        let earlier_entry = self.earlier_docker_entry(server, &kept);
        let previous = self.previous_auto_token(server, username, kept);
        let (registry, no_registry) = self.discover_registry(server, &client).await;
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
                        return Err(DesktopError::from_client(server.as_str(), err));
                    }
                }
            }
            None => None,
        };
        let auto_token_uuid = generated.as_ref().map(|generated| generated.uuid);

        let saved = match (&registry, generated) {
            (Some(registry), Some(generated)) => self
                .save_docker_credential(registry, username, Zeroizing::new(generated.token))
                .await
                .map_err(DesktopError::from),
            _ => Ok(()),
        };
        // The hand-off goes before the session is kept, which records what it did to
        // `config.json`; a keyring that then fails undoes it with the rest.
        let (docker_hand_off, docker_entry) = match &registry {
            Some(registry) if saved.is_ok() => {
                let earlier = earlier_entry
                    .filter(|(earlier, _)| earlier == registry)
                    .map(|(_, entry)| entry);
                self.hand_off(Some(registry.as_str()), earlier.as_ref())
            }
            _ => (
                HandOff::Skipped {
                    reason: SkipReason::NoRegistry,
                    message: no_registry,
                },
                None,
            ),
        };
        let docker_entry = docker_entry.unwrap_or(DockerEntry::NotWritten);
        let stored = StoredSession {
            server_url: server.to_string(),
            username: username.to_owned(),
            refresh_token: session.refresh_token.clone(),
            auto_token_uuid,
            registry: registry.clone(),
            docker_entry: docker_entry.clone(),
        };
        let saved = match saved {
            Ok(()) => self.save_session(server, &stored).await,
            Err(err) => Err(err),
        };
        if let Err(err) = saved {
            if let (Some(registry), Some(previous)) = (&registry, docker_entry.to_restore()) {
                let _ = self.docker_config.release(registry, previous);
            }
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

        self.install_live(
            server,
            LiveSession {
                client,
                username: username.to_owned(),
                auto_token_uuid,
                registry: registry.clone(),
                docker_entry,
                generation: 0,
            },
        );
        Ok(Account {
            server_url: server.clone(),
            username: username.to_owned(),
            registry,
            docker_hand_off,
        })
    }

    /// The registry and `config.json` record of an earlier session with `server` here, which
    /// a new sign-in to the same registry inherits: the live session's, else the keyring's.
    fn earlier_docker_entry(
        &self,
        server: &ServerUrl,
        kept: &KeptSignIn,
    ) -> Option<(String, DockerEntry)> {
        let live = self
            .live(server)
            .and_then(|live| Some((live.registry?, live.docker_entry)));
        live.or_else(|| kept.docker_entry.clone())
    }

    /// The auto token of an earlier session of the same account here, to delete it: the
    /// live session's, else the one the keyring kept.
    fn previous_auto_token(
        &self,
        server: &ServerUrl,
        username: &str,
        kept: KeptSignIn,
    ) -> Option<Uuid> {
        let live = self
            .live(server)
            .map(|live| (live.username, live.auto_token_uuid));
        live.or(kept.auto_token)
            .filter(|(earlier_user, _)| earlier_user == username)
            .and_then(|(_, uuid)| uuid)
    }

    /// The registry the hub's tokens are for, or why there is none.
    async fn discover_registry(
        &self,
        server: &ServerUrl,
        client: &HubClient,
    ) -> (Option<String>, String) {
        if server.is_docker_hub() {
            return (Some(DOCKER_HUB_REGISTRY.to_owned()), String::new());
        }
        match client.info().await {
            Ok(info) => match info.registry_host.filter(|host| !host.trim().is_empty()) {
                Some(host) => match entry_bounds::check_registry(&host) {
                    Ok(()) => (Some(host), String::new()),
                    Err(why) => (
                        None,
                        format!("{server} cannot be set up for the docker CLI: {why}."),
                    ),
                },
                None => (
                    None,
                    format!("{server} announces no registry, so the docker CLI was not set up."),
                ),
            },
            Err(err) => (
                None,
                format!(
                    "{server} does not say which registry its tokens are for ({}), so the docker CLI was not set up.",
                    DesktopError::from_client(server.as_str(), err)
                ),
            ),
        }
    }

    /// A bearer for a stored session this process has not opened (sign-out before restore,
    /// or a bearer that expired before sign-out); what failed goes to `report`.
    pub(crate) async fn reopen(
        &self,
        server: &ServerUrl,
        stored: &StoredSession,
        report: &mut SignOutReport,
    ) -> Option<LiveSession> {
        let refresh_token = stored.refresh_token.as_deref()?;
        let client = self.client(server).ok()?;
        match client.refresh(refresh_token).await {
            Ok(session) => Some(LiveSession::of_stored(
                client.with_token(session.token.clone()),
                stored,
            )),
            // The session already ended; the auto token will be pruned by the server.
            Err(ClientError::Unauthorized { .. } | ClientError::SessionRevoked) => None,
            Err(err) => {
                report.not_done.push(Leftover {
                    step: SignOutStep::DeleteAutoToken,
                    message: DesktopError::from_client(server.as_str(), err).to_string(),
                });
                None
            }
        }
    }
}
