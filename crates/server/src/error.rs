//! The server's error type: every way a request can fail, with the HTTP status it maps to.
//! The JSON bodies (Docker Hub's shapes) are written in [`crate::http::error`].

use std::collections::BTreeMap;

/// Why an operation failed. Messages are for the caller and never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: field name → what is wrong with it.
    #[error("{text}")]
    Invalid {
        fields: BTreeMap<String, Vec<String>>,
        text: String,
    },
    /// Missing, wrong, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The 2FA challenge is unknown, used up, out of attempts or expired: the sign-in starts
    /// over. A 401 whose body says so in `code`, so a client tells it from a wrong code.
    #[error("The two-factor challenge is invalid or has expired; sign in again")]
    ChallengeExpired,
    /// The session was revoked because one of its spent refresh tokens was presented again:
    /// someone else may hold a copy. A 401 whose body says so in `code`.
    #[error("The session was revoked because its refresh token was used twice; sign in again")]
    SessionRevoked,
    /// The password was right and the account wants its second factor.
    #[error("second factor required")]
    SecondFactorRequired { login_2fa_token: String },
    /// Authenticated, but this kind of credential may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing for this account (also for other accounts' things).
    #[error("{0}")]
    NotFound(String),
    /// Too many failed attempts; try again after this many seconds.
    #[error("too many failed sign-in attempts; try again in {retry_after} seconds")]
    Throttled { retry_after: u64 },
    /// Too many requests of a kind that is not a sign-in (the public revocation endpoint);
    /// try again after this many seconds.
    #[error("too many requests; try again in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    /// The database failed; the cause is logged, the caller sees an opaque 500.
    #[error("storage error")]
    Storage(#[source] StorageError),
    /// Anything else that is our fault; logged, opaque to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What failed in the database: a statement through sqlx, or one on the plain SQLite
/// connections the token check and the flushes use on SQLite (rusqlite).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Storage(err.into())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Storage(err.into())
    }
}

impl Error {
    /// A 400 about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::Invalid {
            text: format!("{field}: {message}"),
            fields: BTreeMap::from([(field.to_owned(), vec![message])]),
        }
    }

    /// The one answer for a wrong user name, a wrong password or an unknown token, so that
    /// none of them tells an attacker which part was wrong.
    pub fn bad_credentials() -> Self {
        Error::Unauthorized("Incorrect authentication credentials".to_owned())
    }

    /// The answer for a token that is not this account's or does not exist.
    pub fn token_not_found() -> Self {
        Error::NotFound("Access token not found".to_owned())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why setting the server up failed: opening its data directory, keys and database, serving,
/// or an admin command of the `hubkeyd` CLI. The operator reads it on stderr; no request
/// ever answers with it, so it may name paths and causes that [`Error`] keeps opaque.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file or folder (of the data directory, the registry configuration) or a standard
    /// stream could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The command line or the environment asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// Key material is unreadable, or could not be made.
    #[error("{0}")]
    Key(String),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(String),
    /// An operation of the service refused or failed (a taken user name, a storage error).
    #[error(transparent)]
    Service(#[from] Error),
}

impl SetupError {
    /// An I/O failure on `what` (a path, or a stream such as "stdout").
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        SetupError::Io {
            what: what.to_string(),
            source,
        }
    }
}
