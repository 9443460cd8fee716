//! The handlers: each extracts its input, calls [`crate::hub::Hub`] and maps the result.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use hubkey_api::{
    AccessToken, AccessTokenPage, AccountEventPage, AuthTokenRequest, AuthTokenResponse,
    ChangePasswordRequest, CreateAccessTokenRequest, DesktopGenerateRequest,
    DesktopGenerateResponse, ErrorBody, Health, HubInfo, LoginRequest, LoginResponse,
    PatchAccessTokenRequest, RefreshRequest, RevokedSessions, TokenEventPage,
    TwoFactorLoginRequest, ValidationErrorBody,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::hub::ClientInfo;
use crate::metrics::{Outcome, SignInStep};

/// Liveness: the server answers and its database does.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, body = Health), (status = 500, body = ErrorBody)))]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>> {
    state.hub.store().ping().await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Where this hub's registry is (our extension): the desktop app reads it after sign-in to
/// point the docker CLI at the right registry host.
#[utoipa::path(get, path = "/v2/hubkey/info", tag = "meta", responses((status = 200, body = HubInfo)))]
pub async fn info(State(state): State<AppState>, headers: HeaderMap) -> Json<HubInfo> {
    Json(HubInfo {
        registry_host: state.registry_host.as_deref().map(str::to_owned),
        token_realm: format!("{}/token", state.base_url(&headers)),
        service: crate::registry::DEFAULT_SERVICE.to_owned(),
    })
}

/// Signs in with a user name and password.
#[utoipa::path(post, path = "/v2/users/login", tag = "users", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse, description = "Signed in"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body"),
        (status = 401, body = ErrorBody, description = "Wrong credentials, or a second factor is required (`login_2fa_token` set)"),
        (status = 429, body = ErrorBody, description = "Too many failed sign-ins from this address or for this account",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>> {
    let password = Zeroizing::new(body.password);
    let result = state
        .hub
        .login(&body.username, password, &client, state.now())
        .await;
    state
        .hub
        .metrics()
        .sign_in(SignInStep::Password, Outcome::of(&result));
    result.map(Json)
}

/// Completes a sign-in with the TOTP code of the account's authenticator.
#[utoipa::path(post, path = "/v2/users/2fa-login", tag = "users", request_body = TwoFactorLoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = ValidationErrorBody, description = "Malformed body"),
        (status = 401, body = ErrorBody, description = "A wrong or reused code (no `code`; the challenge stays usable), or a challenge that is unknown, used up, out of attempts or expired (`\"code\": \"challenge_expired\"`: sign in again)"),
        (status = 429, body = ErrorBody, description = "Too many failed sign-ins from this address or for this account",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn login_2fa(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<TwoFactorLoginRequest>,
) -> Result<Json<LoginResponse>> {
    let result = state
        .hub
        .login_2fa(&body.login_2fa_token, &body.code, &client, state.now())
        .await;
    state
        .hub
        .metrics()
        .sign_in(SignInStep::SecondFactor, Outcome::of(&result));
    result.map(Json)
}

/// Exchanges a refresh token for a new session token and refresh token (our extension).
#[utoipa::path(post, path = "/v2/users/refresh", tag = "users", request_body = RefreshRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = ValidationErrorBody),
        (status = 401, body = ErrorBody, description = "Unknown, revoked or expired refresh token; or a spent one presented again, which revoked its whole session (`\"code\": \"session_revoked\"`; the one exception: the token a rotation replaced, once, within 5 minutes)"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<LoginResponse>> {
    state
        .hub
        .refresh(&body.refresh_token, &client, state.now())
        .await
        .map(Json)
}

/// Changes the signed-in account's password (our extension). Every other session of the
/// account ends; with `revoke_tokens` every personal access token is deactivated too.
#[utoipa::path(put, path = "/v2/users/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; the other sessions are ended"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, or a new password the policy refuses (`new_password`)"),
        (status = 401, body = ErrorBody, description = "Wrong current password (counted like a failed sign-in), or no valid bearer"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 429, body = ErrorBody, description = "Too many failed sign-ins from this address or for this account",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode> {
    let current = Zeroizing::new(body.current_password);
    let new = Zeroizing::new(body.new_password);
    state
        .hub
        .change_password(
            &caller,
            current,
            new,
            body.revoke_tokens,
            &client,
            state.now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the account, the caller's included (our extension: "sign out
/// everywhere"). Access tokens stay.
#[utoipa::path(post, path = "/v2/users/sessions/revoke-all", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = RevokedSessions, description = "Every session ended"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn revoke_all_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
) -> Result<Json<RevokedSessions>> {
    let revoked = state
        .hub
        .revoke_all_sessions(&caller, &client, state.now())
        .await?;
    Ok(Json(RevokedSessions { revoked }))
}

/// What happened to the account's security since a cursor (our extension): refresh-token
/// reuse, password and 2FA changes, sessions revoked. Oldest first.
#[utoipa::path(get, path = "/v2/users/security-events", tag = "users", security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, body = AccountEventPage),
        (status = 400, body = ValidationErrorBody, description = "`after` is not a cursor of this server, or `limit` out of range"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn account_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<AccountEventPage>> {
    state
        .hub
        .account_events(&caller, query.after.as_deref(), query.limit.unwrap_or(100))
        .await
        .map(Json)
}

/// Ends the session of the bearer token, and its refresh token.
#[utoipa::path(post, path = "/v2/users/logout", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<StatusCode> {
    state.hub.logout(&caller, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gets a session token from a password (accounts without 2FA) or a personal access token.
#[utoipa::path(post, path = "/v2/auth/token", tag = "users", request_body = AuthTokenRequest,
    responses(
        (status = 200, body = AuthTokenResponse),
        (status = 400, body = ValidationErrorBody, description = "Malformed body"),
        (status = 401, body = ErrorBody, description = "Wrong identifier or secret, or a password of an account with 2FA"),
        (status = 429, body = ErrorBody, description = "Too many failed sign-ins from this address or for this account",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn auth_token(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<AuthTokenRequest>,
) -> Result<Json<AuthTokenResponse>> {
    let secret = Zeroizing::new(body.secret);
    let access_token = state
        .hub
        .auth_token(&body.identifier, secret, &client, state.now())
        .await?;
    Ok(Json(AuthTokenResponse { access_token }))
}

/// Creates a personal access token. The answer holds the secret; it is never shown again.
#[utoipa::path(post, path = "/v2/access-tokens", tag = "access-tokens", security(("bearer" = [])),
    request_body = CreateAccessTokenRequest,
    responses(
        (status = 201, body = AccessToken, description = "Created; `token` holds the secret, shown this once"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, bad label, no scope, or expiry not in the future"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<CreateAccessTokenRequest>,
) -> Result<impl IntoResponse> {
    let token = state
        .hub
        .create_token(&caller, &body, &client, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// Paging of the token list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Tokens per page, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Lists the account's personal access tokens, newest first. Secrets are never included.
#[utoipa::path(get, path = "/v2/access-tokens", tag = "access-tokens", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = AccessTokenPage),
        (status = 400, body = ValidationErrorBody, description = "`page` or `page_size` out of range or not a number"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 404, body = ErrorBody, description = "Page beyond the last"),
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AccessTokenPage>> {
    let page = query.page.unwrap_or(1);
    let page_size = query.page_size.unwrap_or(10);
    let listed = state
        .hub
        .list_tokens(&caller, page, page_size, state.now())
        .await?;
    let base = state.base_url(&headers);
    let link = |page: u32| format!("{base}/v2/access-tokens?page={page}&page_size={page_size}");
    let shown = u64::from(page) * u64::from(page_size);
    Ok(Json(AccessTokenPage {
        next: (shown < listed.count).then(|| link(page + 1)),
        previous: (page > 1).then(|| link(page - 1)),
        count: listed.count,
        active_count: listed.active_count,
        results: listed.results,
    }))
}

/// Reads one token.
#[utoipa::path(get, path = "/v2/access-tokens/{uuid}", tag = "access-tokens", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The token's uuid; anything else names no token (404)")),
    responses(
        (status = 200, body = AccessToken),
        (status = 400, body = ValidationErrorBody, description = "Undecodable path"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 404, body = ErrorBody, description = "No such token in this account"),
    ))]
pub async fn get_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Json<AccessToken>> {
    let uuid = parse_uuid(&uuid)?;
    state
        .hub
        .get_token(&caller, uuid, state.now())
        .await
        .map(Json)
}

/// Relabels, deactivates or reactivates a token.
#[utoipa::path(patch, path = "/v2/access-tokens/{uuid}", tag = "access-tokens", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The token's uuid; anything else names no token (404)")),
    request_body = PatchAccessTokenRequest,
    responses(
        (status = 200, body = AccessToken),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, bad label or undecodable path"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 404, body = ErrorBody, description = "No such token in this account"),
    ))]
pub async fn patch_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(body): ApiJson<PatchAccessTokenRequest>,
) -> Result<Json<AccessToken>> {
    let uuid = parse_uuid(&uuid)?;
    state
        .hub
        .patch_token(&caller, uuid, &body, state.now())
        .await
        .map(Json)
}

/// Deletes a token; it stops working at once.
#[utoipa::path(delete, path = "/v2/access-tokens/{uuid}", tag = "access-tokens", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The token's uuid; anything else names no token (404)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ValidationErrorBody, description = "Undecodable path"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 404, body = ErrorBody, description = "No such token in this account"),
    ))]
pub async fn delete_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(uuid): ApiPath<String>,
) -> Result<StatusCode> {
    let uuid = parse_uuid(&uuid)?;
    state.hub.delete_token(&caller, uuid, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates the desktop app's auto token (full rights), then keeps only the account's five
/// most recently used auto tokens, deleting the rest with a `pruned` event each.
#[utoipa::path(post, path = "/v2/access-tokens/desktop-generate", tag = "access-tokens",
    security(("bearer" = [])),
    request_body(content = Option<DesktopGenerateRequest>, description = "Optional (our extension): names the client and device"),
    responses(
        (status = 201, body = DesktopGenerateResponse, description = "Created; the secret is shown this once"),
        (status = 400, body = ValidationErrorBody, description = "A body that is not the optional JSON object"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn desktop_generate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiBytes(body): ApiBytes,
) -> Result<impl IntoResponse> {
    let request: DesktopGenerateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DesktopGenerateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| Error::invalid("body", format!("invalid request body: {err}")))?
    };
    let data = state
        .hub
        .desktop_generate(&caller, &request, &client, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(DesktopGenerateResponse { data })))
}

/// Position in the events feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// A `cursor` from an earlier answer; omit to read from the start.
    pub after: Option<String>,
    /// Events per answer, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// What happened to the account's tokens since a cursor (our extension).
#[utoipa::path(get, path = "/v2/access-tokens/events", tag = "access-tokens", security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, body = TokenEventPage),
        (status = 400, body = ValidationErrorBody, description = "`after` is not a cursor of this server, or `limit` out of range"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<TokenEventPage>> {
    state
        .hub
        .events(
            &caller,
            query.after.as_deref(),
            query.limit.unwrap_or(100),
            state.now(),
        )
        .await
        .map(Json)
}

/// A path segment that is not a uuid names no token: 404, like an unknown uuid.
fn parse_uuid(segment: &str) -> Result<Uuid> {
    Uuid::parse_str(segment).map_err(|_| Error::token_not_found())
}
