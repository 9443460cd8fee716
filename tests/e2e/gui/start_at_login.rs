//! The Settings screen's "Start hubkey when I log in" switch on Linux: on writes an XDG
//! autostart entry under the app's `XDG_CONFIG_HOME` that runs this very program, off removes
//! it, and the switch shows what the file says.

use std::collections::HashMap;

use hubkey_e2e::desktop::{app_binary, DesktopApp};
use hubkey_e2e::keyring::KeyringSession;

use super::{hub_with_registry, PASSWORD};

/// The `[Desktop Entry]` group's keys and values.
fn desktop_entry(text: &str) -> HashMap<String, String> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("[Desktop Entry]"), "{text}");
    lines
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a key=value line: {line:?}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_login_writes_and_removes_the_xdg_autostart_entry() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    // The app runs with XDG_CONFIG_HOME=$HOME/.config (tests/src/desktop.rs).
    let entry = app.home.path().join(".config/autostart/hubkey.desktop");

    let settings = app.nav().settings().await;
    assert!(!settings.starts_at_login().await);
    assert!(!entry.exists());

    settings.set_start_at_login(true).await;
    app.screenshot("settings-start-at-login").await;
    let text = std::fs::read_to_string(&entry).unwrap();
    let keys = desktop_entry(&text);
    let program = std::fs::canonicalize(app_binary()).unwrap();
    assert_eq!(keys["Exec"], program.to_str().unwrap(), "{text}");
    assert_eq!(keys["Type"], "Application");
    assert_eq!(keys["Name"], "hubkey");
    assert_eq!(keys["Hidden"], "false");
    assert_eq!(keys["X-GNOME-Autostart-enabled"], "true");
    assert_eq!(keys["Terminal"], "false");

    // The switch reads the entry: reopening the screen still shows it on.
    app.nav().account().await;
    let settings = app.nav().settings().await;
    assert!(settings.starts_at_login().await);

    // Turned off by the desktop's own tool: the switch shows off, and on again rewrites it.
    std::fs::write(&entry, text.replace("Hidden=false", "Hidden=true")).unwrap();
    app.nav().account().await;
    let settings = app.nav().settings().await;
    assert!(!settings.starts_at_login().await);
    settings.set_start_at_login(true).await;
    assert_eq!(
        desktop_entry(&std::fs::read_to_string(&entry).unwrap())["Hidden"],
        "false"
    );

    settings.set_start_at_login(false).await;
    assert!(!entry.exists(), "off removes the entry");
    assert!(
        entry.parent().unwrap().read_dir().unwrap().next().is_none(),
        "nothing else left in autostart/"
    );
    app.quit().await;
}
