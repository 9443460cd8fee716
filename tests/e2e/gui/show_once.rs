//! A manual token's value is shown once, and the window can close before the person copied
//! it (closing destroys the page that held it). The core keeps the value in memory only until
//! the person clicks Done: the next window opens on the Security screen and shows it again;
//! after Done it is gone for good. It never reaches a file.

use std::path::Path;
use std::time::Duration;

use hubkey_e2e::desktop::{app_binary, image_of, DesktopApp};
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::Screen;
use hubkey_e2e::tray::{app_pids, click_tray_item};

use super::resident::{close_and_restart, close_and_wait};
use super::{hub_with_registry, PASSWORD};

/// The tray's "Open hubkey", then the WebDriver session on the new window.
async fn reopen(app: &mut DesktopApp, keyring: &KeyringSession, pid: u32) {
    assert!(click_tray_item(keyring, pid, "Open hubkey"), "no tray item");
    app.switch_to_new_window().await;
}

/// Every file below `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|bytes| {
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        }) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_not_confirmed_copied_survives_the_window_closing_and_goes_after_done() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let mut app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let [pid] = app_pids(&app_binary(), app.home.path())[..] else {
        panic!("one app process expected");
    };
    let security = app.nav().security().await;
    security.wait_for_rows().await;
    let dialog = security.start_creating().await;
    dialog.label("deploy from ci").await;
    let shown = dialog.submit().await;
    let value = shown.value().await;
    assert!(value.starts_with("hkpat_"));

    // The window closes before Done: the page and its value are gone. The app does not
    // start itself again without the window meanwhile (`resident.rs`): the value lives in
    // this image's memory only, and would not survive it.
    let image = image_of(pid);
    close_and_wait(&app, pid).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        image_of(pid),
        image,
        "the app restarted with a value waiting"
    );

    // The next window opens on Security and shows the same value again, saying why.
    reopen(&mut app, &keyring, pid).await;
    let again = app.security().shown_once();
    assert_eq!(again.value().await, value);
    assert!(again.is_shown_again().await);
    assert!(app.nav().is_current(Screen::Security).await);
    assert!(app
        .text("[data-testid=unconfirmed-note]")
        .await
        .contains("never on disk"));
    app.screenshot("show-once-after-reopen").await;

    // The value is in memory only: no file of the app's or the keyring's holds it.
    let data_home = keyring
        .env()
        .into_iter()
        .find_map(|(name, value)| (name == "XDG_DATA_HOME").then_some(value))
        .unwrap();
    let mut holding = files_holding(app.home.path(), &value);
    holding.extend(files_holding(Path::new(&data_home), &value));
    assert!(holding.is_empty(), "the value is in {holding:?}");

    // Done: forgotten. The next window shows it no more.
    again.close().await;
    again.wait_gone().await;
    close_and_restart(&app, &keyring, pid).await;
    reopen(&mut app, &keyring, pid).await;
    assert_eq!(app.home().signed_in_as().await, "Signed in as ann");
    let security = app.nav().security().await;
    security.wait_for_rows().await;
    assert!(!app.security().shown_once().is_shown_again().await);
    app.quit().await;
}
