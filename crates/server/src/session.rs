//! Sessions: the short-lived bearer JWT the API accepts, and how long things live.
//!
//! A JWT names its session; every request also checks that the session is not revoked, so a
//! logout takes effect at once. The JWT is HS256 with a key derived from the server key.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::ServerKeys;

/// Lifetime of a bearer JWT.
pub const ACCESS_TTL: Duration = Duration::minutes(15);
/// Lifetime of a password session, from its sign-in: refreshing renews the bearer and the
/// refresh token, never the session, so a stolen refresh token is worth 30 days at most. NIST
/// SP 800-63B §4.1.3 asks a password-only (AAL1) session to authenticate again at least once
/// per 30 days whatever its activity; the app holds a PAT for the docker CLI, so signing in
/// again monthly costs one password entry and no pull.
pub const SESSION_TTL: Duration = Duration::days(30);
/// How long a rotated refresh token may still be presented, once, for a client that never
/// got the answer carrying its replacement. Any other presentation of a spent refresh token
/// revokes the session.
pub const REFRESH_GRACE: Duration = Duration::minutes(5);
/// How long an ended (revoked or expired) session is kept before the sweep deletes it: while
/// kept, its spent refresh tokens and bearers are answered `session_revoked` rather than
/// "unknown", so a client learns why it was signed out (bearers live 15 minutes, a desktop
/// app may sleep for days).
pub const SESSION_RETENTION: Duration = Duration::days(7);
/// How often the server sweeps ended sessions and expired 2FA challenges.
pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
/// Lifetime of a session minted from a PAT (no refresh token).
pub const PAT_SESSION_TTL: Duration = Duration::minutes(15);
/// Lifetime of a 2FA challenge.
pub const CHALLENGE_TTL: Duration = Duration::minutes(5);
/// Lifetime of the device verification page's sign-in (its cookie lives as long).
pub const DEVICE_PAGE_TTL: Duration = Duration::minutes(10);
/// Wrong codes a challenge survives.
pub const CHALLENGE_ATTEMPTS: i64 = 5;

const ISSUER: &str = "hubkeyd";

/// How a session was opened; a PAT session may not manage PATs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionSource {
    Password,
    Pat,
    /// The device verification page's own short sign-in (a cookie, never a bearer): it may
    /// only approve or deny device codes.
    #[serde(rename = "device_page")]
    DevicePage,
}

impl SessionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionSource::Password => "password",
            SessionSource::Pat => "pat",
            SessionSource::DevicePage => "device_page",
        }
    }
}

/// The claims of a bearer JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user name, as Hub puts it.
    pub sub: String,
    /// The user id.
    pub uid: String,
    /// The session id.
    pub sid: String,
    pub src: SessionSource,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Who is calling: resolved from a valid, unrevoked bearer JWT.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
    pub session_id: String,
    pub source: SessionSource,
}

/// Signs a bearer JWT for a session.
pub fn mint(
    keys: &ServerKeys,
    caller: &Caller,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<String> {
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: caller.username.clone(),
        uid: caller.user_id.clone(),
        sid: caller.session_id.clone(),
        src: caller.source,
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(keys.session_jwt()),
    )
    .map_err(|err| Error::Internal(format!("signing session token: {err}")))
}

/// Checks a bearer JWT's signature, issuer and expiry at `now`. Revocation is checked by the
/// caller against the store.
pub fn verify(keys: &ServerKeys, jwt: &str, now: DateTime<Utc>) -> Result<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.validate_exp = false; // checked below against `now`, not the wall clock
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(
        jwt,
        &DecodingKey::from_secret(keys.session_jwt()),
        &validation,
    )
    .map_err(|_| Error::Unauthorized("Invalid or expired session token".into()))?;
    if data.claims.exp <= now.timestamp() {
        return Err(Error::Unauthorized("Session token expired".into()));
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            user_id: "u1".into(),
            username: "ann".into(),
            session_id: "s1".into(),
            source: SessionSource::Pat,
        }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let keys = ServerKeys::derive(&[1; 32]);
        let now = Utc::now();
        let jwt = mint(&keys, &caller(), now, now + ACCESS_TTL).unwrap();
        let claims = verify(&keys, &jwt, now).unwrap();
        assert_eq!(claims.sid, "s1");
        assert_eq!(claims.src, SessionSource::Pat);
        assert!(verify(&keys, &jwt, now + ACCESS_TTL).is_err());
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let now = Utc::now();
        let jwt = mint(
            &ServerKeys::derive(&[1; 32]),
            &caller(),
            now,
            now + ACCESS_TTL,
        )
        .unwrap();
        assert!(verify(&ServerKeys::derive(&[2; 32]), &jwt, now).is_err());
        assert!(verify(&ServerKeys::derive(&[1; 32]), "not.a.jwt", now).is_err());
    }
}
