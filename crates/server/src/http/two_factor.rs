//! The handlers of two-factor sign-in a person controls (our extension): status, enrolment,
//! confirmation, turning off, new recovery codes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hubkey_api::{
    DisableTotpRequest, ErrorBody, RecoveryCodes, TotpCodeRequest, TotpEnrolRequest, TotpEnrolment,
    TwoFactorStatus, ValidationErrorBody,
};
use zeroize::Zeroizing;

use super::extract::{ApiJson, Authenticated};
use crate::error::Result;
use crate::http::AppState;
use crate::hub::ClientInfo;

/// Whether the account signs in with a second factor, and recovery codes left.
#[utoipa::path(get, path = "/v2/users/2fa", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = TwoFactorStatus),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
    ))]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<TwoFactorStatus>> {
    state.hub.two_factor_status(&caller).await.map(Json)
}

/// Starts TOTP enrolment, given the account's password again: a new secret and its
/// `otpauth://` URI, in force only once confirmed with a first code within 10 minutes.
/// Starting again replaces it.
#[utoipa::path(post, path = "/v2/users/2fa/enrol", tag = "users", security(("bearer" = [])),
    request_body = TotpEnrolRequest,
    responses(
        (status = 200, body = TotpEnrolment),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, or two-factor sign-in is already on"),
        (status = 401, body = ErrorBody, description = "Wrong password (counted like a failed sign-in)"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn enrol(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<TotpEnrolRequest>,
) -> Result<Json<TotpEnrolment>> {
    let password = Zeroizing::new(body.password);
    state
        .hub
        .start_totp_enrolment(&caller, password, &client, state.now())
        .await
        .map(Json)
}

/// Confirms the enrolment with the authenticator's first code: two-factor sign-in is on,
/// every other session of the account ends, and the ten recovery codes are answered, once.
#[utoipa::path(post, path = "/v2/users/2fa/confirm", tag = "users", security(("bearer" = [])),
    request_body = TotpCodeRequest,
    responses(
        (status = 200, body = RecoveryCodes, description = "On; the recovery codes are shown this once"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, a wrong code (`code`; counted like a failed sign-in), or no enrolment waiting"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts from this address or for this account",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<TotpCodeRequest>,
) -> Result<Json<RecoveryCodes>> {
    state
        .hub
        .confirm_totp(&caller, &body.code, &client, state.now())
        .await
        .map(Json)
}

/// Turns two-factor sign-in off with the password AND a current code or a recovery code;
/// the recovery codes are forgotten and every other session of the account ends.
#[utoipa::path(post, path = "/v2/users/2fa/disable", tag = "users", security(("bearer" = [])),
    request_body = DisableTotpRequest,
    responses(
        (status = 204, description = "Off"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, or two-factor sign-in is not on"),
        (status = 401, body = ErrorBody, description = "Wrong password, or a wrong or used code (counted like a failed sign-in)"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<DisableTotpRequest>,
) -> Result<StatusCode> {
    let password = Zeroizing::new(body.password);
    state
        .hub
        .disable_totp(&caller, password, &body.code, &client, state.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes given a current code (or a recovery code): the old ones stop
/// working, the new ones are answered once, and every other session of the account ends.
#[utoipa::path(post, path = "/v2/users/2fa/recovery-codes", tag = "users", security(("bearer" = [])),
    request_body = TotpCodeRequest,
    responses(
        (status = 200, body = RecoveryCodes, description = "The new codes, shown this once"),
        (status = 400, body = ValidationErrorBody, description = "Malformed body, or two-factor sign-in is not on"),
        (status = 401, body = ErrorBody, description = "A wrong or used code (counted like a failed sign-in)"),
        (status = 403, body = ErrorBody, description = "Session made from a personal access token"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn recovery_codes(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<TotpCodeRequest>,
) -> Result<Json<RecoveryCodes>> {
    state
        .hub
        .regenerate_recovery_codes(&caller, &body.code, &client, state.now())
        .await
        .map(Json)
}
