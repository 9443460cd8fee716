//! The desktop app itself, through its window: tauri-driver and WebKitWebDriver under Xvfb,
//! a private keyring, and a real hubkeyd.

mod alerts;
mod browser_sign_in;
mod detail;
mod resident;
mod secrets;
mod security;
mod show_once;
mod start_at_login;
mod tray;
mod two_factor;
mod webview_policy;

use hubkey_api::Origin;
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::Screen;
use hubkey_e2e::Hubkeyd;
use hubkey_keyring::SecretStore;

const PASSWORD: &str = "correct horse battery";
const REGISTRY: &str = "127.0.0.1:5999";

async fn hub_with_registry() -> Hubkeyd {
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(REGISTRY.into()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "127.0.0.1:0", site).await;
    hub.add_user("ann", PASSWORD).await;
    hub
}

/// After a sign-out: the account has no auto token left and the keyring no docker credential
/// for the registry.
async fn assert_signed_out_of_docker(ann: &hubkey_client::HubClient) {
    assert!(ann
        .list_all_tokens()
        .await
        .unwrap()
        .iter()
        .all(|t| t.generated_by != Origin::Auto));
    assert!(
        hubkey_keyring::docker::get(&hubkey_keyring::OsKeyring::new(), REGISTRY)
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_hands_the_docker_cli_a_token_and_sign_out_takes_it_back() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    std::fs::write(
        app.docker_config.join("config.json"),
        r#"{"experimental": "enabled"}"#,
    )
    .unwrap();

    // The remembered server is the one the app was pointed at.
    let sign_in = app.sign_in_page();
    assert_eq!(
        sign_in.server_url().await.as_deref(),
        Some(hub.url.as_str())
    );
    app.screenshot("sign-in").await;

    // A wrong password is said so, specifically.
    sign_in.submit_password("ann", "not the password").await;
    assert_eq!(
        sign_in.error_code().await.as_deref(),
        Some("wrong_credentials")
    );
    app.screenshot("sign-in-wrong-password").await;

    let home = sign_in.sign_in("ann", PASSWORD).await;
    assert_eq!(home.hand_off_state().await.as_deref(), Some("done"));
    app.screenshot("signed-in").await;

    // The server has this device's auto token ...
    let ann = hub.sign_in("ann", PASSWORD).await;
    let autos: Vec<_> = ann
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.generated_by == Origin::Auto)
        .collect();
    assert_eq!(autos.len(), 1, "{autos:?}");
    // ... the keyring holds it for the registry, and the docker CLI is pointed at it.
    let credential = hubkey_keyring::docker::get(&hubkey_keyring::OsKeyring::new(), REGISTRY)
        .unwrap()
        .expect("docker credential in the keyring");
    assert_eq!(credential.username, "ann");
    assert!(credential.secret.expose().starts_with("hkpat_"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.docker_config.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["credHelpers"][REGISTRY], "hubkey");
    assert_eq!(config["experimental"], "enabled", "other keys are kept");
    assert!(
        !config.to_string().contains(credential.secret.expose()),
        "no secret in config.json"
    );

    // Settings say where secrets live.
    let settings = app.nav().settings().await;
    assert!(settings.secret_store().await.contains("Secret Service"));
    app.screenshot("settings").await;
    let home = app.nav().account().await;

    home.sign_out().await;
    assert_signed_out_of_docker(&ann).await;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.docker_config.join("config.json")).unwrap())
            .unwrap();
    assert!(config["credHelpers"].get(REGISTRY).is_none());
    assert_eq!(config["experimental"], "enabled");
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_a_restart_of_the_app() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let home = app.quit().await;

    // A new process over the same HOME and keyring opens signed in, without a password.
    let again = DesktopApp::start_in(&keyring, &hub.url, home).await;
    assert_eq!(again.home().signed_in_as().await, "Signed in as ann");
    again.screenshot("restored").await;
    let secret_store = hubkey_keyring::OsKeyring::new();
    assert!(secret_store.describe().contains("Secret Service"));
    again.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_sign_in_takes_the_code_in_the_window() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let secret = hub
        .hub
        .enable_totp("ann", chrono::Utc::now())
        .await
        .unwrap();
    let app = DesktopApp::start(&keyring, &hub.url).await;
    let sign_in = app.sign_in_page();
    sign_in.submit_password("ann", PASSWORD).await;
    sign_in.wait_for_code_step().await;
    app.screenshot("sign-in-code").await;

    let step = hubkeyd::totp::step_at(chrono::Utc::now().timestamp());
    // A code five steps away is never accepted.
    sign_in
        .submit_code(&hubkeyd::totp::code_at_step(&secret, step + 5))
        .await;
    assert_eq!(sign_in.error_code().await.as_deref(), Some("wrong_code"));
    app.screenshot("sign-in-wrong-code").await;

    let now = hubkeyd::totp::step_at(chrono::Utc::now().timestamp());
    sign_in
        .submit_code(&hubkeyd::totp::code_at_step(&secret, now))
        .await;
    assert_eq!(app.home().signed_in_as().await, "Signed in as ann");
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_the_server_did_not_hear_is_told_on_the_sign_in_screen() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    let home = app.sign_in_page().sign_in("ann", PASSWORD).await;
    assert!(app.nav().is_current(Screen::Account).await);

    // The server goes away: this device's token cannot be deleted there, nor the session
    // ended. The local side is still cleaned, and the person is told what was left.
    let _data = hub.stop().await;
    let sign_in = home.sign_out().await;
    let notice = sign_in.notice().await;
    assert_eq!(
        notice.code.as_deref(),
        Some("partial_sign_out"),
        "{notice:?}"
    );
    assert!(
        notice
            .text
            .starts_with("Signed out on this computer, but not everywhere:")
            && notice.text.contains("did not answer"),
        "{notice:?}"
    );
    app.screenshot("sign-out-partial").await;
    assert!(
        hubkey_keyring::docker::get(&hubkey_keyring::OsKeyring::new(), REGISTRY)
            .unwrap()
            .is_none(),
        "the docker credential is erased all the same"
    );
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_screen_changes_the_password_and_signs_out_everywhere() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    let home = app.sign_in_page().sign_in("ann", PASSWORD).await;
    let elsewhere = hub.sign_in("ann", PASSWORD).await;
    const NEW: &str = "another long passphrase 5";

    let (code, text) = home
        .change_password("not the password", NEW, NEW, false)
        .await
        .unwrap_err();
    assert_eq!(code.as_deref(), Some("invalid_input"), "{text}");
    assert!(text.contains("current password is not right"), "{text}");
    let said = home
        .change_password(PASSWORD, NEW, NEW, false)
        .await
        .unwrap();
    assert!(
        said.contains("Every other session of your account was signed out"),
        "{said}"
    );
    app.screenshot("password-changed").await;
    assert!(
        elsewhere.list_all_tokens().await.is_err(),
        "the other session ended"
    );
    // This app is still signed in: its Security screen lists the tokens.
    let security = app.nav().security().await;
    security.wait_for_rows().await;
    let home = app.nav().account().await;

    // Sign out everywhere: a second session, then the confirmed action ends both.
    let elsewhere = hub.sign_in("ann", NEW).await;
    let (asked, sign_in) = home.sign_out_everywhere().await;
    assert!(asked.contains("Every session of ann ends"), "{asked}");
    sign_in.wait().await;
    assert!(elsewhere.list_all_tokens().await.is_err());
    let ann = hub.sign_in("ann", NEW).await;
    assert_signed_out_of_docker(&ann).await;
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_asks_before_replacing_the_persons_docker_credential_helper() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    let config = app.docker_config.join("config.json");
    let original = format!("{{\"credHelpers\": {{\"{REGISTRY}\": \"desktop\"}}}}");
    std::fs::write(&config, &original).unwrap();

    let home = app.sign_in_page().sign_in("ann", PASSWORD).await;
    assert_eq!(
        home.hand_off_state().await.as_deref(),
        Some("ask_to_replace")
    );
    assert_eq!(
        home.replace_question().await,
        format!("Replace the docker credential helper for {REGISTRY} (currently “desktop”)?")
    );
    app.screenshot("replace-helper-question").await;
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);

    home.replace_helper().await;
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(written["credHelpers"][REGISTRY], "hubkey");

    home.sign_out().await;
    let restored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(restored["credHelpers"][REGISTRY], "desktop");
    app.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_on_the_network_gets_the_password_only_after_the_warning() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    // This computer's network address, not loopback (a route's source; no packet is sent).
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let Some(address) = socket
        .connect("192.0.2.1:9")
        .ok()
        .and_then(|()| socket.local_addr().ok())
        .map(|local| local.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    else {
        println!("no non-loopback address here: skipped");
        return;
    };
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(REGISTRY.into()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "0.0.0.0:0", site).await;
    hub.add_user("ann", PASSWORD).await;
    let port = hub.url.rsplit(':').next().unwrap();
    let url = format!("http://{address}:{port}");
    let app = DesktopApp::start(&keyring, &url).await;

    let sign_in = app.sign_in_page();
    assert!(!sign_in.warns_unencrypted().await);
    sign_in.submit_password("ann", PASSWORD).await;
    assert_eq!(
        sign_in.error_code().await.as_deref(),
        Some("unencrypted_server")
    );
    assert!(sign_in.warns_unencrypted().await);
    app.screenshot("sign-in-unencrypted-warning").await;
    // Nothing reached the server: no auto token was made.
    let ann = hub.sign_in("ann", PASSWORD).await;
    assert!(ann.list_all_tokens().await.unwrap().is_empty());

    sign_in.choose_to_send_unencrypted().await;
    let home = sign_in.sign_in("ann", PASSWORD).await;
    assert_eq!(home.hand_off_state().await.as_deref(), Some("done"));
    app.quit().await;
}
