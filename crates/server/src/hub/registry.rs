//! Registry access: the `/token` endpoint of the registry's token auth, granting what was
//! asked within what the credential and the account allow.

use chrono::{DateTime, Utc};
use hubkey_api::RegistryTokenResponse;
use zeroize::Zeroizing;

use super::sign_in::{refuse_password_with_2fa, Proof};
use super::{check_repository_name, check_username, ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::registry::access::{self, Principal};
use crate::throttle::Attempt;

/// How a registry client proves who it is at `/token`.
#[derive(Debug)]
pub enum RegistryCredential {
    /// No credentials: an anonymous token for public pulls.
    Anonymous,
    /// Basic auth or the OAuth2 password grant: a user name with a password or a PAT.
    Basic {
        username: String,
        secret: Zeroizing<String>,
    },
    /// The OAuth2 refresh-token grant: a PAT handed out as the refresh token.
    RefreshToken(Zeroizing<String>),
}

/// A request for a registry token.
#[derive(Debug)]
pub struct RegistryTokenRequest {
    pub credential: RegistryCredential,
    /// The registry's service name; empty means the default.
    pub service: String,
    /// Every `scope` parameter as sent.
    pub scopes: Vec<String>,
    /// OAuth2 `access_type=offline`: a PAT credential comes back as the refresh token.
    pub offline: bool,
}

impl Hub {
    /// `GET`/`POST /token`: a registry token granting what was asked, within what the
    /// credential and the account allow.
    pub async fn registry_token(
        &self,
        request: RegistryTokenRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<RegistryTokenResponse> {
        // Checked before the credential or any lookup: a malformed or oversized request
        // costs nothing but this parse.
        let requested = access::parse_scopes(&request.scopes)
            .map_err(|err| Error::invalid("scope", err.to_string()))?;
        check_service(&request.service)?;
        let (principal, refresh_token, token_uuid) = self
            .registry_principal(request.credential, request.offline, client, now)
            .await?;
        let mut granted = Vec::with_capacity(requested.len());
        for resource in &requested {
            // Visibility is looked up only when it changes the grant (not for the owner), and
            // only for a name that can be an account's repository (not one with a registry
            // host in front: no account owns a host).
            let is_public = match resource.name.split_once('/') {
                Some((namespace, name))
                    if access::depends_on_visibility(&principal, resource)
                        && check_username(namespace).is_ok()
                        && check_repository_name(name).is_ok() =>
                {
                    self.is_public(namespace, name).await?
                }
                _ => false,
            };
            granted.push(access::grant(&principal, resource, is_public));
        }
        if let Some(uuid) = &token_uuid {
            self.log_registry_access(uuid, client, &granted, now);
        }
        let service = if request.service.is_empty() {
            crate::registry::DEFAULT_SERVICE
        } else {
            request.service.as_str()
        };
        let issued = self
            .issuer
            .issue(principal.subject(), service, &granted, now)?;
        Ok(RegistryTokenResponse {
            access_token: issued.token.clone(),
            token: issued.token,
            expires_in: issued.expires_in,
            issued_at: issued.issued_at,
            refresh_token,
        })
    }

    async fn registry_principal(
        &self,
        credential: RegistryCredential,
        offline: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(Principal, Option<String>, Option<String>)> {
        let (username, secret) = match credential {
            RegistryCredential::Anonymous => return Ok((Principal::Anonymous, None, None)),
            RegistryCredential::RefreshToken(secret) => {
                // A refresh token cannot be guessed: checked, not reserved (see `prove`).
                let attempt = Attempt::from_address(client.ip);
                self.throttle.check_address(&attempt, now)?;
                let token = match self.use_token(None, &secret, client, now).await {
                    Ok(token) => token,
                    Err(Error::Unauthorized(_)) => {
                        self.throttle.fail(&attempt, now).await?;
                        return Err(Error::bad_credentials());
                    }
                    Err(other) => return Err(other),
                };
                let principal = Principal::Token {
                    username: token.username.clone(),
                    scopes: token.scopes(),
                };
                let uuid = token.uuid.clone();
                return Ok((principal, Some(secret.to_string()), Some(uuid)));
            }
            RegistryCredential::Basic { username, secret } => (username, secret),
        };
        match self.prove(&username, &secret, client, now).await? {
            Proof::Token(token) => {
                let principal = Principal::Token {
                    username,
                    scopes: token.scopes(),
                };
                let uuid = token.uuid.clone();
                Ok((principal, offline.then(|| secret.to_string()), Some(uuid)))
            }
            Proof::Password(user) => {
                refuse_password_with_2fa(&user)?;
                let principal = Principal::Password {
                    username: user.username,
                };
                Ok((principal, None, None))
            }
        }
    }
}

/// The longest `service` name accepted (it becomes the token's audience).
pub const MAX_SERVICE: usize = 255;

/// A service name is printable ASCII of at most [`MAX_SERVICE`] characters: it is copied into
/// the signed token.
fn check_service(service: &str) -> Result<()> {
    if service.len() <= MAX_SERVICE && service.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "service",
            format!("use at most {MAX_SERVICE} printable ASCII characters"),
        ))
    }
}
