//! The reference client of the hubkey / Docker Hub personal-access-token API.
//!
//! [`HubClient`] speaks Docker Hub's sign-in and access-token endpoints plus hubkey's
//! extensions (refresh, logout, the events feed), with the wire types of [`hubkey_api`]. The
//! server's integration tests, the desktop app and the CLI all use it, so every server test
//! tests it too.
//!
//! Invariants: a bearer is sent only on calls that need one, and only to the configured server
//! (pagination links to another origin are refused); redirects are not followed; no error
//! carries a password or a token.

#![warn(missing_docs)]

mod error;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use hubkey_api::{
    AccessToken, AccessTokenPage, AccountEventPage, AccountSettings, AuthTokenRequest,
    AuthTokenResponse, ChangePasswordRequest, CreateAccessTokenRequest, DesktopGenerateRequest,
    DesktopGenerateResponse, DeviceCodeRequest, DeviceCodeResponse, DeviceTokenResponse,
    DisableTotpRequest, Health, HubInfo, LoginRequest, LoginResponse, OAuthErrorBody,
    PatchAccessTokenRequest, PatchAccountSettings, PatchRepositoryRequest, RecoveryCodes,
    RefreshRequest, Repository, RevokeCredentialsRequest, RevokeCredentialsResponse,
    RevokedSessions, RotateAccessTokenRequest, SecretScanningResult, TokenActivityPage,
    TokenEventPage, TotpCodeRequest, TotpEnrolRequest, TotpEnrolment, TwoFactorLoginRequest,
    TwoFactorStatus,
};
use reqwest::{header, Method, RequestBuilder};
use url::Url;
use uuid::Uuid;

pub use error::ClientError;
use error::Reply;

/// The User-Agent sent unless the builder names another.
pub const DEFAULT_USER_AGENT: &str = concat!("hubkey-client/", env!("CARGO_PKG_VERSION"));
/// How long a whole request may take unless the builder says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Page size [`HubClient::list_all_tokens`] asks for (the server's maximum).
pub const ALL_TOKENS_PAGE_SIZE: u32 = 100;
/// The longest answer read (a page of 100 tokens is tens of KiB): a longer one is refused
/// rather than read into memory, so a broken or hostile server cannot exhaust it within
/// the timeout.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Pages [`HubClient::list_all_tokens`] asks for at once (hubkeyd answers pages in parallel).
pub const PARALLEL_PAGES: usize = 4;
/// Pages [`HubClient::list_all_tokens`] reads before deciding the server is looping.
const MAX_PAGES: usize = 10_000;

/// The result of a password sign-in.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Signed in.
    Session(LoginResponse),
    /// The account has two-factor authentication: pass this single-use challenge and the
    /// authenticator's current code to [`HubClient::login_2fa`].
    SecondFactor {
        /// The challenge from the server's 401 answer.
        login_2fa_token: String,
    },
}

/// What a poll of a device authorization grant ([`HubClient::poll_device_grant`]) learnt.
#[derive(Debug, Clone)]
pub enum DevicePoll {
    /// Not approved yet: poll again after the interval.
    Pending,
    /// Polled too fast: wait `interval` seconds between polls from now on (RFC 8628 §3.5).
    SlowDown {
        /// The interval now in force, in seconds.
        interval: u64,
    },
    /// The person pressed Deny.
    Denied,
    /// The codes expired before anyone approved them: start again.
    Expired,
    /// The device code is unknown or was used already (`invalid_grant`), or the server
    /// refused the request (`invalid_request`, `unsupported_grant_type`): `error` says which.
    Refused {
        /// The RFC 6749 error code.
        error: String,
        /// The server's explanation.
        description: String,
    },
    /// Approved: a full session of the approving account.
    Approved(DeviceTokenResponse),
}

/// A client of one hub. Cheap to clone (clones share one connection pool); a clone made by
/// [`HubClient::with_token`] acts as the session that bearer belongs to.
#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    /// The server's root, always ending in `/` so that endpoints join below it.
    base: Url,
    bearer: Option<String>,
}

impl fmt::Debug for HubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClient")
            .field("base", &self.base.as_str())
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Options for a [`HubClient`]; start from [`HubClient::builder`].
#[derive(Debug, Clone)]
pub struct HubClientBuilder {
    base_url: String,
    local_address: Option<IpAddr>,
    user_agent: Option<String>,
    timeout: Duration,
}

impl HubClientBuilder {
    /// Connects from this source address (tests use 127.0.0.x to act as several clients).
    pub fn local_address(mut self, address: IpAddr) -> Self {
        self.local_address = Some(address);
        self
    }

    /// Sends this User-Agent (the server records it as a token's `creator_ua`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Gives up on a request after this long (connecting included); default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the address and builds the client. Fails with [`ClientError::Url`] for anything
    /// but an `http`/`https` URL with a host and without credentials, query or fragment.
    pub fn build(self) -> Result<HubClient, ClientError> {
        let base = parse_base_url(&self.base_url)?;
        let user_agent = self
            .user_agent
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_owned());
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .local_address(self.local_address)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError::from_transport)?;
        Ok(HubClient {
            http,
            base,
            bearer: None,
        })
    }
}

/// Checks and normalises a hub's address as every client does: an `http`/`https` URL with a
/// host, without credentials, query or fragment, surrounding blanks ignored, its path ending
/// in `/`. A refusal is [`ClientError::Url`], which never repeats the address. Callers that
/// key things by a hub's address (the desktop app) parse it here once.
pub fn parse_base_url(text: &str) -> Result<Url, ClientError> {
    let mut url = Url::parse(text.trim()).map_err(|err| ClientError::Url(err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::Url(format!(
            "scheme {:?} is not supported: use http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::Url("the address has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientError::Url(
            "the address must not contain a user name or password".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Url(
            "the address must not have a query or fragment".into(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl HubClient {
    /// A client of the hub at `base_url` (e.g. `http://127.0.0.1:5080`) with default options.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    /// Options for a client of the hub at `base_url`.
    pub fn builder(base_url: &str) -> HubClientBuilder {
        HubClientBuilder {
            base_url: base_url.to_owned(),
            local_address: None,
            user_agent: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The bearer this client sends, if any: for the app carrying its live session over a
    /// restart of its own process (never logged, never shown).
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// A copy of this client that sends `Authorization: Bearer <bearer>` on calls that need a
    /// session.
    pub fn with_token(&self, bearer: impl Into<String>) -> HubClient {
        HubClient {
            bearer: Some(bearer.into()),
            ..self.clone()
        }
    }

    /// The server's root URL, ending in `/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Signs in with a password. A 401 carrying a 2FA challenge is not an error but
    /// [`LoginOutcome::SecondFactor`]; wrong credentials are [`ClientError::Unauthorized`].
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginOutcome, ClientError> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let reply = self
            .execute(self.anonymous(Method::POST, "v2/users/login")?.json(&body))
            .await?;
        if reply.status == reqwest::StatusCode::UNAUTHORIZED {
            if let Some(login_2fa_token) = reply.error_body().and_then(|b| b.login_2fa_token) {
                return Ok(LoginOutcome::SecondFactor { login_2fa_token });
            }
        }
        reply.into_json().map(LoginOutcome::Session)
    }

    /// Completes a sign-in with the challenge from [`HubClient::login`] and a TOTP code.
    pub async fn login_2fa(
        &self,
        challenge: &str,
        code: &str,
    ) -> Result<LoginResponse, ClientError> {
        let body = TwoFactorLoginRequest {
            login_2fa_token: challenge.to_owned(),
            code: code.to_owned(),
        };
        self.execute(
            self.anonymous(Method::POST, "v2/users/2fa-login")?
                .json(&body),
        )
        .await?
        .into_json()
    }

    /// Exchanges a refresh token for a new session; the old refresh token stops working.
    pub async fn refresh(&self, refresh_token: &str) -> Result<LoginResponse, ClientError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        self.execute(
            self.anonymous(Method::POST, "v2/users/refresh")?
                .json(&body),
        )
        .await?
        .into_json()
    }

    /// Ends this client's session: its bearer and refresh token stop working.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.execute(self.authorized(Method::POST, "v2/users/logout")?)
            .await?
            .into_empty()
    }

    /// Changes the signed-in account's password (`PUT /v2/users/password`). Every other
    /// session of the account ends; with `revoke_tokens` every access token of the account is
    /// deactivated too. A wrong `current` password is [`ClientError::Unauthorized`] and counts
    /// against the sign-in limits; a weak `new` one is [`ClientError::Invalid`].
    pub async fn change_password(
        &self,
        current: &str,
        new: &str,
        revoke_tokens: bool,
    ) -> Result<(), ClientError> {
        let body = ChangePasswordRequest {
            current_password: current.to_owned(),
            new_password: new.to_owned(),
            revoke_tokens,
        };
        self.execute(
            self.authorized(Method::PUT, "v2/users/password")?
                .json(&body),
        )
        .await?
        .into_empty()
    }

    /// Ends every session of the account, this client's included ("sign out everywhere").
    /// Answers how many sessions were live.
    pub async fn revoke_all_sessions(&self) -> Result<u64, ClientError> {
        let answer: RevokedSessions = self
            .execute(self.authorized(Method::POST, "v2/users/sessions/revoke-all")?)
            .await?
            .into_json()?;
        Ok(answer.revoked)
    }

    /// The account's security events (refresh-token reuse, password and 2FA changes, sessions
    /// revoked) after `after` (from the start when `None`), oldest first.
    pub async fn account_events(
        &self,
        after: Option<&str>,
    ) -> Result<AccountEventPage, ClientError> {
        let mut url = self.endpoint("v2/users/security-events")?;
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        self.get_json(url).await
    }

    /// The account's settings (`GET /v2/users/settings`).
    pub async fn account_settings(&self) -> Result<AccountSettings, ClientError> {
        self.get_json(self.endpoint("v2/users/settings")?).await
    }

    /// Changes the account's settings; only the fields present change.
    pub async fn patch_account_settings(
        &self,
        patch: &PatchAccountSettings,
    ) -> Result<AccountSettings, ClientError> {
        self.execute(
            self.authorized(Method::PATCH, "v2/users/settings")?
                .json(patch),
        )
        .await?
        .into_json()
    }

    /// Docker Hub's `/v2/auth/token`: a session from a password or a personal access token.
    /// A session made from an access token may not manage access tokens.
    pub async fn auth_token(
        &self,
        identifier: &str,
        secret: &str,
    ) -> Result<AuthTokenResponse, ClientError> {
        let body = AuthTokenRequest {
            identifier: identifier.to_owned(),
            secret: secret.to_owned(),
        };
        self.execute(self.anonymous(Method::POST, "v2/auth/token")?.json(&body))
            .await?
            .into_json()
    }

    /// Creates a manual access token; the answer's `token` is the plaintext, shown this once.
    pub async fn create_token(
        &self,
        request: &CreateAccessTokenRequest,
    ) -> Result<AccessToken, ClientError> {
        self.execute(
            self.authorized(Method::POST, "v2/access-tokens")?
                .json(request),
        )
        .await?
        .into_json()
    }

    /// One page (from 1) of the account's tokens, newest first, plaintexts blank.
    pub async fn list_tokens(
        &self,
        page: u32,
        page_size: u32,
    ) -> Result<AccessTokenPage, ClientError> {
        let mut url = self.endpoint("v2/access-tokens")?;
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &page_size.to_string());
        self.get_json(url).await
    }

    /// Every token of the account, newest first; see [`HubClient::for_each_token_page`].
    pub async fn list_all_tokens(&self) -> Result<Vec<AccessToken>, ClientError> {
        let mut tokens = Vec::new();
        self.for_each_token_page(|page| tokens.extend(page)).await?;
        Ok(tokens)
    }

    /// Hands `each` every token of the account, newest first, a page at a time as the pages
    /// arrive (so a caller can pass them on without holding the whole list). After the first
    /// page (which gives the count) the other pages are asked [`PARALLEL_PAGES`] at a time;
    /// tokens made or deleted meanwhile may shift the pages, so a token seen twice is handed
    /// over once and the server's `next` links are followed from the last page to the end.
    /// Answers how many tokens were handed over.
    pub async fn for_each_token_page(
        &self,
        mut each: impl FnMut(Vec<AccessToken>),
    ) -> Result<usize, ClientError> {
        use futures_util::{StreamExt, TryStreamExt};

        let mut seen = std::collections::HashSet::new();
        let mut keep = |page: AccessTokenPage| {
            let fresh: Vec<AccessToken> = page
                .results
                .into_iter()
                .filter(|t| seen.insert(t.uuid))
                .collect();
            if !fresh.is_empty() {
                each(fresh);
            }
            page.next
        };
        let first = self.list_tokens(1, ALL_TOKENS_PAGE_SIZE).await?;
        let pages = first
            .count
            .div_ceil(u64::from(ALL_TOKENS_PAGE_SIZE))
            .min(MAX_PAGES as u64);
        let mut next = keep(first);
        if next.is_some() && pages > 1 {
            let last = u32::try_from(pages).unwrap_or(u32::MAX);
            let mut rest = futures_util::stream::iter(2..=last)
                .map(|page| async move {
                    match self.list_tokens(page, ALL_TOKENS_PAGE_SIZE).await {
                        Ok(page) => Ok(Some(page)),
                        // Tokens were deleted meanwhile: the list ends sooner.
                        Err(ClientError::NotFound { .. }) => Ok(None),
                        Err(err) => Err(err),
                    }
                })
                .buffered(PARALLEL_PAGES);
            next = None;
            while let Some(page) = rest.try_next().await? {
                if let Some(page) = page {
                    next = keep(page);
                }
            }
        }
        for _ in 0..MAX_PAGES {
            let Some(link) = next else {
                return Ok(seen.len());
            };
            let page: AccessTokenPage = self.get_json(self.same_origin(&link)?).await?;
            next = keep(page);
        }
        Err(ClientError::NotAHub {
            status: 200,
            detail: format!("the token list did not end after {MAX_PAGES} pages"),
        })
    }

    /// One token of the account (plaintext blank); another account's token is `NotFound`.
    pub async fn get_token(&self, uuid: Uuid) -> Result<AccessToken, ClientError> {
        self.get_json(self.token_url(uuid)?).await
    }

    /// Relabels, deactivates or reactivates a token; only the fields present change.
    pub async fn patch_token(
        &self,
        uuid: Uuid,
        patch: &PatchAccessTokenRequest,
    ) -> Result<AccessToken, ClientError> {
        let request = self.with_bearer(self.http.request(Method::PATCH, self.token_url(uuid)?));
        self.execute(request.json(patch)).await?.into_json()
    }

    /// Rotates a token (`POST /v2/access-tokens/{uuid}/rotate`): the answer is the successor
    /// with its secret (shown this once); the old token works `overlap_seconds` more.
    pub async fn rotate_token(
        &self,
        uuid: Uuid,
        overlap_seconds: u32,
    ) -> Result<AccessToken, ClientError> {
        let url = self.endpoint(&format!("v2/access-tokens/{uuid}/rotate"))?;
        let request = self.with_bearer(self.http.request(Method::POST, url));
        self.execute(request.json(&RotateAccessTokenRequest { overlap_seconds }))
            .await?
            .into_json()
    }

    /// A token's access log after `after` (from the start when `None`), oldest first, at
    /// most `limit` lines (the server's default when `None`).
    pub async fn token_activity(
        &self,
        uuid: Uuid,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<TokenActivityPage, ClientError> {
        let mut url = self.endpoint(&format!("v2/access-tokens/{uuid}/activity"))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        self.get_json(url).await
    }

    /// Deletes a token for good.
    pub async fn delete_token(&self, uuid: Uuid) -> Result<(), ClientError> {
        let request = self.with_bearer(self.http.request(Method::DELETE, self.token_url(uuid)?));
        self.execute(request).await?.into_empty()
    }

    /// Creates the desktop app's auto token (scope `repo:admin`); the server then keeps only
    /// the account's five most recently used auto tokens. Without `request` no body is sent,
    /// as Docker Desktop does.
    pub async fn desktop_generate(
        &self,
        request: Option<&DesktopGenerateRequest>,
    ) -> Result<DesktopGenerateResponse, ClientError> {
        let mut builder = self.authorized(Method::POST, "v2/access-tokens/desktop-generate")?;
        if let Some(request) = request {
            builder = builder.json(request);
        }
        self.execute(builder).await?.into_json()
    }

    /// The account's token events after `after` (from the start when `None`), as many as the
    /// server gives by default.
    pub async fn events(&self, after: Option<&str>) -> Result<TokenEventPage, ClientError> {
        self.events_page(after, None).await
    }

    /// Like [`HubClient::events`], at most `limit` events.
    pub async fn events_limited(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TokenEventPage, ClientError> {
        self.events_page(after, Some(limit)).await
    }

    async fn events_page(
        &self,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<TokenEventPage, ClientError> {
        let mut url = self.endpoint("v2/access-tokens/events")?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        self.get_json(url).await
    }

    /// The hub's discovery document (`GET /v2/hubkey/info`): its registry host and token realm.
    pub async fn info(&self) -> Result<HubInfo, ClientError> {
        self.execute(self.anonymous(Method::GET, "v2/hubkey/info")?)
            .await?
            .into_json()
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.execute(self.anonymous(Method::GET, "healthz")?)
            .await?
            .into_json()
    }

    /// A repository's visibility (`GET /v2/repositories/{namespace}/{name}`).
    pub async fn repository(&self, namespace: &str, name: &str) -> Result<Repository, ClientError> {
        self.get_json(self.repository_url(namespace, name)?).await
    }

    /// Makes a repository of the signed-in account private or public.
    pub async fn set_repository_private(
        &self,
        namespace: &str,
        name: &str,
        is_private: bool,
    ) -> Result<Repository, ClientError> {
        let url = self.repository_url(namespace, name)?;
        let request = self.with_bearer(self.http.request(Method::PATCH, url));
        self.execute(request.json(&PatchRepositoryRequest { is_private }))
            .await?
            .into_json()
    }

    fn repository_url(&self, namespace: &str, name: &str) -> Result<Url, ClientError> {
        let mut url = self.endpoint("v2/repositories/")?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Url("the server URL cannot take a path".into()))?
            .pop_if_empty()
            .push(namespace)
            .push(name);
        Ok(url)
    }

    /// Sends a secret-scanning report as GitHub's partner program does
    /// (`POST /v2/secret-scanning/github`): `body` is the raw JSON array of findings, signed
    /// by `signature` (base64 DER ECDSA P-256 SHA-256) with GitHub's key `key_identifier`.
    pub async fn report_secret_scanning(
        &self,
        body: Vec<u8>,
        key_identifier: &str,
        signature: &str,
    ) -> Result<Vec<SecretScanningResult>, ClientError> {
        self.execute(
            self.anonymous(Method::POST, "v2/secret-scanning/github")?
                .header(header::CONTENT_TYPE, "application/json")
                .header("Github-Public-Key-Identifier", key_identifier)
                .header("Github-Public-Key-Signature", signature)
                .body(body),
        )
        .await?
        .into_json()
    }

    /// Reports found access tokens for revocation (`POST /v2/credentials/revoke`, no
    /// authentication). The answer is the same whether or not any was a live token.
    pub async fn revoke_credentials(
        &self,
        credentials: &[String],
    ) -> Result<RevokeCredentialsResponse, ClientError> {
        let body = RevokeCredentialsRequest {
            credentials: credentials.to_vec(),
        };
        self.execute(
            self.anonymous(Method::POST, "v2/credentials/revoke")?
                .json(&body),
        )
        .await?
        .into_json()
    }

    /// The server's OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.execute(self.anonymous(Method::GET, "openapi.json")?)
            .await?
            .into_json()
    }

    /// Starts a device authorization grant (`POST /oauth/device/code`, RFC 8628 §3.1): the
    /// codes to show the person and to poll with.
    pub async fn start_device_grant(
        &self,
        request: &DeviceCodeRequest,
    ) -> Result<DeviceCodeResponse, ClientError> {
        let reply = self
            .execute(
                self.anonymous(Method::POST, "oauth/device/code")?
                    .form(request),
            )
            .await?;
        if reply.status == reqwest::StatusCode::BAD_REQUEST {
            if let Ok(body) = serde_json::from_slice::<OAuthErrorBody>(&reply.body) {
                return Err(ClientError::Invalid {
                    body: hubkey_api::ValidationErrorBody {
                        fields: Default::default(),
                        text: body.error_description.unwrap_or(body.error),
                    },
                });
            }
        }
        reply.into_json()
    }

    /// Polls a device authorization grant once (`POST /oauth/token`, RFC 8628 §3.4). The
    /// caller waits the grant's interval between polls (longer after
    /// [`DevicePoll::SlowDown`]) and stops at anything but `Pending` and `SlowDown`.
    pub async fn poll_device_grant(&self, device_code: &str) -> Result<DevicePoll, ClientError> {
        let form = [
            ("grant_type", hubkey_api::DEVICE_CODE_GRANT_TYPE),
            ("device_code", device_code),
        ];
        let reply = self
            .execute(self.anonymous(Method::POST, "oauth/token")?.form(&form))
            .await?;
        if reply.status == reqwest::StatusCode::BAD_REQUEST {
            if let Ok(body) = serde_json::from_slice::<OAuthErrorBody>(&reply.body) {
                return Ok(match body.error.as_str() {
                    "authorization_pending" => DevicePoll::Pending,
                    "slow_down" => DevicePoll::SlowDown {
                        interval: body.interval.unwrap_or(10),
                    },
                    "access_denied" => DevicePoll::Denied,
                    "expired_token" => DevicePoll::Expired,
                    _ => DevicePoll::Refused {
                        description: body.error_description.unwrap_or_default(),
                        error: body.error,
                    },
                });
            }
        }
        reply.into_json().map(DevicePoll::Approved)
    }

    /// Whether the account signs in with a second factor, and how many recovery codes are
    /// left (`GET /v2/users/2fa`).
    pub async fn two_factor_status(&self) -> Result<TwoFactorStatus, ClientError> {
        self.execute(self.authorized(Method::GET, "v2/users/2fa")?)
            .await?
            .into_json()
    }

    /// Starts TOTP enrolment (`POST /v2/users/2fa/enrol`) given the account's password: a new
    /// secret, not in force until [`HubClient::confirm_totp`]. Starting again replaces an
    /// unconfirmed one.
    pub async fn start_totp_enrolment(&self, password: &str) -> Result<TotpEnrolment, ClientError> {
        let body = TotpEnrolRequest {
            password: password.to_owned(),
        };
        self.execute(
            self.authorized(Method::POST, "v2/users/2fa/enrol")?
                .json(&body),
        )
        .await?
        .into_json()
    }

    /// Confirms the enrolment with the authenticator's first code (`POST /v2/users/2fa/confirm`):
    /// two-factor sign-in is on, the account's other sessions end, and the ten recovery codes
    /// are returned, this once.
    pub async fn confirm_totp(&self, code: &str) -> Result<RecoveryCodes, ClientError> {
        let body = TotpCodeRequest {
            code: code.to_owned(),
        };
        self.execute(
            self.authorized(Method::POST, "v2/users/2fa/confirm")?
                .json(&body),
        )
        .await?
        .into_json()
    }

    /// Turns two-factor sign-in off (`POST /v2/users/2fa/disable`) with the password and a
    /// current code or a recovery code; the account's other sessions end.
    pub async fn disable_totp(&self, password: &str, code: &str) -> Result<(), ClientError> {
        let body = DisableTotpRequest {
            password: password.to_owned(),
            code: code.to_owned(),
        };
        self.execute(
            self.authorized(Method::POST, "v2/users/2fa/disable")?
                .json(&body),
        )
        .await?
        .into_empty()
    }

    /// Replaces the recovery codes (`POST /v2/users/2fa/recovery-codes`) given a current code
    /// (or a recovery code); the old ones stop working and the account's other sessions end.
    pub async fn regenerate_recovery_codes(
        &self,
        code: &str,
    ) -> Result<RecoveryCodes, ClientError> {
        let body = TotpCodeRequest {
            code: code.to_owned(),
        };
        self.execute(
            self.authorized(Method::POST, "v2/users/2fa/recovery-codes")?
                .json(&body),
        )
        .await?
        .into_json()
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|err| ClientError::Url(err.to_string()))
    }

    fn token_url(&self, uuid: Uuid) -> Result<Url, ClientError> {
        self.endpoint(&format!("v2/access-tokens/{uuid}"))
    }

    /// `link` (absolute or relative) resolved against the server, refused when it points at
    /// another origin, so the bearer never leaves the configured server.
    fn same_origin(&self, link: &str) -> Result<Url, ClientError> {
        let url = self
            .base
            .join(link)
            .map_err(|err| ClientError::Url(format!("the server gave a bad link: {err}")))?;
        if url.origin() != self.base.origin() {
            return Err(ClientError::NotAHub {
                status: 200,
                detail: "the next page is on another server".into(),
            });
        }
        Ok(url)
    }

    fn anonymous(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        Ok(self.http.request(method, self.endpoint(path)?))
    }

    fn authorized(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        Ok(self.with_bearer(self.http.request(method, self.endpoint(path)?)))
    }

    fn with_bearer(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.bearer {
            Some(bearer) => request.bearer_auth(bearer),
            None => request,
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        self.execute(self.with_bearer(self.http.get(url)))
            .await?
            .into_json()
    }

    /// Sends the request and reads the whole answer.
    async fn execute(&self, request: RequestBuilder) -> Result<Reply, ClientError> {
        let mut response = request
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(ClientError::from_transport)?;
        let header_text = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status();
        let content_type = header_text(header::CONTENT_TYPE);
        let retry_after = header_text(header::RETRY_AFTER);
        let location = header_text(header::LOCATION);
        let too_large = || ClientError::NotAHub {
            status: status.as_u16(),
            detail: format!(
                "the answer is larger than {} MiB",
                MAX_ANSWER_BYTES / (1024 * 1024)
            ),
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(ClientError::from_transport)?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            content_type,
            retry_after,
            location,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn base_url_is_checked_and_normalised() {
        assert_eq!(
            HubClient::new("http://127.0.0.1:5080").unwrap().base_url(),
            "http://127.0.0.1:5080/"
        );
        assert_eq!(
            HubClient::new("https://hub.example/prefix")
                .unwrap()
                .base_url(),
            "https://hub.example/prefix/"
        );
        for bad in [
            "",
            "hub.example",
            "ftp://hub.example/",
            "https://user:secret@hub.example/",
            "https://hub.example/?a=b",
        ] {
            let err = HubClient::new(bad).unwrap_err();
            assert!(matches!(err, ClientError::Url(_)), "{bad}: {err:?}");
            assert!(!err.to_string().contains("secret"));
        }
    }

    #[test]
    fn debug_hides_the_bearer() {
        let client = HubClient::new("http://127.0.0.1:1")
            .unwrap()
            .with_token("hkpat_notforlogs");
        assert!(!format!("{client:?}").contains("notforlogs"));
    }

    #[test]
    fn foreign_pagination_links_are_refused() {
        let client = HubClient::new("http://127.0.0.1:5080").unwrap();
        assert!(client
            .same_origin("http://127.0.0.1:5080/v2/access-tokens?page=2")
            .is_ok());
        assert!(matches!(
            client.same_origin("http://evil.example/v2/access-tokens?page=2"),
            Err(ClientError::NotAHub { .. })
        ));
    }

    /// Answers every connection on a fresh port with `response`, once; returns the base URL.
    async fn answer_once(response: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(response).await;
                let _ = stream.shutdown().await;
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    /// A server that answers one request with up to 1 GiB of spaces as JSON (`declared`:
    /// with that content-length; else without a length, until it closes).
    async fn answer_endlessly(declared: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = if declared {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
                };
                let _ = stream.write_all(head.as_bytes()).await;
                let chunk = vec![b' '; 64 * 1024];
                // 1 GiB at most; the client hangs up long before.
                for _ in 0..16 * 1024 {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    #[tokio::test]
    async fn an_endless_answer_is_refused_not_read_into_memory() {
        for declared in [true, false] {
            let client = HubClient::new(&answer_endlessly(declared).await).unwrap();
            let err = client.health().await.unwrap_err();
            assert!(
                matches!(&err, ClientError::NotAHub { detail, .. } if detail.contains("larger than 16 MiB")),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = HubClient::new(&format!("http://127.0.0.1:{port}"))
            .unwrap()
            .health()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable(_)), "{err:?}");
        assert_eq!(err.status(), None);
    }

    #[tokio::test]
    async fn html_page_is_not_a_hub() {
        let url = answer_once(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>",
        )
        .await;
        let err = HubClient::new(&url).unwrap().health().await.unwrap_err();
        assert!(
            matches!(err, ClientError::NotAHub { status: 200, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn https_to_a_plain_server_is_a_tls_error() {
        let url = answer_once(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        let url = url.replace("http://", "https://");
        let err = HubClient::new(&url).unwrap().health().await.unwrap_err();
        assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    }
}
