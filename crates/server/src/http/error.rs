//! How errors are written: Docker Hub's JSON bodies, one status per error kind.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubkey_api::error::MFA_REQUIRED;
use hubkey_api::{ErrorBody, ErrorCode, RegistryErrorBody, ValidationErrorBody};

use crate::error::Error;

impl Error {
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_)
            | Error::ChallengeExpired
            | Error::SessionRevoked
            | Error::SecondFactorRequired { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Throttled { .. } | Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Storage(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match self {
            Error::Invalid { fields, text } => {
                (status, Json(ValidationErrorBody { fields, text })).into_response()
            }
            Error::SecondFactorRequired { login_2fa_token } => {
                let mut body = ErrorBody::new(MFA_REQUIRED);
                body.login_2fa_token = Some(login_2fa_token);
                (status, Json(body)).into_response()
            }
            Error::Unauthorized(message) => unauthorized(ErrorBody::new(message)),
            Error::ChallengeExpired => unauthorized(ErrorBody::with_code(
                Error::ChallengeExpired.to_string(),
                ErrorCode::ChallengeExpired,
            )),
            Error::SessionRevoked => unauthorized(ErrorBody::with_code(
                Error::SessionRevoked.to_string(),
                ErrorCode::SessionRevoked,
            )),
            Error::Throttled { retry_after } => (
                status,
                [(header::RETRY_AFTER, HeaderValue::from(retry_after))],
                Json(ErrorBody::new(Error::Throttled { retry_after }.to_string())),
            )
                .into_response(),
            Error::RateLimited { retry_after } => (
                status,
                [(header::RETRY_AFTER, HeaderValue::from(retry_after))],
                Json(ErrorBody::new(
                    Error::RateLimited { retry_after }.to_string(),
                )),
            )
                .into_response(),
            Error::Forbidden(message) | Error::NotFound(message) => {
                (status, Json(ErrorBody::new(message))).into_response()
            }
            Error::Storage(ref cause) => {
                tracing::error!(error = %cause, "storage error");
                (status, Json(ErrorBody::new("Internal server error"))).into_response()
            }
            Error::Internal(ref cause) => {
                tracing::error!(error = %cause, "internal error");
                (status, Json(ErrorBody::new("Internal server error"))).into_response()
            }
        }
    }
}

/// A 401 with `body`, and the `WWW-Authenticate` challenge of the API's bearer auth.
fn unauthorized(body: ErrorBody) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"hubkey\""),
        )],
        Json(body),
    )
        .into_response()
}

/// Most bytes of a plain-text error answer kept as its message.
const PLAIN_ERROR_LIMIT: usize = 1024;

/// Gives every error answer that is not JSON yet a JSON body of its route family's shape:
/// axum's own rejections (405, 413 of a raw body, a path or form that is not UTF-8) and the
/// timeout's 408 are plain text or empty. `/token` answers `{"details"}` as registry clients
/// expect; a 400 or 413 elsewhere is `{fields, text}` (as [`super::extract::ApiJson`]
/// answers); other statuses `{detail, message}`. A 5xx never carries the original text.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let registry = request.uri().path() == "/token";
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            // The verification page's answers are pages, whatever their status.
            value.starts_with("application/json") || value.starts_with("text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let plain = axum::body::to_bytes(body, PLAIN_ERROR_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let text = if plain.is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        plain
    };
    let body = if registry {
        serde_json::to_vec(&RegistryErrorBody { details: text })
    } else if status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
        let field = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body"
        } else {
            "request"
        };
        serde_json::to_vec(&ValidationErrorBody {
            fields: [(field.to_owned(), vec![text.clone()])].into(),
            text,
        })
    } else {
        serde_json::to_vec(&ErrorBody::new(text))
    };
    let Ok(body) = body else {
        return Response::from_parts(parts, Body::empty());
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
