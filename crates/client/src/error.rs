//! What can go wrong talking to a hub, in the terms a UI reacts to.
//!
//! Every answer that is not the expected success is turned into a [`ClientError`] by
//! [`Reply::into_error`], a pure function of the status, a few headers and the body, so the
//! mapping is tested without a socket. No variant ever carries a password or a token: messages
//! come from the server's error bodies, from the transport's error chain (URLs stripped), or are
//! fixed text.

use std::time::Duration;

use hubkey_api::error::MFA_REQUIRED;
use hubkey_api::{ErrorBody, ErrorCode, ValidationErrorBody};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

/// Why a call to the hub failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// 401: wrong credentials, or the session is missing, expired or revoked. Sign in again.
    #[error("not signed in: {message}")]
    Unauthorized {
        /// The server's explanation.
        message: String,
    },
    /// 401 asking for a second factor where the call cannot take one (sign in through
    /// [`crate::HubClient::login`], which returns the challenge instead).
    #[error("the account needs a second factor (an authenticator code) to sign in")]
    SecondFactorRequired,
    /// 401 from [`crate::HubClient::login_2fa`]: the challenge is used up, out of attempts or
    /// expired. Start the sign-in again with the password (a wrong code is
    /// [`ClientError::Unauthorized`], and the challenge can be tried again).
    #[error("the two-factor sign-in has expired; sign in again")]
    ChallengeExpired,
    /// 401: the session was ended because one of its spent refresh tokens was used again, so
    /// someone else may hold a copy of it. Sign in again, and look at the account's security
    /// events ([`crate::HubClient::account_events`]).
    #[error("the session was revoked because its refresh token was used twice; sign in again")]
    SessionRevoked,
    /// 403: signed in, but not allowed to do this (e.g. a session made from an access token
    /// managing access tokens).
    #[error("not allowed: {message}")]
    Forbidden {
        /// The server's explanation.
        message: String,
    },
    /// 404: no such thing in this account (the hub never reveals other accounts' tokens).
    #[error("not found: {message}")]
    NotFound {
        /// The server's explanation.
        message: String,
    },
    /// 400: the request was refused; `body.fields` says what is wrong with each field.
    #[error("invalid request: {}", body.text)]
    Invalid {
        /// The server's per-field messages and summary.
        body: ValidationErrorBody,
    },
    /// 429: too many failed attempts; try again after `retry_after` when the server says.
    #[error("too many attempts{}: {message}", retry_hint(.retry_after))]
    Throttled {
        /// The `Retry-After` header, when it gave seconds.
        retry_after: Option<Duration>,
        /// The server's explanation.
        message: String,
    },
    /// A 5xx answer, or a status this client has no better name for.
    #[error("the server failed ({status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's explanation, or the status's reason phrase.
        message: String,
    },
    /// No answer: the connection was refused, reset or timed out, or the name did not resolve.
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// The TLS handshake failed, typically an untrusted or mismatched certificate.
    #[error("secure connection failed: {0}")]
    Tls(String),
    /// Something answered, but not a hub: a redirect, an HTML page, or JSON of another shape.
    #[error("the server does not look like a hub (HTTP {status}): {detail}")]
    NotAHub {
        /// The HTTP status of the odd answer.
        status: u16,
        /// What was odd about it.
        detail: String,
    },
    /// The server address (or a link the server gave) is not a usable URL.
    #[error("bad server address: {0}")]
    Url(String),
}

impl ClientError {
    /// The HTTP status behind this error, or `None` when no answer came (or none was needed).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthorized { .. }
            | ClientError::SecondFactorRequired
            | ClientError::ChallengeExpired
            | ClientError::SessionRevoked => Some(401),
            ClientError::Forbidden { .. } => Some(403),
            ClientError::NotFound { .. } => Some(404),
            ClientError::Invalid { .. } => Some(400),
            ClientError::Throttled { .. } => Some(429),
            ClientError::Server { status, .. } | ClientError::NotAHub { status, .. } => {
                Some(*status)
            }
            ClientError::Unreachable(_) | ClientError::Tls(_) | ClientError::Url(_) => None,
        }
    }

    /// Maps a transport failure (no usable answer) to `Tls` or `Unreachable`. The URL is
    /// dropped from the text; the rest of the source chain is kept, as it names the cause.
    pub(crate) fn from_transport(err: reqwest::Error) -> Self {
        let is_builder = err.is_builder();
        let is_timeout = err.is_timeout();
        let chain = error_chain(&err.without_url());
        if is_builder {
            ClientError::Url(format!("cannot build the request: {chain}"))
        } else if looks_like_tls(&chain) {
            ClientError::Tls(chain)
        } else if is_timeout {
            ClientError::Unreachable(format!("timed out: {chain}"))
        } else {
            ClientError::Unreachable(chain)
        }
    }
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(" (retry in {} s)", wait.as_secs()),
        None => String::new(),
    }
}

/// The Display texts of an error and its sources, joined by ": ", repeats skipped (hyper and
/// reqwest often wrap an error in one that says the same).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// Neither rustls nor the platform's TLS gives reqwest a typed "TLS error", so the chain's
/// words decide.
fn looks_like_tls(chain: &str) -> bool {
    let chain = chain.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "ssl", "corrupt message"]
        .iter()
        .any(|word| chain.contains(word))
}

/// An answer read in full: what error mapping and decoding need from it.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as `T` when the status is a success; the mapped error otherwise.
    pub(crate) fn into_json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        if !self.status.is_success() {
            return Err(self.into_error());
        }
        if let Some(content_type) = &self.content_type {
            if !is_json(content_type) {
                return Err(self.not_a_hub(format!("expected JSON, got {content_type}")));
            }
        }
        serde_json::from_slice(&self.body)
            .map_err(|err| self.not_a_hub(format!("unexpected answer: {}", redact_values(&err))))
    }

    /// Ok for any success status, whatever the body (204 answers have none).
    pub(crate) fn into_empty(self) -> Result<(), ClientError> {
        if self.status.is_success() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// The error body as Hub's `ErrorBody`, when it is one.
    pub(crate) fn error_body(&self) -> Option<ErrorBody> {
        if self.has_foreign_body() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// Maps a non-success answer to the variant a UI reacts to.
    pub(crate) fn into_error(self) -> ClientError {
        let status = self.status.as_u16();
        if self.status.is_redirection() {
            let target = match &self.location {
                Some(location) => format!(" to {location}"),
                None => String::new(),
            };
            return self.not_a_hub(format!(
                "the server redirects{target}; use the final address"
            ));
        }
        let expects_hub_body = matches!(status, 400 | 401 | 403 | 404 | 429);
        if expects_hub_body && self.has_foreign_body() {
            let what = self
                .content_type
                .as_deref()
                .unwrap_or("a body that is not JSON");
            return self.not_a_hub(format!("expected a JSON error body, got {what}"));
        }
        let body = self.error_body();
        let message = match &body {
            Some(body) if !body.detail.is_empty() => body.detail.clone(),
            Some(body) if !body.message.is_empty() => body.message.clone(),
            _ => self.reason(),
        };
        match status {
            400 => ClientError::Invalid {
                body: serde_json::from_slice(&self.body).unwrap_or(ValidationErrorBody {
                    fields: Default::default(),
                    text: message,
                }),
            },
            401 => {
                let second_factor = body.as_ref().is_some_and(|body| {
                    body.login_2fa_token.is_some() || body.detail == MFA_REQUIRED
                });
                let challenge_expired = body
                    .as_ref()
                    .is_some_and(|body| body.code == Some(ErrorCode::ChallengeExpired));
                let session_revoked = body
                    .as_ref()
                    .is_some_and(|body| body.code == Some(ErrorCode::SessionRevoked));
                if second_factor {
                    ClientError::SecondFactorRequired
                } else if challenge_expired {
                    ClientError::ChallengeExpired
                } else if session_revoked {
                    ClientError::SessionRevoked
                } else {
                    ClientError::Unauthorized { message }
                }
            }
            403 => ClientError::Forbidden { message },
            404 => ClientError::NotFound { message },
            429 => ClientError::Throttled {
                retry_after: self
                    .retry_after
                    .as_deref()
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                message,
            },
            _ => ClientError::Server { status, message },
        }
    }

    /// True when the body is present but is not JSON (an HTML page, plain text).
    fn has_foreign_body(&self) -> bool {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return false;
        }
        match &self.content_type {
            Some(content_type) => !is_json(content_type),
            None => serde_json::from_slice::<serde_json::Value>(&self.body).is_err(),
        }
    }

    fn reason(&self) -> String {
        self.status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_lowercase()
    }

    fn not_a_hub(&self, detail: String) -> ClientError {
        ClientError::NotAHub {
            status: self.status.as_u16(),
            detail,
        }
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
}

/// serde_json's message without the string values it quotes, which could be secrets from a
/// half-understood answer (field names, in backticks, are kept).
fn redact_values(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let mut redacted = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if !inside {
                redacted.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            redacted.push(c);
        }
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubkey_api::AccessToken;

    fn reply(status: u16, content_type: Option<&str>, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: content_type.map(str::to_owned),
            retry_after: None,
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn second_factor_challenge_is_recognised() {
        let body = r#"{"detail":"Require secondary authentication on MFA enabled account","message":"x","login_2fa_token":"c"}"#;
        assert_eq!(
            reply(401, JSON, body).into_error(),
            ClientError::SecondFactorRequired
        );
    }

    #[test]
    fn revoked_session_is_told_from_an_ended_one_by_its_code() {
        let revoked =
            r#"{"detail":"The session was revoked","message":"x","code":"session_revoked"}"#;
        let err = reply(401, JSON, revoked).into_error();
        assert_eq!(err, ClientError::SessionRevoked);
        assert_eq!(err.status(), Some(401));
        let ended = r#"{"detail":"The session has ended; sign in again","message":"x"}"#;
        assert!(matches!(
            reply(401, JSON, ended).into_error(),
            ClientError::Unauthorized { .. }
        ));
    }

    #[test]
    fn expired_challenge_is_told_from_a_wrong_code_by_its_code() {
        let expired = r#"{"detail":"The two-factor challenge is invalid or has expired; sign in again","message":"x","code":"challenge_expired"}"#;
        let err = reply(401, JSON, expired).into_error();
        assert_eq!(err, ClientError::ChallengeExpired);
        assert_eq!(err.status(), Some(401));
        let wrong =
            r#"{"detail":"Incorrect verification code","message":"Incorrect verification code"}"#;
        assert_eq!(
            reply(401, JSON, wrong).into_error(),
            ClientError::Unauthorized {
                message: "Incorrect verification code".into()
            }
        );
        let newer = r#"{"detail":"d","message":"m","code":"something_new"}"#;
        assert_eq!(
            reply(401, JSON, newer).into_error(),
            ClientError::Unauthorized {
                message: "d".into()
            },
            "an unknown code falls back to the status"
        );
    }

    #[test]
    fn unauthorized_carries_the_detail() {
        let body = r#"{"detail":"Incorrect authentication credentials","message":"Incorrect authentication credentials"}"#;
        let err = reply(401, JSON, body).into_error();
        assert_eq!(
            err,
            ClientError::Unauthorized {
                message: "Incorrect authentication credentials".into()
            }
        );
        assert_eq!(err.status(), Some(401));
    }

    #[test]
    fn throttled_reads_retry_after_seconds() {
        let mut throttled = reply(429, JSON, r#"{"detail":"slow down","message":"slow down"}"#);
        throttled.retry_after = Some("17".into());
        let err = throttled.into_error();
        assert_eq!(
            err,
            ClientError::Throttled {
                retry_after: Some(Duration::from_secs(17)),
                message: "slow down".into()
            }
        );
        assert!(err.to_string().contains("retry in 17 s"));
    }

    #[test]
    fn validation_errors_keep_their_fields() {
        let body = r#"{"fields":{"token_label":["too long"]},"text":"invalid token_label"}"#;
        match reply(400, JSON, body).into_error() {
            ClientError::Invalid { body } => {
                assert_eq!(body.fields["token_label"], vec!["too long".to_owned()]);
                assert_eq!(body.text, "invalid token_label");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn html_error_pages_are_not_a_hub() {
        let err = reply(404, Some("text/html"), "<html>nginx</html>").into_error();
        assert!(
            matches!(err, ClientError::NotAHub { status: 404, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn html_success_is_not_a_hub() {
        let err = reply(200, Some("text/html; charset=utf-8"), "<html></html>")
            .into_json::<AccessToken>()
            .unwrap_err();
        assert!(
            matches!(err, ClientError::NotAHub { status: 200, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_error_bodies_use_the_reason_phrase() {
        assert_eq!(
            reply(404, None, "").into_error(),
            ClientError::NotFound {
                message: "not found".into()
            }
        );
        assert_eq!(
            reply(503, Some("text/plain"), "upstream down").into_error(),
            ClientError::Server {
                status: 503,
                message: "service unavailable".into()
            }
        );
    }

    #[test]
    fn redirects_are_not_followed_but_explained() {
        let mut moved = reply(301, None, "");
        moved.location = Some("https://hub.example/".into());
        match moved.into_error() {
            ClientError::NotAHub { status, detail } => {
                assert_eq!(status, 301);
                assert!(detail.contains("https://hub.example/"));
            }
            other => panic!("expected NotAHub, got {other:?}"),
        }
    }

    #[test]
    fn decoding_errors_do_not_echo_values() {
        let secret = "hkpat_secretsecretsecret";
        let body = format!(r#"{{"status":{{"nested":"{secret}"}}}}"#);
        let err = reply(200, JSON, &body)
            .into_json::<hubkey_api::Health>()
            .unwrap_err();
        assert!(matches!(err, ClientError::NotAHub { .. }));
        assert!(!err.to_string().contains(secret), "{err}");
    }

    #[test]
    fn tls_failures_are_told_from_unreachable() {
        assert!(looks_like_tls("invalid peer certificate: UnknownIssuer"));
        assert!(!looks_like_tls(
            "client error (Connect): tcp connect error: Connection refused (os error 111)"
        ));
    }
}
