//! Signing in with the browser: the OAuth 2.0 device authorization grant (RFC 8628). The
//! core starts the grant and polls it once per call; the caller (the app's sign-in screen,
//! the `hubkey-cli login` command) waits the interval between polls and cancels by no longer
//! calling. Once approved, the sign-in continues exactly as a password sign-in does
//! ([`Desktop::provision`]: the silent auto token, the keyring, the docker hand-off).
//!
//! Invariants: the device code (the grant's secret) stays in the core, never in a value the
//! UI receives; the keyring is read before the grant starts, so a keyring that cannot be
//! used is said before anything exists on the server; a poll after `expires_at` (by the
//! core's clock) asks nothing of the server and answers [`BrowserSignInStep::Expired`].

use chrono::{DateTime, Duration, Utc};
use hubkey_api::{DeviceCodeRequest, LoginResponse};
use hubkey_client::DevicePoll;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::account::CLIENT_NAME;
use crate::desktop::{lock, Desktop, KeptSignIn};
use crate::error::DesktopError;
use crate::outcome::Account;
use crate::server_url::{ServerUrl, Unencrypted};

/// The OAuth client id the grant is started with.
pub const CLIENT_ID: &str = "hubkey-desktop";

/// A browser sign-in waiting for the person to approve it, as the UI shows it. The device
/// code stays in the core.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowserSignIn {
    /// The server.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub server_url: ServerUrl,
    /// What the person checks on the page, as `XXXX-XXXX`.
    pub user_code: String,
    /// The verification page, where the code is typed.
    pub verification_uri: String,
    /// The verification page with the code filled in (what the app opens in the browser).
    pub verification_uri_complete: String,
    /// When the codes stop working (RFC 3339).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub expires_at: DateTime<Utc>,
    /// Seconds to wait between polls.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub interval: u64,
}

/// One poll of a browser sign-in ([`Desktop::poll_browser_sign_in`]).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum BrowserSignInStep {
    /// Not approved yet: poll again after `interval` seconds.
    Pending {
        /// Seconds to wait before the next poll.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        interval: u64,
    },
    /// Polled too fast: the server asks for a longer wait from now on.
    SlowDown {
        /// Seconds to wait before the next poll (and every later one).
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        interval: u64,
    },
    /// The person pressed Deny on the page. The sign-in is over.
    Denied,
    /// The codes expired before anyone approved them: start a new sign-in.
    Expired,
    /// Approved, signed in and provisioned as a password sign-in is.
    SignedIn(Account),
}

/// The grant the core polls.
pub(crate) struct PendingBrowser {
    server: ServerUrl,
    device_code: Zeroizing<String>,
    expires_at: DateTime<Utc>,
    interval: u64,
    kept: KeptSignIn,
}

impl Desktop {
    /// Starts a browser sign-in to `server` (refusing a plain `http://` server beyond this
    /// computer unless `unencrypted` allows it): reads the keyring (an unusable keyring is
    /// the error, before anything is asked of the server), then asks the server for codes,
    /// describing this device as client `hubkey`, the core's device name and `os`. A sign-in
    /// started earlier and not finished is forgotten.
    pub async fn start_browser_sign_in(
        &self,
        server: &ServerUrl,
        os: &str,
        unencrypted: Unencrypted,
    ) -> Result<BrowserSignIn, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        server.check_transport(unencrypted)?;
        *lock(&self.browser) = None;
        let kept = self.kept_sign_in(server).await?;
        let client = self.client(server)?;
        let request = DeviceCodeRequest {
            client_id: CLIENT_ID.to_owned(),
            scope: None,
            client_name: Some(CLIENT_NAME.to_owned()),
            device_name: Some(self.device_name.clone()),
            os: Some(os.to_owned()).filter(|os| !os.trim().is_empty()),
        };
        let codes = client
            .start_device_grant(&request)
            .await
            .map_err(|err| DesktopError::from_client(server.as_str(), err))?;
        let lifetime = i64::try_from(codes.expires_in).unwrap_or(i64::MAX);
        let expires_at = self
            .now()
            .checked_add_signed(Duration::try_seconds(lifetime).unwrap_or(Duration::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let interval = codes.interval.max(1);
        *lock(&self.browser) = Some(PendingBrowser {
            server: server.clone(),
            device_code: Zeroizing::new(codes.device_code),
            expires_at,
            interval,
            kept,
        });
        Ok(BrowserSignIn {
            server_url: server.clone(),
            user_code: codes.user_code,
            verification_uri: codes.verification_uri,
            verification_uri_complete: codes.verification_uri_complete,
            expires_at,
            interval,
        })
    }

    /// Polls the browser sign-in once. `Pending` and `SlowDown` leave it waiting (the caller
    /// waits `interval` seconds before the next poll); `Denied`, `Expired`, `SignedIn` and
    /// errors other than an unreachable server end it. With no sign-in waiting (never
    /// started, cancelled, or already over) the answer is [`DesktopError::InvalidInput`].
    pub async fn poll_browser_sign_in(&self) -> Result<BrowserSignInStep, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        let (server, device_code, expires_at) = {
            let browser = lock(&self.browser);
            let Some(browser) = browser.as_ref() else {
                return Err(DesktopError::InvalidInput {
                    message: "No browser sign-in is waiting; start one first.".into(),
                });
            };
            (
                browser.server.clone(),
                browser.device_code.clone(),
                browser.expires_at,
            )
        };
        if self.now() >= expires_at {
            self.end_browser_sign_in(&device_code);
            return Ok(BrowserSignInStep::Expired);
        }
        let client = self.client(&server)?;
        let poll = client
            .poll_device_grant(&device_code)
            .await
            .map_err(|err| DesktopError::from_client(server.as_str(), err))?;
        match poll {
            DevicePoll::Pending => Ok(BrowserSignInStep::Pending {
                interval: self.browser_interval(&device_code, None),
            }),
            DevicePoll::SlowDown { interval } => Ok(BrowserSignInStep::SlowDown {
                interval: self.browser_interval(&device_code, Some(interval)),
            }),
            DevicePoll::Denied => {
                self.end_browser_sign_in(&device_code);
                Ok(BrowserSignInStep::Denied)
            }
            DevicePoll::Expired => {
                self.end_browser_sign_in(&device_code);
                Ok(BrowserSignInStep::Expired)
            }
            DevicePoll::Refused { error, description } => {
                self.end_browser_sign_in(&device_code);
                Err(DesktopError::ServerError {
                    status: Some(400),
                    message: format!("{server} refused the browser sign-in ({error}: {description}); start it again."),
                })
            }
            DevicePoll::Approved(granted) => {
                let Some(kept) = self.end_browser_sign_in(&device_code) else {
                    // Cancelled while this poll was on its way: end the session it opened.
                    let _ = client.with_token(granted.access_token).logout().await;
                    return Err(DesktopError::InvalidInput {
                        message: "The browser sign-in was cancelled.".into(),
                    });
                };
                let Some(username) = session_username(&granted.access_token) else {
                    let _ = client.with_token(granted.access_token).logout().await;
                    return Err(DesktopError::NotAHub {
                        server: server.to_string(),
                        detail: "its session does not name the account".into(),
                    });
                };
                let session = LoginResponse {
                    token: granted.access_token,
                    refresh_token: Some(granted.refresh_token),
                    expires_in: Some(granted.expires_in),
                };
                let account = self
                    .provision(&server, &client, &username, session, kept)
                    .await?;
                Ok(BrowserSignInStep::SignedIn(account))
            }
        }
    }

    /// Stops waiting for the browser sign-in (the Cancel button, Ctrl-C). The codes stay
    /// valid on the server until they expire, but nothing polls them any more, so an
    /// approval given later signs nothing in here.
    pub fn cancel_browser_sign_in(&self) {
        *lock(&self.browser) = None;
    }

    /// The interval in force for the grant with `device_code`, raised to `slower` when the
    /// server asked for it (never lowered).
    fn browser_interval(&self, device_code: &str, slower: Option<u64>) -> u64 {
        let mut browser = lock(&self.browser);
        match browser.as_mut() {
            Some(pending) if *pending.device_code == device_code => {
                if let Some(slower) = slower {
                    // RFC 8628 §3.5: at least 5 s more, or what the server now asks.
                    pending.interval = slower.max(pending.interval.saturating_add(5));
                }
                pending.interval
            }
            _ => slower.unwrap_or(1),
        }
    }

    /// Forgets the grant with `device_code` (not a newer one started meanwhile) and returns
    /// what the keyring held when it started.
    fn end_browser_sign_in(&self, device_code: &str) -> Option<KeptSignIn> {
        let mut browser = lock(&self.browser);
        if browser
            .as_ref()
            .is_some_and(|pending| *pending.device_code == device_code)
        {
            return browser.take().map(|pending| pending.kept);
        }
        None
    }
}

/// The account a session bearer belongs to: the `sub` claim of the JWT, as Docker Hub's
/// clients read it. Not verified here (the server checks the bearer on every request); only
/// used to name the account in the keyring and the UI.
fn session_username(bearer: &str) -> Option<String> {
    let payload = bearer.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("sub")?
        .as_str()
        .map(str::to_owned)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_username_is_the_bearers_subject() {
        let payload = data_encoding::BASE64URL_NOPAD.encode(br#"{"sub":"ann","uid":"1"}"#);
        assert_eq!(
            session_username(&format!("x.{payload}.sig")).as_deref(),
            Some("ann")
        );
        assert_eq!(session_username("not a jwt"), None);
        let empty = data_encoding::BASE64URL_NOPAD.encode(br#"{"sub":""}"#);
        assert_eq!(session_username(&format!("x.{empty}.sig")), None);
    }

    #[test]
    fn steps_serialise_for_the_ui() {
        assert_eq!(
            serde_json::to_value(BrowserSignInStep::SlowDown { interval: 10 }).unwrap(),
            serde_json::json!({"step": "slow_down", "interval": 10})
        );
        assert_eq!(
            serde_json::to_value(BrowserSignInStep::Denied).unwrap(),
            serde_json::json!({"step": "denied"})
        );
    }
}
