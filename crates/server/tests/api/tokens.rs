//! The access-token endpoints: create, list, get, patch, delete, desktop-generate, expiry, and
//! the wall between accounts.

use chrono::Utc;
use hubkey_api::{
    CreateAccessTokenRequest, DesktopGenerateRequest, Origin, PatchAccessTokenRequest, Scope,
    TokenEventKind, TokenState,
};
use hubkey_client::{ClientError, HubClient};
use reqwest::Method;
use uuid::Uuid;

use crate::harness::{
    all_events, manual, password_session, status_of, ClockedServer, TestServer, PASSWORD,
};

/// The masked form the server shows for a plaintext token.
fn hint_of(token: &str) -> String {
    format!("hkpat_…{}", &token[token.len() - 4..])
}

/// Asserts a 400 whose body names `field` among the fields in error.
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, ClientError>, field: &str) {
    match result {
        Err(ClientError::Invalid { body }) => {
            assert!(!body.text.is_empty(), "400 without text: {body:?}");
            assert!(
                body.fields.contains_key(field),
                "{field} not named in {body:?}"
            );
        }
        other => panic!("expected 400 for {field}, got {other:?}"),
    }
}

fn deactivate() -> PatchAccessTokenRequest {
    PatchAccessTokenRequest {
        is_active: Some(false),
        ..Default::default()
    }
}

fn activate() -> PatchAccessTokenRequest {
    PatchAccessTokenRequest {
        is_active: Some(true),
        ..Default::default()
    }
}

#[tokio::test]
async fn created_token_is_shown_in_plaintext_once() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let request = CreateAccessTokenRequest {
        token_label: "laptop builds".into(),
        scopes: vec![Scope::Read, Scope::Write],
        expires_at: None,
    };
    let created = ann.create_token(&request).await.expect("create");
    assert!(created.token.starts_with("hkpat_"), "{}", created.token);
    assert_eq!(created.token.len(), hubkey_api::token::TOKEN_LEN);
    assert!(
        hubkey_api::PlainToken::parse(&created.token).is_ok(),
        "checksum is valid"
    );
    assert_eq!(created.token_label, "laptop builds");
    assert_eq!(created.scopes, vec![Scope::Read, Scope::Write]);
    assert_eq!(created.generated_by, Origin::Manual);
    assert!(created.is_active);
    assert_eq!(created.state, TokenState::Active);
    assert_eq!(created.last_used, None);
    assert_eq!(created.expires_at, None);
    assert_eq!(created.token_hint, hint_of(&created.token));

    let fetched = ann.get_token(created.uuid).await.expect("get");
    assert_eq!(fetched.token, "");
    assert_eq!(
        fetched,
        hubkey_api::AccessToken {
            token: String::new(),
            ..created.clone()
        }
    );
    let listed = ann.list_tokens(1, 10).await.expect("list");
    assert_eq!(listed.results.len(), 1);
    assert_eq!(listed.results[0].token, "");
    assert_eq!(listed.results[0].token_hint, hint_of(&created.token));

    server
        .client()
        .auth_token("ann", &created.token)
        .await
        .expect("the new token works");
}

#[tokio::test]
async fn created_token_records_creator_address_and_user_agent() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = HubClient::builder(&server.url)
        .local_address("127.0.0.7".parse().expect("address"))
        .user_agent("hubkey-tests/1.0")
        .build()
        .expect("client");
    let session = password_session(&client, "ann", PASSWORD).await;
    let created = client
        .with_token(session.token)
        .create_token(&manual("ci"))
        .await
        .expect("create");
    assert_eq!(created.creator_ip, "127.0.0.7");
    assert_eq!(created.creator_ua, "hubkey-tests/1.0");
}

#[tokio::test]
async fn create_rejects_an_empty_or_overlong_label() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    for label in [String::new(), "x".repeat(101)] {
        assert_invalid(ann.create_token(&manual(&label)).await, "token_label");
    }
    ann.create_token(&manual(&"x".repeat(100)))
        .await
        .expect("100 characters are allowed");
    ann.create_token(&manual("é"))
        .await
        .expect("one character is allowed");
}

#[tokio::test]
async fn create_rejects_empty_or_unknown_scopes() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let no_scopes = CreateAccessTokenRequest {
        scopes: Vec::new(),
        ..manual("ci")
    };
    assert_invalid(ann.create_token(&no_scopes).await, "scopes");

    let bearer = bearer_of(&server).await;
    let (status, body) = server
        .raw(
            Method::POST,
            "/v2/access-tokens",
            Some(&bearer),
            Some(r#"{"token_label":"ci","scopes":["repo:delete"]}"#),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["text"].is_string() && body["fields"].is_object(),
        "{body}"
    );
    assert_eq!(ann.list_tokens(1, 10).await.expect("list").count, 0);
}

#[tokio::test]
async fn create_rejects_an_expiry_in_the_past() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let past = CreateAccessTokenRequest {
        expires_at: Some(Utc::now() - chrono::Duration::minutes(1)),
        ..manual("ci")
    };
    assert_invalid(ann.create_token(&past).await, "expires_at");
    let bearer = bearer_of(&server).await;
    let (status, body) = server
        .raw(
            Method::POST,
            "/v2/access-tokens",
            Some(&bearer),
            Some(r#"{"token_label":"ci","scopes":["repo:read"],"expires_at":"tomorrow"}"#),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn token_bodies_reject_unknown_json_fields() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("ci")).await.expect("create");
    let bearer = bearer_of(&server).await;
    for (method, path, body) in [
        (
            Method::POST,
            "/v2/access-tokens".to_owned(),
            r#"{"token_label":"ci","scopes":["repo:read"],"owner":"bob"}"#,
        ),
        (
            Method::PATCH,
            format!("/v2/access-tokens/{}", created.uuid),
            r#"{"is_active":false,"scopes":["repo:admin"]}"#,
        ),
        (
            Method::POST,
            "/v2/access-tokens/desktop-generate".to_owned(),
            r#"{"client_name":"x","scopes":["repo:read"]}"#,
        ),
        (Method::POST, "/v2/access-tokens".to_owned(), "{not json"),
    ] {
        let (status, answer) = server
            .raw(method.clone(), &path, Some(&bearer), Some(body))
            .await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert!(answer["text"].is_string(), "{method} {path}: {answer}");
    }
    let unchanged = ann.get_token(created.uuid).await.expect("get");
    assert!(unchanged.is_active);
    assert_eq!(ann.list_tokens(1, 10).await.expect("list").count, 1);
}

/// A fresh session bearer for `ann`, for raw requests.
async fn bearer_of(server: &TestServer) -> String {
    password_session(&server.client(), "ann", PASSWORD)
        .await
        .token
}

#[tokio::test]
async fn token_endpoints_refuse_a_missing_or_bad_bearer() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("ci")).await.expect("create");
    let anonymous = server.client();
    let forged = server
        .client()
        .with_token("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl");
    let pat_as_bearer = server.client().with_token(created.token.clone());
    for client in [&anonymous, &forged, &pat_as_bearer] {
        assert_eq!(status_of(client.list_tokens(1, 10).await), 401);
        assert_eq!(status_of(client.create_token(&manual("x")).await), 401);
        assert_eq!(status_of(client.get_token(created.uuid).await), 401);
        assert_eq!(
            status_of(client.patch_token(created.uuid, &deactivate()).await),
            401
        );
        assert_eq!(status_of(client.delete_token(created.uuid).await), 401);
        assert_eq!(status_of(client.desktop_generate(None).await), 401);
        assert_eq!(status_of(client.events(None).await), 401);
        assert_eq!(status_of(client.logout().await), 401);
    }
    assert!(ann.get_token(created.uuid).await.expect("get").is_active);
}

#[tokio::test]
async fn list_pages_newest_first_with_absolute_links() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let mut created = Vec::new();
    for n in 0..12 {
        created.push(
            ann.create_token(&manual(&format!("token {n}")))
                .await
                .expect("create"),
        );
    }
    let newest_first: Vec<Uuid> = created.iter().rev().map(|t| t.uuid).collect();

    let first = ann.list_tokens(1, 5).await.expect("page 1");
    assert_eq!(first.count, 12);
    assert_eq!(first.active_count, 12);
    assert_eq!(first.previous, None);
    let next = first.next.clone().expect("page 1 links to page 2");
    assert!(next.starts_with(&server.url), "absolute URL: {next}");
    assert!(next.contains("page=2"), "{next}");

    let second = ann.list_tokens(2, 5).await.expect("page 2");
    assert!(second
        .previous
        .as_deref()
        .is_some_and(|p| p.starts_with(&server.url)));
    let third = ann.list_tokens(3, 5).await.expect("page 3");
    assert_eq!(third.results.len(), 2);
    assert_eq!(third.next, None);
    assert!(third
        .previous
        .as_deref()
        .is_some_and(|p| p.contains("page=2")));

    let listed: Vec<_> = [first.results, second.results, third.results].concat();
    assert_eq!(
        listed.iter().map(|t| t.uuid).collect::<Vec<_>>(),
        newest_first
    );
    assert!(listed
        .windows(2)
        .all(|w| w[0].created_at >= w[1].created_at));
    for token in &listed {
        assert_eq!(token.token, "");
        let original = created
            .iter()
            .find(|c| c.uuid == token.uuid)
            .expect("created");
        assert_eq!(token.token_hint, hint_of(&original.token));
    }
}

#[tokio::test]
async fn list_rejects_bad_page_parameters() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let empty = ann.list_tokens(1, 10).await.expect("page 1 of nothing");
    assert_eq!(
        (empty.count, empty.active_count, empty.results.len()),
        (0, 0, 0)
    );
    assert_eq!((empty.next, empty.previous), (None, None));

    for n in 0..3 {
        ann.create_token(&manual(&format!("t{n}")))
            .await
            .expect("create");
    }
    assert_eq!(status_of(ann.list_tokens(0, 10).await), 400);
    assert_eq!(status_of(ann.list_tokens(1, 0).await), 400);
    assert_eq!(status_of(ann.list_tokens(1, 101).await), 400);
    assert_eq!(
        ann.list_tokens(1, 100)
            .await
            .expect("page_size 100")
            .results
            .len(),
        3
    );
    assert_eq!(
        ann.list_tokens(3, 1)
            .await
            .expect("last page")
            .results
            .len(),
        1
    );
    assert_eq!(status_of(ann.list_tokens(4, 1).await), 404);
    assert_eq!(status_of(ann.list_tokens(2, 10).await), 404);

    let bearer = bearer_of(&server).await;
    let (status, body) = server
        .raw(
            Method::GET,
            "/v2/access-tokens?page=abc",
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn list_counts_only_active_tokens_as_active() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let mut uuids = Vec::new();
    for n in 0..3 {
        uuids.push(
            ann.create_token(&manual(&format!("t{n}")))
                .await
                .expect("create")
                .uuid,
        );
    }
    ann.patch_token(uuids[1], &deactivate())
        .await
        .expect("deactivate");
    let page = ann.list_tokens(1, 10).await.expect("list");
    assert_eq!((page.count, page.active_count), (3, 2));
    let inactive = page
        .results
        .iter()
        .find(|t| t.uuid == uuids[1])
        .expect("listed");
    assert_eq!(inactive.state, TokenState::Inactive);
    assert!(!inactive.is_active);
}

#[tokio::test]
async fn list_all_tokens_follows_next_links() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let mut created = Vec::new();
    for n in 0..105 {
        created.push(
            ann.create_token(&manual(&format!("t{n}")))
                .await
                .expect("create")
                .uuid,
        );
    }
    let all = ann.list_all_tokens().await.expect("list all");
    let listed: Vec<Uuid> = all.iter().map(|t| t.uuid).collect();
    created.reverse();
    assert_eq!(listed, created);
}

#[tokio::test]
async fn unknown_or_malformed_token_ids_are_not_found() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let unknown = Uuid::new_v4();
    assert_eq!(status_of(ann.get_token(unknown).await), 404);
    assert_eq!(
        status_of(ann.patch_token(unknown, &deactivate()).await),
        404
    );
    assert_eq!(status_of(ann.delete_token(unknown).await), 404);

    let bearer = bearer_of(&server).await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then_some(r#"{"is_active":false}"#);
        let (status, answer) = server
            .raw(
                method.clone(),
                "/v2/access-tokens/not-a-uuid",
                Some(&bearer),
                body,
            )
            .await;
        assert_eq!(status, 404, "{method}: {answer}");
    }
}

#[tokio::test]
async fn patch_relabels_and_toggles_activity() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann
        .create_token(&manual("old label"))
        .await
        .expect("create");

    let relabel = PatchAccessTokenRequest {
        token_label: Some("new label".into()),
        ..Default::default()
    };
    let relabelled = ann
        .patch_token(created.uuid, &relabel)
        .await
        .expect("relabel");
    assert_eq!(relabelled.token_label, "new label");
    assert_eq!(relabelled.token, "");
    assert!(relabelled.is_active);

    let off = ann
        .patch_token(created.uuid, &deactivate())
        .await
        .expect("deactivate");
    assert!(!off.is_active);
    assert_eq!(off.state, TokenState::Inactive);
    assert_eq!(off.token_label, "new label");

    let on = ann
        .patch_token(created.uuid, &activate())
        .await
        .expect("activate");
    assert!(on.is_active);
    assert_eq!(on.state, TokenState::Active);
    assert_eq!(ann.get_token(created.uuid).await.expect("get"), on);
}

#[tokio::test]
async fn patch_rejects_an_invalid_label() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("label")).await.expect("create");
    for label in [String::new(), "x".repeat(101)] {
        let patch = PatchAccessTokenRequest {
            token_label: Some(label),
            ..Default::default()
        };
        assert_invalid(ann.patch_token(created.uuid, &patch).await, "token_label");
    }
    assert_eq!(
        ann.get_token(created.uuid).await.expect("get").token_label,
        "label"
    );
}

#[tokio::test]
async fn deactivated_token_is_refused_by_auth_token() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("ci")).await.expect("create");
    let client = server.client();
    ann.patch_token(created.uuid, &deactivate())
        .await
        .expect("deactivate");
    assert_eq!(
        status_of(client.auth_token("ann", &created.token).await),
        401
    );

    ann.patch_token(created.uuid, &activate())
        .await
        .expect("reactivate");
    client
        .auth_token("ann", &created.token)
        .await
        .expect("a reactivated token works again");
}

#[tokio::test]
async fn deleted_token_is_gone_and_refused() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let doomed = ann.create_token(&manual("doomed")).await.expect("create");
    let kept = ann.create_token(&manual("kept")).await.expect("create");
    ann.delete_token(doomed.uuid).await.expect("delete");

    assert_eq!(status_of(ann.get_token(doomed.uuid).await), 404);
    assert_eq!(status_of(ann.delete_token(doomed.uuid).await), 404);
    assert_eq!(
        status_of(ann.patch_token(doomed.uuid, &activate()).await),
        404
    );
    assert_eq!(
        status_of(server.client().auth_token("ann", &doomed.token).await),
        401
    );
    let page = ann.list_tokens(1, 10).await.expect("list");
    assert_eq!(page.count, 1);
    assert_eq!(page.results[0].uuid, kept.uuid);
}

#[tokio::test]
async fn other_accounts_tokens_and_events_are_invisible() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let anns = ann.create_token(&manual("ann's")).await.expect("create");
    ann.desktop_generate(None).await.expect("desktop-generate");

    assert_eq!(status_of(bob.get_token(anns.uuid).await), 404);
    assert_eq!(
        status_of(bob.patch_token(anns.uuid, &deactivate()).await),
        404
    );
    let relabel = PatchAccessTokenRequest {
        token_label: Some("bob was here".into()),
        ..Default::default()
    };
    assert_eq!(status_of(bob.patch_token(anns.uuid, &relabel).await), 404);
    assert_eq!(status_of(bob.delete_token(anns.uuid).await), 404);
    let bobs_page = bob.list_tokens(1, 10).await.expect("list");
    assert_eq!((bobs_page.count, bobs_page.results.len()), (0, 0));
    assert!(all_events(&bob).await.is_empty());

    let intact = ann.get_token(anns.uuid).await.expect("get");
    assert!(intact.is_active);
    assert_eq!(intact.token_label, "ann's");
    assert_eq!(ann.list_tokens(1, 10).await.expect("list").count, 2);
}

#[tokio::test]
async fn desktop_generate_creates_an_auto_admin_token() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let generated = ann
        .desktop_generate(None)
        .await
        .expect("desktop-generate")
        .data;
    assert!(hubkey_api::PlainToken::parse(&generated.token).is_ok());
    assert!(!generated.token_label.is_empty());
    let token = ann.get_token(generated.uuid).await.expect("get");
    assert_eq!(token.generated_by, Origin::Auto);
    assert_eq!(token.scopes, vec![Scope::Admin]);
    assert_eq!(token.token_label, generated.token_label);
    assert_eq!(token.token, "");
    assert_eq!(token.token_hint, hint_of(&generated.token));
    server
        .client()
        .auth_token("ann", &generated.token)
        .await
        .expect("the auto token works");

    let named = DesktopGenerateRequest {
        client_name: Some("docker-desktop".into()),
        device_name: Some("ann's laptop".into()),
    };
    let named_token = ann
        .desktop_generate(Some(&named))
        .await
        .expect("desktop-generate")
        .data;
    let named_token = ann.get_token(named_token.uuid).await.expect("get");
    assert_eq!(named_token.client_id, "docker-desktop");
    assert_eq!(named_token.generated_by, Origin::Auto);
    assert_eq!(
        token.client_id, "hubkey-client",
        "without a body, the client is the User-Agent's product"
    );
}

#[tokio::test]
async fn expired_token_is_refused_and_listed_as_expired() {
    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let expires_at = server.clock.now() + chrono::Duration::seconds(2);
    let request = CreateAccessTokenRequest {
        expires_at: Some(expires_at),
        ..manual("short-lived")
    };
    let created = ann.create_token(&request).await.expect("create");
    assert_eq!(created.state, TokenState::Active);
    let client = server.client();
    client
        .auth_token("ann", &created.token)
        .await
        .expect("works before it expires");

    server.advance(chrono::Duration::seconds(3));
    assert_eq!(
        status_of(client.auth_token("ann", &created.token).await),
        401
    );
    let page = ann.list_tokens(1, 10).await.expect("list");
    assert_eq!((page.count, page.active_count), (1, 0));
    assert_eq!(page.results[0].state, TokenState::Expired);
    assert_eq!(
        ann.get_token(created.uuid).await.expect("get").state,
        TokenState::Expired
    );
    ann.list_tokens(1, 10).await.expect("list again");

    let expired: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::Expired)
        .collect();
    assert_eq!(
        expired.len(),
        1,
        "one expired event, however often it is seen: {expired:?}"
    );
    assert_eq!(expired[0].token_uuid, created.uuid);
    assert_eq!(all_events(&ann).await.len(), 2, "created, expired");
}
