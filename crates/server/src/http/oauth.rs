//! The OAuth 2.0 endpoints of the device authorization grant (RFC 8628): form-encoded in,
//! RFC 6749 §5.2 `{"error", "error_description"}` bodies out (status 400), never cached.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubkey_api::{
    DeviceCodeRequest, DeviceCodeResponse, DeviceTokenRequest, DeviceTokenResponse, OAuthErrorBody,
    DEVICE_CODE_GRANT_TYPE,
};
use serde::Deserialize;

use super::extract::ApiBytes;
use crate::error::Error;
use crate::http::AppState;
use crate::hub::{ClientInfo, DevicePoll};

/// An answer of the OAuth endpoints that is not a success.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    body: OAuthErrorBody,
}

impl OAuthError {
    fn new(error: &str, description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            body: OAuthErrorBody {
                error: error.to_owned(),
                error_description: Some(description.into()),
                interval: None,
            },
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }
}

impl From<Error> for OAuthError {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid { text, .. } => OAuthError::invalid_request(text),
            other => {
                let status = other.status_code();
                // 5xx: the cause is logged by the server error's own answer, never shown.
                if status.is_server_error() {
                    tracing::error!(error = %other, "device grant");
                }
                let description = if status.is_server_error() {
                    "Internal server error".to_owned()
                } else {
                    other.to_string()
                };
                OAuthError {
                    status,
                    body: OAuthErrorBody {
                        error: if status.is_server_error() {
                            "server_error".into()
                        } else {
                            "invalid_request".into()
                        },
                        error_description: Some(description),
                        interval: None,
                    },
                }
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        no_store((self.status, Json(self.body)).into_response())
    }
}

/// RFC 6749 §5.1: answers carrying or about credentials are never cached.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A body form-encoded (as RFC 8628 and RFC 6749 say), or JSON when its `Content-Type` says
/// so; anything unreadable is `invalid_request`. Repeated parameters are refused
/// (RFC 6749 §3.2).
fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, OAuthError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    if json {
        serde_json::from_slice(body)
            .map_err(|err| OAuthError::invalid_request(format!("invalid JSON body: {err}")))
    } else {
        serde_urlencoded::from_bytes(body)
            .map_err(|err| OAuthError::invalid_request(format!("invalid form body: {err}")))
    }
}

/// Starts a device authorization grant (RFC 8628 §3.1): a device code to poll with and a
/// user code for the person to approve at `verification_uri`.
#[utoipa::path(post, path = "/oauth/device/code", tag = "oauth",
    request_body(content = DeviceCodeRequest, content_type = "application/x-www-form-urlencoded",
        description = "Form-encoded (RFC 8628 §3.1); `application/json` is accepted too"),
    responses(
        (status = 200, body = DeviceCodeResponse, description = "A code pair; `expires_in` 600 s, `interval` 5 s"),
        (status = 400, body = OAuthErrorBody, description = "`invalid_request`: a missing or malformed `client_id`, a description over 100 characters or with control characters, an unreadable body"),
    ))]
pub async fn device_code(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, OAuthError> {
    let request: DeviceCodeRequest = parse_body(&headers, &body)?;
    let start = state
        .hub
        .start_device_grant(&request, &client, state.now())
        .await?;
    let verification_uri = format!("{}/device", state.base_url(&headers));
    let answer = DeviceCodeResponse {
        device_code: start.device_code.to_string(),
        verification_uri_complete: format!("{verification_uri}?user_code={}", start.user_code),
        user_code: start.user_code,
        verification_uri,
        expires_in: start.expires_in,
        interval: start.interval,
    };
    Ok(no_store(Json(answer).into_response()))
}

/// `/oauth/token`'s parameters, all optional here so that a missing one is `invalid_request`.
#[derive(Debug, Deserialize)]
struct TokenParams {
    grant_type: Option<String>,
    device_code: Option<String>,
    #[allow(dead_code)]
    client_id: Option<String>,
}

/// Polls a device authorization grant (RFC 8628 §3.4): pending, slow down, denied, expired,
/// or — once approved, and once only — the session a password sign-in opens.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = DeviceTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = DeviceTokenResponse, description = "Approved: a full session of the approving account (bearer + refresh token); the device code is spent"),
        (status = 400, body = OAuthErrorBody, description = "`authorization_pending`; `slow_down` (polled sooner than the interval, which grows by 5 s; `interval` says the new one); `access_denied`; `expired_token`; `invalid_grant` (unknown or spent device code); `unsupported_grant_type`; `invalid_request`"),
    ))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, OAuthError> {
    let params: TokenParams = parse_body(&headers, &body)?;
    let grant_type = params
        .grant_type
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    if grant_type != DEVICE_CODE_GRANT_TYPE {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("this server issues tokens for {DEVICE_CODE_GRANT_TYPE} only"),
        ));
    }
    let device_code = params
        .device_code
        .filter(|code| !code.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
    if device_code.len() > 256 {
        return Err(OAuthError::new("invalid_grant", "unknown device code"));
    }
    let poll = state
        .hub
        .poll_device_grant(&device_code, state.now())
        .await?;
    let error = match poll {
        DevicePoll::Approved(session) => {
            let answer = DeviceTokenResponse {
                access_token: session.token,
                token_type: "Bearer".into(),
                expires_in: session.expires_in.unwrap_or_default(),
                refresh_token: session.refresh_token.unwrap_or_default(),
            };
            return Ok(no_store(Json(answer).into_response()));
        }
        DevicePoll::Pending => OAuthError::new(
            "authorization_pending",
            "the code has not been approved yet; poll again after the interval",
        ),
        DevicePoll::SlowDown { interval } => {
            let mut error = OAuthError::new(
                "slow_down",
                format!("polled too fast; the interval is now {interval} s"),
            );
            error.body.interval = Some(interval);
            error
        }
        DevicePoll::Denied => OAuthError::new("access_denied", "the request was denied"),
        DevicePoll::Expired => {
            OAuthError::new("expired_token", "the device code has expired; start again")
        }
        DevicePoll::InvalidGrant => {
            OAuthError::new("invalid_grant", "unknown or already used device code")
        }
    };
    Err(error)
}
