//! The Security screen's list at the default window size, a token's detail after real
//! registry uses, rotation with an overlap (the old token still pulls through the real
//! `/token` during it), and the Activity view's timeline, through the real window.

use hubkey_api::{DesktopGenerateRequest, Scope};
use hubkey_client::HubClient;
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::{ActivityPage, TokenDetailPage};
use hubkey_e2e::server::manual_token;
use hubkey_e2e::{Hubkeyd, OciImage, Registry, Skopeo};
use uuid::Uuid;

use super::PASSWORD;

/// Waits until the server's access log of `uuid` has a line (it is written in batches).
async fn wait_for_access_log(ann: &HubClient, uuid: Uuid) {
    for _ in 0..200 {
        if !ann
            .token_activity(uuid, None, None)
            .await
            .unwrap()
            .entries
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no access-log line for {uuid} after 20 s");
}

/// What the list at the window's size shows: whether the grid scrolls sideways, and every
/// rendered label that is not shown whole.
async fn list_fit(app: &DesktopApp) -> serde_json::Value {
    app.webdriver
        .execute(
            "const grid = document.querySelector('[data-testid=token-table]'); \
             const cut = [...grid.querySelectorAll('[data-testid=label]')] \
               .filter((l) => l.scrollHeight > l.clientHeight + 1 || l.scrollWidth > l.clientWidth + 1) \
               .map((l) => l.textContent); \
             return { width: window.innerWidth, scroll: grid.scrollWidth, client: grid.clientWidth, \
                      page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth, cut };",
            vec![],
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_rotation_with_overlap_and_the_activity_timeline() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let registry_host = hubkey_e2e::registry::free_loopback_port();
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(registry_host.clone()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "127.0.0.1:0", site).await;
    hub.add_user("ann", PASSWORD).await;
    let registry = Registry::start_on(&hub, &registry_host).await;
    let ann = hub.sign_in("ann", PASSWORD).await;

    // Tokens a person must tell apart: auto tokens of other devices with long labels, and
    // enough manual ones to scroll.
    for n in 1..=4 {
        hub.sign_in("ann", PASSWORD)
            .await
            .desktop_generate(Some(&DesktopGenerateRequest {
                client_name: Some("docker-desktop".into()),
                device_name: Some(format!("other device with a long name {n:02}")),
            }))
            .await
            .unwrap();
    }
    let mut backups = Vec::new();
    for n in 0..24 {
        let label = format!("nightly backup job {n:02} of the build farm");
        backups.push(manual_token(&ann, &label, Scope::Read).await);
    }
    let deployer = manual_token(&ann, "deployer for the production cluster", Scope::Write).await;
    let image = registry.reference("ann/app", "1");
    Skopeo::copy(
        &OciImage::write("ann/app").reference(),
        &image,
        &format!("ann:{}", deployer.token),
    )
    .await
    .expect_success("pushing with the deployer token");
    wait_for_access_log(&ann, deployer.uuid).await;

    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let security = app.nav().security().await;
    security.row(deployer.uuid).wait().await;

    // At the default window size the list fits: no sideways scroll, no label cut.
    let fit = list_fit(&app).await;
    assert_eq!(fit["width"], 760, "the default window: {fit}");
    assert!(fit["scroll"].as_u64() <= fit["client"].as_u64(), "{fit}");
    assert!(fit["page"].as_u64() <= fit["view"].as_u64(), "{fit}");
    assert_eq!(fit["cut"], serde_json::json!([]), "{fit}");
    app.screenshot("security-list-760").await;
    // The other devices' auto tokens, the oldest, at the list's end: their labels too.
    security.scroll_to_end().await;
    let other = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.token_label.contains("long name 01"))
        .expect("another device's auto token");
    security.row(other.uuid).wait().await;
    let fit = list_fit(&app).await;
    assert!(fit["scroll"].as_u64() <= fit["client"].as_u64(), "{fit}");
    assert_eq!(fit["cut"], serde_json::json!([]), "{fit}");
    app.screenshot("security-list-760-end").await;
    app.webdriver
        .execute(
            "const g = document.querySelector('[data-testid=token-table]'); g.scrollTop = 0;              g.dispatchEvent(new Event('scroll'));",
            vec![],
        )
        .await
        .unwrap();
    security.row(deployer.uuid).wait().await;

    // The detail after real registry uses: fields, the access log, the chart, the events.
    let detail = security.row(deployer.uuid).open_detail().await;
    assert_eq!(detail.uuid().await, Some(deployer.uuid.to_string()));
    assert_eq!(
        detail.field("label").await,
        "deployer for the production cluster"
    );
    assert_eq!(detail.field("scope").await, "read & write");
    detail.wait_field_contains("addresses", "127.0.0.1").await;
    assert_ne!(detail.field("last-used").await, "Never");
    let lines = detail.access_lines().await;
    assert!(
        lines
            .iter()
            .any(|line| line.contains("ann/app") && line.contains("push")),
        "{lines:?}"
    );
    assert_ne!(detail.chart_total().await.as_deref(), Some("0"));
    assert_eq!(detail.event_kinds().await, ["created"]);
    app.screenshot("token-detail").await;
    app.webdriver
        .execute(
            "document.querySelector('[data-testid=access-log]').scrollIntoView();              return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));",
            vec![],
        )
        .await
        .unwrap();
    app.screenshot("token-detail-log").await;

    // Rotate from the detail with an hour of overlap: both tokens pull through the real
    // /token meanwhile.
    app.click("[data-testid=token-detail] [data-action=rotate]")
        .await;
    security.wait_for_rotate_dialog().await;
    app.click("#rotate-dialog [data-overlap=hour]").await;
    app.screenshot("rotate-dialog").await;
    app.click("#rotate-submit").await;
    let successor = security.shown_once().value().await;
    app.screenshot("rotate-dialog-shown").await;
    security.shown_once().close().await;
    security.wait_rotate_dialog_gone().await;
    Skopeo::inspect(&image, Some(&format!("ann:{}", deployer.token)))
        .await
        .expect_success("the old token during the overlap");
    Skopeo::inspect(&image, Some(&format!("ann:{successor}")))
        .await
        .expect_success("the successor");
    let old = ann.get_token(deployer.uuid).await.unwrap();
    let new_uuid = old.rotated_to.expect("linked to its successor");
    assert!(old.overlap_until.unwrap() > chrono::Utc::now() + chrono::Duration::minutes(55));
    detail.wait_field_contains("state", "works until").await;
    detail.follow("rotated-to").await;
    let successor_detail = TokenDetailPage::of(&app);
    for _ in 0..200 {
        if successor_detail.uuid().await == Some(new_uuid.to_string()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(successor_detail.uuid().await, Some(new_uuid.to_string()));
    successor_detail.wait().await;
    assert_eq!(
        successor_detail.field("label").await,
        "deployer for the production cluster"
    );

    // Back returns to the list at the same scroll position.
    successor_detail.back().await;
    app.webdriver
        .execute(
            "const g = document.querySelector('[data-testid=token-table]'); g.scrollTop = 300; \
             g.dispatchEvent(new Event('scroll'));",
            vec![],
        )
        .await
        .unwrap();
    let visible = app
        .webdriver
        .execute(
            "const g = document.querySelector('[data-testid=token-table]'); \
             const top = g.getBoundingClientRect().top + 60; \
             const row = [...g.querySelectorAll('tr[data-uuid]')].find((r) => r.getBoundingClientRect().top > top); \
             return row.dataset.uuid;",
            vec![],
        )
        .await
        .unwrap();
    let visible: Uuid = visible.as_str().unwrap().parse().unwrap();
    let opened = security.row(visible).open_detail().await;
    opened.back().await;
    let scroll = app
        .webdriver
        .execute(
            "return document.querySelector('[data-testid=token-table]').scrollTop;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(scroll.as_f64().map(f64::round), Some(300.0));

    // The timeline: newest first, filtered by kind and by token; an event opens its token.
    let activity = app.nav().activity().await;
    let kinds = activity.kinds().await;
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("rotated"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|kind| kind == "created"));
    app.screenshot("activity").await;
    activity.filter_kind("rotated").await;
    let tokens = activity.tokens().await;
    let mut rotated: Vec<_> = tokens.clone();
    rotated.sort();
    let mut expected = vec![deployer.uuid.to_string(), new_uuid.to_string()];
    expected.sort();
    assert_eq!(rotated, expected, "one rotated event on each side");
    // By token: one backup job's events only, and a click opens its detail.
    activity.filter_kind("all").await;
    let backup = backups[3].uuid.to_string();
    activity.filter_token(&backup).await;
    for _ in 0..200 {
        if activity.tokens().await == [backup.as_str()] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(activity.tokens().await, [backup.as_str()]);
    assert_eq!(activity.kinds().await, ["created"]);
    app.screenshot("activity-filtered").await;
    let opened = ActivityPage::of(&app).open_token(&backup).await;
    assert_eq!(opened.uuid().await, Some(backup));
    opened.back().await;
    activity.kinds().await;
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_comes_back_where_it_was_left() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = super::hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().wait().await;
    app.webdriver
        .set_window_rect(120, 40, 900, 660)
        .await
        .unwrap();
    let moved = app.webdriver.get_window_rect().await.unwrap();

    // Saved once the window stood still (the app's data folder is in the keyring's data home).
    let data_home = keyring
        .env()
        .into_iter()
        .find(|(name, _)| name == "XDG_DATA_HOME")
        .unwrap()
        .1;
    let file = std::path::Path::new(&data_home).join("dev.hubkey.desktop/window.json");
    let mut saved = serde_json::Value::Null;
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&file) {
            saved = serde_json::from_str::<serde_json::Value>(&text).unwrap()["place"].clone();
            if saved["x"] == 120 && saved["y"] == 40 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        (saved["x"].as_u64(), saved["y"].as_u64()),
        (Some(120), Some(40)),
        "{saved}"
    );

    // The next start puts it back there, at that size.
    let home = app.quit().await;
    let app = DesktopApp::start_in(&keyring, &hub.url, home).await;
    app.sign_in_page().wait().await;
    let mut rect = (0, 0, 0, 0);
    for _ in 0..100 {
        rect = app.webdriver.get_window_rect().await.unwrap();
        if rect == moved {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rect, moved, "saved {saved}");
    app.quit().await;
}
