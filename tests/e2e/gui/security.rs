//! The Security screen through the window: the token list, its filters and every action,
//! checked against what the server then reports.

use fantoccini::key::Key;
use hubkey_api::{Origin, Scope};
use hubkey_client::{ClientError, HubClient};
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::{ExportFormat, SecurityPage};
use hubkey_e2e::server::manual_token;
use hubkey_e2e::{Hubkeyd, OciImage, Registry, Skopeo};
use uuid::Uuid;

use super::{hub_with_registry, PASSWORD};

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
    app.sign_in_page().sign_in("ann", PASSWORD).await;

    let ann = hub.sign_in("ann", PASSWORD).await;
    let ci = manual_token(&ann, "ci pipeline", Scope::Write).await;
    let backup = manual_token(&ann, "nightly backup", Scope::Read).await;
    let auto = own_auto_token(&ann).await;

    // Every token, with its origin; the app's own token is marked.
    let security = app.nav().security().await;
    let ci_row = security.row(ci.uuid);
    ci_row.wait().await;
    for (uuid, origin) in [
        (ci.uuid, "manual"),
        (backup.uuid, "manual"),
        (auto.uuid, "auto"),
    ] {
        assert_eq!(security.row(uuid).origin().await.as_deref(), Some(origin));
    }
    assert_eq!(security.rendered_rows().await, 3);
    security.row(auto.uuid).wait_this_device_mark().await;
    assert!(!ci_row.is_marked_this_device().await);
    app.screenshot("security").await;
    assert_eq!(ci_row.scope().await.as_deref(), Some("read & write"));

    // Deactivate, then reactivate: the server agrees each time.
    ci_row.toggle().await;
    ci_row.wait_state("inactive").await;
    assert!(!is_active(&ann, ci.uuid).await);
    app.screenshot("security-deactivated").await;
    ci_row.toggle().await;
    ci_row.wait_state("active").await;
    assert!(is_active(&ann, ci.uuid).await);

    // Filters: only the auto token, then back to all.
    security.filter_origin("auto").await;
    ci_row.wait_gone().await;
    assert_eq!(security.rendered_rows().await, 1);
    security.row(auto.uuid).wait().await;
    app.screenshot("security-filter-auto").await;
    security.filter_origin("all").await;
    ci_row.wait().await;

    // Create: the value is shown once and works; closing the dialog drops it.
    let create = security.start_creating().await;
    create
        .label("gui made")
        .await
        .scope("read")
        .await
        .expiry("30")
        .await;
    app.screenshot("security-create").await;
    let shown = create.submit().await;
    let value = shown.value().await;
    assert!(value.starts_with("hkpat_"), "{value}");
    app.screenshot("security-created").await;
    hub.client()
        .auth_token("ann", &value)
        .await
        .expect("the shown value signs in");
    shown.close().await;
    shown.wait_gone().await;
    let made = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.token_label == "gui made")
        .expect("the created token");
    assert!(made.expires_at.is_some());
    security.row(made.uuid).wait_origin("manual").await;

    // Rotate with no overlap: a working replacement, and the old token refused at once.
    ci_row.rotate().await;
    security.wait_for_rotate_dialog().await;
    security.rotate_with_overlap("none").await;
    let rotated = security.shown_once().value().await;
    app.screenshot("security-rotated").await;
    security.shown_once().close().await;
    security.wait_rotate_dialog_gone().await;
    hub.client()
        .auth_token("ann", &rotated)
        .await
        .expect("the replacement signs in");
    assert_eq!(
        ann.get_token(ci.uuid).await.unwrap().state,
        hubkey_api::TokenState::Inactive
    );
    ci_row.wait_state("inactive").await;
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
    let confirm = security.delete_dialog();
    security.row(auto.uuid).delete().await;
    confirm.wait_this_device_warning().await;
    app.screenshot("security-delete-this-device").await;
    confirm.cancel().await;

    // Delete names the token; the server then has no such token.
    let backup_row = security.row(backup.uuid);
    backup_row.delete().await;
    assert!(confirm.text().await.contains("nightly backup"));
    assert!(!confirm.warns_this_device().await);
    app.screenshot("security-delete").await;
    confirm.confirm().await;
    backup_row.wait_gone().await;
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
    app.sign_in_page().sign_in("ann", PASSWORD).await;

    let started = std::time::Instant::now();
    let security = app.nav().security().await;
    security.wait_for_rows().await;
    println!("1 001 tokens listed in {:?}", started.elapsed());
    assert_eq!(security.token_count().await, "1001 of 1001 tokens");
    let rendered = security.rendered_rows().await;
    assert!(rendered < 80, "{rendered} rows in the DOM");

    // Sorted by label, ascending: the first rows are the first scripts; scrolling to the
    // end brings the last ones in.
    security.sort_by("label").await;
    let first = security.first_row_text().await;
    assert!(first.starts_with("hubkey on"), "{first}");
    security.scroll_to_end().await;
    let last = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| token.token_label == "script 0999")
        .unwrap();
    security.row(last.uuid).wait().await;
    assert!(security.rendered_rows().await < 80);
    app.screenshot("security-long-list").await;

    // The keyboard walks the rows, scrolling the window of rendered rows along.
    // Tab order holds one row; it takes focus as a Tab from the header would give it.
    security.focus_tab_stop().await;
    // Scrolled to the end, the first rendered row is the one Tab reaches.
    let reached = security.focused_label().await;
    assert!(reached.as_str().unwrap() > "script 0900", "{reached}");
    security.press(Key::End).await;
    assert_eq!(security.focused_label().await, "script 0999");
    security.press(Key::Home).await;
    assert!(security
        .focused_label()
        .await
        .as_str()
        .unwrap()
        .starts_with("hubkey on"));
    security.press(Key::Down).await;
    security.press(Key::Down).await;
    assert_eq!(security.focused_label().await, "script 0001");
    security.press(Key::PageDown).await;
    let paged = security.focused_label().await;
    assert!(paged.as_str().unwrap() > "script 0005", "{paged}");
    security.press(Key::End).await;
    assert_eq!(security.focused_label().await, "script 0999");
    assert!(security.rendered_rows().await < 80);

    // The state filter: nothing is inactive yet.
    security.filter_state("inactive").await;
    assert_eq!(security.token_count().await, "0 of 1001 tokens");
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

/// Exports as `format` to `path` and checks that the screen reports it.
async fn export_to(security: &SecurityPage<'_>, format: ExportFormat, path: &std::path::Path) {
    let reported = security.export_to(format, path).await;
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
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let security = app.nav().security().await;
    let reader_row = security.row(reader.uuid);
    reader_row.wait().await;

    // Deactivated on the screen: the registry refuses the token at once; reactivated: back.
    reader_row.toggle().await;
    reader_row.wait_state("inactive").await;
    Skopeo::inspect(&image, Some(&reader_creds))
        .await
        .expect_failure("inspect with the token deactivated on the screen");
    reader_row.toggle().await;
    reader_row.wait_state("active").await;
    Skopeo::inspect(&image, Some(&reader_creds))
        .await
        .expect_success("inspect with the token reactivated on the screen");

    // Created on the screen: the value shown once pulls from the registry.
    let create = security.start_creating().await;
    let shown = create.label("made on screen").await.submit().await;
    let value = shown.value().await;
    Skopeo::inspect(&image, Some(&format!("ann:{value}")))
        .await
        .expect_success("inspect with the token created on the screen");
    shown.close().await;
    shown.wait_gone().await;

    // A token made elsewhere appears without anyone touching the window: the events feed.
    let elsewhere = manual_token(&ann, "made by a script", Scope::Read).await;
    security.row(elsewhere.uuid).wait().await;
    app.screenshot("security-refreshed-by-feed").await;

    // Export: both files list exactly what the server has, and no secret.
    let exports = tempfile::tempdir().unwrap();
    let csv_path = exports.path().join("review.csv");
    export_to(&security, ExportFormat::Csv, &csv_path).await;
    app.screenshot("security-exported").await;
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv_rows(&csv), server_rows(&ann).await);
    let json_path = exports.path().join("review.json");
    export_to(&security, ExportFormat::Json, &json_path).await;
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
    security.row(own.uuid).delete().await;
    security.delete_dialog().confirm().await;
    security.wait_for_lost_token_dialog().await;
    app.screenshot("security-lost-own-token").await;
    security.sign_in_again().await;
    assert!(matches!(
        ann.get_token(own.uuid).await,
        Err(ClientError::NotFound { .. })
    ));
    app.quit().await;
}
