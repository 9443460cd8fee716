//! hubkeyd as the token server of a real CNCF distribution registry, used by the real
//! skopeo, podman and docker clients.

use std::time::Duration;

use chrono::Utc;
use hubkey_api::{AccessToken, CreateAccessTokenRequest, PatchAccessTokenRequest, Scope};
use hubkey_e2e::server::manual_token;
use hubkey_e2e::{Docker, Hubkeyd, OciImage, Podman, Registry, Skopeo};

const PASSWORD: &str = "correct horse battery";

fn creds(user: &str, token: &AccessToken) -> String {
    format!("{user}:{}", token.token)
}

/// A server with users ann and bob, a registry trusting it, and ann signed in.
async fn setup() -> (Hubkeyd, Registry, hubkey_client::HubClient) {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    hub.add_user("bob", PASSWORD).await;
    let registry = Registry::start(&hub).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    (hub, registry, ann)
}

/// Pushes a tiny image to `repository:1` with a fresh write token of ann.
async fn push_as_ann(ann: &hubkey_client::HubClient, registry: &Registry, repository: &str) {
    let write = manual_token(ann, "push", Scope::Write).await;
    let image = OciImage::write(repository);
    Skopeo::copy(
        &image.reference(),
        &registry.reference(repository, "1"),
        &creds("ann", &write),
    )
    .await
    .expect_success("skopeo copy with a write token");
}

/// The actions granted on `scope` by a `/token` answer for `user:secret`.
async fn granted(hub: &Hubkeyd, user: &str, secret: &str, scope: &str) -> Vec<String> {
    let response = reqwest::Client::new()
        .get(format!("{}/token", hub.url))
        .query(&[("service", "hubkey-registry"), ("scope", scope)])
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let claims = body["token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: serde_json::Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(claims.as_bytes())
            .unwrap(),
    )
    .unwrap();
    claims["access"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_token_pushes_read_token_inspects_and_podman_pulls() {
    let (_hub, registry, ann) = setup().await;
    push_as_ann(&ann, &registry, "ann/hello").await;

    let read = manual_token(&ann, "pull", Scope::Read).await;
    let inspected = Skopeo::inspect(
        &registry.reference("ann/hello", "1"),
        Some(&creds("ann", &read)),
    )
    .await;
    inspected.expect_success("skopeo inspect with a read token");
    assert!(
        inspected.stdout.contains("ann/hello"),
        "{}",
        inspected.stdout
    );

    Podman::new()
        .pull(
            &format!("{}/ann/hello:1", registry.host),
            &creds("ann", &read),
        )
        .await
        .expect_success("podman pull with a read token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_login_accepts_a_token_and_refuses_a_wrong_one() {
    let (_hub, registry, ann) = setup().await;
    let read = manual_token(&ann, "docker", Scope::Read).await;
    let docker = Docker::new();

    let ok = docker.login(&registry.host, "ann", &read.token).await;
    ok.expect_success("docker login with a token");
    assert!(ok.stdout.contains("Login Succeeded"), "{}", ok.text());

    let wrong = hubkey_api::PlainToken::generate();
    let refused = docker.login(&registry.host, "ann", wrong.expose()).await;
    refused.expect_failure("docker login with an unknown token");
    assert!(
        refused.text().contains("incorrect username or password"),
        "{}",
        refused.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_token_cannot_push() {
    let (hub, registry, ann) = setup().await;
    let read = manual_token(&ann, "read only", Scope::Read).await;
    assert_eq!(
        granted(&hub, "ann", &read.token, "repository:ann/app:pull,push").await,
        ["pull"]
    );

    let image = OciImage::write("read only");
    let push = Skopeo::copy(
        &image.reference(),
        &registry.reference("ann/app", "1"),
        &creds("ann", &read),
    )
    .await;
    push.expect_failure("pushing with a read token");
    let text = push.text().to_lowercase();
    assert!(
        text.contains("insufficient_scope")
            || text.contains("denied")
            || text.contains("unauthorized"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cannot_push_to_another_users_namespace() {
    let (hub, registry, _ann) = setup().await;
    let bob = hub.sign_in("bob", PASSWORD).await;
    let bobs = manual_token(&bob, "bob admin", Scope::Admin).await;
    assert!(
        granted(&hub, "bob", &bobs.token, "repository:ann/app:pull,push")
            .await
            .is_empty()
    );

    let image = OciImage::write("intruder");
    Skopeo::copy(
        &image.reference(),
        &registry.reference("ann/app", "1"),
        &creds("bob", &bobs),
    )
    .await
    .expect_failure("bob pushing into ann's namespace");
    Skopeo::copy(
        &image.reference(),
        &registry.reference("bob/app", "1"),
        &creds("bob", &bobs),
    )
    .await
    .expect_success("bob pushing into his own namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_and_deleted_tokens_fail_at_once_and_reactivation_restores() {
    let (_hub, registry, ann) = setup().await;
    push_as_ann(&ann, &registry, "ann/svc").await;
    let image = registry.reference("ann/svc", "1");
    let read = manual_token(&ann, "lifecycle", Scope::Read).await;
    let creds = creds("ann", &read);
    Skopeo::inspect(&image, Some(&creds))
        .await
        .expect_success("inspect while active");

    let off = PatchAccessTokenRequest {
        is_active: Some(false),
        ..Default::default()
    };
    ann.patch_token(read.uuid, &off).await.unwrap();
    Skopeo::inspect(&image, Some(&creds))
        .await
        .expect_failure("inspect right after deactivation");

    let on = PatchAccessTokenRequest {
        is_active: Some(true),
        ..Default::default()
    };
    ann.patch_token(read.uuid, &on).await.unwrap();
    Skopeo::inspect(&image, Some(&creds))
        .await
        .expect_success("inspect after reactivation");

    ann.delete_token(read.uuid).await.unwrap();
    Skopeo::inspect(&image, Some(&creds))
        .await
        .expect_failure("inspect right after deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_fails_on_the_next_attempt() {
    let (_hub, registry, ann) = setup().await;
    push_as_ann(&ann, &registry, "ann/exp").await;
    let image = registry.reference("ann/exp", "1");
    let expires_at = Utc::now() + chrono::Duration::seconds(4);
    let short = ann
        .create_token(&CreateAccessTokenRequest {
            token_label: "short-lived".into(),
            scopes: vec![Scope::Read],
            expires_at: Some(expires_at),
        })
        .await
        .unwrap();
    Skopeo::inspect(&image, Some(&creds("ann", &short)))
        .await
        .expect_success("inspect before expiry");
    let wait = (expires_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    Skopeo::inspect(&image, Some(&creds("ann", &short)))
        .await
        .expect_failure("inspect after expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_use_moves_last_used_and_daily_counts_and_survives_restart() {
    let (hub, registry, ann) = setup().await;
    push_as_ann(&ann, &registry, "ann/used").await;
    let read = manual_token(&ann, "counted", Scope::Read).await;
    assert!(read.last_used.is_none());
    let before = Utc::now();
    for _ in 0..2 {
        Skopeo::inspect(
            &registry.reference("ann/used", "1"),
            Some(&creds("ann", &read)),
        )
        .await
        .expect_success("inspect");
    }
    let seen = ann.get_token(read.uuid).await.unwrap();
    assert!(
        seen.last_used.unwrap() >= before,
        "last_used must move at once"
    );
    let today = Utc::now().date_naive();
    let uses_today = |token: &AccessToken| {
        token
            .usage
            .iter()
            .find(|u| u.day == today)
            .map_or(0, |u| u.uses)
    };
    let counted = uses_today(&seen);
    assert!(counted >= 2, "usage: {:?}", seen.usage);

    // A clean stop writes what was pending; a new server on the same files sees it.
    drop(registry);
    let data = hub.stop().await;
    let hub = Hubkeyd::start_in(data).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    let after = ann.get_token(read.uuid).await.unwrap();
    assert_eq!(after.last_used, seen.last_used);
    assert_eq!(uses_today(&after), counted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_pulls_reach_public_repositories_only() {
    let (hub, registry, ann) = setup().await;
    push_as_ann(&ann, &registry, "ann/open").await;
    push_as_ann(&ann, &registry, "ann/closed").await;
    ann.set_repository_private("ann", "open", false)
        .await
        .unwrap();

    Skopeo::inspect(&registry.reference("ann/open", "1"), None)
        .await
        .expect_success("anonymous inspect of a public repository");
    Skopeo::inspect(&registry.reference("ann/closed", "1"), None)
        .await
        .expect_failure("anonymous inspect of a private repository");

    // Another user may pull the public one, never push to it.
    let bob = hub.sign_in("bob", PASSWORD).await;
    let bobs = manual_token(&bob, "bob", Scope::Admin).await;
    assert_eq!(
        granted(&hub, "bob", &bobs.token, "repository:ann/open:pull,push").await,
        ["pull"]
    );
    assert!(
        granted(&hub, "bob", &bobs.token, "repository:ann/closed:pull")
            .await
            .is_empty()
    );
    // Only the owner sets visibility.
    assert_eq!(
        bob.set_repository_private("ann", "closed", false)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_a_401_the_clients_can_show() {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/token?service=hubkey-registry&scope=repository:ann/x:pull",
        hub.url
    );
    for (user, secret) in [
        ("ann", "wrong password"),
        ("ann", hubkey_api::PlainToken::generate().expose()),
        ("nobody", "whatever it is"),
        ("ann", "hkpat_not-even-a-token"),
    ] {
        let response = http
            .get(&url)
            .basic_auth(user, Some(secret))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{user}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["details"], "incorrect username or password");
    }
    let garbage = http
        .get(&url)
        .header("authorization", "Basic %%%")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    let bad_scope = http
        .get(format!("{}/token?scope=nonsense", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status(), 400);
    assert!(bad_scope.json::<serde_json::Value>().await.unwrap()["details"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_works_at_the_registry_until_2fa_is_on() {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    assert_eq!(
        granted(&hub, "ann", PASSWORD, "repository:ann/x:pull,push").await,
        ["pull", "push"]
    );
    hub.hub
        .enable_totp("ann", chrono::Utc::now())
        .await
        .unwrap();
    let refused = reqwest::Client::new()
        .get(format!("{}/token?scope=repository:ann/x:pull", hub.url))
        .basic_auth("ann", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_form_issues_tokens_and_refreshes_with_a_pat() {
    let (hub, _registry, ann) = setup().await;
    let write = manual_token(&ann, "oauth", Scope::Write).await;
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "password"),
        ("service", "hubkey-registry"),
        ("client_id", "test"),
        ("access_type", "offline"),
        ("scope", "repository:ann/x:pull,push"),
        ("username", "ann"),
        ("password", write.token.as_str()),
    ];
    let first: serde_json::Value = http
        .post(format!("{}/token", hub.url))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(first["access_token"].is_string());
    assert_eq!(first["refresh_token"], write.token.as_str());
    let refresh = [
        ("grant_type", "refresh_token"),
        ("service", "hubkey-registry"),
        ("refresh_token", write.token.as_str()),
    ];
    let again = http
        .post(format!("{}/token", hub.url))
        .form(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let unknown = [("grant_type", "client_credentials")];
    assert_eq!(
        http.post(format!("{}/token", hub.url))
            .form(&unknown)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_signing_key_keeps_the_registry_working() {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    let keys = hubkeyd::registry::keys::RegistryKeys::open(hub.data_dir()).unwrap();
    let old_kid = keys.signer().unwrap().kid;
    keys.stage().unwrap();
    // The registry trusts the current and the staged key.
    let registry = Registry::start(&hub).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    push_as_ann(&ann, &registry, "ann/rot").await;
    let read = manual_token(&ann, "rotation", Scope::Read).await;

    // Promote and restart hubkeyd on the same address: it now signs with the new key.
    let addr = hub.host().to_owned();
    let data = hub.stop().await;
    keys.promote().unwrap();
    let hub = Hubkeyd::start_at(data, &addr).await;
    let new_kid = hubkeyd::registry::keys::RegistryKeys::open(hub.data_dir())
        .unwrap()
        .signer()
        .unwrap()
        .kid;
    assert_ne!(new_kid, old_kid);
    Skopeo::inspect(
        &registry.reference("ann/rot", "1"),
        Some(&creds("ann", &read)),
    )
    .await
    .expect_success("inspect with a token signed by the promoted key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_document_names_the_registry_and_the_realm() {
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some("127.0.0.1:5000".into()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "127.0.0.1:0", site).await;
    let info = hub.client().info().await.unwrap();
    assert_eq!(info.registry_host.as_deref(), Some("127.0.0.1:5000"));
    assert_eq!(info.token_realm, format!("{}/token", hub.url));
    assert_eq!(info.service, "hubkey-registry");
}
