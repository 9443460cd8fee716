//! "Sign in with your browser" in the window: the app starts the device grant, shows the
//! code, "opens the system browser" (in test builds `HUBKEY_OPEN_URL_FILE` makes it write
//! the URL to a file instead) and polls; the test's WebDriver-driven Chromium opens that URL
//! on hubkeyd's `/device` page, signs in and approves or denies. Expiry is reached by turning
//! the hub's clock.

use std::path::Path;
use std::time::Duration;

use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::Hubkeyd;
use hubkeyd::clock::ManualClock;

use super::{PASSWORD, REGISTRY};
use crate::device_page::Browser;

/// The URL the app last "opened in the browser", once written, after `previous`.
async fn opened_url(file: &Path, previous: Option<&str>) -> String {
    for _ in 0..200 {
        if let Ok(url) = std::fs::read_to_string(file) {
            if Some(url.as_str()) != previous {
                return url;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the app opened no new URL within 20 s");
}

/// Signs ann in on the page at `url` and presses `decision` (`approve` or `deny`).
async fn decide(browser: &Browser, url: &str, code: &str, decision: &str, shots: &str) {
    browser.open(url).await;
    browser.wait_heading("Sign in to approve").await;
    browser.fill("#username", "ann").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_heading("Approve this device?").await;
    let body = browser.body().await;
    assert!(body.contains(code), "the page shows the app's code: {body}");
    assert!(body.contains("hubkey"), "the page names the app: {body}");
    browser.screenshot(shots).await;
    browser.click(&format!("button.{decision}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_signs_in_through_the_browser() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let opened = tempfile::tempdir().unwrap();
    let url_file = opened.path().join("opened-url");
    // The app inherits this from the test process through tauri-driver.
    std::env::set_var("HUBKEY_OPEN_URL_FILE", &url_file);
    let clock = ManualClock::new(chrono::Utc::now());
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(REGISTRY.into()),
    };
    let hub = Hubkeyd::start_on_clock(
        tempfile::tempdir().unwrap(),
        "127.0.0.1:0",
        site,
        |hub| hub,
        clock.clone(),
    )
    .await;
    hub.add_user("ann", PASSWORD).await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    let browser = Browser::start().await;
    let sign_in = app.sign_in_page();

    // Denied in the browser: the app says so.
    let code = sign_in.start_browser_sign_in().await;
    let (head, tail) = code.split_once('-').expect("XXXX-XXXX");
    assert_eq!((head.len(), tail.len()), (4, 4), "{code}");
    app.screenshot("browser-sign-in-code").await;
    let url = opened_url(&url_file, None).await;
    assert_eq!(url, format!("{}/device?user_code={code}", hub.url));
    decide(&browser, &url, &code, "deny", "browser-sign-in-deny-page").await;
    sign_in.wait_browser_ended("denied").await;
    app.screenshot("browser-sign-in-denied").await;

    // Expired: a new code, then the hub's clock past its ten minutes.
    let code = sign_in.browser_sign_in_again().await;
    let url = opened_url(&url_file, Some(&url)).await;
    assert!(url.ends_with(&code), "{url}");
    clock.advance(chrono::Duration::minutes(11));
    sign_in.wait_browser_ended("expired").await;
    app.screenshot("browser-sign-in-expired").await;

    // A new code, approved in the browser: signed in as a password sign-in is.
    let code = sign_in.browser_sign_in_again().await;
    let url = opened_url(&url_file, Some(&url)).await;
    assert!(url.ends_with(&code), "{url}");
    decide(
        &browser,
        &url,
        &code,
        "approve",
        "browser-sign-in-approve-page",
    )
    .await;
    let home = app.home();
    assert_eq!(home.signed_in_as().await, "Signed in as ann");
    assert_eq!(home.hand_off_state().await.as_deref(), Some("done"));
    let credential = hubkey_keyring::docker::get(&hubkey_keyring::OsKeyring::new(), REGISTRY)
        .unwrap()
        .expect("the auto token in the keyring, as after a password sign-in");
    assert_eq!(credential.username, "ann");
    app.screenshot("browser-sign-in-signed-in").await;

    // Cancelled: approving that code afterwards signs nothing in here.
    let sign_in = home.sign_out().await;
    let code = sign_in.start_browser_sign_in().await;
    let url = opened_url(&url_file, Some(&url)).await;
    sign_in.cancel_browser_sign_in().await;
    decide(
        &browser,
        &url,
        &code,
        "approve",
        "browser-sign-in-cancelled-page",
    )
    .await;
    // Longer than the poll interval (5 s): a poll that still ran would have signed in.
    tokio::time::sleep(Duration::from_secs(8)).await;
    sign_in.wait().await;
    assert!(
        hubkey_keyring::docker::get(&hubkey_keyring::OsKeyring::new(), REGISTRY)
            .unwrap()
            .is_none(),
        "a cancelled browser sign-in stored nothing"
    );
    browser.close().await;
    app.quit().await;
}
