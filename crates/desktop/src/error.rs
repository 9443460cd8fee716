//! The one error type of the desktop core, in the terms the UI reacts to, and the one shape
//! every failure reaches the UI in.
//!
//! A failure serialises as an [`ErrorBody`], `{"code": "...", "message": "..."}` (plus
//! `retry_after` for `throttled`): the code is an [`ErrorCode`], stable snake_case, whose
//! TypeScript union the UI switches on exhaustively; the message is for a person. No variant
//! ever carries a password, a session token or an access token.

use std::path::PathBuf;
use std::time::Duration;

use hubkey_client::ClientError;
use hubkey_keyring::SecretError;
use serde::{Deserialize, Serialize};

use crate::docker_config::DockerConfigError;

/// Why a desktop flow failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesktopError {
    /// The user name or the password is wrong.
    #[error("Wrong user name or password.")]
    WrongCredentials,
    /// The authenticator code is wrong or was already used.
    #[error("That code is not right (or was already used); enter the current code from your authenticator app.")]
    WrongCode,
    /// Too many failed attempts; `retry_after` says how long to wait when the server said.
    #[error("Too many attempts; {}", match retry_after {
        Some(wait) => format!("try again in {} seconds.", wait.as_secs()),
        None => "try again later.".to_owned(),
    })]
    Throttled {
        /// The wait the server asked for.
        retry_after: Option<Duration>,
    },
    /// No answer from the server (refused, timed out, name not found).
    #[error("The server at {server} did not answer ({detail}). Check the address and your network, then try again.")]
    Unreachable {
        /// The server address.
        server: String,
        /// What the network said.
        detail: String,
    },
    /// The secure connection failed, typically an untrusted certificate.
    #[error("Could not open a secure connection to {server} ({detail}). Its certificate may not be trusted here.")]
    Tls {
        /// The server address.
        server: String,
        /// What the TLS layer said.
        detail: String,
    },
    /// Something answered, but not a hub (or the address is not a usable URL).
    #[error("{server} does not look like a hub ({detail}). Check the address.")]
    NotAHub {
        /// The server address.
        server: String,
        /// What was odd.
        detail: String,
    },
    /// No usable secret store (no Secret Service, no session bus, a locked keyring).
    #[error("No keyring is available to keep your sign-in safe: {reason}. Install or unlock a Secret Service keyring (such as GNOME Keyring or KWallet) and try again.")]
    KeyringUnavailable {
        /// What is missing, in the store's words.
        reason: String,
    },
    /// The keyring did not answer in time (it may be waiting for an unlock prompt).
    #[error(
        "The keyring did not answer in time; it may be waiting for you to unlock it. Try again."
    )]
    KeyringTimeout,
    /// The docker CLI's config.json is not JSON this app understands; it was left untouched.
    #[error("{} does not parse as a JSON object, so it was left untouched; the docker CLI is not set up to use your token.", path.display())]
    DockerConfigUnparsable {
        /// The file.
        path: PathBuf,
    },
    /// The server is reached over plain HTTP across a network, and the person did not choose
    /// to send their password unencrypted.
    #[error("{server} is not on this computer and does not use https://, so your password and tokens would cross the network unencrypted, readable by anyone on the way. Use its https:// address, or choose to send your password unencrypted.")]
    UnencryptedServer {
        /// The server address.
        server: String,
    },
    /// The session ended (expired, revoked, or signed out elsewhere): sign in again.
    #[error("Your session has ended; sign in again.")]
    SessionEnded,
    /// The server ended the session because one of its spent refresh tokens was used again:
    /// someone else may hold a copy of this sign-in.
    #[error("Your session was ended because its sign-in was used from elsewhere. Sign in again, then change your password.")]
    SessionRevoked,
    /// The server failed or refused in an unexpected way. A failure of the server itself (a
    /// 5xx, or no status) is transient: the message says to try again.
    #[error("The server failed{}: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), retry_advice(*status))]
    ServerError {
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// The server's explanation, or ours.
        message: String,
    },
    /// The request cannot be made as asked (bad address, empty name, no code was asked for).
    #[error("{message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
    },
    /// A file this app was asked to write could not be written; nothing was left half done.
    #[error("Could not write {}: {detail}. Choose another place or free some space, then try again.", path.display())]
    FileNotWritten {
        /// The file.
        path: PathBuf,
        /// What the system said.
        detail: String,
    },
    /// A file of this app's own on this computer (the docker CLI's `config.json`) could not
    /// be read or written: the disk, not the server, failed.
    #[error("This computer could not {action} {} ({detail}). Free some disk space or fix the folder's permissions, then try again.", path.display())]
    LocalIo {
        /// What was being done ("read", "replace", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// What the system said.
        detail: String,
    },
}

/// The stable codes a failed command answers with: every way the UI may react. The UI gets
/// them as a generated TypeScript union, so a new code does not compile there until handled.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// [`DesktopError::WrongCredentials`].
    WrongCredentials,
    /// [`DesktopError::WrongCode`].
    WrongCode,
    /// [`DesktopError::Throttled`].
    Throttled,
    /// [`DesktopError::Unreachable`].
    Unreachable,
    /// [`DesktopError::Tls`].
    Tls,
    /// [`DesktopError::NotAHub`].
    NotAHub,
    /// [`DesktopError::KeyringUnavailable`].
    KeyringUnavailable,
    /// [`DesktopError::KeyringTimeout`].
    KeyringTimeout,
    /// [`DesktopError::DockerConfigUnparsable`].
    DockerConfigUnparsable,
    /// [`DesktopError::UnencryptedServer`].
    UnencryptedServer,
    /// [`DesktopError::SessionEnded`].
    SessionEnded,
    /// [`DesktopError::SessionRevoked`].
    SessionRevoked,
    /// [`DesktopError::ServerError`].
    ServerError,
    /// [`DesktopError::InvalidInput`].
    InvalidInput,
    /// [`DesktopError::FileNotWritten`].
    FileNotWritten,
    /// [`DesktopError::LocalIo`].
    LocalIo,
    /// The shell's own settings (a [`crate::SettingsFile`]) could not be read or saved.
    SettingsUnavailable,
}

impl ErrorCode {
    /// The code as the UI receives it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::WrongCredentials => "wrong_credentials",
            ErrorCode::WrongCode => "wrong_code",
            ErrorCode::Throttled => "throttled",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::Tls => "tls",
            ErrorCode::NotAHub => "not_a_hub",
            ErrorCode::KeyringUnavailable => "keyring_unavailable",
            ErrorCode::KeyringTimeout => "keyring_timeout",
            ErrorCode::DockerConfigUnparsable => "docker_config_unparsable",
            ErrorCode::UnencryptedServer => "unencrypted_server",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::SessionRevoked => "session_revoked",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::FileNotWritten => "file_not_written",
            ErrorCode::LocalIo => "local_io",
            ErrorCode::SettingsUnavailable => "settings_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What a failed command rejects with in the UI, written here once for the core's errors and
/// the shell's: a stable code to branch on and a message for a person (plus the wait, for
/// `throttled`, when the server said).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What happened, for the UI to branch on.
    pub code: ErrorCode,
    /// What happened, for a person.
    pub message: String,
    /// Seconds to wait before trying again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, type = "number"))]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    /// A body with `code` and `message` and no wait.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl DesktopError {
    /// The stable code the UI branches on.
    pub fn code(&self) -> ErrorCode {
        match self {
            DesktopError::WrongCredentials => ErrorCode::WrongCredentials,
            DesktopError::WrongCode => ErrorCode::WrongCode,
            DesktopError::Throttled { .. } => ErrorCode::Throttled,
            DesktopError::Unreachable { .. } => ErrorCode::Unreachable,
            DesktopError::Tls { .. } => ErrorCode::Tls,
            DesktopError::NotAHub { .. } => ErrorCode::NotAHub,
            DesktopError::KeyringUnavailable { .. } => ErrorCode::KeyringUnavailable,
            DesktopError::KeyringTimeout => ErrorCode::KeyringTimeout,
            DesktopError::DockerConfigUnparsable { .. } => ErrorCode::DockerConfigUnparsable,
            DesktopError::UnencryptedServer { .. } => ErrorCode::UnencryptedServer,
            DesktopError::SessionEnded => ErrorCode::SessionEnded,
            DesktopError::SessionRevoked => ErrorCode::SessionRevoked,
            DesktopError::ServerError { .. } => ErrorCode::ServerError,
            DesktopError::InvalidInput { .. } => ErrorCode::InvalidInput,
            DesktopError::FileNotWritten { .. } => ErrorCode::FileNotWritten,
            DesktopError::LocalIo { .. } => ErrorCode::LocalIo,
        }
    }

    /// Whether trying the same thing again later may work without the user changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DesktopError::Throttled { .. }
                | DesktopError::Unreachable { .. }
                | DesktopError::KeyringTimeout
                | DesktopError::ServerError { .. }
        )
    }

    /// Maps a client error met while talking to `server`. A 401 here is a session that is no
    /// longer valid; the sign-in steps map their 401s themselves.
    pub fn from_client(server: &str, err: ClientError) -> Self {
        let server = server.to_owned();
        match err {
            ClientError::Unauthorized { .. } | ClientError::ChallengeExpired => {
                DesktopError::SessionEnded
            }
            ClientError::SessionRevoked => DesktopError::SessionRevoked,
            ClientError::SecondFactorRequired => DesktopError::ServerError {
                status: Some(401),
                message: "the server asked for a second factor where none can be given".into(),
            },
            ClientError::Throttled { retry_after, .. } => DesktopError::Throttled { retry_after },
            ClientError::Unreachable(detail) => DesktopError::Unreachable { server, detail },
            ClientError::Tls(detail) => DesktopError::Tls { server, detail },
            ClientError::NotAHub { detail, .. } => DesktopError::NotAHub { server, detail },
            ClientError::Url(detail) => DesktopError::InvalidInput {
                message: format!("“{server}” is not a usable server address: {detail}"),
            },
            ClientError::Invalid { body } => DesktopError::InvalidInput { message: body.text },
            ClientError::Forbidden { message } => DesktopError::ServerError {
                status: Some(403),
                message,
            },
            ClientError::NotFound { message } => DesktopError::ServerError {
                status: Some(404),
                message,
            },
            ClientError::Server { status, message } => DesktopError::ServerError {
                status: Some(status),
                message,
            },
        }
    }
}

/// What to do after a server failure with `status`: a 5xx (or no answer status) passes, a
/// refusal (4xx) does not go away by trying again.
fn retry_advice(status: Option<u16>) -> &'static str {
    match status {
        None | Some(500..) => "; try again in a moment.",
        Some(_) => ".",
    }
}

impl From<SecretError> for DesktopError {
    fn from(err: SecretError) -> Self {
        match err {
            SecretError::Unavailable { reason } => DesktopError::KeyringUnavailable { reason },
            SecretError::TimedOut => DesktopError::KeyringTimeout,
            SecretError::Corrupt(detail) => DesktopError::KeyringUnavailable {
                reason: format!("an entry in it cannot be read ({detail})"),
            },
            SecretError::Other(detail) => DesktopError::KeyringUnavailable { reason: detail },
            too_large @ SecretError::TooLarge { .. } => DesktopError::KeyringUnavailable {
                reason: too_large.to_string(),
            },
        }
    }
}

impl From<DockerConfigError> for DesktopError {
    fn from(err: DockerConfigError) -> Self {
        match err {
            DockerConfigError::Unparsable { path } => DesktopError::DockerConfigUnparsable { path },
            DockerConfigError::Io {
                action,
                path,
                source,
            } => DesktopError::LocalIo {
                action,
                path,
                detail: source.to_string(),
            },
        }
    }
}

impl From<&DesktopError> for ErrorBody {
    fn from(err: &DesktopError) -> Self {
        let retry_after = match err {
            DesktopError::Throttled { retry_after } => retry_after.map(|wait| wait.as_secs()),
            _ => None,
        };
        ErrorBody {
            code: err.code(),
            message: err.to_string(),
            retry_after,
        }
    }
}

impl Serialize for DesktopError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ErrorBody::from(self).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_code_and_message() {
        let json = serde_json::to_value(DesktopError::WrongCredentials).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "wrong_credentials", "message": "Wrong user name or password."})
        );
        let json = serde_json::to_value(DesktopError::Throttled {
            retry_after: Some(Duration::from_secs(42)),
        })
        .unwrap();
        assert_eq!(json["code"], "throttled");
        assert_eq!(json["retry_after"], 42);
        assert_eq!(
            json["message"],
            "Too many attempts; try again in 42 seconds."
        );
    }

    #[test]
    fn unreachable_names_the_server() {
        let err = DesktopError::from_client(
            "http://127.0.0.1:9",
            ClientError::Unreachable("connection refused".into()),
        );
        assert_eq!(err.code(), "unreachable");
        assert!(err
            .to_string()
            .starts_with("The server at http://127.0.0.1:9 did not answer"));
        assert!(err.is_retryable());
    }

    #[test]
    fn server_failures_say_to_try_again_and_refusals_do_not() {
        let failed = DesktopError::from_client(
            "http://127.0.0.1:9",
            ClientError::Server {
                status: 502,
                message: "bad gateway".into(),
            },
        );
        assert_eq!(
            failed.to_string(),
            "The server failed (HTTP 502): bad gateway; try again in a moment."
        );
        let refused = DesktopError::from_client(
            "http://127.0.0.1:9",
            ClientError::Forbidden {
                message: "not allowed".into(),
            },
        );
        assert_eq!(
            refused.to_string(),
            "The server failed (HTTP 403): not allowed."
        );
    }

    #[test]
    fn a_local_disk_failure_is_not_the_servers() {
        let err = DesktopError::from(DockerConfigError::Io {
            action: "replace",
            path: PathBuf::from("/home/ann/.docker/config.json"),
            source: std::io::Error::other("No space left on device"),
        });
        assert_eq!(err.code(), ErrorCode::LocalIo);
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["code"], "local_io");
        let message = json["message"].as_str().unwrap();
        assert!(
            message.contains("/home/ann/.docker/config.json"),
            "{message}"
        );
        assert!(!message.contains("server"), "{message}");
    }

    #[test]
    fn every_code_serialises_as_its_name() {
        for code in [
            ErrorCode::WrongCredentials,
            ErrorCode::NotAHub,
            ErrorCode::SettingsUnavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn keyring_errors_keep_their_kind() {
        assert_eq!(
            DesktopError::from(SecretError::TimedOut).code(),
            "keyring_timeout"
        );
        let err = DesktopError::from(SecretError::Unavailable {
            reason: "no Secret Service".into(),
        });
        assert_eq!(err.code(), "keyring_unavailable");
        assert!(err.to_string().contains("no Secret Service"));
    }
}
