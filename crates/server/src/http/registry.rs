//! The registry token endpoint (`GET`/`POST /token`) and repository visibility.
//!
//! Errors here use the body registry clients print, `{"details": "..."}`.

use axum::extract::rejection::StringRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubkey_api::{
    ErrorBody, PatchRepositoryRequest, RegistryErrorBody, RegistryTokenResponse, Repository,
    ValidationErrorBody,
};
use zeroize::Zeroizing;

use super::extract::{body_rejection_text, ApiJson, ApiPath, Authenticated};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::hub::{ClientInfo, RegistryCredential, RegistryTokenRequest};

/// An error of the token endpoint, in the registry clients' shape.
pub enum RegistryError {
    /// What the service refused.
    Hub(Error),
    /// A form body that could not be read (not UTF-8, too large): 400 or 413.
    Body(StatusCode, String),
}

impl From<Error> for RegistryError {
    fn from(err: Error) -> Self {
        RegistryError::Hub(err)
    }
}

impl From<StringRejection> for RegistryError {
    fn from(rejection: StringRejection) -> Self {
        let (status, text) = body_rejection_text(rejection.status(), rejection.body_text());
        RegistryError::Body(status, text)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let error = match self {
            RegistryError::Hub(error) => error,
            RegistryError::Body(status, details) => {
                return (status, Json(RegistryErrorBody { details })).into_response()
            }
        };
        let status = error.status_code();
        let details = match &error {
            Error::Storage(_) | Error::Internal(_) => return error.into_response(),
            Error::Unauthorized(_) => "incorrect username or password".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, Json(RegistryErrorBody { details })).into_response();
        let headers = response.headers_mut();
        match error {
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
        (status = 200, body = RegistryTokenResponse, description = "A token granting what was asked ∩ what the credential allows"),
        (status = 400, body = RegistryErrorBody, description = "Malformed query, `service` or `scope` (distribution's grammar, names up to 255 characters), or more than 64 scopes"),
        (status = 403, body = RegistryErrorBody, description = "A browser's cross-site request (`Origin` of another site, or `Sec-Fetch-Site: cross-site`/`same-site`), refused before anything is read"),
        (status = 401, body = RegistryErrorBody, description = "Wrong or malformed credentials",
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"hubkey\"`"))),
        (status = 429, body = RegistryErrorBody, description = "Too many failed sign-ins",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
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
            .registry_token(request, &client, state.now())
            .await?,
    ))
}

/// The OAuth2 form of the registry token endpoint: `grant_type=password` (username and
/// password or PAT) or `grant_type=refresh_token` (a PAT handed out as refresh token).
#[utoipa::path(post, path = "/token", tag = "registry",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = RegistryTokenResponse, description = "A token granting what was asked ∩ what the credential allows"),
        (status = 400, body = RegistryErrorBody, description = "Unknown `grant_type`, malformed form or `scope`, or a body that is not UTF-8"),
        (status = 403, body = RegistryErrorBody, description = "A browser's cross-site request (`Origin` of another site, or `Sec-Fetch-Site: cross-site`/`same-site`), refused before the body is read"),
        (status = 401, body = RegistryErrorBody, description = "Wrong credentials or refresh token",
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"hubkey\"`"))),
        (status = 413, body = RegistryErrorBody, description = "Body over 64 KiB"),
        (status = 429, body = RegistryErrorBody, description = "Too many failed sign-ins",
            headers(("Retry-After" = u64, description = "Seconds until a new attempt is counted"))),
    ))]
pub async fn token_post(
    State(state): State<AppState>,
    client: ClientInfo,
    body: Result<String, StringRejection>,
) -> Result<Json<RegistryTokenResponse>, RegistryError> {
    let params = parse_params(&body?)?;
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
            .registry_token(request, &client, state.now())
            .await?,
    ))
}

/// The form of `POST /token` (OAuth2, as the distribution token-auth spec describes it).
/// Only documents the body: the handler reads the pairs itself, since `scope` may repeat.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    grant_type: TokenGrant,
    service: Option<String>,
    client_id: Option<String>,
    /// `offline` asks for a `refresh_token` (only with a personal access token).
    access_type: Option<String>,
    /// `TYPE:NAME:ACTIONS`, several separated by spaces.
    scope: Option<String>,
    /// With `grant_type=password`.
    username: Option<String>,
    /// With `grant_type=password`: a personal access token, or the password of an account
    /// without 2FA.
    password: Option<String>,
    /// With `grant_type=refresh_token`: a personal access token.
    refresh_token: Option<String>,
}

/// How `POST /token` authenticates.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
enum TokenGrant {
    Password,
    RefreshToken,
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
    responses(
        (status = 200, body = Repository),
        (status = 400, body = ValidationErrorBody, description = "Undecodable path"),
        (status = 404, body = ErrorBody, description = "Private repository of another account"),
    ))]
pub async fn get_repository(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((namespace, name)): ApiPath<(String, String)>,
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
        (status = 400, body = ValidationErrorBody, description = "Malformed body, or not a valid repository name"),
        (status = 403, body = ErrorBody, description = "Another account's namespace, or a session made from a personal access token"),
    ))]
pub async fn patch_repository(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((namespace, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PatchRepositoryRequest>,
) -> Result<Json<Repository>> {
    state
        .hub
        .set_repository_visibility(&caller, &namespace, &name, body.is_private, state.now())
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
