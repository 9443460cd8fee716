//! Extractors that give malformed input the same error shape as every other error.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use hubkey_api::ValidationErrorBody;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::service::ClientInfo;
use crate::session::Caller;
use crate::AppState;

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
    let body = ValidationErrorBody {
        fields: [("body".to_owned(), vec![text.clone()])].into(),
        text,
    };
    (status, Json(body)).into_response()
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
            .authenticate(bearer, Utc::now())
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
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| Error::Internal("no peer address on the connection".into()))?;
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
