//! The leak-response endpoints: GitHub's secret-scanning partner endpoint and the public
//! revocation endpoint. Neither takes a bearer: the first is signed by GitHub, the second is
//! open to anyone and answers the same whatever it is sent.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hubkey_api::{
    AccessToken, AccountSettings, ErrorBody, PatchAccountSettings, RevokeCredentialsRequest,
    RevokeCredentialsResponse, RotateAccessTokenRequest, SecretScanningMatch, SecretScanningResult,
    TokenActivityPage, ValidationErrorBody,
};

use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery, Authenticated};
use super::routes::EventsQuery;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::hub::ClientInfo;

/// The largest secret-scanning report read: GitHub batches findings (a finding with its URL
/// is a few hundred bytes), and [`crate::hub::MAX_SCANNING_MATCHES`] of them fit in 1 MiB.
/// Only this route takes more than the router's 64 KiB; its body is read before the
/// signature can be checked, so the bound is what an unsigned request can make us buffer.
pub const SECRET_SCANNING_BODY_LIMIT: usize = 1024 * 1024;

/// GitHub's secret-scanning partner endpoint (our extension): findings of hubkey tokens in
/// public places. Signed by GitHub (`Github-Public-Key-Identifier`,
/// `Github-Public-Key-Signature`: ECDSA P-256 over the raw body). Each of our tokens found is
/// deactivated (not deleted) with a `leaked` event; the same finding twice is one event.
/// Off (404) unless the server was given a key set (`--secret-scanning-keys[-url]`).
#[utoipa::path(post, path = "/v2/secret-scanning/github", tag = "secret-scanning",
    request_body = Vec<SecretScanningMatch>,
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The key of GitHub's key set that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 DER ECDSA P-256 SHA-256 signature of the raw body"),
    ),
    responses(
        (status = 200, body = Vec<SecretScanningResult>, description = "One label per finding, in order"),
        (status = 400, body = ValidationErrorBody, description = "A correctly signed body that is not a list of findings, or more than 1 000 findings"),
        (status = 401, body = ErrorBody, description = "Unsigned, wrongly signed, or signed with a key the key set does not hold; nothing changed"),
        (status = 404, body = ErrorBody, description = "The endpoint is off: no key set configured"),
        (status = 413, body = ValidationErrorBody, description = "Body over 1 MiB"),
    ))]
pub async fn secret_scanning_github(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Vec<SecretScanningResult>>> {
    let Some(keys) = state.secret_scanning() else {
        return Err(Error::NotFound("Not found".into()));
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    keys.verify(
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
        &body,
        std::time::Instant::now(),
    )
    .await
    .map_err(|err| {
        tracing::warn!(reason = %err, "secret-scanning report refused");
        Error::Unauthorized("The report's signature could not be verified".into())
    })?;
    let findings: Vec<SecretScanningMatch> = serde_json::from_slice(&body)
        .map_err(|err| Error::invalid("body", format!("not a list of findings: {err}")))?;
    state
        .hub
        .report_leaked(&findings, state.now())
        .await
        .map(Json)
}

/// Public revocation (our extension, like GitHub's credential revocation API): anyone who
/// found hubkey tokens sends them here; each live one is deactivated with a `reported`
/// event. No authentication. The answer is the same whether or not any credential was a
/// token (no oracle), and costs the same: every well-formed token is looked up, and the
/// deactivations are written after the answer. Throttled per client address.
#[utoipa::path(post, path = "/v2/credentials/revoke", tag = "secret-scanning",
    request_body = RevokeCredentialsRequest,
    responses(
        (status = 200, body = RevokeCredentialsResponse, description = "Accepted; says nothing about what was found"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, or more than 1 000 credentials"),
        (status = 429, body = ErrorBody, description = "Too many requests from this address",
            headers(("Retry-After" = u64, description = "Seconds until a new request is accepted"))),
    ))]
pub async fn revoke_credentials(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<RevokeCredentialsRequest>,
) -> Result<(StatusCode, Json<RevokeCredentialsResponse>)> {
    state
        .hub
        .revoke_credentials(&body.credentials, client.ip, state.now())
        .await?;
    Ok((
        StatusCode::OK,
        Json(RevokeCredentialsResponse {
            status: "accepted".into(),
        }),
    ))
}

/// Rotates a token (our extension): a new token with the same label, scopes, expiry and
/// origin, linked to the old one (`rotated_from`/`rotated_to`); the old one keeps working
/// for `overlap_seconds` (0 to 7 days, default 0), then is refused everywhere. The body is
/// optional. The answer holds the new secret, shown this once.
#[utoipa::path(post, path = "/v2/access-tokens/{uuid}/rotate", tag = "access-tokens", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The token's uuid; anything else names no token (404)")),
    request_body(content = Option<RotateAccessTokenRequest>, description = "Optional: the overlap"),
    responses(
        (status = 201, body = AccessToken, description = "The successor; `token` holds its secret, shown this once"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, `overlap_seconds` out of range, or a token already rotated"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 404, body = ErrorBody, description = "No such token in this account"),
    ))]
pub async fn rotate_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiPath(uuid): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<AccessToken>)> {
    let uuid = uuid::Uuid::parse_str(&uuid).map_err(|_| Error::token_not_found())?;
    let request: RotateAccessTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateAccessTokenRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| Error::invalid("body", format!("invalid request body: {err}")))?
    };
    let token = state
        .hub
        .rotate_token(&caller, uuid, &request, &client, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// The account's settings (our extension): `revoke_on_reuse`.
#[utoipa::path(get, path = "/v2/users/settings", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = AccountSettings),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn account_settings(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<AccountSettings>> {
    state.hub.account_settings(&caller).await.map(Json)
}

/// Changes the account's settings (our extension); only the fields present change.
/// `revoke_on_reuse`: a rotated-away token presented after its overlap also deactivates its
/// successor (default off).
#[utoipa::path(patch, path = "/v2/users/settings", tag = "users", security(("bearer" = [])),
    request_body = PatchAccountSettings,
    responses(
        (status = 200, body = AccountSettings),
        (status = 400, body = ValidationErrorBody, description = "Malformed body"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn patch_account_settings(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<PatchAccountSettings>,
) -> Result<Json<AccountSettings>> {
    state
        .hub
        .patch_account_settings(&caller, &body)
        .await
        .map(Json)
}

/// A token's access log (our extension): its accepted uses, one line per address, agent,
/// action (`registry:NAME:ACTIONS`, `registry:login` or `api:sign-in`) and UTC day, oldest
/// first, paged like the events feed. Kept `--access-log-days` days (default 90).
#[utoipa::path(get, path = "/v2/access-tokens/{uuid}/activity", tag = "access-tokens", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The token's uuid; anything else names no token (404)"), EventsQuery),
    responses(
        (status = 200, body = TokenActivityPage),
        (status = 400, body = ValidationErrorBody, description = "`after` is not a cursor of this server, `limit` out of range, or an undecodable path"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 404, body = ErrorBody, description = "No such token in this account"),
    ))]
pub async fn token_activity(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<TokenActivityPage>> {
    let uuid = uuid::Uuid::parse_str(&uuid).map_err(|_| Error::token_not_found())?;
    state
        .hub
        .token_activity(
            &caller,
            uuid,
            query.after.as_deref(),
            query.limit.unwrap_or(100),
        )
        .await
        .map(Json)
}
