//! Hostile input on every route family (sign-in, tokens, the registry's `/token`,
//! repositories): oversized and deeply nested bodies, invalid UTF-8 in bodies, headers and
//! paths, paging out of range, unknown fields, SQL metacharacters, control characters and
//! bidirectional marks in labels, malformed Basic and Bearer credentials.
//!
//! Every answer must be a 4xx with a JSON body of its family's shape (never a 5xx, never
//! plain text), and a refused write must leave nothing behind: the token list and the
//! events feed are read afterwards.
//!
//! Decisions: unknown JSON fields are refused with a 400 that names the field (the request
//! types say `deny_unknown_fields`; a typo such as `is_activ` must not pass as a no-op).
//! Labels are stored exactly as given (SQL metacharacters, right-to-left marks) except
//! control characters U+0000–U+001F and U+007F–U+009F, which are a 400 naming `token_label`.

use hubkey_api::{DesktopGenerateRequest, PatchAccessTokenRequest, TokenEventKind};
use hubkey_client::HubClient;
use reqwest::Method;

use crate::harness::{all_events, manual, RawAnswer, TestServer, PASSWORD};

/// Larger than the server's 64 KiB body limit.
const OVERSIZED: usize = 100 * 1024;

/// The routes that take a JSON body, with a body they would accept apart from the test's
/// change. `{uuid}` is replaced by a real token's uuid.
const JSON_ROUTES: [(&str, &str); 9] = [
    ("POST", "/v2/users/login"),
    ("POST", "/v2/users/2fa-login"),
    ("POST", "/v2/users/refresh"),
    ("POST", "/v2/auth/token"),
    ("POST", "/v2/access-tokens"),
    ("PATCH", "/v2/access-tokens/{uuid}"),
    ("POST", "/v2/access-tokens/desktop-generate"),
    ("PATCH", "/v2/repositories/ann/app"),
    ("PUT", "/v2/users/password"),
];

/// Asserts a 4xx of `status` with the JSON body of the route's family:
/// `{"details"}` on `/token`, `{fields, text}` for a 400 or 413 elsewhere, `{detail, message}`
/// else.
fn assert_error(answer: &RawAnswer, status: u16, path: &str, what: &str) {
    assert_eq!(
        answer.status, status,
        "{what} on {path}: status (body {})",
        answer.body
    );
    let body = &answer.body;
    let shaped = if path.starts_with("/token") {
        body["details"].as_str().is_some_and(|d| !d.is_empty())
    } else if status == 400 || status == 413 {
        body["fields"].is_object() && body["text"].as_str().is_some_and(|t| !t.is_empty())
    } else {
        body["detail"].as_str().is_some_and(|d| !d.is_empty()) && body["message"].is_string()
    };
    assert!(
        shaped,
        "{what} on {path}: body is not the family's JSON error: {body}"
    );
}

/// `ann`, signed in, with one manual token; returns the client, its bearer and the token's uuid.
async fn ann_with_a_token(server: &TestServer) -> (HubClient, String, String) {
    server.add_user("ann", PASSWORD).await;
    let session = crate::harness::password_session(&server.client(), "ann", PASSWORD).await;
    let client = server.client().with_token(session.token.clone());
    let token = client
        .create_token(&manual("kept"))
        .await
        .expect("create a token");
    (client, session.token, token.uuid.to_string())
}

/// The account's tokens as (uuid, label, active), and the number of events: what a refused
/// request must not change.
async fn snapshot(client: &HubClient) -> (Vec<(String, String, bool)>, usize) {
    let tokens = client
        .list_all_tokens()
        .await
        .expect("list tokens")
        .into_iter()
        .map(|t| (t.uuid.to_string(), t.token_label, t.is_active))
        .collect();
    (tokens, all_events(client).await.len())
}

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: Vec<u8>,
) -> RawAnswer {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    server.raw_bytes(method, path, headers, Some(body)).await
}

/// `Authorization: auth` and a JSON content type.
fn json_headers(auth: &str) -> [(&'static str, &[u8]); 2] {
    [
        ("authorization", auth.as_bytes()),
        ("content-type", b"application/json"),
    ]
}

/// `GET path` with `Authorization: auth`.
async fn get(server: &TestServer, path: &str, auth: &str) -> RawAnswer {
    send(
        server,
        "GET",
        path,
        &[("authorization", auth.as_bytes())],
        Vec::new(),
    )
    .await
}

#[tokio::test]
async fn oversized_nested_and_non_utf8_bodies_are_clear_4xx_json() {
    let server = TestServer::start().await;
    let (client, bearer, uuid) = ann_with_a_token(&server).await;
    let auth = format!("Bearer {bearer}");
    let headers = json_headers(&auth);
    let before = snapshot(&client).await;

    let big = format!(
        r#"{{"token_label":"{}","scopes":["repo:read"]}}"#,
        "a".repeat(OVERSIZED)
    );
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_in_field = format!(
        r#"{{"token_label":{}"x"{},"scopes":["repo:read"]}}"#,
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let mut not_utf8 = br#"{"token_label":"ok"#.to_vec();
    not_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    not_utf8.extend_from_slice(br#"","scopes":["repo:read"]}"#);
    let lone_surrogate = br#"{"token_label":"a\ud800b","scopes":["repo:read"]}"#.to_vec();

    for (method, route) in JSON_ROUTES {
        let path = route.replace("{uuid}", &uuid);
        let answer = send(&server, method, &path, &headers, big.clone().into_bytes()).await;
        assert_error(&answer, 413, &path, "a 100 KiB body");
        for (what, body) in [
            ("30 000 nested arrays", deep.clone().into_bytes()),
            (
                "20 000 nested arrays in a field",
                deep_in_field.clone().into_bytes(),
            ),
            ("invalid UTF-8", not_utf8.clone()),
            ("a lone surrogate escape", lone_surrogate.clone()),
            ("a truncated object", br#"{"token_label":"#.to_vec()),
            ("JSON null", b"null".to_vec()),
        ] {
            let answer = send(&server, method, &path, &headers, body).await;
            assert_error(&answer, 400, &path, what);
        }
    }
    // The registry's form endpoint.
    let form = [(
        "content-type",
        b"application/x-www-form-urlencoded".as_slice(),
    )];
    let answer = send(&server, "POST", "/token", &form, vec![b'a'; OVERSIZED]).await;
    assert_error(&answer, 413, "/token", "a 100 KiB form");
    let answer = send(
        &server,
        "POST",
        "/token",
        &form,
        b"grant_type=password&username=ann&password=\xff\xfe".to_vec(),
    )
    .await;
    assert_error(&answer, 400, "/token", "a form that is not UTF-8");

    assert_eq!(
        snapshot(&client).await,
        before,
        "a refused body changed something"
    );
}

#[tokio::test]
async fn non_utf8_headers_and_paths_are_clear_4xx_json() {
    let server = TestServer::start().await;
    let (client, _bearer, uuid) = ann_with_a_token(&server).await;
    let before = snapshot(&client).await;

    for (method, path) in [
        ("GET", "/v2/access-tokens".to_owned()),
        ("DELETE", format!("/v2/access-tokens/{uuid}")),
        ("POST", "/v2/access-tokens/desktop-generate".to_owned()),
        ("GET", "/v2/repositories/ann/app".to_owned()),
        ("POST", "/v2/users/logout".to_owned()),
        ("PUT", "/v2/users/password".to_owned()),
        ("POST", "/v2/users/sessions/revoke-all".to_owned()),
        ("GET", "/v2/users/security-events".to_owned()),
    ] {
        let answer = send(
            &server,
            method,
            &path,
            &[("authorization", b"Bearer \xff\xfe\xfd")],
            Vec::new(),
        )
        .await;
        assert_error(&answer, 401, &path, "a bearer that is not UTF-8");
    }
    let answer = send(
        &server,
        "GET",
        "/token?service=registry&scope=repository:ann/app:pull",
        &[("authorization", b"Basic \xff\xfe")],
        Vec::new(),
    )
    .await;
    assert_error(&answer, 401, "/token", "Basic that is not UTF-8");

    // Paths whose segments are not UTF-8 name nothing.
    for (method, path) in [
        ("GET", "/v2/access-tokens/%ff%fe"),
        ("PATCH", "/v2/access-tokens/%ff%fe"),
        ("DELETE", "/v2/access-tokens/%c3%28"),
        ("GET", "/v2/repositories/ann/%ff%fe"),
        ("PATCH", "/v2/repositories/%ff/app"),
    ] {
        let bearer = client_bearer(&server).await;
        let auth = format!("Bearer {bearer}");
        let answer = send(
            &server,
            method,
            path,
            &[
                ("authorization", auth.as_bytes()),
                ("content-type", b"application/json"),
            ],
            br#"{"is_private":false}"#.to_vec(),
        )
        .await;
        assert!(
            (400..500).contains(&answer.status),
            "{method} {path}: {}",
            answer.status
        );
        assert_error(&answer, answer.status, path, "a path that is not UTF-8");
    }
    // A User-Agent that is not UTF-8 is ignored: the auto token gets the default label.
    let bearer = client_bearer(&server).await;
    let auth = format!("Bearer {bearer}");
    let answer = send(
        &server,
        "POST",
        "/v2/access-tokens/desktop-generate",
        &[
            ("authorization", auth.as_bytes()),
            ("user-agent", b"\xff\xfe (\xff)"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let label = answer.body["data"]["token_label"].as_str().unwrap();
    assert!(!label.chars().any(char::is_control), "{label:?}");

    let (tokens, _) = snapshot(&client).await;
    assert_eq!(
        tokens.len(),
        before.0.len() + 1,
        "only the auto token was added"
    );
}

/// A fresh session of `ann` (sessions are cheap; each check gets its own).
async fn client_bearer(server: &TestServer) -> String {
    crate::harness::password_session(&server.client(), "ann", PASSWORD)
        .await
        .token
}

#[tokio::test]
async fn paging_out_of_range_is_a_400_naming_the_parameter() {
    let server = TestServer::start().await;
    let (client, bearer, _uuid) = ann_with_a_token(&server).await;
    let auth = format!("Bearer {bearer}");
    for query in [
        "page_size=0",
        "page_size=101",
        "page_size=99999999999",
        "page_size=-5",
        "page_size=ten",
        "page=0",
        "page=-1",
        "page=1.5",
        "page=abc",
        "page=99999999999999999999",
        "page=%00",
    ] {
        let path = format!("/v2/access-tokens?{query}");
        let answer = get(&server, &path, &auth).await;
        assert_error(&answer, 400, &path, "paging out of range");
        let name = query.split('=').next().unwrap();
        assert!(
            answer.body["text"].as_str().unwrap().contains(name),
            "{query}: the error does not name {name}: {}",
            answer.body
        );
    }
    // A page past the end is Hub's 404.
    for query in ["page=2", "page=4294967295&page_size=100"] {
        let path = format!("/v2/access-tokens?{query}");
        let answer = get(&server, &path, &auth).await;
        assert_error(&answer, 404, &path, "a page past the end");
    }
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "after=abc",
        "after=-1",
        "after=%ff",
    ] {
        let path = format!("/v2/access-tokens/events?{query}");
        let answer = get(&server, &path, &auth).await;
        assert_error(&answer, 400, &path, "an events query out of range");
    }
    // The largest page still works.
    let page = client.list_tokens(1, 100).await.expect("page_size=100");
    assert_eq!(page.count, 1);
}

#[tokio::test]
async fn unknown_json_fields_are_a_400_naming_the_field() {
    let server = TestServer::start().await;
    let (client, bearer, uuid) = ann_with_a_token(&server).await;
    let auth = format!("Bearer {bearer}");
    let headers = json_headers(&auth);
    let before = snapshot(&client).await;
    let bodies = [
        r#"{"username":"ann","password":"x","is_admin":true}"#,
        r#"{"login_2fa_token":"x","code":"123456","is_admin":true}"#,
        r#"{"refresh_token":"x","is_admin":true}"#,
        r#"{"identifier":"ann","secret":"x","is_admin":true}"#,
        r#"{"token_label":"new","scopes":["repo:read"],"is_admin":true}"#,
        r#"{"is_active":false,"is_admin":true}"#,
        r#"{"device_name":"box","is_admin":true}"#,
        r#"{"is_private":false,"is_admin":true}"#,
        r#"{"current_password":"x","new_password":"y","is_admin":true}"#,
    ];
    for ((method, route), body) in JSON_ROUTES.iter().zip(bodies) {
        let path = route.replace("{uuid}", &uuid);
        let answer = send(&server, method, &path, &headers, body.as_bytes().to_vec()).await;
        assert_error(&answer, 400, &path, "an unknown field");
        assert!(
            answer.body["text"].as_str().unwrap().contains("is_admin"),
            "{path}: the error does not name the field: {}",
            answer.body
        );
    }
    assert_eq!(
        snapshot(&client).await,
        before,
        "a refused body changed something"
    );
    let repo = client
        .repository("ann", "app")
        .await
        .expect("read the repository");
    assert!(
        repo.is_private,
        "a refused PATCH made the repository public"
    );
}

/// Labels a user may give that must come back byte for byte.
fn verbatim_labels() -> Vec<String> {
    vec![
        "'; DROP TABLE access_tokens; --".into(),
        r#"" OR "1"="1"#.into(),
        "Robert'); DELETE FROM users WHERE ('1'='1".into(),
        r"100% _done_ \ back\slash \\ ".into(),
        "$1 ?1 :name @p ${x}".into(),
        "\u{202e}gnp.exe".into(),
        "ci \u{200f}שלום\u{200e} deploy".into(),
        "\u{2066}isolated\u{2069} \u{200b}zero width\u{feff}".into(),
        "emoji 🐳🔑 and 漢字".into(),
        "é".repeat(100),
    ]
}

#[tokio::test]
async fn labels_round_trip_exactly_through_create_patch_list_and_feed() {
    let server = TestServer::start().await;
    let (client, _bearer, _uuid) = ann_with_a_token(&server).await;
    let labels = verbatim_labels();
    for label in &labels {
        let created = client
            .create_token(&manual(label))
            .await
            .unwrap_or_else(|err| panic!("create {label:?}: {err:?}"));
        assert_eq!(&created.token_label, label);
        let read = client.get_token(created.uuid).await.expect("get");
        assert_eq!(&read.token_label, label);
        // Relabel to the reversed label and back: both stored verbatim.
        let reversed: String = label.chars().rev().collect();
        let patch = |label: &str| PatchAccessTokenRequest {
            token_label: Some(label.to_owned()),
            is_active: None,
            new_address_alerts: None,
        };
        let patched = client
            .patch_token(created.uuid, &patch(&reversed))
            .await
            .expect("relabel");
        assert_eq!(patched.token_label, reversed);
        let back = client
            .patch_token(created.uuid, &patch(label))
            .await
            .expect("relabel back");
        assert_eq!(&back.token_label, label);
    }
    let listed: Vec<String> = client
        .list_all_tokens()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.token_label)
        .collect();
    for label in &labels {
        assert!(listed.contains(label), "{label:?} missing from the list");
    }
    let created: Vec<String> = all_events(&client)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::Created)
        .map(|e| e.token_label)
        .collect();
    for label in &labels {
        assert!(created.contains(label), "{label:?} missing from the feed");
    }
    // The tables are all still there.
    assert_eq!(listed.len(), labels.len() + 1);
}

#[tokio::test]
async fn labels_with_control_characters_are_refused_and_nothing_changes() {
    let server = TestServer::start().await;
    let (client, bearer, uuid) = ann_with_a_token(&server).await;
    let auth = format!("Bearer {bearer}");
    let headers = json_headers(&auth);
    let before = snapshot(&client).await;
    for control in [
        "\u{0}",
        "\u{7}",
        "\n",
        "\r",
        "\t",
        "\u{1b}[31m",
        "\u{7f}",
        "\u{85}",
        "\u{9b}",
    ] {
        let label = format!("ci{control}label");
        let body = serde_json::json!({"token_label": label, "scopes": ["repo:read"]});
        let answer = send(
            &server,
            "POST",
            "/v2/access-tokens",
            &headers,
            body.to_string().into_bytes(),
        )
        .await;
        assert_error(
            &answer,
            400,
            "/v2/access-tokens",
            &format!("create with {control:?}"),
        );
        assert!(
            answer.body["fields"]["token_label"].is_array(),
            "{}",
            answer.body
        );
        // A PATCH that also deactivates: refused whole, the token stays active.
        let body = serde_json::json!({"token_label": label, "is_active": false});
        let path = format!("/v2/access-tokens/{uuid}");
        let answer = send(
            &server,
            "PATCH",
            &path,
            &headers,
            body.to_string().into_bytes(),
        )
        .await;
        assert_error(&answer, 400, &path, &format!("patch with {control:?}"));
        assert!(
            answer.body["fields"]["token_label"].is_array(),
            "{}",
            answer.body
        );
    }
    assert_eq!(
        snapshot(&client).await,
        before,
        "a refused label changed something"
    );

    // What a client says about itself is made plain text for the auto token's label.
    let generated = client
        .desktop_generate(Some(&DesktopGenerateRequest {
            client_name: Some("evil\u{1b}[2J".into()),
            device_name: Some("box\r\nInjected: yes\u{7}".into()),
        }))
        .await
        .expect("desktop-generate with control characters");
    let label = generated.data.token_label;
    assert!(!label.chars().any(char::is_control), "{label:?}");
    assert!(label.contains("Injected: yes"), "{label:?}");
}

#[tokio::test]
async fn malformed_credentials_are_401_json_on_every_family() {
    let server = TestServer::start().await;
    let (client, _bearer, uuid) = ann_with_a_token(&server).await;
    let pat = client
        .create_token(&manual("registry"))
        .await
        .expect("create a PAT")
        .token;
    let before = snapshot(&client).await;
    let b64 = |bytes: &[u8]| data_encoding::BASE64.encode(bytes);
    let unsigned_jwt = format!(
        "{}.{}.",
        data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        data_encoding::BASE64URL_NOPAD.encode(br#"{"sub":"ann","exp":9999999999}"#)
    );
    let bearers: Vec<String> = vec![
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer a.b.c".into(),
        format!("Bearer {unsigned_jwt}"),
        format!("Bearer {}", "A".repeat(7000)),
        format!("Bearer {pat}"),
        format!("Basic {}", b64(format!("ann:{PASSWORD}").as_bytes())),
        "Digest username=ann".into(),
        "bearer\tabc".into(),
    ];
    for (method, path) in [
        ("GET", "/v2/access-tokens".to_owned()),
        ("POST", "/v2/access-tokens".to_owned()),
        ("PATCH", format!("/v2/access-tokens/{uuid}")),
        ("DELETE", format!("/v2/access-tokens/{uuid}")),
        ("POST", "/v2/access-tokens/desktop-generate".to_owned()),
        ("GET", "/v2/access-tokens/events".to_owned()),
        ("POST", "/v2/users/logout".to_owned()),
        ("GET", "/v2/repositories/ann/app".to_owned()),
        ("PATCH", "/v2/repositories/ann/app".to_owned()),
    ] {
        for bearer in &bearers {
            let body = r#"{"token_label":"x","scopes":["repo:read"],"is_private":false}"#;
            let answer = send(
                &server,
                method,
                &path,
                &[
                    ("authorization", bearer.as_bytes()),
                    ("content-type", b"application/json"),
                ],
                body.as_bytes().to_vec(),
            )
            .await;
            assert_error(
                &answer,
                401,
                &path,
                &format!("Authorization {:.30}", bearer),
            );
            assert!(answer.headers.contains_key("www-authenticate"), "{path}");
        }
    }
    let basics: Vec<Vec<u8>> = vec![
        b"Basic".to_vec(),
        b"Basic !!!not-base64".to_vec(),
        format!("Basic {}", b64(b"no-colon")).into_bytes(),
        format!("Basic {}", b64(b"\xff\xfe:\xff")).into_bytes(),
        format!("Basic {}", b64(b"ann:")).into_bytes(),
        format!("Basic {}", b64(format!(":{pat}").as_bytes())).into_bytes(),
        format!("Basic {}", b64(format!("ann:{pat}x").as_bytes())).into_bytes(),
        format!("Basic {}", b64(format!("ann' OR '1'='1:{pat}").as_bytes())).into_bytes(),
        format!("Bearer {pat}").into_bytes(),
        format!("Basic {}", b64(&vec![b'a'; 6000])).into_bytes(),
    ];
    for basic in &basics {
        let path = "/token?service=registry&scope=repository:ann/app:pull";
        let answer = send(
            &server,
            "GET",
            path,
            &[("authorization", basic)],
            Vec::new(),
        )
        .await;
        assert_error(
            &answer,
            401,
            path,
            &format!("Authorization {:.30}", String::from_utf8_lossy(basic)),
        );
        assert!(answer.headers.contains_key("www-authenticate"));
    }
    // The sign-in bodies with credentials of the wrong shape: a 401, or a 400 for the shape.
    for body in [
        r#"{"username":"","password":""}"#,
        r#"{"username":"ann\u0000","password":"x"}"#,
        r#"{"username":"' OR 1=1 --","password":"' OR 1=1 --"}"#,
        r#"{"username":123,"password":"x"}"#,
    ] {
        let answer = send(
            &server,
            "POST",
            "/v2/users/login",
            &[("content-type", b"application/json")],
            body.as_bytes().to_vec(),
        )
        .await;
        assert!(
            matches!(answer.status, 400 | 401),
            "{body}: {}",
            answer.status
        );
        assert_error(&answer, answer.status, "/v2/users/login", body);
    }
    assert_eq!(
        snapshot(&client).await,
        before,
        "a refused credential changed something"
    );
}

#[tokio::test]
async fn repository_names_outside_the_grammar_and_wrong_methods_are_4xx_json() {
    let server = TestServer::start().await;
    let (_client, bearer, _uuid) = ann_with_a_token(&server).await;
    let auth = format!("Bearer {bearer}");
    let headers = json_headers(&auth);
    let long = "a".repeat(300);
    for name in [
        "a..b",
        "App",
        "a%20b",
        "-a",
        "a___b",
        long.as_str(),
        "%27%3B%20DROP",
    ] {
        let path = format!("/v2/repositories/ann/{name}");
        for method in ["GET", "PATCH"] {
            let answer = send(
                &server,
                method,
                &path,
                &headers,
                br#"{"is_private":false}"#.to_vec(),
            )
            .await;
            assert_error(&answer, 400, &path, &format!("{method} of a bad name"));
        }
    }
    // Scopes the registry cannot parse are a 400 in its shape, never a 5xx.
    for scope in [
        "%ff%fe",
        "repository",
        "repository:ann/app",
        "::",
        "repository:ann/app:pull:extra",
    ] {
        let path = format!("/token?service=registry&scope={scope}");
        let answer = send(&server, "GET", &path, &[], Vec::new()).await;
        assert!(answer.status < 500, "{path}: {}", answer.status);
        if answer.status != 200 {
            assert_error(&answer, answer.status, &path, "a malformed scope");
        }
    }
    for (method, path) in [
        ("PUT", "/v2/access-tokens"),
        ("GET", "/v2/users/login"),
        ("DELETE", "/token"),
        ("POST", "/v2/repositories/ann/app"),
    ] {
        let answer = send(&server, method, path, &headers, b"{}".to_vec()).await;
        assert_error(&answer, 405, path, "a wrong method");
        assert!(
            answer.headers.contains_key("allow"),
            "{path}: no Allow header"
        );
    }
    let answer = send(&server, "GET", "/no/such/route", &[], Vec::new()).await;
    assert_error(&answer, 404, "/no/such/route", "an unknown route");
}
