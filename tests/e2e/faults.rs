//! The desktop core under faults, against the real hubkeyd, the real keyring and real file
//! systems: a server that is down, dies mid-session, answers 500s or answers slowly; a
//! keyring that is locked or goes away; a docker `config.json` that is corrupt, read-only or
//! on a full disk. Each fault must give a `DesktopError` that says what happened and what to
//! do, lose nothing (the keyring entries, the stored session and `config.json` are as
//! before), and go away with the fault: the same call succeeds once the fault is gone.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use hubkey_desktop::{
    next_delay, poll_once, Desktop, DesktopError, HandOff, SettingsFile, SkipReason, TokenScope,
    WatchCursor, WatchOutcome,
};
use hubkey_e2e::faults::{Fault, FaultProxy, Tmpfs};
use hubkey_e2e::Hubkeyd;

use crate::desktop_core::{
    assert_handed_off, auto_tokens, desktop, hub, keyring, server, sign_in_ann, signed_in,
    stored_token, DockerHome, Keyring, PASSWORD, REGISTRY,
};

/// The settings of the hub `hub()` starts, to start it again on the same port and data.
fn site() -> hubkeyd::Site {
    hubkeyd::Site {
        public_url: None,
        registry_host: Some(REGISTRY.into()),
    }
}

/// A free loopback port, as `host:port`, with nothing listening on it.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Everything a fault must not lose: the stored session, the docker credential in the
/// keyring and the bytes of `config.json`.
#[derive(Debug, PartialEq)]
struct Local {
    session: Option<serde_json::Value>,
    credential: Option<String>,
    config: Option<Vec<u8>>,
}

fn local(keyring: &Keyring, server_url: &str, home: &DockerHome) -> Local {
    let session = keyring
        .store
        .get(&format!("session:{server_url}"))
        .unwrap()
        .map(|text| serde_json::from_str(text.expose()).unwrap());
    Local {
        session,
        credential: stored_token(keyring),
        config: std::fs::read(home.config()).ok(),
    }
}

/// Asserts that `err` is `code` and that its message has each of `words` (what happened and
/// what to do), and that it carries no secret.
fn assert_error(err: &DesktopError, code: &str, words: &[&str]) {
    assert_eq!(err.code(), code, "{err:?}");
    let json = serde_json::to_value(err).unwrap();
    let message = json["message"].as_str().unwrap();
    for word in words {
        assert!(message.contains(word), "{message:?} does not say {word:?}");
    }
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(!message.contains("hkpat_"), "{message}");
}

/// One poll of the events feed as the app's watcher makes it: through the live session,
/// renewing an expired bearer.
async fn poll_feed(
    app: &Desktop,
    url: &str,
    cursor: &WatchCursor,
) -> Result<WatchOutcome, DesktopError> {
    let context = hubkey_desktop::AlertContext {
        settings: hubkey_desktop::AlertSettings::default(),
        this_device: app.user_agent(),
    };
    let context = &context;
    app.with_session(&server(url), |client, _| async move {
        poll_once(&client, cursor, Utc::now(), context).await
    })
    .await
}

#[tokio::test]
async fn server_down_at_start_is_unreachable_and_sign_in_works_once_it_is_up() {
    let address = free_address();
    let url = format!("http://{address}");
    let keyring = keyring();
    let home = DockerHome::new();
    home.write(br#"{"auths": {}}"#);
    let app = desktop(&keyring, &home);

    let err = app
        .sign_in(&server(&url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_error(&err, "unreachable", &[&url, "did not answer", "try again"]);
    assert!(err.is_retryable());
    assert_eq!(app.restore(&server(&url)).await.unwrap(), None);
    assert_eq!(
        local(&keyring, &url, &home),
        Local {
            session: None,
            credential: None,
            config: Some(br#"{"auths": {}}"#.to_vec()),
        }
    );

    // The server comes up on that address: the same call now signs in.
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), &address, site()).await;
    hub.add_user("ann", PASSWORD).await;
    let account = signed_in(app.sign_in(&server(&url), "ann", PASSWORD).await.unwrap());
    assert_handed_off(&account, &home.config());
    assert_eq!(auto_tokens(&hub).await.len(), 1);
}

#[tokio::test]
async fn server_dying_mid_session_loses_nothing_and_the_session_resumes_when_it_returns() {
    let hub = hub().await;
    let keyring = keyring();
    let home = DockerHome::new();
    let app = desktop(&keyring, &home);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let url = hub.url.clone();
    let address = hub.host().to_owned();
    let first = poll_feed(&app, &url, &WatchCursor::default())
        .await
        .unwrap();
    let before = local(&keyring, &url, &home);
    assert!(before.session.is_some() && before.credential.is_some());

    let data = hub.stop().await;

    // Every action says the server is not answering, and keeps everything.
    let err = app.list_tokens(&server(&url)).await.unwrap_err();
    assert_error(&err, "unreachable", &[&url, "try again"]);
    let err = app
        .create_token(&server(&url), "deploy", TokenScope::Read, None)
        .await
        .unwrap_err();
    assert_error(&err, "unreachable", &[&url, "try again"]);
    let poll = poll_feed(&app, &url, &first.cursor).await.unwrap_err();
    assert!(poll.is_retryable(), "{poll:?}");
    let interval = Duration::from_secs(60);
    assert_eq!(
        next_delay(interval, 1),
        2 * interval,
        "the watcher backs off"
    );
    let restarted = desktop(&keyring, &home);
    let err = restarted.restore(&server(&url)).await.unwrap_err();
    assert_error(&err, "unreachable", &[&url]);
    assert_eq!(local(&keyring, &url, &home), before);

    // The server comes back on the same port and data: the live session, the watcher and a
    // restored session all work again, and the retried action happens once.
    let hub = Hubkeyd::start_with(data, &address, site()).await;
    let created = app
        .create_token(&server(&url), "deploy", TokenScope::Read, None)
        .await
        .unwrap();
    let rows = app.list_tokens(&server(&url)).await.unwrap();
    assert_eq!(
        rows.iter().filter(|row| row.label == "deploy").count(),
        1,
        "the failed try made no token"
    );
    assert!(rows.iter().any(|row| row.uuid == created.row.uuid));
    let resumed = poll_feed(&app, &url, &first.cursor).await.unwrap();
    assert!(
        resumed.notifications.is_empty(),
        "{:?}",
        resumed.notifications
    );
    let account = restarted
        .restore(&server(&url))
        .await
        .unwrap()
        .expect("a session");
    assert_handed_off(&account, &home.config());
    assert_eq!(auto_tokens(&hub).await.len(), 1);
}

#[tokio::test]
async fn server_errors_are_reported_and_leave_no_half_sign_in() {
    let hub = hub().await;
    let proxy = FaultProxy::start(hub.host()).await;
    let url = proxy.url.clone();
    let keyring = keyring();
    let home = DockerHome::new();
    home.write(br#"{"credsStore": "desktop"}"#);
    let app = desktop(&keyring, &home);
    let untouched = local(&keyring, &url, &home);

    // Every answer a 500 (a broken reverse proxy in front of the hub).
    proxy.set(Fault::status(500));
    let err = app
        .sign_in(&server(&url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_error(&err, "server_error", &["HTTP 500", "try again"]);
    assert!(err.is_retryable());

    // Only the auto token's creation fails, after the password was accepted: the sign-in
    // is undone, nothing is stored and no token is left on the server.
    proxy.set(Fault::Status {
        path: "/v2/access-tokens/desktop-generate".into(),
        status: 503,
    });
    let err = app
        .sign_in(&server(&url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_error(&err, "server_error", &["HTTP 503", "try again"]);
    assert_eq!(local(&keyring, &url, &home), untouched);
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(app.session_client(&server(&url)).is_none());

    // The fault goes away: the same sign-in works.
    proxy.set(Fault::None);
    let account = signed_in(app.sign_in(&server(&url), "ann", PASSWORD).await.unwrap());
    assert_handed_off(&account, &home.config());
    assert_eq!(auto_tokens(&hub).await.len(), 1);
    let signed = local(&keyring, &url, &home);

    // 500s mid-session: the list, the watcher and a restore fail clearly and keep all.
    proxy.set(Fault::status(500));
    let err = app.list_tokens(&server(&url)).await.unwrap_err();
    assert_error(&err, "server_error", &["HTTP 500", "try again"]);
    let poll = poll_feed(&app, &url, &WatchCursor::default())
        .await
        .unwrap_err();
    assert!(poll.is_retryable(), "{poll:?}");
    let err = desktop(&keyring, &home)
        .restore(&server(&url))
        .await
        .unwrap_err();
    assert_error(&err, "server_error", &["HTTP 500"]);
    assert_eq!(local(&keyring, &url, &home), signed);
    let hits = proxy.faulted();
    assert!(hits >= 5, "{hits} requests were faulted");

    proxy.set(Fault::None);
    assert_eq!(app.list_tokens(&server(&url)).await.unwrap().len(), 1);
    poll_feed(&app, &url, &WatchCursor::default())
        .await
        .unwrap();
    let restored = desktop(&keyring, &home)
        .restore(&server(&url))
        .await
        .unwrap();
    assert!(restored.is_some());
}

#[tokio::test]
async fn slow_answers_time_out_with_a_clear_error_and_a_retry_succeeds() {
    let hub = hub().await;
    let proxy = FaultProxy::start(hub.host()).await;
    let url = proxy.url.clone();
    let keyring = keyring();
    let home = DockerHome::new();
    let timeout = Duration::from_secs(2);
    let app = desktop(&keyring, &home).with_timeout(timeout);

    // Answers later than the timeout: the call gives up on time and says so.
    proxy.set(Fault::slow(Duration::from_secs(20)));
    let started = Instant::now();
    let err = app
        .sign_in(&server(&url), "ann", PASSWORD)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_error(&err, "unreachable", &[&url, "timed out", "try again"]);
    println!("a 20 s answer with a {timeout:?} timeout: gave up after {waited:?}");
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    assert!(app.session_client(&server(&url)).is_none());
    assert_eq!(local(&keyring, &url, &home).session, None);

    // Slow but within the timeout is fine.
    proxy.set(Fault::slow(Duration::from_millis(300)));
    let account = signed_in(app.sign_in(&server(&url), "ann", PASSWORD).await.unwrap());
    assert_handed_off(&account, &home.config());
    let signed = local(&keyring, &url, &home);

    // The watcher's poll and the list time out too, and resume when answers are prompt.
    proxy.set(Fault::slow(Duration::from_secs(20)));
    let started = Instant::now();
    let poll = poll_feed(&app, &url, &WatchCursor::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < timeout + Duration::from_secs(3));
    assert!(poll.is_retryable(), "{poll:?}");
    let err = app.list_tokens(&server(&url)).await.unwrap_err();
    assert_error(&err, "unreachable", &["timed out"]);
    assert_eq!(local(&keyring, &url, &home), signed);

    proxy.set(Fault::None);
    poll_feed(&app, &url, &WatchCursor::default())
        .await
        .unwrap();
    assert!(!app.list_tokens(&server(&url)).await.unwrap().is_empty());
    // The first try's login may have reached the server; no auto token came of it.
    assert_eq!(auto_tokens(&hub).await.len(), 1);
}

#[tokio::test]
async fn a_lost_refresh_answer_is_asked_again_and_the_session_lives_on() {
    let hub = hub().await;
    let proxy = FaultProxy::start(hub.host()).await;
    let url = proxy.url.clone();
    let keyring = keyring();
    let home = DockerHome::new();
    signed_in(
        desktop(&keyring, &home)
            .sign_in(&server(&url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let signed = local(&keyring, &url, &home);

    // The server rotates the refresh token, but its answer never arrives.
    proxy.set(Fault::SlowAnswer {
        path: "/v2/users/refresh".into(),
        delay: Duration::from_secs(20),
    });
    let app = desktop(&keyring, &home).with_timeout(Duration::from_secs(1));
    let err = app.restore(&server(&url)).await.unwrap_err();
    assert_error(&err, "unreachable", &["timed out", "try again"]);
    assert_eq!(
        local(&keyring, &url, &home),
        signed,
        "nothing is dropped yet"
    );

    // The stored refresh token was spent by the lost rotation, but hubkeyd takes it once
    // more within its grace: the session, the docker credential and the auto token live on.
    proxy.set(Fault::None);
    let account = app
        .restore(&server(&url))
        .await
        .unwrap()
        .expect("the restored session");
    assert_handed_off(&account, &home.config());
    assert!(!app.list_tokens(&server(&url)).await.unwrap().is_empty());
    let now = local(&keyring, &url, &home);
    assert_eq!(now.credential, signed.credential);
    assert_ne!(
        now.session, signed.session,
        "the renewed refresh token was stored"
    );
    assert_eq!(auto_tokens(&hub).await.len(), 1);
}

#[tokio::test]
async fn a_locked_keyring_is_reported_and_unlocking_restores_the_session() {
    let hub = hub().await;
    let keyring = keyring();
    let home = DockerHome::new();
    sign_in_ann(&hub, &keyring, &home).await;
    let before = local(&keyring, &hub.url, &home);

    keyring.session.lock();
    let app = desktop(&keyring, &home);
    let err = app.restore(&server(&hub.url)).await.unwrap_err();
    assert_keyring_error(&err, "locked");
    // Signing in again is refused before the password leaves the app.
    let err = app
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_keyring_error(&err, "locked");
    assert_eq!(auto_tokens(&hub).await.len(), 1);
    // Signing out cannot clean what it cannot read: it says so and keeps it.
    let err = app.sign_out(&server(&hub.url)).await.unwrap_err();
    assert_keyring_error(&err, "locked");
    assert_eq!(home.json()["credHelpers"][REGISTRY], "hubkey");

    keyring.session.unlock();
    assert_eq!(local(&keyring, &hub.url, &home), before);
    let account = app
        .restore(&server(&hub.url))
        .await
        .unwrap()
        .expect("a session");
    assert_handed_off(&account, &home.config());
    assert!(app.list_tokens(&server(&hub.url)).await.is_ok());
}

/// A keyring failure: `keyring_unavailable` (or `keyring_timeout` when the keyring hangs)
/// naming `why`, and telling to unlock or start a keyring and try again.
fn assert_keyring_error(err: &DesktopError, why: &str) {
    match err.code().as_str() {
        "keyring_unavailable" => {
            assert_error(err, "keyring_unavailable", &[why, "unlock", "try again"]);
        }
        _ => assert_error(err, "keyring_timeout", &["unlock", "Try again"]),
    }
}

#[tokio::test]
async fn a_keyring_that_goes_away_is_reported_and_its_return_restores_the_session() {
    let hub = hub().await;
    let mut keyring = keyring();
    let home = DockerHome::new();
    sign_in_ann(&hub, &keyring, &home).await;
    let before = local(&keyring, &hub.url, &home);

    keyring.session.stop_secret_service();
    let app = desktop(&keyring, &home);
    let err = app.restore(&server(&hub.url)).await.unwrap_err();
    assert_keyring_error(&err, "no Secret Service is running");
    let err = app
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_keyring_error(&err, "no Secret Service is running");
    assert_eq!(auto_tokens(&hub).await.len(), 1);

    keyring.session.start_secret_service();
    assert_eq!(local(&keyring, &hub.url, &home), before);
    let account = app
        .restore(&server(&hub.url))
        .await
        .unwrap()
        .expect("a session");
    assert_handed_off(&account, &home.config());
}

/// A `DockerHome` whose `.docker` directory is a 64 KiB tmpfs holding `config`.
fn docker_home_on_tmpfs(config: &[u8]) -> (DockerHome, Tmpfs) {
    let home = DockerHome::new();
    let tmpfs = Tmpfs::mount(home.config().parent().unwrap(), 64);
    home.write(config);
    (home, tmpfs)
}

/// Files other than `config.json` and `keep` in `dir` (left-over temporary files).
fn strays(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "config.json" && !keep.contains(&name.as_str()))
        .collect()
}

fn skipped(hand_off: &HandOff, reason: SkipReason, words: &[&str]) {
    match hand_off {
        HandOff::Skipped {
            reason: actual,
            message,
        } => {
            assert_eq!(*actual, reason, "{message}");
            for word in words {
                assert!(message.contains(word), "{message:?} does not say {word:?}");
            }
        }
        other => panic!("expected the hand-off to be skipped, got {other:?}"),
    }
}

const USER_CONFIG: &[u8] =
    b"{\n\t\"auths\": {\"quay.io\": {\"auth\": \"eA==\"}},\n\t\"psFormat\": \"table {{.ID}}\"\n}\n";

#[tokio::test]
async fn a_read_only_docker_config_skips_the_hand_off_and_recovers_once_writable() {
    let hub = hub().await;
    let keyring = keyring();
    let (home, tmpfs) = docker_home_on_tmpfs(USER_CONFIG);
    tmpfs.set_read_only(true);

    let app = desktop(&keyring, &home);
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    skipped(
        &account.docker_hand_off,
        SkipReason::DockerConfigUnwritable,
        &["config.json", "Read-only file system"],
    );
    assert_eq!(std::fs::read(home.config()).unwrap(), USER_CONFIG);
    assert!(
        stored_token(&keyring).is_some(),
        "the sign-in itself succeeded"
    );

    tmpfs.set_read_only(false);
    let account = desktop(&keyring, &home)
        .restore(&server(&hub.url))
        .await
        .unwrap()
        .expect("a session");
    assert_handed_off(&account, &home.config());
    let config = home.json();
    assert_eq!(config["credHelpers"][REGISTRY], "hubkey");
    assert_eq!(config["auths"]["quay.io"]["auth"], "eA==");
    assert_eq!(config["psFormat"], "table {{.ID}}");
    assert!(strays(tmpfs.path(), &[]).is_empty());
}

#[tokio::test]
async fn a_full_disk_keeps_the_old_docker_config_and_recovers_when_space_returns() {
    let hub = hub().await;
    let keyring = keyring();
    let (home, tmpfs) = docker_home_on_tmpfs(USER_CONFIG);
    let filler = tmpfs.fill();

    let app = desktop(&keyring, &home);
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    skipped(
        &account.docker_hand_off,
        SkipReason::DockerConfigUnwritable,
        &["config.json", "No space left on device"],
    );
    assert_eq!(std::fs::read(home.config()).unwrap(), USER_CONFIG);
    assert!(
        strays(tmpfs.path(), &["filler"]).is_empty(),
        "no temporary file is left behind: {:?}",
        strays(tmpfs.path(), &["filler"])
    );
    // Signing out on the full disk cleans the keyring and the server, and reports the file.
    let report = app.sign_out(&server(&hub.url)).await.unwrap();
    assert!(report.not_done.is_empty(), "{report:?}");
    assert!(auto_tokens(&hub).await.is_empty());
    assert_eq!(std::fs::read(home.config()).unwrap(), USER_CONFIG);

    std::fs::remove_file(filler).unwrap();
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    assert_handed_off(&account, &home.config());
    assert_eq!(home.json()["auths"]["quay.io"]["auth"], "eA==");
}

#[tokio::test]
async fn a_corrupt_docker_config_is_left_alone_and_the_hand_off_resumes_once_fixed() {
    let hub = hub().await;
    let keyring = keyring();
    let home = DockerHome::new();
    // Not an object where docker keeps its helpers: as unreadable as broken JSON.
    let corrupt = br#"{"credHelpers": ["hubkey"], "auths": {}}"#;
    home.write(corrupt);

    let app = desktop(&keyring, &home);
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    skipped(
        &account.docker_hand_off,
        SkipReason::DockerConfigUnparsable,
        &["config.json", "left untouched"],
    );
    assert_eq!(std::fs::read(home.config()).unwrap(), corrupt);

    home.write(br#"{"auths": {}}"#);
    let account = desktop(&keyring, &home)
        .restore(&server(&hub.url))
        .await
        .unwrap()
        .expect("a session");
    assert_handed_off(&account, &home.config());
}

#[test]
fn a_full_or_read_only_disk_keeps_the_settings_file_and_saving_works_once_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&dir.path().join("dev.hubkey.desktop"), 64);
    let file = SettingsFile::new(tmpfs.path().join("settings.json"));
    file.set("server_url", "http://127.0.0.1:5080".into())
        .unwrap();
    file.set("watch_interval_secs", 60.into()).unwrap();
    let before = std::fs::read(file.path()).unwrap();
    // What tauri-plugin-store 2.5 did on every save (std::fs::write over the file).
    let in_place = tmpfs.path().join("in-place.json");
    std::fs::write(&in_place, &before).unwrap();

    let filler = tmpfs.fill();
    // The watcher's cursors grow the file past its one page.
    let cursors = serde_json::Value::from("c".repeat(5000));
    let err = file.set("cursors", cursors.clone()).unwrap_err();
    let message = err.to_string();
    for words in [
        "settings.json",
        "No space left on device",
        "previous settings were kept",
        "free some disk space",
    ] {
        assert!(
            message.contains(words),
            "{message:?} does not say {words:?}"
        );
    }
    assert_eq!(std::fs::read(file.path()).unwrap(), before);
    assert_eq!(file.get("watch_interval_secs"), Some(60.into()));
    assert!(strays(tmpfs.path(), &["filler", "in-place.json", "settings.json"]).is_empty());
    // The in-place rewrite of the same change truncates the file and then runs out of
    // space: what is left does not parse, and the plugin read that as "no settings".
    let mut grown: serde_json::Value = serde_json::from_slice(&before).unwrap();
    grown["cursors"] = cursors;
    assert!(std::fs::write(&in_place, serde_json::to_vec_pretty(&grown).unwrap()).is_err());
    let left = std::fs::read(&in_place).unwrap();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&left).is_err(),
        "an in-place rewrite on a full disk leaves a broken file ({} bytes)",
        left.len()
    );

    std::fs::remove_file(filler).unwrap();
    tmpfs.set_read_only(true);
    let err = file.set("watch_interval_secs", 120.into()).unwrap_err();
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    assert_eq!(std::fs::read(file.path()).unwrap(), before);

    tmpfs.set_read_only(false);
    file.set("watch_interval_secs", 120.into()).unwrap();
    assert_eq!(file.get("watch_interval_secs"), Some(120.into()));
    assert_eq!(file.get("server_url"), Some("http://127.0.0.1:5080".into()));
}
