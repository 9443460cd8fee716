//! Extractors that give malformed input the same error shape as every other error.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubkey_api::ValidationErrorBody;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::http::client_address::ClientAddress;
use crate::http::AppState;
use crate::hub::ClientInfo;
use crate::session::Caller;

/// A JSON body; a malformed one is a 400 (413 when too large) with Hub's body shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> Response {
    let status = rejection.status();
    let text = match rejection {
        JsonRejection::JsonDataError(err) => format!("invalid request body: {}", err.body_text()),
        JsonRejection::JsonSyntaxError(_) => "request body is not valid JSON".to_owned(),
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with Content-Type: application/json".to_owned()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_owned(),
        other => other.body_text(),
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY
        || status == StatusCode::UNSUPPORTED_MEDIA_TYPE
    {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    body_error(status, text)
}

/// A 400 or 413 about the request body, in Hub's validation shape.
fn body_error(status: StatusCode, text: String) -> Response {
    let body = ValidationErrorBody {
        fields: [("body".to_owned(), vec![text.clone()])].into(),
        text,
    };
    (status, Json(body)).into_response()
}

/// What is wrong with a body that could not be read, from axum's rejection status and text:
/// 413 when too large, else 400, and a message for people. Used for raw bodies.
pub fn body_rejection_text(status: StatusCode, text: String) -> (StatusCode, String) {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        (status, "request body is too large".to_owned())
    } else if status.is_server_error() {
        // A body that broke off mid-way is the client's problem, not the server's.
        (
            StatusCode::BAD_REQUEST,
            "the request body could not be read".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, text)
    }
}

/// A raw body; one that cannot be read (e.g. over the size limit) is a 413 or 400 with
/// Hub's body shape instead of axum's plain text.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(ApiBytes(bytes)),
            Err(rejection) => {
                let rejection: BytesRejection = rejection;
                let (status, text) = body_rejection_text(rejection.status(), rejection.body_text());
                Err(body_error(status, text))
            }
        }
    }
}

/// Path parameters; undecodable ones (e.g. percent-encoded invalid UTF-8) are a 400 with
/// Hub's body shape instead of axum's plain text.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(Error::invalid("path", rejection.body_text()).into_response()),
        }
    }
}

/// Query parameters; bad ones are a 400 naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                let text = match rejection {
                    QueryRejection::FailedToDeserializeQueryString(err) => err.body_text(),
                    other => other.body_text(),
                };
                Err(Error::invalid("query", text).into_response())
            }
        }
    }
}

/// The caller of a request with a valid bearer session.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_bearer)
            .ok_or_else(|| {
                Error::Unauthorized("Authentication credentials were not provided".into())
            })?;
        state
            .hub
            .authenticate(bearer, state.now())
            .await
            .map(Authenticated)
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value (scheme case-insensitive).
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ClientAddress>()
            .map(|ClientAddress(ip)| *ip)
            .ok_or_else(|| Error::Internal("no client address on the request".into()))?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(ClientInfo { ip, user_agent })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bearer;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bearer   abc "), Some("abc"));
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer("Bearer "), None);
        assert_eq!(parse_bearer("Bearer"), None);
    }
}
