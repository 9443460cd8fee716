//! The device authorization grant (RFC 8628): every answer of `/oauth/device/code` and
//! `/oauth/token`, and the verification page's forms driven over HTTP as a browser sends
//! them (the real-browser run is in the e2e suite).

use std::net::Ipv4Addr;

use hubkey_api::{DeviceCodeRequest, DeviceCodeResponse};
use hubkey_client::{DevicePoll, HubClient};
use reqwest::Method;

use crate::harness::{totp_code, ClockedServer, TestServer, PASSWORD};

fn request() -> DeviceCodeRequest {
    DeviceCodeRequest {
        client_id: "hubkey-cli".into(),
        scope: None,
        client_name: Some("hubkey CLI".into()),
        device_name: Some("build-box".into()),
        os: Some("Debian 13".into()),
    }
}

/// The verification page as a browser without script uses it: one cookie, the forms' CSRF
/// tokens, no redirects.
pub struct PageAgent {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    /// The last page's HTML.
    pub html: String,
}

impl PageAgent {
    pub fn new(base: &str) -> Self {
        Self::from(base, Ipv4Addr::LOCALHOST)
    }

    pub fn from(base: &str, address: Ipv4Addr) -> Self {
        PageAgent {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(std::net::IpAddr::V4(address))
                .build()
                .unwrap(),
            cookie: None,
            html: String::new(),
        }
    }

    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap) {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie.clone()),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        self.html = response.text().await.unwrap();
        (status, headers)
    }

    pub async fn get(&mut self, path: &str) -> u16 {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await.0
    }

    pub async fn get_with_headers(&mut self, path: &str) -> (u16, reqwest::header::HeaderMap) {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Submits a form of the page: `fields`, plus the CSRF token of the last page.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> u16 {
        let csrf = self.hidden("csrf").unwrap_or_default();
        let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let request = self.http.post(format!("{}{path}", self.base)).form(&form);
        self.send(request).await.0
    }

    /// The value of the last page's hidden field `name`.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')?;
        Some(self.html[start..start + end].to_owned())
    }

    /// Signs in as `username` (no second factor) for `user_code` and presses `decision`.
    pub async fn decide(&mut self, user_code: &str, username: &str, decision: &str) -> u16 {
        assert_eq!(
            self.get(&format!("/device?user_code={user_code}")).await,
            200,
            "{}",
            self.html
        );
        assert_eq!(
            self.post(
                "/device/sign-in",
                &[
                    ("user_code", user_code),
                    ("username", username),
                    ("password", PASSWORD)
                ],
            )
            .await,
            200,
            "{}",
            self.html
        );
        assert!(self.html.contains("Approve this device?"), "{}", self.html);
        self.post(
            "/device/decide",
            &[("user_code", user_code), ("decision", decision)],
        )
        .await
    }
}

fn is_user_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 9
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b"BCDFGHJKLMNPQRSTVWXZ".contains(b))
}

async fn start(client: &HubClient) -> DeviceCodeResponse {
    client.start_device_grant(&request()).await.unwrap()
}

#[tokio::test]
async fn device_code_answers_the_rfc8628_fields_form_or_json() {
    let server = TestServer::start().await;
    let grant = start(&server.client()).await;
    assert!(is_user_code(&grant.user_code), "{}", grant.user_code);
    assert!(grant.device_code.len() >= 43, "a 256-bit device code");
    assert_eq!(grant.verification_uri, format!("{}/device", server.url));
    assert_eq!(
        grant.verification_uri_complete,
        format!("{}/device?user_code={}", server.url, grant.user_code)
    );
    assert_eq!((grant.expires_in, grant.interval), (600, 5));

    let (status, body) = server
        .raw(
            Method::POST,
            "/oauth/device/code",
            None,
            Some(r#"{"client_id":"app"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(is_user_code(body["user_code"].as_str().unwrap()));

    // Codes are distinct.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        assert!(seen.insert(start(&server.client()).await.user_code));
    }
}

async fn form(
    url: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.unwrap_or_default(), headers)
}

#[tokio::test]
async fn every_malformed_request_gets_the_oauth_error_it_names() {
    let server = TestServer::start().await;
    let long = "x".repeat(101);
    for (path, body, error) in [
        ("/oauth/device/code", "".to_owned(), "invalid_request"),
        (
            "/oauth/device/code",
            "client_id=".to_owned(),
            "invalid_request",
        ),
        (
            "/oauth/device/code",
            "client_id=a%20b".to_owned(),
            "invalid_request",
        ),
        (
            "/oauth/device/code",
            format!("client_id=app&device_name={long}"),
            "invalid_request",
        ),
        (
            "/oauth/device/code",
            "client_id=app&os=a%0Ab".to_owned(),
            "invalid_request",
        ),
        (
            "/oauth/device/code",
            "client_id=app&client_id=app".to_owned(),
            "invalid_request",
        ),
        ("/oauth/token", "".to_owned(), "invalid_request"),
        (
            "/oauth/token",
            "grant_type=password&username=a".to_owned(),
            "unsupported_grant_type",
        ),
        (
            "/oauth/token",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code".to_owned(),
            "invalid_request",
        ),
        (
            "/oauth/token",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=nope"
                .to_owned(),
            "invalid_grant",
        ),
        (
            "/oauth/token",
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
                "x".repeat(60_000)
            ),
            "invalid_grant",
        ),
    ] {
        let (status, answer, headers) = form(&server.url, path, &body).await;
        assert_eq!(status, 400, "{path} {body:.80}: {answer}");
        assert_eq!(answer["error"], error, "{path} {body:.80}: {answer}");
        assert!(answer["error_description"].is_string(), "{answer}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    let (status, answer) = server
        .raw(Method::POST, "/oauth/device/code", None, Some("{not json"))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn polling_faster_than_the_interval_slows_down_by_five_seconds_each_time() {
    let server = ClockedServer::start().await;
    let client = server.client();
    let grant = start(&client).await;
    let poll = || client.poll_device_grant(&grant.device_code);
    assert!(matches!(poll().await.unwrap(), DevicePoll::Pending));
    server.advance(chrono::Duration::seconds(2));
    assert!(matches!(
        poll().await.unwrap(),
        DevicePoll::SlowDown { interval: 10 }
    ));
    server.advance(chrono::Duration::seconds(9));
    assert!(matches!(
        poll().await.unwrap(),
        DevicePoll::SlowDown { interval: 15 }
    ));
    server.advance(chrono::Duration::seconds(15));
    assert!(matches!(poll().await.unwrap(), DevicePoll::Pending));
    server.advance(chrono::Duration::seconds(15));
    assert!(matches!(poll().await.unwrap(), DevicePoll::Pending));
}

#[tokio::test]
async fn an_expired_code_is_expired_token_and_an_expired_page() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let grant = start(&client).await;
    server.advance(chrono::Duration::seconds(601));
    assert!(matches!(
        client.poll_device_grant(&grant.device_code).await.unwrap(),
        DevicePoll::Expired
    ));
    let mut page = PageAgent::new(&server.url);
    assert_eq!(
        page.get(&format!("/device?user_code={}", grant.user_code))
            .await,
        410
    );
    assert!(page.html.contains("This code has expired"), "{}", page.html);
    // Nor can a page opened before the expiry approve it after.
    let grant = start(&client).await;
    let mut page = PageAgent::new(&server.url);
    page.get(&format!("/device?user_code={}", grant.user_code))
        .await;
    let code = grant.user_code.as_str();
    page.post(
        "/device/sign-in",
        &[
            ("user_code", code),
            ("username", "ann"),
            ("password", PASSWORD),
        ],
    )
    .await;
    server.advance(chrono::Duration::seconds(601));
    assert_eq!(
        page.post(
            "/device/decide",
            &[("user_code", code), ("decision", "approve")]
        )
        .await,
        410
    );
    assert!(matches!(
        client.poll_device_grant(&grant.device_code).await.unwrap(),
        DevicePoll::Expired
    ));
}

#[tokio::test]
async fn an_approved_code_gives_one_full_session_of_the_approving_account() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let grant = start(&client).await;
    let mut page = PageAgent::new(&server.url);
    // Lower case and no dash are the same code.
    let typed = grant.user_code.replace('-', "").to_lowercase();
    assert_eq!(
        page.decide(&typed, "ann", "approve").await,
        200,
        "{}",
        page.html
    );
    assert!(page.html.contains("Device approved"));

    let DevicePoll::Approved(session) = client.poll_device_grant(&grant.device_code).await.unwrap()
    else {
        panic!("expected a session");
    };
    assert!(matches!(
        client.poll_device_grant(&grant.device_code).await.unwrap(),
        DevicePoll::Refused { ref error, .. } if error == "invalid_grant"
    ));
    // A full session: it manages tokens (the desktop app's auto token) and refreshes.
    let ann = client.with_token(&session.access_token);
    let token = ann
        .create_token(&crate::harness::manual("from the browser"))
        .await
        .unwrap();
    assert!(token.token.starts_with("hkpat_"));
    let renewed = client.refresh(&session.refresh_token).await.unwrap();
    client
        .with_token(renewed.token)
        .list_tokens(1, 10)
        .await
        .unwrap();
    // The approval is in the account's security events, from the browser's address.
    let events = ann.account_events(None).await.unwrap().events;
    let approved: Vec<_> = events
        .iter()
        .filter(|event| event.kind == hubkey_api::AccountEventKind::DeviceApproved)
        .collect();
    assert_eq!(approved.len(), 1, "{events:?}");
    assert_eq!(approved[0].address.as_deref(), Some("127.0.0.1"));
    // The page's own sign-in ended with the decision.
    assert_eq!(
        page.get(&format!("/device?user_code={}", grant.user_code))
            .await,
        409
    );
}

/// Makes every insert into `sessions` fail (a trigger), or stops it; on either store.
async fn sessions_fail(server: &TestServer, fail: bool) {
    sqlx::any::install_default_drivers();
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&server.data().database_url())
            .await
            .expect("open the database");
    let postgres = server.data().postgres_database().is_some();
    let statements: &[&str] = match (postgres, fail) {
        (false, true) => &["CREATE TRIGGER test_fail BEFORE INSERT ON sessions \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
        (false, false) => &["DROP TRIGGER test_fail"],
        (true, true) => &[
            "CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
            "CREATE TRIGGER test_fail BEFORE INSERT ON sessions \
             FOR EACH ROW EXECUTE FUNCTION test_fail()",
        ],
        (true, false) => &[
            "DROP TRIGGER test_fail ON sessions",
            "DROP FUNCTION test_fail()",
        ],
    };
    for statement in statements {
        sqlx::Executor::execute(&mut conn, *statement)
            .await
            .expect("change the trigger");
    }
    sqlx::Connection::close(conn).await.ok();
}

#[tokio::test]
async fn an_approved_code_survives_a_database_failure_while_its_session_opens() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let grant = start(&client).await;
    let mut page = PageAgent::new(&server.url);
    assert_eq!(page.decide(&grant.user_code, "ann", "approve").await, 200);
    let sessions = server.data().count_rows("sessions").await;

    // The session cannot be written: the poll fails, and neither spends the code nor leaves
    // half a session.
    sessions_fail(&server, true).await;
    let failed = client.poll_device_grant(&grant.device_code).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(server.data().count_rows("sessions").await, sessions);

    // Once the database is well again the device's next poll gets its session.
    sessions_fail(&server, false).await;
    let DevicePoll::Approved(session) = client.poll_device_grant(&grant.device_code).await.unwrap()
    else {
        panic!("expected the session after the failure");
    };
    client
        .with_token(&session.access_token)
        .list_tokens(1, 10)
        .await
        .unwrap();
    assert!(matches!(
        client.poll_device_grant(&grant.device_code).await.unwrap(),
        DevicePoll::Refused { ref error, .. } if error == "invalid_grant"
    ));
}

#[tokio::test]
async fn many_concurrent_polls_after_approval_open_one_session() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    for _ in 0..3 {
        let client = server.client();
        let grant = start(&client).await;
        let mut page = PageAgent::new(&server.url);
        assert_eq!(page.decide(&grant.user_code, "ann", "approve").await, 200);
        let polls: Vec<_> = (0..64)
            .map(|_| {
                let client = client.clone();
                let code = grant.device_code.clone();
                tokio::spawn(async move { client.poll_device_grant(&code).await.unwrap() })
            })
            .collect();
        let mut sessions = 0;
        for poll in polls {
            match poll.await.unwrap() {
                DevicePoll::Approved(_) => sessions += 1,
                DevicePoll::Refused { error, .. } => assert_eq!(error, "invalid_grant"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(sessions, 1);
    }
}

#[tokio::test]
async fn a_denied_code_is_access_denied_and_cannot_be_approved_after() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let grant = start(&client).await;
    let mut page = PageAgent::new(&server.url);
    assert_eq!(page.decide(&grant.user_code, "ann", "deny").await, 200);
    assert!(page.html.contains("Request denied"));
    for _ in 0..2 {
        assert!(matches!(
            client.poll_device_grant(&grant.device_code).await.unwrap(),
            DevicePoll::Denied
        ));
    }
    let mut again = PageAgent::new(&server.url);
    assert_eq!(
        again
            .get(&format!("/device?user_code={}", grant.user_code))
            .await,
        409
    );
}

#[tokio::test]
async fn the_page_asks_a_totp_account_for_its_code() {
    let server = ClockedServer::start().await;
    server.add_user("bob", PASSWORD).await;
    let secret = server.enable_totp("bob").await;
    let client = server.client();
    let grant = start(&client).await;
    let code = grant.user_code.as_str();
    let mut page = PageAgent::new(&server.url);
    page.get(&format!("/device?user_code={code}")).await;
    assert_eq!(
        page.post(
            "/device/sign-in",
            &[
                ("user_code", code),
                ("username", "bob"),
                ("password", PASSWORD)
            ]
        )
        .await,
        200
    );
    assert!(page.html.contains("Two-factor sign-in"), "{}", page.html);
    let challenge = page.hidden("challenge").unwrap();
    assert_eq!(
        page.post(
            "/device/2fa",
            &[
                ("user_code", code),
                ("challenge", &challenge),
                ("code", "000000")
            ]
        )
        .await,
        401
    );
    let right = totp_code(&secret, server.unix_now());
    assert_eq!(
        page.post(
            "/device/2fa",
            &[
                ("user_code", code),
                ("challenge", &challenge),
                ("code", &right)
            ]
        )
        .await,
        200,
        "{}",
        page.html
    );
    assert!(
        page.html.contains("Signed in as <strong>bob</strong>"),
        "{}",
        page.html
    );
    assert_eq!(
        page.post(
            "/device/decide",
            &[("user_code", code), ("decision", "approve")]
        )
        .await,
        200
    );
    assert!(matches!(
        client.poll_device_grant(&grant.device_code).await.unwrap(),
        DevicePoll::Approved(_)
    ));
}

#[tokio::test]
async fn the_page_is_locked_down_and_refuses_forms_without_its_token() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let grant = start(&server.client()).await;
    let mut page = PageAgent::new(&server.url);
    let (status, headers) = page.get_with_headers("/device").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!page.html.contains("<script"), "no script");

    // Without the page's token, or with another visit's, a form is refused.
    let code = grant.user_code.as_str();
    let mut other = PageAgent::new(&server.url);
    other.get("/device").await;
    let foreign = other.hidden("csrf").unwrap();
    for csrf in ["", "forged", foreign.as_str()] {
        let (status, _, _) = form(
            &server.url,
            "/device/sign-in",
            &format!("csrf={csrf}&user_code={code}&username=ann&password={PASSWORD}"),
        )
        .await;
        assert_eq!(status, 403);
    }
    page.html = format!("name=\"csrf\" value=\"{foreign}\"");
    assert_eq!(
        page.post(
            "/device/sign-in",
            &[
                ("user_code", code),
                ("username", "ann"),
                ("password", PASSWORD)
            ]
        )
        .await,
        403
    );
    // Names and descriptions are escaped.
    let client = server.client();
    let mut hostile = request();
    hostile.device_name = Some("<script>alert(1)</script>".into());
    let grant = client.start_device_grant(&hostile).await.unwrap();
    let mut page = PageAgent::new(&server.url);
    page.get(&format!("/device?user_code={}", grant.user_code))
        .await;
    page.post(
        "/device/sign-in",
        &[
            ("user_code", &grant.user_code),
            ("username", "ann"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert!(
        page.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("<script>"));
}

#[tokio::test]
async fn wrong_codes_are_a_clear_page_and_guessing_is_throttled_per_address() {
    let server = TestServer::start().await;
    let mut page = PageAgent::from(&server.url, Ipv4Addr::new(127, 0, 9, 1));
    assert_eq!(page.get("/device?user_code=BCDF-GHJK").await, 404);
    assert!(
        page.html.contains("That code is not valid"),
        "{}",
        page.html
    );
    let mut throttled = false;
    for i in 0..40 {
        let status = page.post("/device", &[("user_code", "ZZZZ-ZZZZ")]).await;
        if status == 429 {
            throttled = true;
            assert!(i >= 28, "throttled after {i} guesses");
            break;
        }
        assert_eq!(status, 404);
    }
    assert!(
        throttled,
        "40 wrong codes from one address were all looked up"
    );
    assert!(page.html.contains("Too many attempts"));
    // Another address is not held back, and a live code still works from it.
    let grant = start(&server.client()).await;
    let mut other = PageAgent::from(&server.url, Ipv4Addr::new(127, 0, 9, 2));
    assert_eq!(
        other
            .get(&format!("/device?user_code={}", grant.user_code))
            .await,
        200
    );
}

#[tokio::test]
async fn the_sweep_deletes_device_grants_an_hour_after_they_expire() {
    let server = ClockedServer::start().await;
    let client = server.client();
    let old = start(&client).await;
    server.advance(chrono::Duration::minutes(30));
    let newer = start(&client).await;
    // Expired 20 minutes ago: kept, so a late poll still hears expired_token.
    let swept = server.hub().sweep(server.clock.now()).await.unwrap();
    assert_eq!(swept.device_grants, 0);
    server.advance(chrono::Duration::minutes(41));
    // The first expired 61 minutes ago, the second 31. The server's own sweep runs every
    // 50 ms on this clock too, so it may be the one that deletes the first: what this sweep
    // counts is 0 or 1, and the polls below show what is left.
    let swept = server.hub().sweep(server.clock.now()).await.unwrap();
    assert!(swept.device_grants <= 1, "{swept:?}");
    assert!(matches!(
        client.poll_device_grant(&old.device_code).await.unwrap(),
        DevicePoll::Refused { ref error, .. } if error == "invalid_grant"
    ));
    assert!(matches!(
        client.poll_device_grant(&newer.device_code).await.unwrap(),
        DevicePoll::Expired
    ));
}

#[tokio::test]
async fn approve_and_deny_racing_on_one_code_decide_it_once() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    for _ in 0..5 {
        let grant = start(&client).await;
        let code = grant.user_code.clone();
        let mut pages = Vec::new();
        for _ in 0..2 {
            let mut page = PageAgent::new(&server.url);
            page.get(&format!("/device?user_code={code}")).await;
            page.post(
                "/device/sign-in",
                &[
                    ("user_code", &code),
                    ("username", "ann"),
                    ("password", PASSWORD),
                ],
            )
            .await;
            assert!(page.html.contains("Approve this device?"));
            pages.push(page);
        }
        let tasks: Vec<_> = pages
            .into_iter()
            .zip(["approve", "deny"])
            .map(|(mut page, decision)| {
                let code = code.clone();
                tokio::spawn(async move {
                    let status = page
                        .post(
                            "/device/decide",
                            &[("user_code", &code), ("decision", decision)],
                        )
                        .await;
                    (decision, status)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (decision, status) = task.await.unwrap();
            match status {
                200 => winners.push(decision),
                409 => {}
                other => panic!("{decision}: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let poll = client.poll_device_grant(&grant.device_code).await.unwrap();
        match winners[0] {
            "approve" => assert!(matches!(poll, DevicePoll::Approved(_)), "{poll:?}"),
            _ => assert!(matches!(poll, DevicePoll::Denied), "{poll:?}"),
        }
    }
}
