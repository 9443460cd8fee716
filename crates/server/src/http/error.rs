//! How errors are written: Docker Hub's JSON bodies, one status per error kind.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubkey_api::error::MFA_REQUIRED;
use hubkey_api::{ErrorBody, ValidationErrorBody};

use crate::error::Error;

impl Error {
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) | Error::SecondFactorRequired { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
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
            Error::Unauthorized(message) => (
                status,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hubkey\""),
                )],
                Json(ErrorBody::new(message)),
            )
                .into_response(),
            Error::Throttled { retry_after } => (
                status,
                [(header::RETRY_AFTER, HeaderValue::from(retry_after))],
                Json(ErrorBody::new(Error::Throttled { retry_after }.to_string())),
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
