//! The tray and the pruning notification: with the app signed in through its window, five
//! sign-ins on other devices prune its auto token; the app says so on the session bus, its
//! tray icon switches to attention, and a restart repeats nothing.

use std::time::Duration;

use hubkey_api::DesktopGenerateRequest;
use hubkey_e2e::desktop::{app_binary, DesktopApp};
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::Screen;
use hubkey_e2e::tray::{
    app_pids, click_tray_item, png_pixels, tray_item, wait_for_exit, NotificationServer,
    NotifyMonitor, TrayItem,
};

use super::{hub_with_registry, PASSWORD};

/// The alert the five other devices' sign-ins also raise (gui::alerts tests it).
const CREATED_ELSEWHERE: &str = "A token was created on another device";

const ICONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../icons");

/// The tray item of the one app process running in `home`, once it shows `ready`.
async fn tray_of(
    keyring: &KeyringSession,
    home: &std::path::Path,
    ready: impl Fn(&TrayItem) -> bool,
) -> TrayItem {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        for pid in app_pids(&app_binary(), home) {
            if let Some(item) = tray_item(keyring, pid) {
                if ready(&item) {
                    return item;
                }
                last = Some(item);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the tray never got ready; last seen: {last:?}");
}

fn shows_icon(item: &TrayItem, name: &str) -> bool {
    let expected = png_pixels(&std::path::Path::new(ICONS).join(name)).unwrap();
    png_pixels(&item.icon_path).is_some_and(|shown| shown == expected)
}

/// Waits until the app's watcher polled once (it then saved its cursor). The settings files
/// live in the app's data dir, under XDG_DATA_HOME.
pub(super) async fn wait_for_first_poll(keyring: &KeyringSession) {
    let data_home = keyring
        .env()
        .into_iter()
        .find_map(|(name, value)| (name == "XDG_DATA_HOME").then_some(value))
        .unwrap();
    let cursors = std::path::Path::new(&data_home).join("dev.hubkey.desktop/watcher.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&cursors).is_ok_and(|text| text.contains("feed")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher never polled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Five sign-ins on other devices: the server prunes the app's own auto token.
async fn sign_in_on_five_other_devices(hub: &hubkey_e2e::Hubkeyd) {
    for n in 0..5 {
        hub.sign_in("ann", PASSWORD)
            .await
            .desktop_generate(Some(&DesktopGenerateRequest {
                client_name: Some("docker-desktop".into()),
                device_name: Some(format!("other device {n}")),
            }))
            .await
            .unwrap();
    }
}

/// Waits up to 10 s for the window to show the Security screen.
pub(super) async fn wait_for_security_screen(app: &DesktopApp, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if app.nav().is_current(Screen::Security).await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not open Security"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The app's own auto token label, as the server lists it.
async fn own_auto_label(hub: &hubkey_e2e::Hubkeyd) -> String {
    let tokens = hub
        .sign_in("ann", PASSWORD)
        .await
        .list_all_tokens()
        .await
        .unwrap();
    let [token] = tokens.as_slice() else {
        panic!("one token expected: {tokens:?}");
    };
    token.token_label.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_by_other_devices_is_notified_once_and_flags_the_tray() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    // The app (started by tauri-driver, which inherits this process's environment) polls
    // every second.
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let monitor = NotifyMonitor::start(&keyring);
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;

    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let label = own_auto_label(&hub).await;

    let item = tray_of(&keyring, app.home.path(), |item| {
        item.menu.iter().any(|l| l == "Signed in as ann")
    })
    .await;
    assert_eq!(
        item.menu,
        [
            "Open hubkey",
            "Security",
            "Signed in as ann",
            "Sign out",
            "Quit"
        ]
    );
    assert_eq!(item.disabled, ["Signed in as ann"]);
    assert!(shows_icon(&item, "tray.png"), "{item:?}");

    // The watcher's first poll marks the end of the feed; history is not told.
    wait_for_first_poll(&keyring).await;
    sign_in_on_five_other_devices(&hub).await;

    let notification = monitor
        .wait_for(Duration::from_secs(20), |n| n.body.contains(&label))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no notification named {label}: {:?}",
                monitor.notifications()
            )
        });
    assert_eq!(notification.summary, "An old auto token was removed");
    assert!(notification.body.contains("(hubkey, "), "{notification:?}");
    let item = tray_of(&keyring, app.home.path(), |item| {
        shows_icon(item, "tray-attention.png")
    })
    .await;
    app.screenshot("tray-attention-window").await;

    // The pruning, and the other devices' five auto tokens as created elsewhere (alerts).
    let removed = |all: Vec<hubkey_e2e::tray::Notification>| {
        all.into_iter()
            .filter(|n| n.summary != CREATED_ELSEWHERE)
            .count()
    };
    let told = monitor.notifications().len();
    assert_eq!(
        removed(monitor.notifications()),
        1,
        "{:?}",
        monitor.notifications()
    );

    // After a restart the session is restored and the watcher resumes at its saved cursor:
    // nothing is told again, and the tray still asks for attention.
    let home = app.quit().await;
    assert!(wait_for_exit(
        &app_binary(),
        home.path(),
        Duration::from_secs(10)
    ));
    let again = DesktopApp::start_in(&keyring, &hub.url, home).await;
    assert_eq!(again.home().signed_in_as().await, "Signed in as ann");
    let restarted = tray_of(&keyring, again.home.path(), |item| {
        item.menu.iter().any(|l| l == "Signed in as ann")
    })
    .await;
    assert!(
        shows_icon(&restarted, "tray-attention.png"),
        "{restarted:?} after {item:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        monitor.notifications().len(),
        told,
        "{:?}",
        monitor.notifications()
    );

    // The tray's Security item brings the window to the Security screen, and seeing that
    // screen (it calls mark_seen) clears the attention icon.
    let pid = app_pids(&app_binary(), again.home.path())[0];
    assert!(click_tray_item(&keyring, pid, "Security"));
    wait_for_security_screen(&again, "the tray").await;
    tray_of(&keyring, again.home.path(), |item| {
        shows_icon(item, "tray.png")
    })
    .await;
    again.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_the_pruning_notification_opens_security() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let mut server = NotificationServer::start(&keyring);
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let label = own_auto_label(&hub).await;
    // Only the pruning is told here: each shown notification holds a bus connection of the
    // app's while it waits for its click, and the tray lookup of this test reads the app's
    // connections (the created-elsewhere alerts are gui::alerts's).
    app.nav()
        .settings()
        .await
        .set_alert("other_device", false)
        .await;
    app.nav().account().await;
    wait_for_first_poll(&keyring).await;
    sign_in_on_five_other_devices(&hub).await;

    let shown = server
        .wait_for(Duration::from_secs(20), |n| n.body.contains(&label))
        .await
        .unwrap_or_else(|| panic!("no notification named {label}: {:?}", server.received()));
    assert_eq!(shown.summary, "An old auto token was removed");
    assert_eq!(shown.actions, ["default", "Open Security"]);
    tray_of(&keyring, app.home.path(), |item| {
        shows_icon(item, "tray-attention.png")
    })
    .await;
    assert!(!app.nav().is_current(Screen::Security).await);

    // A click on the notification opens the Security screen, which clears the attention.
    server.click(shown.id, "default");
    wait_for_security_screen(&app, "the notification").await;
    app.security().wait_for_table().await;
    app.screenshot("security-from-notification").await;
    tray_of(&keyring, app.home.path(), |item| {
        shows_icon(item, "tray.png")
    })
    .await;
    let pruned: Vec<_> = server
        .received()
        .into_iter()
        .filter(|n| n.summary != CREATED_ELSEWHERE)
        .collect();
    assert_eq!(pruned.len(), 1, "{pruned:?}");
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_token_label_reaches_the_notification_escaped() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let server = NotificationServer::start(&keyring);
    let hub = hub_with_registry().await;
    // A token whose label is markup a notification server would render as a link and an
    // image, expiring within the week the watcher warns about.
    let label =
        r#"<a href="https://evil.example/">pay</a> & <img src='https://evil.example/t.png'>"#;
    hub.sign_in("ann", PASSWORD)
        .await
        .create_token(&hubkey_api::CreateAccessTokenRequest {
            token_label: label.into(),
            scopes: vec![hubkey_api::Scope::Read],
            expires_at: Some(chrono::Utc::now() + chrono::TimeDelta::days(2)),
        })
        .await
        .unwrap();
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;

    let shown = server
        .wait_for(Duration::from_secs(20), |n| {
            n.summary == "A token expires within a week"
        })
        .await
        .unwrap_or_else(|| panic!("no expiry notification: {:?}", server.received()));
    let escaped = "&lt;a href=&quot;https://evil.example/&quot;&gt;pay&lt;/a&gt; &amp; \
                   &lt;img src=&apos;https://evil.example/t.png&apos;&gt;";
    assert!(
        shown.body.starts_with(&format!("{escaped} expires on ")),
        "{shown:?}"
    );
    assert!(!shown.body.contains(['<', '>', '"', '\'']), "{shown:?}");
    app.quit().await;
}
