//! Error bodies, in Docker Hub's shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of 401, 403, 404, 409 and 429 answers: Hub sends both fields with the same text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
    pub message: String,
    /// On a 401 that asks for a second factor: the single-use challenge for `/v2/users/2fa-login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_2fa_token: Option<String>,
    /// Our extension to Hub's body: a machine-readable reason, where a client must tell two
    /// answers of one status apart and Hub's text is for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

/// The machine-readable reasons an [`ErrorBody`] can carry in `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401 from `/v2/users/2fa-login`: the challenge is unknown, used up, out of attempts or
    /// expired, so the sign-in starts over with the password. (A wrong code is a 401 without a
    /// code, and the challenge stays usable.)
    ChallengeExpired,
    /// 401: the session was revoked because one of its spent refresh tokens was presented again
    /// (someone else may hold a copy), and on any later use of that session. Sign in again;
    /// the account's security events say when and from where.
    SessionRevoked,
    /// A code this build does not know (a newer server): treat the answer by its status.
    #[serde(other)]
    Unknown,
}

impl ErrorBody {
    /// A body whose `detail` and `message` both carry `text`.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        ErrorBody {
            detail: text.clone(),
            message: text,
            login_2fa_token: None,
            code: None,
        }
    }

    /// A body carrying `text` and the machine-readable `code`.
    pub fn with_code(text: impl Into<String>, code: ErrorCode) -> Self {
        ErrorBody {
            code: Some(code),
            ..ErrorBody::new(text)
        }
    }
}

/// Body of a 400 answer: what is wrong with each field, and a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValidationErrorBody {
    pub fields: BTreeMap<String, Vec<String>>,
    pub text: String,
}

/// The 401 body of the registry token endpoint, which docker, skopeo and podman print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryErrorBody {
    pub details: String,
}

/// The message Hub gives when a password login needs a second factor.
pub const MFA_REQUIRED: &str = "Require secondary authentication on MFA enabled account";
/// The message Hub gives when a session minted from a PAT tries to manage PATs.
pub const PAT_SESSION_FORBIDDEN: &str = "token issued from personal access token is not allowed";
