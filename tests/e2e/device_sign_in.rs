//! The desktop core's browser sign-in (RFC 8628 device grant) against a real hubkeyd and a
//! real keyring: the person approves or denies on hubkeyd's `/device` page (driven by a plain
//! HTTP client posting the page's own forms, see `hubkey_e2e::device_form`), and an approved
//! sign-in ends exactly as a password sign-in does (auto token, keyring, docker hand-off).

use chrono::{Duration, Utc};
use hubkey_desktop::{BrowserSignIn, BrowserSignInStep, Desktop, Unencrypted};
use hubkey_e2e::device_form::{Decision, DeviceForm};
use hubkey_e2e::Hubkeyd;

use crate::desktop_core::{
    assert_handed_off, auto_tokens, desktop, hub_on, keyring, server, session_entry, stored_token,
    DockerHome, PASSWORD,
};

/// A hub on `clock`, with ann.
async fn hub(clock: &hubkey_desktop::ManualClock) -> Hubkeyd {
    hub_on(clock.clone(), |hub| hub).await
}

async fn start(desktop: &Desktop, hub: &Hubkeyd) -> BrowserSignIn {
    desktop
        .start_browser_sign_in(
            &server(&hub.url),
            "Debian GNU/Linux 13",
            Unencrypted::Refuse,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_approved_browser_sign_in_ends_as_a_password_sign_in_does() {
    let clock = hubkey_desktop::ManualClock::new(Utc::now());
    let hub = hub(&clock).await;
    let (keyring, home) = (keyring(), DockerHome::new());
    let app = desktop(&keyring, &home).with_clock(clock.clone());

    let started = start(&app, &hub).await;
    let (head, tail) = started.user_code.split_once('-').expect("XXXX-XXXX");
    assert_eq!((head.len(), tail.len()), (4, 4), "{}", started.user_code);
    assert_eq!(started.verification_uri, format!("{}/device", hub.url));
    assert_eq!(
        started.verification_uri_complete,
        format!("{}/device?user_code={}", hub.url, started.user_code)
    );
    assert_eq!(started.interval, 5);
    assert_eq!(started.expires_at, clock.now() + Duration::seconds(600));
    // Nothing is created on the server before the approval.
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::Pending { interval: 5 }
    );
    assert!(stored_token(&keyring).is_none());

    DeviceForm::new(&hub.url)
        .decide(&started.user_code, "ann", PASSWORD, Decision::Approve)
        .await;
    clock.advance(Duration::seconds(5));
    let BrowserSignInStep::SignedIn(account) = app.poll_browser_sign_in().await.unwrap() else {
        panic!("not signed in");
    };
    assert_eq!(account.username, "ann");
    assert_handed_off(&account, &home.config());
    let tokens = auto_tokens(&hub).await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].client_id, "hubkey");
    assert!(tokens[0].token_label.contains(crate::desktop_core::DEVICE));
    assert!(
        stored_token(&keyring).is_some(),
        "the auto token is the docker credential"
    );
    let session = session_entry(&keyring, &hub).expect("the session is in the keyring");
    assert_eq!(session["username"], "ann");
    assert_eq!(
        app.session_username(&server(&hub.url)).as_deref(),
        Some("ann")
    );

    // The sign-in is over: polling again asks nothing.
    let err = app.poll_browser_sign_in().await.unwrap_err();
    assert_eq!(err.code(), "invalid_input");

    // A restart restores it as it restores a password sign-in.
    let restarted = desktop(&keyring, &home);
    let restored = restarted.restore(&server(&hub.url)).await.unwrap().unwrap();
    assert_eq!(restored.username, "ann");

    // A second browser sign-in of the same account on this device replaces the auto token.
    let again = start(&restarted, &hub).await;
    DeviceForm::new(&hub.url)
        .decide(&again.user_code, "ann", PASSWORD, Decision::Approve)
        .await;
    assert!(matches!(
        restarted.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::SignedIn(_)
    ));
    assert_eq!(
        auto_tokens(&hub).await.len(),
        1,
        "the earlier auto token was deleted"
    );
}

#[tokio::test]
async fn a_denied_browser_sign_in_signs_nothing_in() {
    let clock = hubkey_desktop::ManualClock::new(Utc::now());
    let hub = hub(&clock).await;
    let (keyring, home) = (keyring(), DockerHome::new());
    let app = desktop(&keyring, &home).with_clock(clock.clone());
    let started = start(&app, &hub).await;
    DeviceForm::new(&hub.url)
        .decide(&started.user_code, "ann", PASSWORD, Decision::Deny)
        .await;
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::Denied
    );
    assert!(stored_token(&keyring).is_none());
    assert!(session_entry(&keyring, &hub).is_none());
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(!home.config().exists(), "config.json untouched");
}

#[tokio::test]
async fn an_expired_browser_sign_in_says_so() {
    let clock = hubkey_desktop::ManualClock::new(Utc::now());
    let hub = hub(&clock).await;
    let (keyring, home) = (keyring(), DockerHome::new());

    // The server's word: the app's own clock has not moved, the server's has.
    let app = desktop(&keyring, &home);
    start(&app, &hub).await;
    clock.advance(Duration::seconds(601));
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::Expired
    );
    assert!(app.poll_browser_sign_in().await.is_err(), "over");

    // The app's own clock: past `expires_at` it does not even ask.
    let app = desktop(&keyring, &home).with_clock(clock.clone());
    let started = start(&app, &hub).await;
    clock.set(started.expires_at);
    hub.stop().await;
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::Expired
    );
    assert!(stored_token(&keyring).is_none());
}

#[tokio::test]
async fn polling_too_fast_slows_the_polling_down() {
    let clock = hubkey_desktop::ManualClock::new(Utc::now());
    let hub = hub(&clock).await;
    let (keyring, home) = (keyring(), DockerHome::new());
    let app = desktop(&keyring, &home).with_clock(clock.clone());
    let started = start(&app, &hub).await;
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::Pending { interval: 5 }
    );
    // Again at once, not after the interval.
    let BrowserSignInStep::SlowDown { interval } = app.poll_browser_sign_in().await.unwrap() else {
        panic!("the server did not ask to slow down");
    };
    assert!(interval >= 10, "{interval}");
    // The longer interval holds from now on.
    clock.advance(Duration::seconds(i64::try_from(interval).unwrap()));
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::Pending { interval }
    );
    // And it still signs in once approved.
    DeviceForm::new(&hub.url)
        .decide(&started.user_code, "ann", PASSWORD, Decision::Approve)
        .await;
    clock.advance(Duration::seconds(i64::try_from(interval).unwrap()));
    assert!(matches!(
        app.poll_browser_sign_in().await.unwrap(),
        BrowserSignInStep::SignedIn(_)
    ));
}

#[tokio::test]
async fn a_cancelled_browser_sign_in_stops_polling() {
    let clock = hubkey_desktop::ManualClock::new(Utc::now());
    let hub = hub(&clock).await;
    let (keyring, home) = (keyring(), DockerHome::new());
    let app = desktop(&keyring, &home).with_clock(clock.clone());
    let started = start(&app, &hub).await;
    app.cancel_browser_sign_in();
    DeviceForm::new(&hub.url)
        .decide(&started.user_code, "ann", PASSWORD, Decision::Approve)
        .await;
    assert_eq!(
        app.poll_browser_sign_in().await.unwrap_err().code(),
        "invalid_input"
    );
    assert!(stored_token(&keyring).is_none());
    assert!(auto_tokens(&hub).await.is_empty());
}
