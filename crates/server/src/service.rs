//! The account and token service: every operation of the API as a plain async function of
//! its inputs and `now`. The HTTP layer only extracts inputs and maps results.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hubkey_api::error::PAT_SESSION_FORBIDDEN;
use hubkey_api::token::looks_like_token;
use hubkey_api::{
    AccessToken, CreateAccessTokenRequest, DailyUse, DesktopGenerateRequest, GeneratedToken,
    LoginResponse, Origin, PatchAccessTokenRequest, PlainToken, RegistryTokenResponse, Repository,
    Scope, TokenDigest, TokenEventKind, TokenEventPage,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::ServerKeys;
use crate::password::{self, PasswordHasher};
use crate::registry::access::{self, Principal};
use crate::registry::TokenIssuer;
use crate::session::{self, Caller, SessionSource};
use crate::store::{self, NewToken, Store, TokenOwner, TokenRow, UserRow};
use crate::throttle::{Attempt, Throttle};
use crate::totp;
use crate::usage::{epoch_day, LookupCache, TokenCache, UsageLog};

/// Longest token label, in characters (Hub's limit).
pub const MAX_LABEL: usize = 100;
/// Largest page of tokens.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Largest page of events.
pub const MAX_EVENTS: u32 = 500;

/// Where a request came from: recorded on the tokens it creates, used for throttling.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: String,
}

/// A page of tokens, before the HTTP layer adds the page links.
#[derive(Debug, Clone)]
pub struct TokenPage {
    pub count: u64,
    pub active_count: u64,
    pub results: Vec<AccessToken>,
}

/// How long a cached repository visibility is trusted: how soon a running server sees a
/// change made with `hubkeyd repo`. Changes through the API take effect at once.
pub const REPOSITORY_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// Days of usage shown with each token.
pub const USAGE_DAYS: i64 = 30;

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

/// The service: the store, the keys, the password hasher, the registry token signer, and
/// the token-use cache and log.
#[derive(Clone)]
pub struct Hub {
    store: Store,
    keys: ServerKeys,
    hasher: PasswordHasher,
    issuer: Arc<TokenIssuer>,
    tokens: Arc<TokenCache>,
    /// Visibility by `namespace/name`: true when public.
    repositories: Arc<LookupCache<bool>>,
    usage: Arc<UsageLog>,
    throttle: Arc<Throttle>,
    /// How long a bearer JWT lives ([`session::ACCESS_TTL`] unless set).
    access_ttl: chrono::Duration,
}

impl Hub {
    pub fn new(
        store: Store,
        keys: ServerKeys,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        throttle: Throttle,
    ) -> Self {
        Hub {
            store,
            keys,
            hasher,
            issuer: Arc::new(issuer),
            tokens: Arc::new(TokenCache::default()),
            // `hubkeyd repo` changes visibility from another process: look again after a while.
            repositories: Arc::new(LookupCache::with_max_age(REPOSITORY_CACHE_AGE)),
            usage: Arc::new(UsageLog::default()),
            throttle: Arc::new(throttle),
            access_ttl: session::ACCESS_TTL,
        }
    }

    /// Bearer JWTs live `ttl` instead of [`session::ACCESS_TTL`] (clients renew them with
    /// their refresh token; tests use a short one to see that they do).
    #[must_use]
    pub fn with_access_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// The bearer lifetime in seconds, as `expires_in` says it.
    fn access_ttl_seconds(&self) -> u64 {
        u64::try_from(self.access_ttl.num_seconds()).unwrap_or(0)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The log of token uses not yet written; the server flushes it periodically and on
    /// shutdown.
    pub fn usage(&self) -> &Arc<UsageLog> {
        &self.usage
    }

    // ---- accounts (admin) --------------------------------------------------------------

    /// Creates a user after checking the name and the password policy.
    pub async fn add_user(
        &self,
        username: &str,
        password: Zeroizing<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_username(username)?;
        password::check_policy(&password)?;
        let hash = self.hasher.hash(password).await?;
        self.store.insert_user(username, &hash, now).await
    }

    /// Turns on TOTP for a user (replacing any earlier secret) and returns the new secret.
    pub async fn enable_totp(&self, username: &str) -> Result<[u8; totp::SECRET_LEN]> {
        let user = self
            .store
            .user_by_name(username)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))?;
        let secret = totp::new_secret();
        self.store
            .set_totp(&user.id, &self.keys.seal(&secret)?)
            .await?;
        Ok(secret)
    }

    // ---- sign-in -----------------------------------------------------------------------

    /// `POST /v2/users/login`: a session, or a 2FA challenge for accounts with TOTP.
    pub async fn login(
        &self,
        username: &str,
        password: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let attempt = Attempt::new(username, client.ip);
        attempt.check(&self.throttle, now)?;
        let user = self
            .check_password(&attempt, username, password, now)
            .await?;
        if user.totp_sealed.is_some() {
            let challenge = crate::random_secret();
            self.store
                .insert_challenge(
                    TokenDigest::of(&challenge).as_str(),
                    &user.id,
                    now + session::CHALLENGE_TTL,
                )
                .await?;
            return Err(Error::SecondFactorRequired {
                login_2fa_token: challenge,
            });
        }
        self.open_password_session(&user.id, &user.username, now)
            .await
    }

    /// `POST /v2/users/2fa-login`: the second step of a login.
    pub async fn login_2fa(
        &self,
        challenge: &str,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let digest = TokenDigest::of(challenge);
        let expired = || {
            Error::Unauthorized(
                "The two-factor challenge is invalid or has expired; sign in again".into(),
            )
        };
        // A forged or stale challenge counts against the address like a wrong password.
        let from_address = Attempt::from_address(client.ip);
        from_address.check(&self.throttle, now)?;
        let user = match self
            .store
            .challenge_user(digest.as_str(), now, session::CHALLENGE_ATTEMPTS)
            .await?
        {
            Some(user_id) => self.store.user_by_id(&user_id).await?,
            None => None,
        };
        let Some((user, sealed)) = user.and_then(|user| {
            let sealed = user.totp_sealed.clone()?;
            Some((user, sealed))
        }) else {
            from_address.fail(&self.throttle, &self.store, now).await?;
            return Err(expired());
        };
        let attempt = Attempt::new(&user.username, client.ip);
        attempt.check(&self.throttle, now)?;
        let sealed = sealed.as_str();
        let secret = self.keys.unseal(sealed)?;
        let Some(step) = totp::verify(&secret, code, now.timestamp()) else {
            self.store.fail_challenge(digest.as_str(), now).await?;
            attempt.fail(&self.throttle, &self.store, now).await?;
            return Err(Error::Unauthorized("Incorrect verification code".into()));
        };
        if !self.store.accept_totp_step(&user.id, step).await? {
            attempt.fail(&self.throttle, &self.store, now).await?;
            return Err(Error::Unauthorized(
                "This verification code was already used; wait for the next one".into(),
            ));
        }
        if !self.store.consume_challenge(digest.as_str()).await? {
            return Err(expired());
        }
        attempt.succeed(&self.throttle, &self.store, now).await?;
        self.open_password_session(&user.id, &user.username, now)
            .await
    }

    /// `POST /v2/users/refresh`: a new bearer and a new refresh token for a live session.
    pub async fn refresh(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<LoginResponse> {
        let next = crate::random_secret();
        let session = self
            .store
            .rotate_refresh(
                TokenDigest::of(refresh_token).as_str(),
                TokenDigest::of(&next).as_str(),
                now,
                now + session::SESSION_TTL,
                now - session::REFRESH_GRACE,
            )
            .await?
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        let user = self
            .store
            .user_by_id(&session.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("The account no longer exists".into()))?;
        let caller = Caller {
            user_id: user.id,
            username: user.username,
            session_id: session.id,
            source: SessionSource::Password,
        };
        Ok(LoginResponse {
            token: session::mint(&self.keys, &caller, now, now + self.access_ttl)?,
            refresh_token: Some(next),
            expires_in: Some(self.access_ttl_seconds()),
        })
    }

    /// `POST /v2/users/logout`: ends the caller's session and its refresh token.
    pub async fn logout(&self, caller: &Caller, now: DateTime<Utc>) -> Result<()> {
        self.store.revoke_session(&caller.session_id, now).await
    }

    /// `POST /v2/auth/token`: a bearer from a password (accounts without 2FA) or a PAT.
    pub async fn auth_token(
        &self,
        identifier: &str,
        secret: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let user = match self.prove(identifier, &secret, client, now).await? {
            Proof::Token(token) => {
                let expires_at = now + session::PAT_SESSION_TTL;
                let caller = self
                    .open_session(
                        &token.token.user_id,
                        identifier,
                        SessionSource::Pat,
                        None,
                        now,
                        expires_at,
                    )
                    .await?;
                return session::mint(&self.keys, &caller, now, expires_at);
            }
            Proof::Password(user) => user,
        };
        refuse_password_with_2fa(&user)?;
        let response = self
            .open_password_session(&user.id, &user.username, now)
            .await?;
        Ok(response.token)
    }

    /// Checks `secret` for `username` under throttling: a PAT-shaped secret as a personal
    /// access token, anything else as the password. Wrong ones count against the account
    /// and the address.
    async fn prove(
        &self,
        username: &str,
        secret: &Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Proof> {
        let attempt = Attempt::new(username, client.ip);
        if !looks_like_token(secret) {
            attempt.check(&self.throttle, now)?;
            let user = self
                .check_password(&attempt, username, secret.clone(), now)
                .await?;
            return Ok(Proof::Password(user));
        }
        // A PAT cannot be guessed: the account's limit, which password guesses from many
        // addresses fill, must not refuse the account's own tokens (docker pulls, CI).
        attempt.check_address(&self.throttle, now)?;
        match self.use_token(Some(username), secret, now).await {
            Ok(token) => Ok(Proof::Token(token)),
            Err(Error::Unauthorized(_)) => {
                attempt.fail(&self.throttle, &self.store, now).await?;
                Err(Error::bad_credentials())
            }
            Err(other) => Err(other),
        }
    }

    /// The user `username` if `password` is theirs; otherwise counts a failure of `attempt`.
    /// An unknown user costs the same time as a wrong password.
    async fn check_password(
        &self,
        attempt: &Attempt,
        username: &str,
        password: Zeroizing<String>,
        now: DateTime<Utc>,
    ) -> Result<UserRow> {
        let user = self.store.user_by_name(username).await?;
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        let (true, Some(user)) = (self.hasher.verify(password, stored).await?, user) else {
            attempt.fail(&self.throttle, &self.store, now).await?;
            return Err(Error::bad_credentials());
        };
        if user.totp_sealed.is_none() {
            attempt.succeed(&self.throttle, &self.store, now).await?;
        }
        Ok(user)
    }

    /// Checks a PAT presented by `username` (or by anyone, for `None`) and records its use.
    /// Every refusal (malformed, bad checksum, unknown, someone else's, inactive, expired) is
    /// the same error to the caller; the reason is logged.
    pub async fn use_token(
        &self,
        username: Option<&str>,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<TokenOwner>> {
        let token = PlainToken::parse(secret).map_err(|err| {
            tracing::debug!(reason = %err, "access token refused");
            Error::bad_credentials()
        })?;
        let digest = token.digest();
        let found = self
            .tokens
            .get_or_load(digest.as_str(), || async {
                Ok(self
                    .store
                    .token_by_digest(digest.as_str())
                    .await?
                    .map(Arc::new))
            })
            .await?;
        let reason = match &found {
            None => Some("unknown"),
            Some(found) if username.is_some_and(|name| name != found.username) => {
                Some("belongs to another account")
            }
            Some(found) if found.token.is_expired(now) => Some("expired"),
            Some(found) if !found.token.is_active => Some("inactive"),
            Some(_) => None,
        };
        match (reason, found) {
            (None, Some(found)) => {
                self.usage.record(&found.token.uuid, now);
                Ok(found)
            }
            (reason, _) => {
                tracing::debug!(reason = reason.unwrap_or("unknown"), "access token refused");
                Err(Error::bad_credentials())
            }
        }
    }

    // ---- registry tokens ---------------------------------------------------------------

    /// `GET`/`POST /token`: a registry token granting what was asked, within what the
    /// credential and the account allow.
    pub async fn registry_token(
        &self,
        request: RegistryTokenRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<RegistryTokenResponse> {
        let mut requested = Vec::new();
        for scope in &request.scopes {
            requested.extend(
                access::parse_scopes(scope)
                    .map_err(|err| Error::invalid("scope", err.to_string()))?,
            );
        }
        let (principal, refresh_token) = self
            .registry_principal(request.credential, request.offline, client, now)
            .await?;
        let mut granted = Vec::with_capacity(requested.len());
        for resource in &requested {
            let is_public = match (resource.kind.as_str(), resource.name.split_once('/')) {
                ("repository", Some((namespace, name))) => self.is_public(namespace, name).await?,
                _ => false,
            };
            granted.push(access::grant(&principal, resource, is_public));
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
    ) -> Result<(Principal, Option<String>)> {
        let (username, secret) = match credential {
            RegistryCredential::Anonymous => return Ok((Principal::Anonymous, None)),
            RegistryCredential::RefreshToken(secret) => {
                let attempt = Attempt::from_address(client.ip);
                attempt.check(&self.throttle, now)?;
                let token = match self.use_token(None, &secret, now).await {
                    Ok(token) => token,
                    Err(Error::Unauthorized(_)) => {
                        attempt.fail(&self.throttle, &self.store, now).await?;
                        return Err(Error::bad_credentials());
                    }
                    Err(other) => return Err(other),
                };
                let principal = Principal::Token {
                    username: token.username.clone(),
                    scopes: token.token.scopes(),
                };
                return Ok((principal, Some(secret.to_string())));
            }
            RegistryCredential::Basic { username, secret } => (username, secret),
        };
        match self.prove(&username, &secret, client, now).await? {
            Proof::Token(token) => {
                let principal = Principal::Token {
                    username,
                    scopes: token.token.scopes(),
                };
                Ok((principal, offline.then(|| secret.to_string())))
            }
            Proof::Password(user) => {
                refuse_password_with_2fa(&user)?;
                let principal = Principal::Password {
                    username: user.username,
                };
                Ok((principal, None))
            }
        }
    }

    // ---- repositories ------------------------------------------------------------------

    async fn is_public(&self, namespace: &str, name: &str) -> Result<bool> {
        let key = format!("{namespace}/{name}");
        let public = self
            .repositories
            .get_or_load(&key, || async {
                Ok(Some(
                    self.store.repository_is_public(namespace, name).await?,
                ))
            })
            .await?;
        Ok(public.unwrap_or(false))
    }

    /// `GET /v2/repositories/{namespace}/{name}`: visible to its owner, and to everyone when
    /// public.
    pub async fn repository(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
    ) -> Result<Repository> {
        check_repository_name(name)?;
        let is_public = self.is_public(namespace, name).await?;
        if !is_public && caller.username != namespace {
            return Err(Error::NotFound("Repository not found".into()));
        }
        Ok(Repository {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            is_private: !is_public,
        })
    }

    /// `PATCH /v2/repositories/{namespace}/{name}`: the owner sets the visibility.
    pub async fn set_repository_visibility(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        is_private: bool,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        require_password_session(caller)?;
        if caller.username != namespace {
            return Err(Error::Forbidden(
                "You can change repositories in your own namespace only".into(),
            ));
        }
        self.set_visibility(namespace, name, is_private, now).await
    }

    /// Sets a repository's visibility without an owner check: the admin command.
    pub async fn set_visibility(
        &self,
        namespace: &str,
        name: &str,
        is_private: bool,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        check_username(namespace)
            .map_err(|_| Error::invalid("namespace", "not a valid namespace"))?;
        check_repository_name(name)?;
        self.store
            .set_repository_visibility(namespace, name, !is_private, now)
            .await?;
        self.repositories.forget(&format!("{namespace}/{name}"));
        Ok(Repository {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            is_private,
        })
    }

    /// Resolves a bearer JWT to its caller, refusing expired and revoked sessions.
    pub async fn authenticate(&self, bearer: &str, now: DateTime<Utc>) -> Result<Caller> {
        let claims = session::verify(&self.keys, bearer, now)?;
        let session = self
            .store
            .session(&claims.sid)
            .await?
            .filter(|s| {
                s.revoked_at.is_none()
                    && s.expires_at > store::millis(now)
                    && s.user_id == claims.uid
            })
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        Ok(Caller {
            user_id: session.user_id,
            username: claims.sub,
            session_id: session.id,
            source: if session.source == SessionSource::Pat.as_str() {
                SessionSource::Pat
            } else {
                SessionSource::Password
            },
        })
    }

    async fn open_password_session(
        &self,
        user_id: &str,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let refresh = crate::random_secret();
        let caller = self
            .open_session(
                user_id,
                username,
                SessionSource::Password,
                Some(TokenDigest::of(&refresh).as_str()),
                now,
                now + session::SESSION_TTL,
            )
            .await?;
        Ok(LoginResponse {
            token: session::mint(&self.keys, &caller, now, now + self.access_ttl)?,
            refresh_token: Some(refresh),
            expires_in: Some(self.access_ttl_seconds()),
        })
    }

    async fn open_session(
        &self,
        user_id: &str,
        username: &str,
        source: SessionSource,
        refresh_digest: Option<&str>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Caller> {
        let session_id = Uuid::new_v4().to_string();
        self.store
            .insert_session(
                &session_id,
                user_id,
                source.as_str(),
                refresh_digest,
                now,
                expires_at,
            )
            .await?;
        Ok(Caller {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            session_id,
            source,
        })
    }

    // ---- tokens ------------------------------------------------------------------------

    /// `POST /v2/access-tokens`: a manual token; the answer carries the secret, once.
    pub async fn create_token(
        &self,
        caller: &Caller,
        request: &CreateAccessTokenRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        let checked = check_create_request(request, now)?;
        let secret = PlainToken::generate();
        let row = self
            .insert_token(
                caller,
                &secret,
                checked.label,
                &checked.scopes,
                Origin::Manual,
                "",
                checked.expires_at,
                client,
                now,
            )
            .await?;
        let mut token = row.to_api(now);
        token.token = secret.expose().to_owned();
        Ok(token)
    }

    /// `POST /v2/access-tokens/desktop-generate`: an auto token with full rights, then the
    /// pruning rule, in one transaction.
    pub async fn desktop_generate(
        &self,
        caller: &Caller,
        request: &DesktopGenerateRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<GeneratedToken> {
        require_password_session(caller)?;
        let (client_name, device) = describe_client(request, &client.user_agent);
        let label = truncate(&format!("{client_name} on {device}"), MAX_LABEL);
        let secret = PlainToken::generate();
        let row = self
            .insert_token(
                caller,
                &secret,
                &label,
                &[Scope::Admin],
                Origin::Auto,
                &client_name,
                None,
                client,
                now,
            )
            .await?;
        Ok(GeneratedToken {
            token: secret.expose().to_owned(),
            uuid: Uuid::parse_str(&row.uuid).unwrap_or_default(),
            token_label: row.label,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_token(
        &self,
        caller: &Caller,
        secret: &PlainToken,
        label: &str,
        scopes: &[Scope],
        origin: Origin,
        client_id: &str,
        expires_at: Option<DateTime<Utc>>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<TokenRow> {
        let uuid = Uuid::new_v4();
        let creator_ip = client.ip.to_string();
        let creator_ua = truncate(&client.user_agent, 256);
        let digest = secret.digest();
        let hint = secret.hint();
        let new = NewToken {
            uuid,
            user_id: &caller.user_id,
            digest: digest.as_str(),
            hint: &hint,
            label,
            scopes,
            origin,
            client_id,
            creator_ip: &creator_ip,
            creator_ua: &creator_ua,
            expires_at,
            now,
        };
        if origin == Origin::Auto {
            // The pruning rule ranks by last use: write the pending uses first.
            self.usage.flush(&self.store).await?;
        }
        let mut tx = self.store.begin().await?;
        // Stamp with the account's token clock, so creation times follow commit order.
        let now = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        let new = NewToken { now, ..new };
        Store::insert_token(&mut tx, &new).await?;
        let row = Store::token_in(&mut tx, &caller.user_id, uuid)
            .await?
            .ok_or_else(|| Error::Internal("token vanished inside its own transaction".into()))?;
        Store::insert_event(&mut tx, &caller.user_id, TokenEventKind::Created, &row, now).await?;
        let pruned = if origin == Origin::Auto {
            Store::prune_auto_tokens(&mut tx, &caller.user_id, uuid, now).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        for gone in &pruned {
            self.tokens.forget(&gone.digest);
        }
        if !pruned.is_empty() {
            tracing::info!(user = %caller.username, pruned = pruned.len(), "pruned old auto tokens");
        }
        Ok(row)
    }

    /// `GET /v2/access-tokens`: one page, newest first. Pages count from 1.
    pub async fn list_tokens(
        &self,
        caller: &Caller,
        page: u32,
        page_size: u32,
        now: DateTime<Utc>,
    ) -> Result<TokenPage> {
        require_password_session(caller)?;
        if page == 0 {
            return Err(Error::invalid("page", "pages count from 1"));
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        self.store.note_expired_tokens(&caller.user_id, now).await?;
        let (count, active_count) = self.store.count_tokens(&caller.user_id, now).await?;
        let offset = i64::from(page - 1) * i64::from(page_size);
        if page > 1 && offset >= count {
            return Err(Error::NotFound("Invalid page.".into()));
        }
        let limit = i64::from(page_size);
        let rows = self
            .store
            .list_tokens(&caller.user_id, offset, limit)
            .await?;
        let usage = self
            .store
            .usage_of_page(
                &caller.user_id,
                offset,
                limit,
                epoch_day(now) - USAGE_DAYS + 1,
            )
            .await?;
        Ok(TokenPage {
            count: u64::try_from(count).unwrap_or(0),
            active_count: u64::try_from(active_count).unwrap_or(0),
            results: rows
                .iter()
                .map(|row| self.with_usage(row, &usage, now))
                .collect(),
        })
    }

    /// `GET /v2/access-tokens/{uuid}`.
    pub async fn get_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        let row = self
            .store
            .token(&caller.user_id, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        let usage = self
            .store
            .usage_of_token(&row.uuid, epoch_day(now) - USAGE_DAYS + 1)
            .await?;
        Ok(self.with_usage(&row, &usage, now))
    }

    /// The API form of `row` with its stored usage (`(uuid, day, uses)` rows, any tokens) and
    /// its unflushed uses merged in.
    fn with_usage(
        &self,
        row: &TokenRow,
        stored: &[(String, i64, i64)],
        now: DateTime<Utc>,
    ) -> AccessToken {
        let mut days: std::collections::BTreeMap<i64, i64> = stored
            .iter()
            .filter(|(uuid, _, _)| *uuid == row.uuid)
            .map(|(_, day, uses)| (*day, *uses))
            .collect();
        let mut token = row.to_api(now);
        if let Some(pending) = self.usage.pending(&row.uuid) {
            for (day, uses) in pending.days {
                *days.entry(day).or_insert(0) += uses;
            }
            let pending_last = DateTime::from_timestamp_millis(pending.last_used);
            token.last_used = token.last_used.max(pending_last);
        }
        let first_day = epoch_day(now) - USAGE_DAYS + 1;
        token.usage = days
            .into_iter()
            .filter(|(day, _)| *day >= first_day)
            .filter_map(|(day, uses)| {
                Some(DailyUse {
                    day: DateTime::from_timestamp(day * 86_400, 0)?.date_naive(),
                    uses: u64::try_from(uses).ok()?,
                })
            })
            .collect();
        token
    }

    /// `PATCH /v2/access-tokens/{uuid}`: relabel and/or (de)activate, with an event per change.
    pub async fn patch_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        patch: &PatchAccessTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        let label = check_patch_request(patch)?;
        let mut tx = self.store.begin().await?;
        let now = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        let mut row = Store::token_in(&mut tx, &caller.user_id, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        let mut changes = Vec::new();
        if let Some(label) = label.filter(|label| *label != row.label) {
            row.label = label.to_owned();
            changes.push(TokenEventKind::Relabelled);
        }
        if let Some(active) = patch.is_active.filter(|active| *active != row.is_active) {
            row.is_active = active;
            changes.push(if active {
                TokenEventKind::Activated
            } else {
                TokenEventKind::Deactivated
            });
        }
        if !changes.is_empty() {
            Store::update_token(&mut tx, &row.uuid, &row.label, row.is_active).await?;
            for kind in changes {
                Store::insert_event(&mut tx, &caller.user_id, kind, &row, now).await?;
            }
        }
        tx.commit().await?;
        self.tokens.forget(&row.digest);
        Ok(row.to_api(now))
    }

    /// `DELETE /v2/access-tokens/{uuid}`.
    pub async fn delete_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        require_password_session(caller)?;
        let mut tx = self.store.begin().await?;
        let now = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        let row = Store::token_in(&mut tx, &caller.user_id, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        Store::delete_token(&mut tx, &row.uuid).await?;
        Store::insert_event(&mut tx, &caller.user_id, TokenEventKind::Deleted, &row, now).await?;
        tx.commit().await?;
        self.tokens.forget(&row.digest);
        Ok(())
    }

    /// `GET /v2/access-tokens/events`: what happened to the account's tokens after `after`.
    pub async fn events(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<TokenEventPage> {
        require_password_session(caller)?;
        let after_id = match after {
            None | Some("") => 0,
            Some(cursor) => store::decode_cursor(cursor)
                .ok_or_else(|| Error::invalid("after", "not a cursor this server gave out"))?,
        };
        if limit == 0 || limit > MAX_EVENTS {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_EVENTS}"),
            ));
        }
        self.store.note_expired_tokens(&caller.user_id, now).await?;
        let (events, has_more) = self
            .store
            .events_after(&caller.user_id, after_id, i64::from(limit))
            .await?;
        let cursor = events.last().map_or_else(
            || store::encode_cursor(after_id),
            |event| event.cursor.clone(),
        );
        Ok(TokenEventPage {
            events,
            cursor,
            has_more,
        })
    }
}

/// What a secret proved: a live personal access token, or the account's password.
enum Proof {
    Token(Arc<TokenOwner>),
    Password(UserRow),
}

/// With 2FA on, a password alone only starts the two-step login; everywhere else (the API's
/// auth/token, the registry) it takes a personal access token, as on Docker Hub.
fn refuse_password_with_2fa(user: &UserRow) -> Result<()> {
    if user.totp_sealed.is_some() {
        return Err(Error::Unauthorized(
            "This account uses two-factor authentication: use a personal access token".into(),
        ));
    }
    Ok(())
}

fn require_password_session(caller: &Caller) -> Result<()> {
    match caller.source {
        SessionSource::Password => Ok(()),
        SessionSource::Pat => Err(Error::Forbidden(PAT_SESSION_FORBIDDEN.into())),
    }
}

/// A `POST /v2/access-tokens` body that passed [`check_create_request`]: what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCreate<'a> {
    /// The label as given (1 to 100 characters, not blank, no control characters).
    pub label: &'a str,
    /// The scopes, sorted and without duplicates; never empty.
    pub scopes: Vec<Scope>,
    /// The expiry, after `now` when present.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Validates a create body as of `now`, as `create_token` does before it stores anything.
/// Every refusal is [`Error::Invalid`] naming the field (a 400).
pub fn check_create_request(
    request: &CreateAccessTokenRequest,
    now: DateTime<Utc>,
) -> Result<CheckedCreate<'_>> {
    let label = check_label(&request.token_label)?;
    if request.scopes.is_empty() {
        return Err(Error::invalid("scopes", "give at least one scope"));
    }
    let mut scopes = request.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if let Some(expires_at) = request.expires_at {
        if expires_at <= now {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
    }
    Ok(CheckedCreate {
        label,
        scopes,
        expires_at: request.expires_at,
    })
}

/// Validates a patch body, as `patch_token` does before it opens a transaction: the new
/// label, if one is given. Every refusal is [`Error::Invalid`] (a 400).
pub fn check_patch_request(patch: &PatchAccessTokenRequest) -> Result<Option<&str>> {
    patch.token_label.as_deref().map(check_label).transpose()
}

/// A label must have 1 to 100 characters, not be blank, and hold no control characters
/// (U+0000–U+001F, U+007F–U+009F: a label is one line of text, and a terminal or log that
/// shows it must not be steered by it). Everything else is stored as given, bidirectional
/// marks included: the displays render them safely.
fn check_label(label: &str) -> Result<&str> {
    let len = label.chars().count();
    if label.trim().is_empty() {
        return Err(Error::invalid("token_label", "must not be empty"));
    }
    if len > MAX_LABEL {
        return Err(Error::invalid(
            "token_label",
            format!("must be at most {MAX_LABEL} characters"),
        ));
    }
    if let Some(control) = label.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            "token_label",
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(control)
            ),
        ));
    }
    Ok(label)
}

/// A label derived from what a client sent about itself (device name, User-Agent): control
/// characters become spaces, so the auto token is still made and [`check_label`] holds.
fn plain_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// User names double as registry namespaces: 2 to 30 characters of lowercase letters and
/// digits, with single `.`, `_` or `-` between them.
pub fn check_username(username: &str) -> Result<()> {
    let valid_chars = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    let separators_ok = !username.starts_with(['.', '_', '-'])
        && !username.ends_with(['.', '_', '-'])
        && !username
            .as_bytes()
            .windows(2)
            .any(|pair| pair.iter().all(|b| matches!(b, b'.' | b'_' | b'-')));
    if (2..=30).contains(&username.len()) && valid_chars && separators_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "username",
            "use 2 to 30 lowercase letters and digits, with single '.', '_' or '-' between them",
        ))
    }
}

/// Repository names below the namespace: path components of lowercase letters and digits,
/// with single `.`, `_` or `-` between them, joined by `/`.
pub fn check_repository_name(name: &str) -> Result<()> {
    // distribution's grammar: alphanumeric runs joined by `.`, `_`, `__` or any run of `-`.
    let separator_ok =
        |run: &str| matches!(run, "." | "_" | "__") || run.bytes().all(|b| b == b'-');
    let component_ok = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && part
                .split(|c: char| c.is_ascii_alphanumeric())
                .filter(|run| !run.is_empty())
                .all(separator_ok)
    };
    if name.len() <= 200 && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "use lowercase letters, digits and single '.', '_' or '-', in '/'-separated parts",
        ))
    }
}

/// The client name and device for an auto token: from the request body when given, else
/// from the User-Agent (`product/version (device)`).
fn describe_client(request: &DesktopGenerateRequest, user_agent: &str) -> (String, String) {
    let product = user_agent
        .split(['/', ' '])
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or("hubkey");
    let device = user_agent
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside.trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("an unnamed device");
    let pick = |given: &Option<String>, fallback: &str, max: usize| {
        let given = given.as_deref().map(plain_text);
        let chosen = given
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(fallback);
        truncate(plain_text(chosen).trim(), max)
    };
    (
        pick(&request.client_name, product, 40),
        pick(&request.device_name, device, 50),
    )
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_namespace_safe() {
        for good in ["ann", "ann-lee", "a.b_c", "x9"] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "Ann",
            "-ann",
            "ann-",
            "a--b",
            "ann lee",
            "ann/lee",
            &"a".repeat(31),
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_checked_for_length_and_control_characters() {
        assert!(check_label("").is_err());
        assert!(check_label("   ").is_err());
        assert!(check_label(&"é".repeat(100)).is_ok());
        assert!(check_label(&"é".repeat(101)).is_err());
        assert!(check_label("ci \u{202e}evil\u{200f}").is_ok());
        assert!(check_label("ci\u{7}").is_err());
        assert!(check_label("two\nlines").is_err());
        assert!(check_label("tab\there").is_err());
        assert!(check_label("c1\u{85}").is_err());
    }

    #[test]
    fn create_and_patch_checks_sort_scopes_and_refuse_with_the_field_named() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let request = |label: &str, scopes: Vec<Scope>, expires_at| CreateAccessTokenRequest {
            token_label: label.to_owned(),
            scopes,
            expires_at,
        };
        let three = request("ci", vec![Scope::Write, Scope::Read, Scope::Write], None);
        let checked = check_create_request(&three, now).unwrap();
        assert_eq!(checked.scopes, [Scope::Read, Scope::Write]);
        assert_eq!(checked.label, "ci");
        let field = |err: Error| match err {
            Error::Invalid { fields, .. } => fields.into_keys().collect::<Vec<_>>(),
            other => panic!("not a 400: {other:?}"),
        };
        let refused = |r| field(check_create_request(&r, now).unwrap_err());
        assert_eq!(refused(request("ci", vec![], None)), ["scopes"]);
        assert_eq!(
            refused(request(" ", vec![Scope::Read], None)),
            ["token_label"]
        );
        assert_eq!(
            refused(request("ci", vec![Scope::Read], Some(now))),
            ["expires_at"]
        );
        let patch = PatchAccessTokenRequest {
            token_label: Some("a\0b".to_owned()),
            is_active: None,
        };
        assert_eq!(
            field(check_patch_request(&patch).unwrap_err()),
            ["token_label"]
        );
        assert_eq!(
            check_patch_request(&PatchAccessTokenRequest::default()).unwrap(),
            None
        );
    }

    #[test]
    fn auto_token_label_comes_from_body_then_user_agent() {
        let none = DesktopGenerateRequest::default();
        assert_eq!(
            describe_client(&none, "hubkey/0.1.0 (ann-laptop)"),
            ("hubkey".into(), "ann-laptop".into())
        );
        assert_eq!(
            describe_client(&none, ""),
            ("hubkey".into(), "an unnamed device".into())
        );
        let named = DesktopGenerateRequest {
            client_name: Some("docker-desktop".into()),
            device_name: Some("build-box".into()),
        };
        assert_eq!(
            describe_client(&named, "curl/8"),
            ("docker-desktop".into(), "build-box".into())
        );
        let hostile = DesktopGenerateRequest {
            client_name: Some("x\u{1b}[2J".into()),
            device_name: Some("a\u{7}\nb".into()),
        };
        assert_eq!(
            describe_client(&hostile, ""),
            ("x [2J".into(), "a  b".into())
        );
        assert_eq!(
            describe_client(&none, "evil\u{1b}/1 (box\r\n)"),
            ("evil".into(), "box".into())
        );
    }

    #[test]
    fn repository_names_follow_distribution_grammar() {
        for good in [
            "app",
            "a/b",
            "my-app",
            "my--app",
            "my_app",
            "my__app",
            "v1.2",
            "a0/b-c/d.e",
        ] {
            assert!(check_repository_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "App", "a..b", "a._b", "a___b", "-a", "a-", "a//b", "a/", ".a", "a b", "é",
        ] {
            assert!(check_repository_name(bad).is_err(), "{bad}");
        }
        assert!(check_repository_name(&"a".repeat(201)).is_err());
    }
}
