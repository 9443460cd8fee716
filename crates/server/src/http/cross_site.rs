//! Refusing what a web page on another site makes a visitor's browser send.
//!
//! A page anywhere can make a browser POST a form (`application/x-www-form-urlencoded`,
//! `multipart/form-data`, `text/plain`) to any address without a CORS preflight, and the
//! browser sends it from the visitor's address: wrong passwords posted that way would spend
//! the visitor's sign-in budget and get their address throttled. `/token` is the one route
//! that reads such bodies (its OAuth2 form) or takes Basic credentials on a GET; the other
//! routes read JSON (axum refuses any other content type, and a browser preflights a
//! cross-site JSON post, which hubkeyd never allows) or a bearer header (preflighted too).
//! Browsers mark cross-site requests with `Sec-Fetch-Site` and `Origin`; registry clients
//! (docker, skopeo, podman, containerd) send neither, so refusing the markers costs them
//! nothing.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubkey_api::RegistryErrorBody;

use super::AppState;

/// What a refused request is told.
pub const CROSS_SITE_REFUSED: &str =
    "cross-site request refused: a web page cannot use this endpoint (registry clients send no Origin or Sec-Fetch-Site header)";

/// Middleware: a 403 for a request a browser marked as coming from another site, before any
/// body is read or credential checked (so nothing counts against the throttle).
pub async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(marker) = cross_site_marker(&state, request.headers()) {
        tracing::info!(marker, "cross-site request refused");
        return (
            StatusCode::FORBIDDEN,
            Json(RegistryErrorBody {
                details: CROSS_SITE_REFUSED.to_owned(),
            }),
        )
            .into_response();
    }
    next.run(request).await
}

/// The header that marks `headers` as sent by a browser for another site, if any:
/// `Sec-Fetch-Site: cross-site` or `same-site` (another subdomain is another origin), or an
/// `Origin` that is not this server's own (including the opaque `null`).
fn cross_site_marker(state: &AppState, headers: &HeaderMap) -> Option<&'static str> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|value| value.as_bytes().to_ascii_lowercase());
    if matches!(fetch_site.as_deref(), Some(b"cross-site" | b"same-site")) {
        return Some("Sec-Fetch-Site");
    }
    match headers.get(header::ORIGIN) {
        None => None,
        Some(origin) => match origin.to_str() {
            Ok(origin) if is_own_origin(state, headers, origin) => None,
            _ => Some("Origin"),
        },
    }
}

/// Whether `origin` is this server's: the origin of its public URL when one is set, else
/// `http(s)://` and the request's own `Host`.
fn is_own_origin(state: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    let origin = normalize_origin(origin);
    match state.public_url() {
        Some(url) => origin.eq_ignore_ascii_case(&normalize_origin(url)),
        None => {
            let Some(host) = headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
            else {
                return false;
            };
            ["http", "https"].iter().any(|scheme| {
                origin.eq_ignore_ascii_case(&normalize_origin(&format!("{scheme}://{host}")))
            })
        }
    }
}

/// `scheme://host[:port]` of a URL, without a path and without the scheme's default port
/// (browsers leave it out of `Origin`).
fn normalize_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => "",
    };
    let authority = if default_port.is_empty() {
        authority
    } else {
        authority.strip_suffix(default_port).unwrap_or(authority)
    };
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::normalize_origin;

    #[test]
    fn origins_normalize_like_browsers_send_them() {
        assert_eq!(normalize_origin("http://hub:80/"), "http://hub");
        assert_eq!(normalize_origin("https://hub:443/x?y"), "https://hub");
        assert_eq!(normalize_origin("http://hub:5080"), "http://hub:5080");
        assert_eq!(normalize_origin("null"), "://null");
    }
}
