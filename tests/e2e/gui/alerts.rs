//! Alerts through the real app, a real hubkeyd and a real notification server on the app's
//! session bus: a token created on another device, used from a new address, reported leaked;
//! a click on an alert opens its token's detail (Back: the Security list on its row); a kind
//! switched off in Settings is silent while the others still speak.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hubkey_api::{CreateAccessTokenRequest, Scope};
use hubkey_client::HubClient;
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::Screen;
use hubkey_e2e::tray::NotificationServer;

use super::tray::{wait_for_first_poll, wait_for_security_screen};
use super::{hub_with_registry, PASSWORD};

const CREATED: &str = "A token was created on another device";
const NEW_ADDRESS: &str = "A token was used from a new address";
const REPORTED: &str = "A token was reported and deactivated";
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
    HubClient::builder(url)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .user_agent("ci-runner/1.0")
        .build()
        .unwrap()
        .auth_token("ann", secret)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_notified_open_their_token_and_a_switch_silences_its_kind() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let mut server = NotificationServer::start(&keyring);
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    wait_for_first_poll(&keyring).await;
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
