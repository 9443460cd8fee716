//! The background watcher's core against a real hubkeyd: sign-ins on other devices prune
//! this app's auto token, and one poll tells about it exactly once.

use std::sync::Arc;

use chrono::Utc;
use hubkey_api::{CreateAccessTokenRequest, DesktopGenerateRequest, Scope};
use hubkey_desktop::{
    poll_once, Alert, AlertContext, AlertSettings, Desktop, NotificationEvent, SignInStep,
    WatchCursor,
};
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::Hubkeyd;
use hubkey_keyring::OsKeyring;

use crate::desktop_core::server;

const PASSWORD: &str = "correct horse battery";
const DEVICE: &str = "ann's laptop";

/// Five auto tokens from other devices; the server keeps five, so the oldest goes.
async fn sign_in_on_other_devices(hub: &Hubkeyd, count: usize) {
    for n in 0..count {
        let other = hub.sign_in("ann", PASSWORD).await;
        other
            .desktop_generate(Some(&DesktopGenerateRequest {
                client_name: Some("docker-desktop".into()),
                device_name: Some(format!("device {n}")),
            }))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn pruning_by_other_devices_is_notified_once() {
    let hub = Hubkeyd::start_with(
        tempfile::tempdir().unwrap(),
        "127.0.0.1:0",
        hubkeyd::Site {
            public_url: None,
            registry_host: Some("127.0.0.1:5000".into()),
        },
    )
    .await;
    hub.add_user("ann", PASSWORD).await;
    let keyring = KeyringSession::start();
    keyring.install_env();
    let home = tempfile::tempdir().unwrap();
    let desktop = Desktop::new(
        Arc::new(OsKeyring::new()),
        home.path().join(".docker/config.json"),
        DEVICE,
    );
    let step = desktop
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::SignedIn(_)), "{step:?}");
    let client = desktop.session_client(&server(&hub.url)).unwrap();
    let context = AlertContext {
        settings: AlertSettings::default(),
        this_device: desktop.user_agent(),
    };

    // The first poll starts at the end of the feed: the sign-in's own events are history.
    let first = poll_once(&client, &WatchCursor::default(), Utc::now(), &context)
        .await
        .unwrap();
    assert!(first.notifications.is_empty(), "{:?}", first.notifications);
    assert!(first.cursor.feed.is_some());

    sign_in_on_other_devices(&hub, 5).await;
    let second = poll_once(&client, &first.cursor, Utc::now(), &context)
        .await
        .unwrap();
    let [NotificationEvent::AutoTokensPruned { tokens }, created @ ..] =
        second.notifications.as_slice()
    else {
        panic!(
            "one pruning notification expected: {:?}",
            second.notifications
        );
    };
    // The other devices' five auto tokens, each told as created on another device.
    assert_eq!(created.len(), 5, "{created:?}");
    assert!(created.iter().all(|told| matches!(
        told,
        NotificationEvent::Alert {
            alert: Alert::CreatedElsewhere { .. }
        }
    )));
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(tokens[0].label.contains(DEVICE), "{tokens:?}");
    assert_eq!(tokens[0].client, "hubkey");
    assert!(second.notifications[0].body().contains(DEVICE));

    // The persisted cursor (as the shell stores it) resumes after what was told.
    let stored: WatchCursor =
        serde_json::from_value(serde_json::to_value(&second.cursor).unwrap()).unwrap();
    let third = poll_once(&client, &stored, Utc::now(), &context)
        .await
        .unwrap();
    assert!(third.notifications.is_empty(), "{:?}", third.notifications);
}

#[tokio::test]
async fn a_token_expiring_within_a_week_is_warned_about_once() {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    let client = hub.sign_in("ann", PASSWORD).await;
    // The tokens below are made by this client: this device's own.
    let context = AlertContext {
        settings: AlertSettings::default(),
        this_device: hubkey_client::DEFAULT_USER_AGENT.to_owned(),
    };
    let first = poll_once(&client, &WatchCursor::default(), Utc::now(), &context)
        .await
        .unwrap();
    assert!(first.notifications.is_empty());

    let expires_at = Utc::now() + chrono::TimeDelta::days(3);
    client
        .create_token(&CreateAccessTokenRequest {
            token_label: "ci pipeline".into(),
            scopes: vec![Scope::Read],
            expires_at: Some(expires_at),
        })
        .await
        .unwrap();
    let later = Utc::now() + chrono::TimeDelta::days(30);
    client
        .create_token(&CreateAccessTokenRequest {
            token_label: "far away".into(),
            scopes: vec![Scope::Read],
            expires_at: Some(later),
        })
        .await
        .unwrap();

    let second = poll_once(&client, &first.cursor, Utc::now(), &context)
        .await
        .unwrap();
    let [NotificationEvent::Alert {
        alert: Alert::Expiring { label, .. },
    }] = second.notifications.as_slice()
    else {
        panic!("one expiry warning expected: {:?}", second.notifications);
    };
    assert_eq!(label, "ci pipeline");
    let third = poll_once(&client, &second.cursor, Utc::now(), &context)
        .await
        .unwrap();
    assert!(third.notifications.is_empty(), "{:?}", third.notifications);
}
