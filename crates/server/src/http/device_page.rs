//! The verification page of the device grant (RFC 8628 §3.3), `GET /device`: plain
//! server-rendered HTML and CSS, no script.
//!
//! - **Escaping** is maud's: its `html!` templates are Rust, checked at compile time, and
//!   escape every interpolated value unless told otherwise (we never do). No template files
//!   to ship, no runtime template engine.
//! - **The page's sign-in** is its own short session ([`crate::session::DEVICE_PAGE_TTL`],
//!   10 minutes) named by a cookie `hubkey_device`: HttpOnly, `SameSite=Strict`, `Path=/device`,
//!   `Secure` when the server is reached over https. It is not a bearer: the API refuses its
//!   session, and it can only approve or deny device codes. It ends with the decision.
//! - **CSRF**: a signed double-submit token. The cookie carries a random nonce and, once
//!   signed in, the page session's id, signed with a key derived from the server key; each
//!   form carries `HMAC(key, "csrf", session, nonce)` and a POST without the cookie and the
//!   matching token is refused. Stateless, no new dependency (HMAC is already one), bound to
//!   the page session, so a token of one sign-in is worthless in another. (The CSRF crates
//!   for axum bring their own cookie and key handling for the same two comparisons.)
//! - **Headers** on every answer: a CSP of `default-src 'none'; style-src 'self';
//!   form-action 'self'; frame-ancestors 'none'; base-uri 'none'`, `X-Frame-Options: DENY`,
//!   `Cache-Control: no-store`, `Referrer-Policy: no-referrer` (the user code may be in the
//!   URL) and `X-Content-Type-Options: nosniff`.
//! - **Guessing**: each user code looked up that names no grant counts as a failed sign-in
//!   of the address (`Hub::find_device_grant`): at most 600 an hour per address.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use axum::extract::RawQuery;

use super::extract::ApiBytes;
use crate::error::Error;
use crate::http::AppState;
use crate::hub::{ClientInfo, DeviceGrant};

/// The page cookie's name.
pub const COOKIE: &str = "hubkey_device";
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
const STYLE: &str = include_str!("device_page.css");

/// The page's cookie: a nonce, and the page session once signed in.
#[derive(Debug, Clone)]
struct PageCookie {
    session: Option<String>,
    nonce: String,
}

impl PageCookie {
    fn fresh(session: Option<String>) -> Self {
        PageCookie {
            session,
            nonce: crate::random::random_secret(),
        }
    }

    fn mac(&self, state: &AppState, purpose: &str) -> String {
        let session = self.session.as_deref().unwrap_or("");
        let mac = state.hub.keys().page_mac(&[
            purpose.as_bytes(),
            session.as_bytes(),
            self.nonce.as_bytes(),
        ]);
        data_encoding::BASE64URL_NOPAD.encode(&mac)
    }

    fn value(&self, state: &AppState) -> String {
        format!(
            "{}.{}.{}",
            self.session.as_deref().unwrap_or("-"),
            self.nonce,
            self.mac(state, "cookie")
        )
    }

    fn csrf(&self, state: &AppState) -> String {
        self.mac(state, "csrf")
    }

    /// The cookie in `headers`, when its signature holds.
    fn read(state: &AppState, headers: &HeaderMap) -> Option<Self> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)?;
        let mut parts = value.split('.');
        let (session, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || session.len() > 64 || nonce.len() > 64 {
            return None;
        }
        let cookie = PageCookie {
            session: (session != "-").then(|| session.to_owned()),
            nonce: nonce.to_owned(),
        };
        bool::from(cookie.mac(state, "cookie").as_bytes().ct_eq(mac.as_bytes())).then_some(cookie)
    }

    fn set_cookie(&self, state: &AppState, headers: &HeaderMap) -> String {
        let secure = if state.base_url(headers).starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{COOKIE}={}; Path=/device; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            self.value(state),
            crate::session::DEVICE_PAGE_TTL.num_seconds()
        )
    }
}

/// Who is on the page: the cookie (kept or new) and the signed-in account's name.
struct Visit {
    cookie: PageCookie,
    username: Option<String>,
    renew: bool,
}

impl Visit {
    async fn of(state: &AppState, headers: &HeaderMap) -> Result<Self, Error> {
        let Some(cookie) = PageCookie::read(state, headers) else {
            return Ok(Visit {
                cookie: PageCookie::fresh(None),
                username: None,
                renew: true,
            });
        };
        let Some(session) = cookie.session.clone() else {
            return Ok(Visit {
                cookie,
                username: None,
                renew: false,
            });
        };
        match state.hub.device_page_user(&session, state.now()).await? {
            Some((_, username)) => Ok(Visit {
                cookie,
                username: Some(username),
                renew: false,
            }),
            None => Ok(Visit {
                cookie: PageCookie::fresh(None),
                username: None,
                renew: true,
            }),
        }
    }

    /// A POST's visit: refused (None) without the cookie or with a token not its own.
    async fn posted(
        state: &AppState,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Result<Option<Self>, Error> {
        let Some(cookie) = PageCookie::read(state, headers) else {
            return Ok(None);
        };
        if !bool::from(cookie.csrf(state).as_bytes().ct_eq(csrf.as_bytes())) {
            return Ok(None);
        }
        let visit = Visit::of(state, headers).await?;
        // A page session that ended under the form (expired, revoked) is a new visit.
        Ok(Some(visit))
    }

    fn signed_in(&mut self, session: String) {
        self.cookie = PageCookie::fresh(Some(session));
        self.username = None;
        self.renew = true;
    }

    fn signed_out(&mut self) {
        self.cookie = PageCookie::fresh(None);
        self.username = None;
        self.renew = true;
    }
}

/// An HTML answer with the page's headers, and the cookie when it changed.
fn page(
    state: &AppState,
    headers: &HeaderMap,
    visit: Option<&Visit>,
    status: StatusCode,
    markup: Markup,
) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(out);
    if let Some(visit) = visit.filter(|visit| visit.renew) {
        if let Ok(value) = HeaderValue::from_str(&visit.cookie.set_cookie(state, headers)) {
            out.insert(header::SET_COOKIE, value);
        }
    }
    response
}

fn secure_headers(out: &mut HeaderMap) {
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn layout(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hubkey" }
                link rel="stylesheet" href="/device/style.css";
            }
            body {
                main {
                    p.brand { "hubkey" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn error_note(error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
    }
}

fn enter_code(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Connect a device",
        &html! {
            p { "Enter the code your device shows." }
            (error_note(error))
            form method="post" action="/device" {
                input type="hidden" name="csrf" value=(csrf);
                label for="user_code" { "Code" }
                input #user_code type="text" name="user_code" autocomplete="off"
                    autocapitalize="characters" spellcheck="false" placeholder="XXXX-XXXX"
                    maxlength="16" required autofocus;
                button type="submit" { "Continue" }
            }
        },
    )
}

fn sign_in(csrf: &str, grant: &DeviceGrant, error: Option<&str>) -> Markup {
    layout(
        "Sign in to approve",
        &html! {
            p { "Sign in to connect the device showing " strong.code { (grant.user_code) } "." }
            (error_note(error))
            form method="post" action="/device/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="user_code" value=(grant.user_code);
                label for="username" { "User name" }
                input #username type="text" name="username" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn second_factor(csrf: &str, user_code: &str, challenge: &str, error: Option<&str>) -> Markup {
    layout(
        "Two-factor sign-in",
        &html! {
            p { "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }
            (error_note(error))
            form method="post" action="/device/2fa" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="user_code" value=(user_code);
                input type="hidden" name="challenge" value=(challenge);
                label for="code" { "Code" }
                input #code type="text" name="code" autocomplete="one-time-code"
                    inputmode="text" maxlength="32" required autofocus;
                button type="submit" { "Verify" }
            }
        },
    )
}

fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = (now - at).num_minutes();
    let ago = match minutes {
        ..=0 => "just now".to_owned(),
        1 => "1 minute ago".to_owned(),
        n => format!("{n} minutes ago"),
    };
    format!("{} UTC ({ago})", at.format("%Y-%m-%d %H:%M:%S"))
}

fn confirm(csrf: &str, grant: &DeviceGrant, username: &str, now: DateTime<Utc>) -> Markup {
    let unnamed = "(not given)";
    layout(
        "Approve this device?",
        &html! {
            p { "Signed in as " strong { (username) } "." }
            p.check {
                "Check that your device shows this code: "
                span.code { (grant.user_code) }
                ". If it does not, or you did not just start a sign-in on a device, press Deny: "
                "someone may be trying to get into your account."
            }
            dl {
                dt { "Application" }
                dd { (grant.client_name.as_deref().unwrap_or(&grant.client_id)) " (" (grant.client_id) ")" }
                dt { "Device" }
                dd { (grant.device_name.as_deref().unwrap_or(unnamed)) }
                dt { "Operating system" }
                dd { (grant.os.as_deref().unwrap_or(unnamed)) }
                dt { "Requested from" }
                dd { (grant.requested_address) }
                dt { "Requested at" }
                dd { (when(grant.requested_at, now)) }
            }
            p { "Approving signs this device in to your account with full access, as signing in with your password would." }
            form.decide method="post" action="/device/decide" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="user_code" value=(grant.user_code);
                button.approve type="submit" name="decision" value="approve" { "Approve" }
                button.deny type="submit" name="decision" value="deny" { "Deny" }
            }
        },
    )
}

fn notice(title: &str, text: &str, again: bool) -> Markup {
    layout(
        title,
        &html! {
            p { (text) }
            @if again {
                p { a href="/device" { "Enter another code" } }
            }
        },
    )
}

/// A grant that cannot be decided any more, as a page; None when it can.
fn closed(
    state: &AppState,
    headers: &HeaderMap,
    visit: &Visit,
    grant: &DeviceGrant,
) -> Option<Response> {
    if grant.expired {
        return Some(page(
            state,
            headers,
            Some(visit),
            StatusCode::GONE,
            notice(
                "This code has expired",
                "Codes last 10 minutes. Start the sign-in again on your device to get a new one.",
                true,
            ),
        ));
    }
    if grant.decided {
        return Some(page(
            state,
            headers,
            Some(visit),
            StatusCode::CONFLICT,
            notice(
                "This code was already used",
                "This code was approved or denied already. Start the sign-in again on your device if you need to.",
                true,
            ),
        ));
    }
    None
}

fn wrong_code(state: &AppState, headers: &HeaderMap, visit: &Visit) -> Response {
    page(
        state,
        headers,
        Some(visit),
        StatusCode::NOT_FOUND,
        enter_code(
            &visit.cookie.csrf(state),
            Some("That code is not valid. Check it against your device and try again."),
        ),
    )
}

fn failure(state: &AppState, headers: &HeaderMap, visit: Option<&Visit>, err: Error) -> Response {
    match err {
        Error::Throttled { retry_after } => {
            let mut response = page(
                state,
                headers,
                visit,
                StatusCode::TOO_MANY_REQUESTS,
                notice(
                    "Too many attempts",
                    &format!(
                        "Too many attempts from your network. Try again in {retry_after} seconds."
                    ),
                    true,
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        other => {
            tracing::error!(error = %other, "device verification page");
            page(
                state,
                headers,
                visit,
                StatusCode::INTERNAL_SERVER_ERROR,
                notice(
                    "Something went wrong",
                    "The server could not do this. Try again.",
                    true,
                ),
            )
        }
    }
}

fn form_expired(state: &AppState, headers: &HeaderMap) -> Response {
    let visit = Visit {
        cookie: PageCookie::fresh(None),
        username: None,
        renew: true,
    };
    page(
        state,
        headers,
        Some(&visit),
        StatusCode::FORBIDDEN,
        notice(
            "This form has expired",
            "The page was open too long or came from somewhere else. Start again.",
            true,
        ),
    )
}

fn parse_form<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> T {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// `GET /device`'s query.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    user_code: Option<String>,
}

/// The verification page: the code form, or (with `?user_code=`) the next step for it. Its
/// forms post to `/device`, `/device/sign-in`, `/device/2fa` and `/device/decide`: browser
/// form targets behind the page's cookie and CSRF token (any other request gets a 403
/// page), answering pages, so they are not API operations of this document.
#[utoipa::path(get, path = "/device", tag = "oauth",
    params(("user_code" = Option<String>, Query, description = "The code the device shows (`XXXX-XXXX`, any case)")),
    responses(
        (status = 200, content_type = "text/html", description = "The page: enter the code, sign in, or approve"),
        (status = 404, content_type = "text/html", description = "No such code"),
        (status = 410, content_type = "text/html", description = "The code has expired"),
        (status = 429, content_type = "text/html", description = "Too many wrong codes from this address"),
        (status = 500, content_type = "text/html", description = "A page saying the server failed; the cause is logged"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let visit = match Visit::of(&state, &headers).await {
        Ok(visit) => visit,
        Err(err) => return failure(&state, &headers, None, err),
    };
    let typed = query
        .and_then(|query| serde_urlencoded::from_str::<PageQuery>(&query).ok())
        .and_then(|query| query.user_code)
        .filter(|code| !code.trim().is_empty());
    match typed {
        None => page(
            &state,
            &headers,
            Some(&visit),
            StatusCode::OK,
            enter_code(&visit.cookie.csrf(&state), None),
        ),
        Some(typed) => step_for_code(&state, &headers, &client, visit, &typed).await,
    }
}

/// What a code leads to: a wrong-code page, a closed-code page, sign-in or the confirmation.
async fn step_for_code(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientInfo,
    visit: Visit,
    typed: &str,
) -> Response {
    let now = state.now();
    let grant = match state.hub.find_device_grant(typed, client, now).await {
        Ok(Some(grant)) => grant,
        Ok(None) => return wrong_code(state, headers, &visit),
        Err(err) => return failure(state, headers, Some(&visit), err),
    };
    if let Some(closed) = closed(state, headers, &visit, &grant) {
        return closed;
    }
    let csrf = visit.cookie.csrf(state);
    let markup = match &visit.username {
        Some(username) => confirm(&csrf, &grant, username, now),
        None => sign_in(&csrf, &grant, None),
    };
    page(state, headers, Some(&visit), StatusCode::OK, markup)
}

#[derive(Debug, Default, Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
}

/// The code form's POST.
pub async fn submit_code(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let form: CodeForm = parse_form(&body);
    let visit = match Visit::posted(&state, &headers, &form.csrf).await {
        Ok(Some(visit)) => visit,
        Ok(None) => return form_expired(&state, &headers),
        Err(err) => return failure(&state, &headers, None, err),
    };
    step_for_code(&state, &headers, &client, visit, &form.user_code).await
}

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// A posted form's visit and the grant it is about, while that grant can still be decided;
/// otherwise the page to answer instead (the form expired, a wrong code, a closed grant).
async fn open_grant(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientInfo,
    csrf: &str,
    user_code: &str,
    now: DateTime<Utc>,
) -> Result<(Visit, DeviceGrant), Response> {
    let visit = match Visit::posted(state, headers, csrf).await {
        Ok(Some(visit)) => visit,
        Ok(None) => return Err(form_expired(state, headers)),
        Err(err) => return Err(failure(state, headers, None, err)),
    };
    let grant = match state.hub.find_device_grant(user_code, client, now).await {
        Ok(Some(grant)) => grant,
        Ok(None) => return Err(wrong_code(state, headers, &visit)),
        Err(err) => return Err(failure(state, headers, Some(&visit), err)),
    };
    match closed(state, headers, &visit, &grant) {
        Some(page) => Err(page),
        None => Ok((visit, grant)),
    }
}

/// The sign-in form's POST: the password step of `POST /v2/users/login`, same throttle.
pub async fn submit_sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let form: SignInForm = parse_form(&body);
    let password = Zeroizing::new(form.password);
    let now = state.now();
    let (mut visit, grant) =
        match open_grant(&state, &headers, &client, &form.csrf, &form.user_code, now).await {
            Ok(open) => open,
            Err(page) => return page,
        };
    match state
        .hub
        .device_page_sign_in(&form.username, password, &client, now)
        .await
    {
        Ok(session) => {
            visit.signed_in(session);
            let markup = confirm(&visit.cookie.csrf(&state), &grant, &form.username, now);
            page(&state, &headers, Some(&visit), StatusCode::OK, markup)
        }
        Err(Error::SecondFactorRequired { login_2fa_token }) => {
            let markup = second_factor(
                &visit.cookie.csrf(&state),
                &grant.user_code,
                &login_2fa_token,
                None,
            );
            page(&state, &headers, Some(&visit), StatusCode::OK, markup)
        }
        Err(Error::Unauthorized(message)) => {
            let markup = sign_in(&visit.cookie.csrf(&state), &grant, Some(&message));
            page(
                &state,
                &headers,
                Some(&visit),
                StatusCode::UNAUTHORIZED,
                markup,
            )
        }
        Err(err) => failure(&state, &headers, Some(&visit), err),
    }
}

#[derive(Debug, Default, Deserialize)]
struct SecondFactorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
}

/// The second-factor form's POST: `POST /v2/users/2fa-login`'s step, same rules.
pub async fn submit_second_factor(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let form: SecondFactorForm = parse_form(&body);
    let now = state.now();
    let (mut visit, grant) =
        match open_grant(&state, &headers, &client, &form.csrf, &form.user_code, now).await {
            Ok(open) => open,
            Err(page) => return page,
        };
    match state
        .hub
        .device_page_second_factor(&form.challenge, &form.code, &client, now)
        .await
    {
        Ok(session) => {
            let username = match state.hub.device_page_user(&session, now).await {
                Ok(Some((_, username))) => username,
                Ok(None) => String::new(),
                Err(err) => return failure(&state, &headers, Some(&visit), err),
            };
            visit.signed_in(session);
            let markup = confirm(&visit.cookie.csrf(&state), &grant, &username, now);
            page(&state, &headers, Some(&visit), StatusCode::OK, markup)
        }
        Err(Error::ChallengeExpired) => {
            let markup = sign_in(
                &visit.cookie.csrf(&state),
                &grant,
                Some("The two-factor sign-in has expired; sign in again."),
            );
            page(
                &state,
                &headers,
                Some(&visit),
                StatusCode::UNAUTHORIZED,
                markup,
            )
        }
        Err(Error::Unauthorized(message)) => {
            let markup = second_factor(
                &visit.cookie.csrf(&state),
                &grant.user_code,
                &form.challenge,
                Some(&message),
            );
            page(
                &state,
                &headers,
                Some(&visit),
                StatusCode::UNAUTHORIZED,
                markup,
            )
        }
        Err(err) => failure(&state, &headers, Some(&visit), err),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    decision: String,
}

/// Approve or Deny.
pub async fn submit_decision(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let form: DecideForm = parse_form(&body);
    let mut visit = match Visit::posted(&state, &headers, &form.csrf).await {
        Ok(Some(visit)) => visit,
        Ok(None) => return form_expired(&state, &headers),
        Err(err) => return failure(&state, &headers, None, err),
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return form_expired(&state, &headers),
    };
    let now = state.now();
    let Some(session) = visit
        .cookie
        .session
        .clone()
        .filter(|_| visit.username.is_some())
    else {
        // Signed out under the form (ten minutes passed, or sessions were revoked).
        return step_for_code(&state, &headers, &client, visit, &form.user_code).await;
    };
    match state
        .hub
        .decide_device_grant(&session, &form.user_code, approve, &client, now)
        .await
    {
        Ok(true) => {
            visit.signed_out();
            let markup = if approve {
                notice(
                    "Device approved",
                    "Your device is signing in. You can close this page and go back to it.",
                    false,
                )
            } else {
                notice(
                    "Request denied",
                    "The device was not signed in. If you did not start this, change your password.",
                    false,
                )
            };
            page(&state, &headers, Some(&visit), StatusCode::OK, markup)
        }
        Ok(false) => step_for_code(&state, &headers, &client, visit, &form.user_code).await,
        Err(err) => failure(&state, &headers, Some(&visit), err),
    }
}

/// The page's stylesheet (the CSP allows styles from this server only).
pub async fn stylesheet() -> Response {
    let mut response = STYLE.into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
