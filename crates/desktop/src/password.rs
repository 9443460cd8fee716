//! Changing the account's password from the Account screen: the way to contain an account
//! whose password may be known to someone else. Every other session of the account ends;
//! this app's session stays signed in.
//!
//! Invariants: no password appears in an error or in what is returned; a wrong current
//! password is told as such, never as an ended session.

use hubkey_client::ClientError;
use serde::Serialize;

use crate::desktop::Desktop;
use crate::error::DesktopError;
use crate::server_url::ServerUrl;

/// What a password change did, as the Account screen tells it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PasswordChanged {
    /// Every other session of the account was signed out (always, after a change).
    pub other_sessions_signed_out: bool,
    /// Every access token of the account was deactivated, as asked.
    pub tokens_deactivated: bool,
}

impl Desktop {
    /// Changes the password of the account signed in to `server` from `current` to `new`
    /// (typed twice in the form: `repeated`). With `deactivate_tokens`, every access token of
    /// the account is deactivated too. This session stays; every other one ends.
    pub async fn change_password(
        &self,
        server: &ServerUrl,
        current: &str,
        new: &str,
        repeated: &str,
        deactivate_tokens: bool,
    ) -> Result<PasswordChanged, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        if current.is_empty() || new.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter your current password and a new one.".into(),
            });
        }
        if new != repeated {
            return Err(DesktopError::InvalidInput {
                message: "The new password and its repetition differ; type it again.".into(),
            });
        }
        if new == current {
            return Err(DesktopError::InvalidInput {
                message: "The new password is the current one; choose another.".into(),
            });
        }
        // A 401 to the change itself means a wrong current password, so the bearer must be
        // known good first: a cheap call renews it when it expired.
        self.with_session(server, |client, _| async move {
            client.list_tokens(1, 1).await.map(|_| ())
        })
        .await?;
        let client = self
            .session_client(server)
            .ok_or(DesktopError::SessionEnded)?;
        match client
            .change_password(current, new, deactivate_tokens)
            .await
        {
            Ok(()) => Ok(PasswordChanged {
                other_sessions_signed_out: true,
                tokens_deactivated: deactivate_tokens,
            }),
            Err(ClientError::Unauthorized { .. }) => Err(DesktopError::InvalidInput {
                message: "Your current password is not right; nothing was changed.".into(),
            }),
            Err(err) => Err(DesktopError::from_client(server.as_str(), err)),
        }
    }
}
