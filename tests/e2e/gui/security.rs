//! The Security screen through the window: the token list, its filters and every action,
//! checked against what the server then reports.

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::Locator;
use hubkey_api::{Origin, Scope};
use hubkey_client::{ClientError, HubClient};
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::server::manual_token;
use hubkey_e2e::{Hubkeyd, OciImage, Registry, Skopeo};
use uuid::Uuid;

use super::{hub_with_registry, PASSWORD};

/// The row of token `uuid`.
fn row(uuid: Uuid) -> String {
    format!("tr[data-uuid='{uuid}']")
}

/// How many elements match `css` now.
async fn count(app: &DesktopApp, css: &str) -> usize {
    app.webdriver
        .find_all(Locator::Css(css))
        .await
        .unwrap()
        .len()
}

/// Waits up to 20 s until nothing matches `css`.
async fn wait_gone(app: &DesktopApp, css: &str) {
    for _ in 0..200 {
        if count(app, css).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} still there after 20 s");
}

/// Chooses `value` in the select `css`, as a person would (a `change` event follows).
async fn choose(app: &DesktopApp, css: &str, value: &str) {
    app.wait_for(css).await;
    app.webdriver
        .execute(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![css.into(), value.into()],
        )
        .await
        .unwrap();
}

/// The value shown once in the open dialog.
async fn shown_value(app: &DesktopApp) -> String {
    app.wait_for("#new-secret")
        .await
        .prop("value")
        .await
        .unwrap()
        .expect("a value")
}

/// The app's own auto token (the only auto token of these tests), as the server has it.
async fn own_auto_token(ann: &HubClient) -> hubkey_api::AccessToken {
    ann.list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.generated_by == Origin::Auto)
        .expect("this device's auto token")
}

async fn is_active(ann: &HubClient, uuid: Uuid) -> bool {
    ann.get_token(uuid).await.unwrap().is_active
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_screen_lists_and_manages_every_token() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in("ann", PASSWORD).await;

    let ann = hub.sign_in("ann", PASSWORD).await;
    let ci = manual_token(&ann, "ci pipeline", Scope::Write).await;
    let backup = manual_token(&ann, "nightly backup", Scope::Read).await;
    let auto = own_auto_token(&ann).await;

    // Every token, with its origin; the app's own token is marked.
    app.click("#nav-security").await;
    let ci_row = row(ci.uuid);
    app.wait_for(&ci_row).await;
    for (uuid, origin) in [
        (ci.uuid, "manual"),
        (backup.uuid, "manual"),
        (auto.uuid, "auto"),
    ] {
        let origin_shown = app
            .wait_for(&row(uuid))
            .await
            .attr("data-origin")
            .await
            .unwrap();
        assert_eq!(origin_shown.as_deref(), Some(origin));
    }
    assert_eq!(count(&app, "tbody tr[data-uuid]").await, 3);
    app.wait_for(&format!("{} [data-testid=this-device]", row(auto.uuid)))
        .await;
    assert_eq!(
        count(&app, &format!("{ci_row} [data-testid=this-device]")).await,
        0
    );
    app.screenshot("security").await;
    let scope = app
        .wait_for(&format!("{ci_row} [data-testid=scope]"))
        .await
        .prop("textContent")
        .await
        .unwrap();
    assert_eq!(scope.as_deref(), Some("read & write"));

    // Deactivate, then reactivate: the server agrees each time.
    app.click(&format!("{ci_row} [data-action=toggle]")).await;
    app.wait_for(&format!("{ci_row}[data-state=inactive]"))
        .await;
    assert!(!is_active(&ann, ci.uuid).await);
    app.screenshot("security-deactivated").await;
    app.click(&format!("{ci_row} [data-action=toggle]")).await;
    app.wait_for(&format!("{ci_row}[data-state=active]")).await;
    assert!(is_active(&ann, ci.uuid).await);

    // Filters: only the auto token, then back to all.
    choose(&app, "#filter-origin", "auto").await;
    wait_gone(&app, &ci_row).await;
    assert_eq!(count(&app, "tbody tr[data-uuid]").await, 1);
    app.wait_for(&row(auto.uuid)).await;
    app.screenshot("security-filter-auto").await;
    choose(&app, "#filter-origin", "all").await;
    app.wait_for(&ci_row).await;

    // Create: the value is shown once and works; closing the dialog drops it.
    app.click("#create-token").await;
    app.fill("#new-label", "gui made").await;
    choose(&app, "#new-scope", "read").await;
    choose(&app, "#new-expiry", "30").await;
    app.screenshot("security-create").await;
    app.click("#create-submit").await;
    let value = shown_value(&app).await;
    assert!(value.starts_with("hkpat_"), "{value}");
    app.screenshot("security-created").await;
    hub.client()
        .auth_token("ann", &value)
        .await
        .expect("the shown value signs in");
    app.click("#close-secret").await;
    wait_gone(&app, "#new-secret").await;
    let made = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.token_label == "gui made")
        .expect("the created token");
    assert!(made.expires_at.is_some());
    app.wait_for(&format!("{}[data-origin=manual]", row(made.uuid)))
        .await;

    // Rotate: a working replacement, and the old token inactive.
    app.click(&format!("{ci_row} [data-action=rotate]")).await;
    app.wait_for("#rotate-dialog").await;
    let rotated = shown_value(&app).await;
    app.screenshot("security-rotated").await;
    app.click("#close-secret").await;
    wait_gone(&app, "#rotate-dialog").await;
    hub.client()
        .auth_token("ann", &rotated)
        .await
        .expect("the replacement signs in");
    assert!(!is_active(&ann, ci.uuid).await);
    app.wait_for(&format!("{ci_row}[data-state=inactive]"))
        .await;
    let replacements: Vec<_> = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .filter(|token| token.token_label == "ci pipeline" && token.uuid != ci.uuid)
        .collect();
    assert_eq!(replacements.len(), 1);
    assert!(replacements[0].is_active);
    assert_eq!(replacements[0].scopes, ci.scopes);

    // Deleting this device's token warns about the docker CLI; cancel.
    app.click(&format!("{} [data-action=delete]", row(auto.uuid)))
        .await;
    app.wait_for("#delete-dialog [data-testid=this-device-warning]")
        .await;
    app.screenshot("security-delete-this-device").await;
    app.click("#delete-dialog button.secondary").await;
    wait_gone(&app, "#delete-dialog").await;

    // Delete names the token; the server then has no such token.
    let backup_row = row(backup.uuid);
    app.click(&format!("{backup_row} [data-action=delete]"))
        .await;
    assert!(app
        .text("#delete-dialog [data-testid=confirm-text]")
        .await
        .contains("nightly backup"));
    assert_eq!(
        count(&app, "#delete-dialog [data-testid=this-device-warning]").await,
        0
    );
    app.screenshot("security-delete").await;
    app.click("#confirm-delete").await;
    wait_gone(&app, &backup_row).await;
    assert!(matches!(
        ann.get_token(backup.uuid).await,
        Err(ClientError::NotFound { .. })
    ));
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_list_renders_only_the_visible_rows_and_sorts() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    for n in 0..1000 {
        manual_token(&ann, &format!("script {n:04}"), Scope::Read).await;
    }
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in("ann", PASSWORD).await;

    let started = std::time::Instant::now();
    app.click("#nav-security").await;
    app.wait_for("tbody tr[data-uuid]").await;
    println!("1 001 tokens listed in {:?}", started.elapsed());
    assert_eq!(
        app.text("[data-testid=token-count]").await,
        "1001 of 1001 tokens"
    );
    let rendered = count(&app, "tbody tr[data-uuid]").await;
    assert!(rendered < 80, "{rendered} rows in the DOM");

    // Sorted by label, ascending: the first rows are the first scripts; scrolling to the
    // end brings the last ones in.
    app.click("[data-sort=label]").await;
    app.wait_for("[data-sort=label]").await;
    let first = app.text("tbody tr[data-uuid] td").await;
    assert!(first.starts_with("hubkey on"), "{first}");
    app.webdriver
        .execute(
            "const v = document.querySelector('[data-testid=token-table]'); \
             v.scrollTop = v.scrollHeight; v.dispatchEvent(new Event('scroll'));",
            vec![],
        )
        .await
        .unwrap();
    let last = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.token_label == "script 0999")
        .unwrap();
    app.wait_for(&row(last.uuid)).await;
    assert!(count(&app, "tbody tr[data-uuid]").await < 80);
    app.screenshot("security-long-list").await;

    // The keyboard walks the rows, scrolling the window of rendered rows along.
    let focused_label = || async {
        app.webdriver
            .execute(
                "const r = document.activeElement;                  return r && r.dataset.index !== undefined ? r.querySelector('td.label').title : null;",
                vec![],
            )
            .await
            .unwrap()
    };
    let press = |key: Key| {
        let app = &app;
        async move {
            app.webdriver
                .active_element()
                .await
                .unwrap()
                .send_keys(&String::from(char::from(key)))
                .await
                .unwrap();
        }
    };
    // Tab order holds one row; it takes focus as a Tab from the header would give it.
    app.webdriver
        .execute(
            "document.querySelector('tbody tr[tabindex=\"0\"]').focus();",
            vec![],
        )
        .await
        .unwrap();
    // Scrolled to the end, the first rendered row is the one Tab reaches.
    let reached = focused_label().await;
    assert!(reached.as_str().unwrap() > "script 0900", "{reached}");
    press(Key::End).await;
    assert_eq!(focused_label().await, "script 0999");
    press(Key::Home).await;
    assert!(focused_label()
        .await
        .as_str()
        .unwrap()
        .starts_with("hubkey on"));
    press(Key::Down).await;
    press(Key::Down).await;
    assert_eq!(focused_label().await, "script 0001");
    press(Key::PageDown).await;
    let paged = focused_label().await;
    assert!(paged.as_str().unwrap() > "script 0005", "{paged}");
    press(Key::End).await;
    assert_eq!(focused_label().await, "script 0999");
    assert!(count(&app, "tbody tr[data-uuid]").await < 80);

    // The state filter: nothing is inactive yet.
    choose(&app, "#filter-state", "inactive").await;
    assert_eq!(
        app.text("[data-testid=token-count]").await,
        "0 of 1001 tokens"
    );
    app.quit().await;
}

/// The tokens a CSV export lists, read by an independent CSV reader: uuid → (label, state).
fn csv_rows(csv: &str) -> std::collections::BTreeMap<String, (String, String)> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|c| c == name).unwrap();
    let (uuid, label, state) = (column("uuid"), column("label"), column("state"));
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            (
                record[uuid].to_owned(),
                (record[label].to_owned(), record[state].to_owned()),
            )
        })
        .collect()
}

/// What the server says: uuid → (label, state), for comparing with an export.
async fn server_rows(ann: &HubClient) -> std::collections::BTreeMap<String, (String, String)> {
    ann.list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|token| {
            let state = serde_json::to_value(token.state).unwrap();
            (
                token.uuid.to_string(),
                (token.token_label, state.as_str().unwrap().to_owned()),
            )
        })
        .collect()
}

/// Clicks `button`, answers the save dialog with `path`, and waits for the screen to report
/// the export.
async fn export_to(app: &DesktopApp, button: &str, path: &std::path::Path) {
    // The click returns once the command started; the dialog opens beside the webview.
    app.click(button).await;
    app.answer_save_dialog("Export tokens", path).await;
    let reported = app.text("[data-testid=export-result]").await;
    assert!(reported.contains(&path.display().to_string()), "{reported}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_actions_reach_the_registry_exports_match_and_the_feed_refreshes() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    // The app (started by tauri-driver, which inherits this environment) polls every second.
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let registry_host = hubkey_e2e::registry::free_loopback_port();
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(registry_host.clone()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "127.0.0.1:0", site).await;
    hub.add_user("ann", PASSWORD).await;
    let registry = Registry::start_on(&hub, &registry_host).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    let pusher = manual_token(&ann, "pusher", Scope::Write).await;
    let image = registry.reference("ann/app", "1");
    Skopeo::copy(
        &OciImage::write("ann/app").reference(),
        &image,
        &format!("ann:{}", pusher.token),
    )
    .await
    .expect_success("pushing the test image");
    let reader = manual_token(&ann, "reader", Scope::Read).await;
    let reader_creds = format!("ann:{}", reader.token);
    Skopeo::inspect(&image, Some(&reader_creds))
        .await
        .expect_success("inspect with the reader token");

    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in("ann", PASSWORD).await;
    app.click("#nav-security").await;
    let reader_row = row(reader.uuid);
    app.wait_for(&reader_row).await;

    // Deactivated on the screen: the registry refuses the token at once; reactivated: back.
    app.click(&format!("{reader_row} [data-action=toggle]"))
        .await;
    app.wait_for(&format!("{reader_row}[data-state=inactive]"))
        .await;
    Skopeo::inspect(&image, Some(&reader_creds))
        .await
        .expect_failure("inspect with the token deactivated on the screen");
    app.click(&format!("{reader_row} [data-action=toggle]"))
        .await;
    app.wait_for(&format!("{reader_row}[data-state=active]"))
        .await;
    Skopeo::inspect(&image, Some(&reader_creds))
        .await
        .expect_success("inspect with the token reactivated on the screen");

    // Created on the screen: the value shown once pulls from the registry.
    app.click("#create-token").await;
    app.fill("#new-label", "made on screen").await;
    app.click("#create-submit").await;
    let value = app
        .wait_for("#new-secret")
        .await
        .prop("value")
        .await
        .unwrap()
        .expect("a value");
    Skopeo::inspect(&image, Some(&format!("ann:{value}")))
        .await
        .expect_success("inspect with the token created on the screen");
    app.click("#close-secret").await;
    wait_gone(&app, "#new-secret").await;

    // A token made elsewhere appears without anyone touching the window: the events feed.
    let elsewhere = manual_token(&ann, "made by a script", Scope::Read).await;
    app.wait_for(&row(elsewhere.uuid)).await;
    app.screenshot("security-refreshed-by-feed").await;

    // Export: both files list exactly what the server has, and no secret.
    let exports = tempfile::tempdir().unwrap();
    let csv_path = exports.path().join("review.csv");
    export_to(&app, "#export-csv", &csv_path).await;
    app.screenshot("security-exported").await;
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv_rows(&csv), server_rows(&ann).await);
    let json_path = exports.path().join("review.json");
    export_to(&app, "#export-json", &json_path).await;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["username"], "ann");
    let exported: std::collections::BTreeMap<String, (String, String)> = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| {
            (
                token["uuid"].as_str().unwrap().to_owned(),
                (
                    token["label"].as_str().unwrap().to_owned(),
                    token["state"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(exported, server_rows(&ann).await);
    for secret in [&pusher.token, &reader.token, &value, &elsewhere.token] {
        assert!(!csv.contains(secret.as_str()), "a token value in the CSV");
        assert!(
            !json.to_string().contains(secret.as_str()),
            "a token value in the JSON"
        );
    }

    // Deleting this device's own token offers to sign in again, which leads to sign-in.
    let own = own_auto_token(&ann).await;
    app.click(&format!("{} [data-action=delete]", row(own.uuid)))
        .await;
    app.click("#confirm-delete").await;
    app.wait_for("#lost-token-dialog").await;
    app.screenshot("security-lost-own-token").await;
    app.click("#sign-in-again").await;
    app.wait_for("#password").await;
    assert!(matches!(
        ann.get_token(own.uuid).await,
        Err(ClientError::NotFound { .. })
    ));
    app.quit().await;
}
