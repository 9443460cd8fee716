//! The registry token endpoint (`GET`/`POST /token`) and repository visibility.
//!
//! Errors here use the body registry clients print, `{"details": "..."}`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use hubkey_api::{
    ErrorBody, PatchRepositoryRequest, RegistryErrorBody, RegistryTokenResponse, Repository,
    ValidationErrorBody,
};
use zeroize::Zeroizing;

use super::extract::{ApiJson, Authenticated};
use crate::error::{Error, Result};
use crate::service::{ClientInfo, RegistryCredential, RegistryTokenRequest};
use crate::AppState;

/// An error of the token endpoint, in the registry clients' shape.
pub struct RegistryError(Error);

impl From<Error> for RegistryError {
    fn from(err: Error) -> Self {
        RegistryError(err)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.0.status_code();
        let details = match &self.0 {
            Error::Storage(_) | Error::Internal(_) => return self.0.into_response(),
            Error::Unauthorized(_) => "incorrect username or password".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, Json(RegistryErrorBody { details })).into_response();
        let headers = response.headers_mut();
        match self.0 {
            Error::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hubkey\""),
                );
            }
            Error::Throttled { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

/// The user name and password of a `Basic` Authorization header value.
pub fn parse_basic(value: &str) -> Option<(String, Zeroizing<String>)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        data_encoding::BASE64
            .decode(encoded.trim().as_bytes())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_owned(), Zeroizing::new(password.to_owned())))
}

/// A registry token (distribution token-auth spec). Basic auth with a user name and a
/// personal access token, or a password for accounts without 2FA; none for anonymous pulls.
#[utoipa::path(get, path = "/token", tag = "registry",
    params(
        ("service" = Option<String>, Query, description = "The registry's service name"),
        ("scope" = Option<Vec<String>>, Query, description = "TYPE:NAME:ACTIONS, repeatable"),
        ("account" = Option<String>, Query),
        ("client_id" = Option<String>, Query),
        ("offline_token" = Option<bool>, Query),
    ),
    security((), ("basic" = [])),
    responses(
        (status = 200, body = RegistryTokenResponse),
        (status = 400, body = RegistryErrorBody),
        (status = 401, body = RegistryErrorBody),
        (status = 429, body = RegistryErrorBody),
    ))]
pub async fn token_get(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<RegistryTokenResponse>, RegistryError> {
    let params = parse_params(query.as_deref().unwrap_or(""))?;
    let credential = match headers.get(header::AUTHORIZATION) {
        None => RegistryCredential::Anonymous,
        Some(value) => {
            let (username, secret) = value
                .to_str()
                .ok()
                .and_then(parse_basic)
                .ok_or_else(|| Error::Unauthorized("malformed Basic credentials".into()))?;
            RegistryCredential::Basic { username, secret }
        }
    };
    let request = RegistryTokenRequest {
        credential,
        service: first(&params, "service"),
        scopes: all(&params, "scope"),
        offline: false,
    };
    Ok(Json(
        state
            .hub
            .registry_token(request, &client, Utc::now())
            .await?,
    ))
}

/// The OAuth2 form of the registry token endpoint: `grant_type=password` (username and
/// password or PAT) or `grant_type=refresh_token` (a PAT handed out as refresh token).
#[utoipa::path(post, path = "/token", tag = "registry",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type, service, client_id, access_type, scope, username, password, refresh_token"),
    responses(
        (status = 200, body = RegistryTokenResponse),
        (status = 400, body = RegistryErrorBody),
        (status = 401, body = RegistryErrorBody),
        (status = 429, body = RegistryErrorBody),
    ))]
pub async fn token_post(
    State(state): State<AppState>,
    client: ClientInfo,
    body: String,
) -> Result<Json<RegistryTokenResponse>, RegistryError> {
    let params = parse_params(&body)?;
    let credential = match first(&params, "grant_type").as_str() {
        "password" => RegistryCredential::Basic {
            username: first(&params, "username"),
            secret: Zeroizing::new(first(&params, "password")),
        },
        "refresh_token" => {
            RegistryCredential::RefreshToken(Zeroizing::new(first(&params, "refresh_token")))
        }
        _ => {
            return Err(Error::invalid(
                "grant_type",
                "use grant_type=password or grant_type=refresh_token",
            )
            .into())
        }
    };
    let request = RegistryTokenRequest {
        credential,
        service: first(&params, "service"),
        scopes: all(&params, "scope"),
        offline: first(&params, "access_type") == "offline",
    };
    Ok(Json(
        state
            .hub
            .registry_token(request, &client, Utc::now())
            .await?,
    ))
}

type Params = Vec<(String, String)>;

fn parse_params(text: &str) -> Result<Params> {
    serde_urlencoded::from_str(text).map_err(|err| Error::invalid("query", err.to_string()))
}

fn first(params: &Params, key: &str) -> String {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn all(params: &Params, key: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A repository's visibility: its owner sees it always, others only when it is public.
#[utoipa::path(get, path = "/v2/repositories/{namespace}/{name}", tag = "repositories",
    security(("bearer" = [])),
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Repository), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_repository(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Repository>> {
    state
        .hub
        .repository(&caller, &namespace, &name)
        .await
        .map(Json)
}

/// Makes a repository of the caller's namespace public or private.
#[utoipa::path(patch, path = "/v2/repositories/{namespace}/{name}", tag = "repositories",
    security(("bearer" = [])),
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = PatchRepositoryRequest,
    responses(
        (status = 200, body = Repository),
        (status = 400, body = ValidationErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn patch_repository(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((namespace, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<PatchRepositoryRequest>,
) -> Result<Json<Repository>> {
    state
        .hub
        .set_repository_visibility(&caller, &namespace, &name, body.is_private, Utc::now())
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let header = format!("Basic {}", data_encoding::BASE64.encode(b"ann:pa:ss"));
        let (user, password) = parse_basic(&header).unwrap();
        assert_eq!(user, "ann");
        assert_eq!(password.as_str(), "pa:ss");
        assert!(parse_basic("Bearer abc").is_none());
        assert!(parse_basic("Basic !!!").is_none());
        assert!(parse_basic(&format!(
            "Basic {}",
            data_encoding::BASE64.encode(b"no-colon")
        ))
        .is_none());
        assert!(parse_basic(&format!(
            "Basic {}",
            data_encoding::BASE64.encode(&[0xff, b':', 0xfe])
        ))
        .is_none());
    }

    #[test]
    fn repeated_scope_parameters_are_all_kept() {
        let params =
            parse_params("service=r&scope=repository:a/b:pull&scope=repository:a/c:push").unwrap();
        assert_eq!(all(&params, "scope").len(), 2);
        assert_eq!(first(&params, "service"), "r");
        assert_eq!(first(&params, "absent"), "");
    }
}
