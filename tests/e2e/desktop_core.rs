//! The desktop app's core without a window, against a real hubkeyd and a real keyring:
//! sign-in with and without a second factor, the silent auto token and docker hand-off,
//! restoring after a restart, signing out, and the errors the sign-in screen shows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use hubkey_api::{AccessToken, Origin};
use hubkey_desktop::{
    Account, Desktop, DesktopError, HandOff, ServerUrl, SignInStep, SkipReason, TokenScope,
};
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::Hubkeyd;
use hubkey_keyring::{docker, OsKeyring, SecretStore, SERVICE};
use tempfile::TempDir;

pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const REGISTRY: &str = "127.0.0.1:5000";
pub(crate) const DEVICE: &str = "ann's laptop";

/// `url` as the desktop core takes a server address (parsed once, as the shell does).
pub(crate) fn server(url: &str) -> ServerUrl {
    ServerUrl::parse(url).unwrap()
}

/// A hub announcing the registry `REGISTRY`, with the user ann.
pub(crate) async fn hub() -> Hubkeyd {
    hub_on(hubkeyd::clock::Clock::system(), |hub| hub).await
}

/// A hubkeyd announcing [`REGISTRY`], with the user ann, configured by `configure` and
/// reading `now` from `clock` (a test turns a `ManualClock` instead of waiting).
pub(crate) async fn hub_on(
    clock: impl Into<hubkeyd::clock::Clock>,
    configure: impl FnOnce(hubkeyd::Hub) -> hubkeyd::Hub,
) -> Hubkeyd {
    let hub = Hubkeyd::start_on_clock(
        tempfile::tempdir().unwrap(),
        "127.0.0.1:0",
        hubkeyd::Site {
            public_url: None,
            registry_host: Some(REGISTRY.into()),
        },
        configure,
        clock,
    )
    .await;
    hub.add_user("ann", PASSWORD).await;
    hub
}

/// A hub, an empty keyring and an empty docker home.
pub(crate) async fn setup() -> (Hubkeyd, Keyring, DockerHome) {
    (hub().await, keyring(), DockerHome::new())
}

/// The real OS keyring of a test: a private bus with an unlocked GNOME Keyring, which this
/// process (one test per process under nextest) is pointed at.
pub(crate) struct Keyring {
    pub(crate) session: KeyringSession,
    pub(crate) store: Arc<dyn SecretStore>,
}

pub(crate) fn keyring() -> Keyring {
    let session = KeyringSession::start();
    session.install_env();
    Keyring {
        session,
        store: Arc::new(OsKeyring::new()),
    }
}

/// A home for the docker CLI's config.json.
pub(crate) struct DockerHome {
    dir: TempDir,
}

impl DockerHome {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join(".docker").join("config.json")
    }

    pub(crate) fn write(&self, contents: &[u8]) {
        std::fs::create_dir_all(self.config().parent().unwrap()).unwrap();
        std::fs::write(self.config(), contents).unwrap();
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.config()).unwrap()).unwrap()
    }
}

pub(crate) fn desktop(keyring: &Keyring, home: &DockerHome) -> Desktop {
    Desktop::new(Arc::clone(&keyring.store), home.config(), DEVICE)
}

pub(crate) fn signed_in(step: SignInStep) -> Account {
    match step {
        SignInStep::SignedIn(account) => account,
        SignInStep::CodeRequired => panic!("no code was expected"),
    }
}

/// Signs ann in with a fresh app instance (no second factor).
pub(crate) async fn sign_in_ann(hub: &Hubkeyd, keyring: &Keyring, home: &DockerHome) -> Account {
    signed_in(
        desktop(keyring, home)
            .sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    )
}

/// The account's tokens as `app`'s own session lists them: `hub.sign_in` cannot pass a second
/// factor.
async fn tokens_seen_by(app: &Desktop, hub: &Hubkeyd) -> Vec<AccessToken> {
    app.session_client(&server(&hub.url))
        .unwrap()
        .list_all_tokens()
        .await
        .unwrap()
}

/// The account's auto tokens, as a separately signed-in client sees them.
pub(crate) async fn auto_tokens(hub: &Hubkeyd) -> Vec<AccessToken> {
    hub.sign_in("ann", PASSWORD)
        .await
        .list_all_tokens()
        .await
        .unwrap()
        .into_iter()
        .filter(|token| token.generated_by == Origin::Auto)
        .collect()
}

/// The auto token kept as the docker credential of `REGISTRY`.
pub(crate) fn stored_token(keyring: &Keyring) -> Option<String> {
    docker::get(keyring.store.as_ref(), REGISTRY)
        .unwrap()
        .map(|credential| {
            assert_eq!(credential.username, "ann");
            credential.secret.expose().to_owned()
        })
}

pub(crate) fn session_entry(keyring: &Keyring, hub: &Hubkeyd) -> Option<serde_json::Value> {
    keyring
        .store
        .get(&format!("session:{}", hub.url))
        .unwrap()
        .map(|text| serde_json::from_str(text.expose()).unwrap())
}

pub(crate) fn assert_handed_off(account: &Account, config: &Path) {
    assert_eq!(
        account.docker_hand_off,
        HandOff::Done {
            registry: REGISTRY.into(),
            config_path: config.to_path_buf(),
        }
    );
}

fn totp_now(secret: &[u8]) -> String {
    hubkeyd::totp::code_at_step(secret, hubkeyd::totp::step_at(Utc::now().timestamp()))
}

#[tokio::test]
async fn sign_in_creates_the_auto_token_and_hands_it_to_docker() {
    let (hub, keyring, home) = setup().await;
    home.write(br#"{"auths": {"quay.io": {"auth": "eA=="}}, "currentContext": "default"}"#);

    let account = sign_in_ann(&hub, &keyring, &home).await;
    assert_eq!(account.username, "ann");
    assert_eq!(account.registry.as_deref(), Some(REGISTRY));
    assert_handed_off(&account, &home.config());

    let tokens = auto_tokens(&hub).await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(
        tokens[0].token_label.contains(DEVICE),
        "{}",
        tokens[0].token_label
    );
    assert_eq!(tokens[0].client_id, "hubkey");

    let secret = stored_token(&keyring).expect("the auto token is in the keyring");
    let outside = keyring
        .session
        .secret_tool_lookup(SERVICE, &docker::account(REGISTRY))
        .expect("secret-tool finds the docker credential");
    let outside: serde_json::Value = serde_json::from_str(&outside).unwrap();
    assert_eq!(outside["Secret"], secret.as_str());
    assert_eq!(outside["Username"], "ann");
    let exchanged = hub.client().auth_token("ann", &secret).await;
    assert!(exchanged.is_ok(), "the stored token is the live auto token");
    let session = session_entry(&keyring, &hub).expect("the session is in the keyring");
    assert_eq!(session["auto_token_uuid"], tokens[0].uuid.to_string());

    let config = home.json();
    assert_eq!(config["credHelpers"][REGISTRY], "hubkey");
    assert_eq!(config["auths"]["quay.io"]["auth"], "eA==");
    let keys: Vec<&String> = config.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["auths", "currentContext", "credHelpers"]);
}

/// A store that counts the reads of session entries, over the test's real keyring.
struct CountingReads {
    inner: Arc<dyn SecretStore>,
    session_reads: std::sync::atomic::AtomicUsize,
}

impl SecretStore for CountingReads {
    fn get(
        &self,
        account: &str,
    ) -> Result<Option<hubkey_keyring::Sensitive>, hubkey_keyring::SecretError> {
        if account.starts_with(hubkey_desktop::SESSION_ACCOUNT_PREFIX) {
            self.session_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.get(account)
    }
    fn set(&self, account: &str, secret: &str) -> Result<(), hubkey_keyring::SecretError> {
        self.inner.set(account, secret)
    }
    fn delete(&self, account: &str) -> Result<(), hubkey_keyring::SecretError> {
        self.inner.delete(account)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[tokio::test]
async fn a_sign_in_reads_the_session_entry_once_with_or_without_a_second_factor() {
    let (hub, keyring, home) = setup().await;
    let store = Arc::new(CountingReads {
        inner: Arc::clone(&keyring.store),
        session_reads: Default::default(),
    });
    let reads = || {
        store
            .session_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let app = Desktop::new(store.clone(), home.config(), DEVICE);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    assert_eq!(reads(), 1);
    // Again, over the first sign-in's entry (whose auto token it replaces).
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    assert_eq!(reads(), 2);
    assert_eq!(auto_tokens(&hub).await.len(), 1);

    let secret = hub
        .hub
        .enable_totp("ann", chrono::Utc::now())
        .await
        .unwrap();
    let step = app
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap();
    assert_eq!(step, SignInStep::CodeRequired);
    app.submit_code(&totp_now(&secret)).await.unwrap();
    assert_eq!(reads(), 3);
    let tokens = tokens_seen_by(&app, &hub).await;
    let autos = tokens
        .iter()
        .filter(|token| token.generated_by == Origin::Auto);
    assert_eq!(autos.count(), 1, "the earlier auto token is gone");
}

#[tokio::test]
async fn two_factor_sign_in_asks_for_the_code_and_refuses_a_wrong_one() {
    let hub = hub().await;
    let secret = hub
        .hub
        .enable_totp("ann", chrono::Utc::now())
        .await
        .unwrap();
    let keyring = keyring();
    let home = DockerHome::new();
    let desktop = desktop(&keyring, &home);

    let step = desktop
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap();
    assert_eq!(step, SignInStep::CodeRequired);
    assert!(stored_token(&keyring).is_none());

    let right = totp_now(&secret);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let err = desktop.submit_code(&wrong).await.unwrap_err();
    assert_eq!(err.code(), "wrong_code", "{err:?}");

    let account = desktop.submit_code(&right).await.unwrap();
    assert_eq!(account.username, "ann");
    assert_handed_off(&account, &home.config());
    assert!(stored_token(&keyring).is_some());
    let tokens = tokens_seen_by(&desktop, &hub).await;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].generated_by, Origin::Auto);

    let err = desktop.submit_code(&right).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "the challenge was used up");
}

#[tokio::test]
async fn an_expired_two_factor_challenge_starts_the_sign_in_over() {
    let clock = hubkeyd::clock::ManualClock::new(Utc::now());
    let hub = hub_on(clock.clone(), |hub| hub).await;
    let secret = hub.hub.enable_totp("ann", clock.now()).await.unwrap();
    let (keyring, home) = (keyring(), DockerHome::new());
    let desktop = desktop(&keyring, &home);
    let step = desktop
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap();
    assert_eq!(step, SignInStep::CodeRequired);

    // The person comes back after the challenge's five minutes: even the right code is told
    // apart from a wrong one (the server's "challenge_expired" code), and the sign-in starts
    // over from the password instead of asking for another code.
    clock.advance(hubkeyd::session::CHALLENGE_TTL + chrono::Duration::seconds(1));
    let right =
        hubkeyd::totp::code_at_step(&secret, hubkeyd::totp::step_at(clock.now().timestamp()));
    let err = desktop.submit_code(&right).await.unwrap_err();
    assert_eq!(err, DesktopError::SessionEnded);
    let err = desktop.submit_code(&right).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "no challenge waits any more");
    assert!(stored_token(&keyring).is_none());

    // Starting over works, and the expired attempt left nothing behind on the server.
    let step = desktop
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap();
    assert_eq!(step, SignInStep::CodeRequired);
    desktop.submit_code(&right).await.unwrap();
    assert_eq!(tokens_seen_by(&desktop, &hub).await.len(), 1);
}

#[tokio::test]
async fn a_new_app_instance_restores_the_session_from_the_keyring() {
    let (hub, keyring, home) = setup().await;
    sign_in_ann(&hub, &keyring, &home).await;
    let before = session_entry(&keyring, &hub).unwrap();

    let restarted = desktop(&keyring, &home);
    assert!(restarted.session_client(&server(&hub.url)).is_none());
    let account = restarted
        .restore(&server(&hub.url))
        .await
        .unwrap()
        .expect("a stored session");
    assert_eq!(account.username, "ann");
    assert_handed_off(&account, &home.config());
    let after = session_entry(&keyring, &hub).unwrap();
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "the rotated refresh token is stored"
    );
    let client = restarted.session_client(&server(&hub.url)).unwrap();
    assert_eq!(client.list_all_tokens().await.unwrap().len(), 1);

    // And again: the stored refresh token is the live one.
    let again = desktop(&keyring, &home)
        .restore(&server(&hub.url))
        .await
        .unwrap();
    assert!(again.is_some());
}

/// A window made again while the app stayed signed in (in the tray) resumes the live
/// session: no refresh (the stored refresh token is untouched), and a `config.json` entry
/// removed meanwhile is written again and recorded with the session, as a restore does.
#[tokio::test]
async fn a_reopened_window_resumes_the_live_session_without_a_refresh() {
    let (hub, keyring, home) = setup().await;
    // The docker CLI already used hubkey for the registry: the sign-in wrote nothing.
    home.write(format!(r#"{{"credHelpers":{{"{REGISTRY}":"hubkey"}}}}"#).as_bytes());
    let app = desktop(&keyring, &home);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let before = session_entry(&keyring, &hub).unwrap();
    assert_eq!(
        before["docker_entry"],
        serde_json::json!({"state": "not_written"})
    );

    let account = app
        .resume(&server(&hub.url))
        .await
        .unwrap()
        .expect("the live session");
    assert_eq!(account.username, "ann");
    assert_eq!(account.registry.as_deref(), Some(REGISTRY));
    assert_handed_off(&account, &home.config());
    assert_eq!(session_entry(&keyring, &hub).unwrap(), before);
    assert_eq!(tokens_seen_by(&app, &hub).await.len(), 1);

    // The person removed the entry while the window was closed: written again, and now
    // recorded as written by hubkey so that sign-out removes it.
    home.write(b"{}");
    let account = app.resume(&server(&hub.url)).await.unwrap().unwrap();
    assert_handed_off(&account, &home.config());
    assert_eq!(home.json()["credHelpers"][REGISTRY], "hubkey");
    let after = session_entry(&keyring, &hub).unwrap();
    assert_eq!(after["refresh_token"], before["refresh_token"]);
    assert_eq!(
        after["docker_entry"],
        serde_json::json!({"state": "written", "previous": null})
    );

    // Another instance holds no live session: it restores from the keyring instead.
    assert_eq!(
        desktop(&keyring, &home)
            .resume(&server(&hub.url))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn restore_without_a_stored_session_is_nothing() {
    let (hub, keyring, home) = setup().await;
    assert_eq!(
        desktop(&keyring, &home)
            .restore(&server(&hub.url))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_ended_session_is_cleaned_up_on_restore() {
    let (hub, keyring, home) = setup().await;
    sign_in_ann(&hub, &keyring, &home).await;
    // Someone else uses the refresh token, then its successor: the stored one is spent, past
    // the one retry a lost answer is allowed.
    let session = session_entry(&keyring, &hub).unwrap();
    let next = hub
        .client()
        .refresh(session["refresh_token"].as_str().unwrap())
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    hub.client().refresh(&next).await.unwrap();

    let err = desktop(&keyring, &home)
        .restore(&server(&hub.url))
        .await
        .unwrap_err();
    // The spent token presented again: the server revoked the session for its reuse, and
    // the app says so.
    assert_eq!(err, DesktopError::SessionRevoked);
    assert!(session_entry(&keyring, &hub).is_none());
    assert!(stored_token(&keyring).is_none());
    assert!(home.json().get("credHelpers").is_none());
}

#[tokio::test]
async fn restore_keeps_everything_while_the_server_is_down() {
    let (hub, keyring, home) = setup().await;
    sign_in_ann(&hub, &keyring, &home).await;
    let url = hub.url.clone();
    let before = session_entry(&keyring, &hub).unwrap();
    let data = hub.stop().await;

    let err = desktop(&keyring, &home)
        .restore(&server(&url))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unreachable", "{err:?}");
    assert!(err.is_retryable());
    let after: serde_json::Value = serde_json::from_str(
        keyring
            .store
            .get(&format!("session:{url}"))
            .unwrap()
            .unwrap()
            .expose(),
    )
    .unwrap();
    assert_eq!(before, after);
    assert!(stored_token(&keyring).is_some());
    assert_eq!(home.json()["credHelpers"][REGISTRY], "hubkey");
    drop(data);
}

#[tokio::test]
async fn sign_out_cleans_the_keyring_the_docker_config_and_the_server() {
    let (hub, keyring, home) = setup().await;
    home.write(br#"{"credHelpers": {"gcr.io": "gcloud"}}"#);
    let desktop = desktop(&keyring, &home);
    signed_in(
        desktop
            .sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let client = desktop.session_client(&server(&hub.url)).unwrap();
    assert_eq!(auto_tokens(&hub).await.len(), 1);

    let report = desktop.sign_out(&server(&hub.url)).await.unwrap();
    assert!(report.not_done.is_empty(), "{report:?}");
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(session_entry(&keyring, &hub).is_none());
    assert!(stored_token(&keyring).is_none());
    assert_eq!(
        home.json(),
        serde_json::json!({"credHelpers": {"gcr.io": "gcloud"}})
    );
    assert!(
        client.list_all_tokens().await.is_err(),
        "the session was revoked"
    );
    assert!(desktop.session_client(&server(&hub.url)).is_none());
}

#[tokio::test]
async fn sign_out_after_a_restart_still_deletes_the_auto_token() {
    let (hub, keyring, home) = setup().await;
    sign_in_ann(&hub, &keyring, &home).await;
    let report = desktop(&keyring, &home)
        .sign_out(&server(&hub.url))
        .await
        .unwrap();
    assert!(report.not_done.is_empty(), "{report:?}");
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(session_entry(&keyring, &hub).is_none());
    assert!(stored_token(&keyring).is_none());
}

#[tokio::test]
async fn an_unparsable_docker_config_is_left_alone_and_sign_in_still_works() {
    let (hub, keyring, home) = setup().await;
    let original = b"{\"auths\": {\"quay.io\": \n// half-edited by hand";
    home.write(original);

    let account = sign_in_ann(&hub, &keyring, &home).await;
    match &account.docker_hand_off {
        HandOff::Skipped { reason, message } => {
            assert_eq!(*reason, SkipReason::DockerConfigUnparsable);
            assert!(message.contains("config.json"), "{message}");
        }
        other => panic!("expected the hand-off to be skipped, got {other:?}"),
    }
    assert_eq!(std::fs::read(home.config()).unwrap(), original);
    assert!(stored_token(&keyring).is_some());
    assert_eq!(auto_tokens(&hub).await.len(), 1);

    let report = desktop(&keyring, &home)
        .sign_out(&server(&hub.url))
        .await
        .unwrap();
    assert_eq!(std::fs::read(home.config()).unwrap(), original);
    // The app wrote nothing to the file, so its sign-out has nothing there to undo (before
    // it kept a record of what it wrote, it reported the entry it could not look for).
    assert!(report.not_done.is_empty(), "{report:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let keyring = keyring();
    let home = DockerHome::new();

    let err = desktop(&keyring, &home)
        .sign_in(&server(&url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unreachable", "{err:?}");
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(json["code"], "unreachable");
    assert!(json["message"].as_str().unwrap().contains(&url));
    assert!(!home.config().exists());
}

#[tokio::test]
async fn a_wrong_password_is_wrong_credentials() {
    let (hub, keyring, home) = setup().await;

    let err = desktop(&keyring, &home)
        .sign_in(&server(&hub.url), "ann", "not the password")
        .await
        .unwrap_err();
    assert_eq!(err, DesktopError::WrongCredentials);
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        serde_json::json!({"code": "wrong_credentials", "message": "Wrong user name or password."})
    );
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(session_entry(&keyring, &hub).is_none());
    assert!(!home.config().exists());
}

#[tokio::test]
async fn without_a_keyring_sign_in_fails_before_anything_is_created() {
    let hub = hub().await;
    let home = DockerHome::new();
    let bus = KeyringSession::without_secret_service();
    bus.install_env();
    let desktop = Desktop::new(Arc::new(OsKeyring::new()), home.config(), DEVICE);

    let err = desktop
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "keyring_unavailable", "{err:?}");
    assert!(err.to_string().contains("Secret Service"), "{err}");
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(!home.config().exists());
}

/// The Security screen's core, with this app signed in as ann.
mod tokens {
    use hubkey_api::Scope;
    use hubkey_desktop::{Rotation, TokenChunk, TokenOrigin, TokenScope, TokenStatus};

    use super::*;

    async fn signed_in_desktop(hub: &Hubkeyd, keyring: &Keyring, home: &DockerHome) -> Desktop {
        let app = desktop(keyring, home);
        signed_in(
            app.sign_in(&server(&hub.url), "ann", PASSWORD)
                .await
                .unwrap(),
        );
        app
    }

    #[tokio::test]
    async fn an_export_is_dated_by_the_cores_clock() {
        let (hub, keyring, home) = setup().await;
        let day = chrono::DateTime::parse_from_rfc3339("2031-02-03T04:05:06Z")
            .unwrap()
            .to_utc();
        let clock = hubkey_desktop::ManualClock::new(day);
        let app = desktop(&keyring, &home).with_clock(clock.clone());
        signed_in(
            app.sign_in(&server(&hub.url), "ann", PASSWORD)
                .await
                .unwrap(),
        );

        let csv = app
            .export_tokens(&server(&hub.url), hubkey_desktop::ExportFormat::Csv)
            .await
            .unwrap();
        assert_eq!(csv.suggested_name, "hubkey-tokens-ann-2031-02-03.csv");
        clock.advance(chrono::TimeDelta::days(1));
        let json = app
            .export_tokens(&server(&hub.url), hubkey_desktop::ExportFormat::Json)
            .await
            .unwrap();
        assert_eq!(json.suggested_name, "hubkey-tokens-ann-2031-02-04.json");
        let document: serde_json::Value = serde_json::from_str(&json.content).unwrap();
        assert_eq!(document["exported_at"], "2031-02-04T04:05:06Z");
        assert_eq!(document["server_url"], hub.url.as_str());
    }

    #[tokio::test]
    async fn the_list_has_every_token_across_pages_and_marks_this_device() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let ann = hub.sign_in("ann", PASSWORD).await;
        for n in 0..105 {
            hubkey_e2e::server::manual_token(&ann, &format!("script {n}"), Scope::Read).await;
        }
        let rows = app.list_tokens(&server(&hub.url)).await.unwrap();
        assert_eq!(rows.len(), 106);
        let autos: Vec<_> = rows
            .iter()
            .filter(|row| row.origin == TokenOrigin::Auto)
            .collect();
        assert_eq!(autos.len(), 1);
        assert!(autos[0].this_device);
        assert_eq!(autos[0].scope_words, "read, write & delete");
        assert!(rows
            .iter()
            .filter(|row| row.origin == TokenOrigin::Manual)
            .all(|row| !row.this_device && row.scope_words == "read"));
    }

    /// The list as the Security screen gets it: the count and every chunk sent.
    async fn in_chunks(app: &Desktop, hub: &Hubkeyd) -> (usize, Vec<TokenChunk>) {
        let chunks = std::sync::Mutex::new(Vec::new());
        let count = app
            .list_tokens_in_chunks(&server(&hub.url), |chunk| {
                chunks.lock().unwrap().push(chunk.clone());
            })
            .await
            .unwrap();
        (count, chunks.into_inner().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_list_comes_in_chunks_of_a_thousand_rows_in_the_lists_order() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let ann = hub.sign_in("ann", PASSWORD).await;
        let made: Vec<usize> = (0..2_105).collect();
        for batch in made.chunks(16) {
            futures_util::future::join_all(batch.iter().map(|n| {
                let (ann, label) = (&ann, format!("script {n}"));
                async move { hubkey_e2e::server::manual_token(ann, &label, Scope::Read).await }
            }))
            .await;
        }

        let (count, chunks) = in_chunks(&app, &hub).await;
        let sizes: Vec<usize> = chunks.iter().map(|chunk| chunk.rows.len()).collect();
        assert_eq!(
            sizes,
            [1_000, 1_000, 106],
            "2 105 manual tokens and this device's"
        );
        let marks: Vec<(bool, bool)> = chunks.iter().map(|c| (c.restart, c.last)).collect();
        assert_eq!(marks, [(true, false), (false, false), (false, true)]);
        assert_eq!(count, 2_106);

        // The same rows, in the same order, as the list in one piece.
        let streamed: Vec<_> = chunks.into_iter().flat_map(|chunk| chunk.rows).collect();
        let whole = app.list_tokens(&server(&hub.url)).await.unwrap();
        assert_eq!(streamed, whole);
        let distinct: std::collections::HashSet<_> = streamed.iter().map(|r| r.uuid).collect();
        assert_eq!(distinct.len(), streamed.len());
    }

    #[tokio::test]
    async fn an_empty_list_is_one_last_chunk() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let own = auto_tokens(&hub).await;
        assert_eq!(own.len(), 1);
        app.delete_token(&server(&hub.url), own[0].uuid)
            .await
            .unwrap();

        let (count, chunks) = in_chunks(&app, &hub).await;
        assert_eq!(count, 0);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].restart && chunks[0].last && chunks[0].rows.is_empty());
    }

    /// The kept list's chunks as the Security screen gets them before the server's.
    fn kept_chunks(app: &Desktop, hub: &Hubkeyd) -> (usize, Vec<TokenChunk>) {
        let chunks = std::sync::Mutex::new(Vec::new());
        let count = app.kept_tokens_in_chunks(&server(&hub.url), |chunk| {
            chunks.lock().unwrap().push(chunk.clone());
        });
        (count, chunks.into_inner().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_list_is_kept_without_secrets_follows_this_apps_actions_and_goes_with_the_session(
    ) {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let url = server(&hub.url);
        // Nothing kept before a listing.
        assert_eq!(kept_chunks(&app, &hub), (0, vec![]));
        let ann = hub.sign_in("ann", PASSWORD).await;
        let ci = hubkey_e2e::server::manual_token(&ann, "ci", Scope::Read).await;
        let gone = hubkey_e2e::server::manual_token(&ann, "gone", Scope::Read).await;
        let (_, listed) = in_chunks(&app, &hub).await;
        let listed: Vec<_> = listed.into_iter().flat_map(|chunk| chunk.rows).collect();

        // The same rows, marked as kept at the core's time; no value in them.
        let (count, kept) = kept_chunks(&app, &hub);
        assert_eq!(count, 3);
        assert_eq!(kept.len(), 1);
        assert!(kept[0].restart && kept[0].last && kept[0].kept_at.is_some());
        assert_eq!(kept[0].rows, listed);
        let json = serde_json::to_string(&kept).unwrap();
        for token in [&ci, &gone] {
            assert!(!json.contains(&token.token), "a token value was kept");
        }
        let secret = stored_token(&keyring).expect("the docker credential");
        assert!(!json.contains(&secret), "the auto token was kept");

        // A change elsewhere shows only in the next listing; this app's own show at once.
        ann.delete_token(gone.uuid).await.unwrap();
        app.set_token_active(&url, ci.uuid, false).await.unwrap();
        let made = app
            .create_token(&url, "made here", TokenScope::Read, None)
            .await
            .unwrap();
        let rows = kept_chunks(&app, &hub).1.remove(0).rows;
        let labels: Vec<(&str, TokenStatus)> = rows
            .iter()
            .map(|row| (row.label.as_str(), row.state))
            .collect();
        assert_eq!(rows[0].uuid, made.row.uuid);
        assert!(
            labels.contains(&("ci", TokenStatus::Inactive)),
            "{labels:?}"
        );
        assert!(
            labels.contains(&("gone", TokenStatus::Active)),
            "{labels:?}"
        );
        // Rotated here: the successor first, the old row pointing at it.
        let Rotation::Shown(successor) = app.rotate_token(&url, made.row.uuid, 600).await.unwrap()
        else {
            panic!("a manual token's successor is shown once");
        };
        let rows = kept_chunks(&app, &hub).1.remove(0).rows;
        assert_eq!(rows[0].uuid, successor.row.uuid);
        let old = rows.iter().find(|row| row.uuid == made.row.uuid).unwrap();
        assert_eq!(old.rotated_to, Some(successor.row.uuid));
        assert!(old.overlap_until.is_some_and(|until| until > Utc::now()));
        // Deleted here: gone at once, without a listing.
        app.delete_token(&url, successor.row.uuid).await.unwrap();
        let rows = kept_chunks(&app, &hub).1.remove(0).rows;
        assert!(rows.iter().all(|row| row.uuid != successor.row.uuid));
        assert_eq!(rows.len(), 4, "made, the auto token, ci, gone as it was");
        // The next listing replaces the kept list whole.
        in_chunks(&app, &hub).await;
        let rows = kept_chunks(&app, &hub).1.remove(0).rows;
        assert!(rows.iter().all(|row| row.uuid != gone.uuid));
        assert_eq!(
            rows.len(),
            3,
            "made (rotated away), ci and this device's auto token"
        );

        // Sign-out forgets it.
        app.sign_out(&url).await.unwrap();
        assert_eq!(kept_chunks(&app, &hub), (0, vec![]));
    }

    #[tokio::test]
    async fn deactivate_reactivate_and_delete_reach_the_server() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let ann = hub.sign_in("ann", PASSWORD).await;
        let token = hubkey_e2e::server::manual_token(&ann, "ci", Scope::Write).await;

        let row = app
            .set_token_active(&server(&hub.url), token.uuid, false)
            .await
            .unwrap();
        assert_eq!(row.state, TokenStatus::Inactive);
        assert!(!ann.get_token(token.uuid).await.unwrap().is_active);
        let row = app
            .set_token_active(&server(&hub.url), token.uuid, true)
            .await
            .unwrap();
        assert_eq!(row.state, TokenStatus::Active);
        assert!(ann.get_token(token.uuid).await.unwrap().is_active);

        app.delete_token(&server(&hub.url), token.uuid)
            .await
            .unwrap();
        assert!(matches!(
            ann.get_token(token.uuid).await,
            Err(hubkey_client::ClientError::NotFound { .. })
        ));
        // A token that is gone says so instead of pretending.
        assert!(app
            .delete_token(&server(&hub.url), token.uuid)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_created_token_works_once_shown() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let expires = Utc::now() + chrono::Duration::days(30);
        let created = app
            .create_token(
                &server(&hub.url),
                "laptop script",
                TokenScope::Read,
                Some(expires),
            )
            .await
            .unwrap();
        assert_eq!(created.row.origin, TokenOrigin::Manual);
        assert_eq!(created.row.label, "laptop script");
        assert!(created.row.expires_at.is_some());
        assert!(!format!("{created:?}").contains(&created.secret));
        hub.client()
            .auth_token("ann", &created.secret)
            .await
            .expect("the shown value signs in");

        let empty = app
            .create_token(&server(&hub.url), "  ", TokenScope::Read, None)
            .await
            .unwrap_err();
        assert_eq!(empty.code(), "invalid_input");
    }

    #[tokio::test]
    async fn a_shown_value_is_kept_in_memory_until_confirmed_copied_or_signed_out() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let url = server(&hub.url);
        assert!(app.unconfirmed_token(&url).is_none());
        let created = app
            .create_token(&url, "ci", TokenScope::Read, None)
            .await
            .unwrap();
        // The window closed before Done: a new page gets the same value again.
        let again = app.unconfirmed_token(&url).expect("kept until confirmed");
        assert_eq!(again.secret, created.secret);
        assert_eq!(again.row.uuid, created.row.uuid);
        assert!(app.has_unconfirmed_token());
        // Another token's confirmation leaves it; its own forgets it.
        app.confirm_copied(uuid::Uuid::from_u128(7));
        assert!(app.unconfirmed_token(&url).is_some());
        app.confirm_copied(created.row.uuid);
        assert!(app.unconfirmed_token(&url).is_none());
        assert!(!app.has_unconfirmed_token());

        // A rotated manual token's successor is kept the same way; sign-out forgets it.
        let rotated = match app.rotate_token(&url, created.row.uuid, 0).await.unwrap() {
            Rotation::Shown(successor) => successor,
            Rotation::Kept { .. } => panic!("a manual token's successor is shown"),
        };
        let kept = app.unconfirmed_token(&url).expect("the successor is kept");
        assert_eq!(kept.secret, rotated.secret);
        assert!(!format!("{app:?}").contains(&rotated.secret));
        app.sign_out(&url).await.unwrap();
        assert!(app.unconfirmed_token(&url).is_none());
        assert!(!app.has_unconfirmed_token());
    }

    /// The manual token's show-once value, from a rotation's answer.
    fn shown(rotation: Rotation) -> hubkey_desktop::CreatedToken {
        match rotation {
            Rotation::Shown(created) => created,
            Rotation::Kept { .. } => panic!("a manual token's successor is shown"),
        }
    }

    #[tokio::test]
    async fn rotate_goes_through_the_server_and_the_old_token_works_for_the_overlap() {
        let clock = hubkey_desktop::ManualClock::new(Utc::now());
        let hub = hub_on(clock.clone(), |hub| hub).await;
        let (keyring, home) = (keyring(), DockerHome::new());
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let old = app
            .create_token(&server(&hub.url), "deploy", TokenScope::Write, None)
            .await
            .unwrap();
        let new = shown(
            app.rotate_token(&server(&hub.url), old.row.uuid, 3600)
                .await
                .unwrap(),
        );
        assert_eq!(new.warning, None);
        assert_ne!(new.row.uuid, old.row.uuid);
        assert_eq!(new.row.label, "deploy");
        assert_eq!(new.row.scope, Some(TokenScope::Write));
        assert_eq!(new.row.rotated_from, Some(old.row.uuid));
        hub.client().auth_token("ann", &new.secret).await.unwrap();
        // The old one works during the overlap, and is refused once it is over.
        hub.client().auth_token("ann", &old.secret).await.unwrap();
        let rows = app.list_tokens(&server(&hub.url)).await.unwrap();
        let old_row = rows.iter().find(|row| row.uuid == old.row.uuid).unwrap();
        assert_eq!(old_row.rotated_to, Some(new.row.uuid));
        assert!(old_row.overlap_until.is_some());
        clock.advance(chrono::TimeDelta::seconds(3601));
        assert!(hub.client().auth_token("ann", &old.secret).await.is_err());

        // A rotated token is not rotated twice; an overlap beyond 7 days is refused here.
        let twice = app
            .rotate_token(&server(&hub.url), old.row.uuid, 0)
            .await
            .unwrap_err();
        assert_eq!(twice.code(), "invalid_input");
        let long = app
            .rotate_token(&server(&hub.url), new.row.uuid, 7 * 24 * 3600 + 1)
            .await
            .unwrap_err();
        assert_eq!(long.code(), "invalid_input");
    }

    #[tokio::test]
    async fn rotating_this_devices_auto_token_replaces_the_docker_credential() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let before = stored_token(&keyring).expect("signed in");
        let auto = app
            .list_tokens(&server(&hub.url))
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.this_device)
            .unwrap();
        let rotation = app
            .rotate_token(&server(&hub.url), auto.uuid, 0)
            .await
            .unwrap();
        let Rotation::Kept { row, warning } = rotation else {
            panic!("an auto token's value never reaches the screen");
        };
        assert_eq!(warning, None);
        assert_eq!(row.rotated_from, Some(auto.uuid));
        let after = stored_token(&keyring).expect("still signed in");
        assert_ne!(after, before);
        hub.client().auth_token("ann", &after).await.unwrap();
        assert!(hub.client().auth_token("ann", &before).await.is_err());
        // The successor is this device's token now, also after a restart.
        let rows = app.list_tokens(&server(&hub.url)).await.unwrap();
        assert!(rows.iter().any(|r| r.uuid == row.uuid && r.this_device));
        let restarted = desktop(&keyring, &home);
        restarted.restore(&server(&hub.url)).await.unwrap().unwrap();
        assert_eq!(
            restarted.session_auto_token(&server(&hub.url)),
            Some(row.uuid)
        );
    }

    #[tokio::test]
    async fn another_devices_auto_token_is_not_rotated() {
        let (hub, keyring, home) = setup().await;
        let app = signed_in_desktop(&hub, &keyring, &home).await;
        let ann = hub.sign_in("ann", PASSWORD).await;
        let other = ann.desktop_generate(None).await.unwrap();
        let refused = app
            .rotate_token(&server(&hub.url), other.data.uuid, 0)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "invalid_input");
        assert_eq!(
            ann.get_token(other.data.uuid).await.unwrap().rotated_to,
            None
        );
    }

    #[tokio::test]
    async fn without_a_session_the_list_says_sign_in_again() {
        let (hub, keyring, home) = setup().await;
        let app = desktop(&keyring, &home);
        assert_eq!(
            app.list_tokens(&server(&hub.url)).await.unwrap_err(),
            DesktopError::SessionEnded
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_actions_renew_an_expired_bearer_once_even_when_several_need_it() {
    // Bearers that live 2 to 3 seconds (a JWT's expiry is in whole seconds), on a server
    // clock the test turns past that instead of waiting.
    let clock = hubkeyd::clock::ManualClock::new(Utc::now());
    let hub = hub_on(clock.clone(), |hub| {
        hub.with_access_ttl(chrono::Duration::seconds(3))
    })
    .await;
    let bearer_expires = || clock.advance(chrono::Duration::seconds(4));
    let (keyring, home) = (keyring(), DockerHome::new());
    let app = desktop(&keyring, &home);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let stored_refresh = || session_entry(&keyring, &hub).unwrap()["refresh_token"].clone();
    let first_refresh = stored_refresh();

    bearer_expires();
    // The bearer has expired: the server refuses it as such ...
    let stale = app.session_client(&server(&hub.url)).unwrap();
    assert!(matches!(
        stale.list_tokens(1, 10).await,
        Err(hubkey_client::ClientError::Unauthorized { .. })
    ));
    // ... and three actions at once still all succeed, renewing it once between them (refresh
    // tokens are single use: a second renewal with the same one would end the session).
    let url = server(&hub.url);
    let (listed, created, again) = tokio::join!(
        app.list_tokens(&url),
        app.create_token(&url, "after expiry", TokenScope::Read, None),
        app.list_tokens(&url),
    );
    let (listed, created, again) = (listed.unwrap(), created.unwrap(), again.unwrap());
    assert!(listed.iter().any(|row| row.this_device), "{listed:?}");
    assert!(created.secret.starts_with("hkpat_"));
    assert!(!again.is_empty());
    // The renewal was stored: a new refresh token replaced the used one.
    let second_refresh = stored_refresh();
    assert_ne!(first_refresh, second_refresh);

    // Each later expiry is renewed again, by whichever action meets it.
    bearer_expires();
    let row = app
        .set_token_active(&server(&hub.url), created.row.uuid, false)
        .await
        .unwrap();
    assert_eq!(row.state, hubkey_desktop::TokenStatus::Inactive);
    assert_ne!(stored_refresh(), second_refresh);
}
