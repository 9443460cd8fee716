//! Alerts through the real app, a real hubkeyd and a real notification server on the app's
//! session bus: each kind (a token created on another device, used from a new address, found
//! leaked by a secret scanner, reported, a rotated-away token used again, expiring in 7 days
//! and then in 1 day on the app's turned clock) is notified with its "Open token" action,
//! whose click opens that token's detail (screenshots of what the person then sees); a kind
//! switched off in Settings is silent while the others still speak, and a token's own
//! new-address switch in its detail quiets that token only.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hubkey_api::{CreateAccessTokenRequest, Scope};
use hubkey_client::HubClient;
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::Screen;
use hubkey_e2e::tray::{NotificationServer, Received};
use hubkey_e2e::Hubkeyd;

use super::tray::{wait_for_first_poll, wait_for_security_screen};
use super::{hub_with_registry, PASSWORD};

const CREATED: &str = "A token was created on another device";
const NEW_ADDRESS: &str = "A token was used from a new address";
const REPORTED: &str = "A token was reported and deactivated";
const LEAKED: &str = "A token was found leaked and deactivated";
const REUSE: &str = "A rotated token was used again";
const EXPIRES_WEEK: &str = "A token expires within a week";
const EXPIRES_DAY: &str = "A token expires within a day";
const OPEN_TOKEN: [&str; 2] = ["default", "Open token"];
const LIMIT: Duration = Duration::from_secs(30);

/// A manual token made through the API, as a script on another computer would.
async fn create_elsewhere(ann: &HubClient, label: &str) -> hubkey_api::AccessToken {
    ann.create_token(&CreateAccessTokenRequest {
        token_label: label.into(),
        scopes: vec![Scope::Read],
        expires_at: None,
    })
    .await
    .unwrap()
}

/// Signs in to the API with `secret` from the loopback address `last` (127.0.0.`last`).
async fn use_from(url: &str, last: u8, secret: &str) {
    try_from(url, last, secret).await.unwrap();
}

/// [`use_from`], answering the server's refusal instead of failing.
async fn try_from(
    url: &str,
    last: u8,
    secret: &str,
) -> Result<hubkey_api::AuthTokenResponse, hubkey_client::ClientError> {
    HubClient::builder(url)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .user_agent("ci-runner/1.0")
        .build()
        .unwrap()
        .auth_token("ann", secret)
        .await
}

/// Waits for a notification titled `summary` whose body contains `text`; fails with what was
/// received.
async fn alert(server: &NotificationServer, summary: &str, text: &str) -> Received {
    server
        .wait_for(LIMIT, |n| n.summary == summary && n.body.contains(text))
        .await
        .unwrap_or_else(|| panic!("no {summary:?} about {text:?}: {:?}", server.received()))
}

/// Clicks `notification` as a person does, and checks that the app opened the detail of
/// `token`; saves what the person sees as `screenshot`, and answers the detail.
async fn click_opens<'a>(
    app: &'a DesktopApp,
    server: &mut NotificationServer,
    notification: &Received,
    token: uuid::Uuid,
    screenshot: &str,
) -> hubkey_e2e::pages::TokenDetailPage<'a> {
    assert_eq!(notification.actions, OPEN_TOKEN, "{notification:?}");
    // The app listens for the click once the server has answered its Notify; the test sees
    // the notification when the server logs it, which can be before that (seen under load: a
    // click lost). So the click is repeated while nothing opened, as a person clicks again; a
    // click after the first that got through finds no listener and does nothing.
    let detail = hubkey_e2e::pages::TokenDetailPage::of(app);
    let start = std::time::Instant::now();
    let mut clicked: Option<std::time::Instant> = None;
    while detail_uuid(app).await != Some(token.to_string()) {
        assert!(
            start.elapsed() < LIMIT,
            "{screenshot}: the click did not open {token}"
        );
        if clicked.is_none_or(|at| at.elapsed() > Duration::from_secs(3)) {
            server.click(notification.id, "default");
            clicked = Some(std::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    detail.wait().await;
    app.screenshot(screenshot).await;
    detail
}

/// The token whose detail shows, if one does.
async fn detail_uuid(app: &DesktopApp) -> Option<String> {
    app.webdriver
        .execute(
            "const d = document.querySelector('[data-testid=token-detail]'); return d ? d.dataset.uuid : null;",
            vec![],
        )
        .await
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
}

/// A manual token made through the API by "another device": a hubkey app on another
/// computer, as its User-Agent says.
async fn create_on_other_device(hub: &Hubkeyd, label: &str) -> hubkey_api::AccessToken {
    let other = HubClient::builder(&hub.url)
        .user_agent("hubkey/0.1 (desktop-pc)")
        .build()
        .unwrap();
    let hubkey_client::LoginOutcome::Session(session) = other.login("ann", PASSWORD).await.unwrap()
    else {
        panic!("ann has no second factor");
    };
    other
        .with_token(session.token)
        .create_token(&CreateAccessTokenRequest {
            token_label: label.into(),
            scopes: vec![Scope::Read],
            expires_at: None,
        })
        .await
        .unwrap()
}

/// A private keyring with a notification server on its bus, and a watcher that polls every
/// second in the app started next.
fn keyring_with_notifications() -> (KeyringSession, NotificationServer) {
    let keyring = KeyringSession::start();
    keyring.install_env();
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let server = NotificationServer::start(&keyring);
    (keyring, server)
}

/// The app on `hub`, signed in as ann, once its watcher has polled (from the feed's end).
async fn app_watching(keyring: &KeyringSession, hub: &Hubkeyd) -> DesktopApp {
    let app = DesktopApp::start(keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    wait_for_first_poll(keyring).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_notified_open_their_token_and_a_switch_silences_its_kind() {
    let (keyring, mut server) = keyring_with_notifications();
    let hub = hub_with_registry().await;
    let app = app_watching(&keyring, &hub).await;
    let ann = hub.sign_in("ann", PASSWORD).await;

    // Created through the API by another client: "created on another device".
    let ci = create_elsewhere(&ann, "ci from elsewhere").await;
    let created = server
        .wait_for(LIMIT, |n| {
            n.summary == CREATED && n.body.contains("ci from elsewhere")
        })
        .await
        .unwrap_or_else(|| panic!("no created alert: {:?}", server.received()));
    assert_eq!(created.actions, ["default", "Open token"]);

    // Its first use is no alert; a use from another address is, naming it.
    use_from(&hub.url, 1, &ci.token).await;
    use_from(&hub.url, 7, &ci.token).await;
    let used = server
        .wait_for(LIMIT, |n| n.summary == NEW_ADDRESS)
        .await
        .unwrap_or_else(|| panic!("no new-address alert: {:?}", server.received()));
    assert!(used.body.contains("127.0.0.7"), "{used:?}");
    assert!(used.body.contains("ci-runner/1.0"), "{used:?}");
    assert!(used.body.contains("ci from elsewhere"), "{used:?}");
    let new_address_alerts = |server: &NotificationServer| {
        server
            .received()
            .iter()
            .filter(|n| n.summary == NEW_ADDRESS)
            .count()
    };
    assert_eq!(new_address_alerts(&server), 1, "{:?}", server.received());

    // Its action opens that token's detail, over the Security list with its row selected
    // (where Back lands).
    assert!(!app.nav().is_current(Screen::Security).await);
    server.click(used.id, "default");
    let detail = hubkey_e2e::pages::TokenDetailPage::of(&app);
    detail.wait().await;
    assert_eq!(detail.uuid().await, Some(ci.uuid.to_string()));
    app.screenshot("alert-opens-token").await;
    detail.back().await;
    wait_for_security_screen(&app, "the detail's Back").await;
    assert_eq!(app.security().wait_for_selected().await, ci.uuid);

    // A leak report through the public revocation endpoint.
    hub.client()
        .revoke_credentials(std::slice::from_ref(&ci.token))
        .await
        .unwrap();
    let reported = server
        .wait_for(LIMIT, |n| n.summary == REPORTED)
        .await
        .unwrap_or_else(|| panic!("no reported alert: {:?}", server.received()));
    assert!(reported.body.contains("ci from elsewhere"), "{reported:?}");

    // "Created on another device" turned off in Settings: silent, while a later report (its
    // event after the creation's in the feed) is still told.
    let settings = app.nav().settings().await;
    for kind in ["new_address", "other_device", "leaked", "reuse", "expiring"] {
        assert!(settings.alert_on(kind).await, "{kind} is on by default");
    }
    settings.set_alert("other_device", false).await;
    app.screenshot("settings-alert-switches").await;
    let quiet = create_elsewhere(&ann, "made while silenced").await;
    hub.client()
        .revoke_credentials(std::slice::from_ref(&quiet.token))
        .await
        .unwrap();
    server
        .wait_for(LIMIT, |n| {
            n.summary == REPORTED && n.body.contains("made while silenced")
        })
        .await
        .unwrap_or_else(|| panic!("no second reported alert: {:?}", server.received()));
    assert!(
        !server
            .received()
            .iter()
            .any(|n| n.summary == CREATED && n.body.contains("made while silenced")),
        "{:?}",
        server.received()
    );
    app.quit().await;
}

/// A fixed P-256 key standing for GitHub's secret-scanning key.
fn github_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).expect("a valid scalar")
}

const GITHUB_KEY_ID: &str = "github-test-key";

/// A hub whose secret-scanning partner endpoint trusts [`github_key`], with ann.
async fn hub_with_partner_keys() -> Hubkeyd {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let data = tempfile::tempdir().unwrap();
    let keys = data.path().join("github-keys.json");
    let public = github_key()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let set = serde_json::json!({ "public_keys": [
        { "key_identifier": GITHUB_KEY_ID, "key": public, "is_current": true }
    ]});
    std::fs::write(&keys, set.to_string()).unwrap();
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(super::REGISTRY.into()),
    };
    let hub = Hubkeyd::start_with_partner_keys(data, site, &keys).await;
    hub.add_user("ann", PASSWORD).await;
    hub
}

/// Reports `token` as GitHub's secret scanning does when it finds it at `url`: a signed
/// report to the partner endpoint.
async fn report_leak(hub: &Hubkeyd, token: &str, url: &str) {
    use p256::ecdsa::signature::Signer;
    let body = serde_json::to_vec(&serde_json::json!([{
        "token": token, "type": "hubkey_personal_access_token", "url": url, "source": "content"
    }]))
    .unwrap();
    let signature: p256::ecdsa::Signature = github_key().sign(&body);
    let signature = data_encoding::BASE64.encode(signature.to_der().as_bytes());
    let labels = hub
        .client()
        .report_secret_scanning(body, GITHUB_KEY_ID, &signature)
        .await
        .unwrap();
    assert_eq!(
        labels[0].label,
        hubkey_api::SecretScanningLabel::TruePositive
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_elsewhere_leaked_and_reused_tokens_alert_and_open_their_detail() {
    let (keyring, mut server) = keyring_with_notifications();
    let hub = hub_with_partner_keys().await;
    let app = app_watching(&keyring, &hub).await;
    let ann = hub.sign_in("ann", PASSWORD).await;

    // Created by the hubkey app on another computer: its User-Agent is not this app's.
    let elsewhere = create_on_other_device(&hub, "made on desktop-pc").await;
    let created = alert(&server, CREATED, "made on desktop-pc").await;
    assert!(created.body.contains("desktop-pc"), "{created:?}");
    click_opens(
        &app,
        &mut server,
        &created,
        elsewhere.uuid,
        "alert-created-elsewhere",
    )
    .await
    .back()
    .await;

    // Found by GitHub's secret scanning in a public repository: deactivated, with where.
    let pushed = create_elsewhere(&ann, "pushed to github").await;
    let url = "https://github.com/ann/app/blob/main/.env";
    report_leak(&hub, &pushed.token, url).await;
    let leaked = alert(&server, LEAKED, "pushed to github").await;
    assert!(leaked.body.contains(url), "{leaked:?}");
    let detail = click_opens(&app, &mut server, &leaked, pushed.uuid, "alert-leaked").await;
    detail.wait_field_contains("state", "Inactive").await;
    assert!(detail.event_kinds().await.contains(&"leaked".to_owned()));
    detail.back().await;

    // Rotated with no overlap, then the old value used again: refused, and told.
    let deploy = create_elsewhere(&ann, "deploy key").await;
    use_from(&hub.url, 1, &deploy.token).await;
    ann.rotate_token(deploy.uuid, 0).await.unwrap();
    assert!(
        try_from(&hub.url, 9, &deploy.token).await.is_err(),
        "refused"
    );
    let reused = alert(&server, REUSE, "deploy key").await;
    assert!(reused.body.contains("127.0.0.9"), "{reused:?}");
    assert!(reused.body.contains("ci-runner/1.0"), "{reused:?}");
    let detail = click_opens(&app, &mut server, &reused, deploy.uuid, "alert-reuse").await;
    assert!(detail
        .event_kinds()
        .await
        .contains(&"reuse_detected".to_owned()));
    detail.back().await;

    // A CI token used from many addresses, quieted in its detail: its new addresses are no
    // alert any more, while another token's still are.
    let ci = create_elsewhere(&ann, "ci used from many runners").await;
    let laptop = create_elsewhere(&ann, "laptop script").await;
    use_from(&hub.url, 1, &ci.token).await;
    use_from(&hub.url, 1, &laptop.token).await;
    let security = app.nav().security().await;
    security.row(ci.uuid).wait().await;
    let detail = security.row(ci.uuid).open_detail().await;
    assert!(detail.new_address_alerts().await, "on by default");
    detail.set_new_address_alerts(false).await;
    app.screenshot("detail-new-address-alerts-off").await;
    assert!(!ann.get_token(ci.uuid).await.unwrap().new_address_alerts);
    detail.back().await;
    use_from(&hub.url, 11, &ci.token).await;
    use_from(&hub.url, 11, &laptop.token).await;
    alert(&server, NEW_ADDRESS, "laptop script").await;
    // A later poll's alert: anything about the CI token would have come before it.
    create_on_other_device(&hub, "after the runners").await;
    alert(&server, CREATED, "after the runners").await;
    let about_ci: Vec<_> = server
        .received()
        .into_iter()
        .filter(|n| n.summary == NEW_ADDRESS && n.body.contains("ci used from many runners"))
        .collect();
    assert!(about_ci.is_empty(), "{about_ci:?}");
    app.quit().await;
}

/// Sets the app's turned clock (`HUBKEY_TEST_CLOCK_FILE`) to `at`; its watcher reads it before
/// its next poll.
fn set_app_clock(file: &std::path::Path, at: chrono::DateTime<chrono::Utc>) {
    let partial = file.with_extension("partial");
    std::fs::write(&partial, at.to_rfc3339()).unwrap();
    std::fs::rename(&partial, file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_is_told_a_week_ahead_then_a_day_ahead_and_the_switch_silences_it() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("now");
    let start = chrono::Utc::now();
    set_app_clock(&clock, start);
    std::env::set_var("HUBKEY_TEST_CLOCK_FILE", &clock);
    let (keyring, mut server) = keyring_with_notifications();
    let hub = hub_with_registry().await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    let yearly = ann
        .create_token(&CreateAccessTokenRequest {
            token_label: "release signing".into(),
            scopes: vec![Scope::Read],
            expires_at: Some(start + chrono::Duration::days(8)),
        })
        .await
        .unwrap();
    let app = app_watching(&keyring, &hub).await;

    // Eight days ahead: a poll (the one that tells of a token made elsewhere) says nothing of
    // it.
    create_elsewhere(&ann, "marker one").await;
    alert(&server, CREATED, "marker one").await;
    let expiring = |server: &NotificationServer| {
        server
            .received()
            .into_iter()
            .filter(|n| n.body.contains("release signing"))
            .map(|n| n.summary)
            .collect::<Vec<_>>()
    };
    assert!(expiring(&server).is_empty(), "{:?}", server.received());

    // A day and a half later, six and a half days are left: the week's warning.
    set_app_clock(&clock, start + chrono::Duration::hours(36));
    let week = alert(&server, EXPIRES_WEEK, "release signing").await;
    click_opens(
        &app,
        &mut server,
        &week,
        yearly.uuid,
        "alert-expires-in-a-week",
    )
    .await
    .back()
    .await;
    // Told once: later polls (up to the next marker's) repeat nothing.
    create_elsewhere(&ann, "marker two").await;
    alert(&server, CREATED, "marker two").await;
    assert_eq!(expiring(&server), [EXPIRES_WEEK], "{:?}", server.received());

    // Twelve hours left: the day's warning, once.
    set_app_clock(&clock, start + chrono::Duration::hours(8 * 24 - 12));
    let day = alert(&server, EXPIRES_DAY, "release signing").await;
    click_opens(
        &app,
        &mut server,
        &day,
        yearly.uuid,
        "alert-expires-in-a-day",
    )
    .await
    .back()
    .await;
    create_elsewhere(&ann, "marker three").await;
    alert(&server, CREATED, "marker three").await;
    assert_eq!(
        expiring(&server),
        [EXPIRES_WEEK, EXPIRES_DAY],
        "{:?}",
        server.received()
    );

    // Switched off in Settings: a token three days from its end is not told, while the
    // created-elsewhere alert of the same poll is.
    let settings = app.nav().settings().await;
    settings.set_alert("expiring", false).await;
    let now = start + chrono::Duration::hours(8 * 24 - 12);
    ann.create_token(&CreateAccessTokenRequest {
        token_label: "short lived".into(),
        scopes: vec![Scope::Read],
        expires_at: Some(now + chrono::Duration::days(3)),
    })
    .await
    .unwrap();
    create_elsewhere(&ann, "marker four").await;
    alert(&server, CREATED, "marker four").await;
    assert!(
        !server
            .received()
            .iter()
            .any(|n| n.body.contains("short lived") && n.summary.starts_with("A token expires")),
        "{:?}",
        server.received()
    );
    std::env::remove_var("HUBKEY_TEST_CLOCK_FILE");
    app.quit().await;
}
