//! The desktop core keeping the person's account and computer safe, against a real hubkeyd,
//! a real keyring and real `config.json` files: a docker credential helper the person set is
//! replaced only when they agree and comes back at sign-out; a password is not sent in clear
//! across a network unless the person chose so.

use std::net::{IpAddr, UdpSocket};

use hubkey_desktop::{ErrorCode, HandOff, ServerUrl, Unencrypted};
use hubkey_e2e::Hubkeyd;

use crate::desktop_core::{
    auto_tokens, desktop, keyring, server, setup, signed_in, stored_token, DockerHome, PASSWORD,
    REGISTRY,
};

/// A `config.json` where the person has their own helper for the hub's registry.
fn their_config(home: &DockerHome) -> Vec<u8> {
    let original = format!(
        "{{\n\t\"auths\": {{}},\n\t\"credHelpers\": {{\n\t\t\"gcr.io\": \"gcloud\",\n\t\t\"{REGISTRY}\": \"desktop\"\n\t}}\n}}\n"
    );
    home.write(original.as_bytes());
    original.into_bytes()
}

fn asks_to_replace(hand_off: &HandOff, current: &str) {
    match hand_off {
        HandOff::AskToReplace {
            registry,
            current: found,
            ..
        } => {
            assert_eq!(registry, REGISTRY);
            assert_eq!(found, current);
        }
        other => panic!("expected a question about {current}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_credential_helper_the_person_set_is_replaced_only_when_they_agree_and_comes_back_at_sign_out(
) {
    let (hub, keyring, home) = setup().await;
    let original = their_config(&home);
    let app = desktop(&keyring, &home);
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    // Signed in, the token is in the keyring, but config.json is untouched: the UI asks.
    asks_to_replace(&account.docker_hand_off, "desktop");
    assert!(stored_token(&keyring).is_some());
    assert_eq!(std::fs::read(home.config()).unwrap(), original);

    // Agreeing to replace a helper other than the one there now replaces nothing.
    let stale = app
        .replace_docker_helper(&server(&hub.url), "pass")
        .await
        .unwrap();
    asks_to_replace(&stale, "desktop");
    assert_eq!(std::fs::read(home.config()).unwrap(), original);

    // The person agrees.
    let replaced = app
        .replace_docker_helper(&server(&hub.url), "desktop")
        .await
        .unwrap();
    assert!(matches!(replaced, HandOff::Done { .. }), "{replaced:?}");
    assert_eq!(home.json()["credHelpers"][REGISTRY], "hubkey");
    assert_eq!(home.json()["credHelpers"]["gcr.io"], "gcloud");

    // The helper it replaced is kept with the session: a new app instance restores it and
    // its sign-out puts "desktop" back, in its place.
    let again = desktop(&keyring, &home);
    let restored = again.restore(&server(&hub.url)).await.unwrap().unwrap();
    assert!(
        matches!(restored.docker_hand_off, HandOff::Done { .. }),
        "{restored:?}"
    );
    let report = again.sign_out(&server(&hub.url)).await.unwrap();
    assert!(report.not_done.is_empty(), "{report:?}");
    assert_eq!(std::fs::read(home.config()).unwrap(), original);
    assert!(stored_token(&keyring).is_none());
}

#[tokio::test]
async fn a_credential_helper_the_person_kept_is_left_as_it_is_at_sign_out() {
    let (hub, keyring, home) = setup().await;
    let original = their_config(&home);
    let app = desktop(&keyring, &home);
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    asks_to_replace(&account.docker_hand_off, "desktop");
    // Restoring asks again and still writes nothing.
    let restored = desktop(&keyring, &home)
        .restore(&server(&hub.url))
        .await
        .unwrap()
        .unwrap();
    asks_to_replace(&restored.docker_hand_off, "desktop");
    assert_eq!(std::fs::read(home.config()).unwrap(), original);

    let report = app.sign_out(&server(&hub.url)).await.unwrap();
    assert!(report.not_done.is_empty(), "{report:?}");
    assert_eq!(std::fs::read(home.config()).unwrap(), original);
}

#[tokio::test]
async fn sign_out_removes_only_the_entry_hubkey_wrote() {
    let (hub, keyring, home) = setup().await;
    // The person pointed the registry at hubkey's helper themselves: it is not the app's to
    // remove.
    let theirs = format!("{{\"credHelpers\": {{\"{REGISTRY}\": \"hubkey\"}}}}");
    home.write(theirs.as_bytes());
    let app = desktop(&keyring, &home);
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    assert!(matches!(account.docker_hand_off, HandOff::Done { .. }));
    app.sign_out(&server(&hub.url)).await.unwrap();
    assert_eq!(std::fs::read_to_string(home.config()).unwrap(), theirs);

    // An entry the app wrote is removed, also after signing in twice in a row (the second
    // sign-in finds its own entry and inherits the record of the first).
    let home = DockerHome::new();
    home.write(br#"{"credHelpers": {"gcr.io": "gcloud"}}"#);
    let app = desktop(&keyring, &home);
    for _ in 0..2 {
        let account = signed_in(
            app.sign_in(&server(&hub.url), "ann", PASSWORD)
                .await
                .unwrap(),
        );
        assert!(matches!(account.docker_hand_off, HandOff::Done { .. }));
        assert_eq!(home.json()["credHelpers"][REGISTRY], "hubkey");
    }
    app.sign_out(&server(&hub.url)).await.unwrap();
    assert_eq!(
        home.json(),
        serde_json::json!({"credHelpers": {"gcr.io": "gcloud"}})
    );
    // After the person changes the entry while signed in, sign-out leaves their change.
    let account = signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    assert!(matches!(account.docker_hand_off, HandOff::Done { .. }));
    let changed = format!("{{\"credHelpers\": {{\"{REGISTRY}\": \"pass\"}}}}");
    home.write(changed.as_bytes());
    app.sign_out(&server(&hub.url)).await.unwrap();
    assert_eq!(std::fs::read_to_string(home.config()).unwrap(), changed);
}

/// An address of this computer that is not loopback (the one a route to a documentation
/// network leaves from), if it has one; no packet is sent.
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let address = socket.local_addr().ok()?.ip();
    (!address.is_loopback() && !address.is_unspecified()).then_some(address)
}

#[tokio::test]
async fn a_plain_http_server_beyond_this_computer_gets_no_password_unless_the_person_chose_so() {
    let keyring = keyring();
    let home = DockerHome::new();
    let app = desktop(&keyring, &home);

    // Refused before anything is sent: the address does not even resolve, and the answer is
    // the refusal, not "unreachable".
    let far = ServerUrl::parse("http://hub.invalid:5080").unwrap();
    let err = app.sign_in(&far, "ann", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnencryptedServer, "{err}");
    assert!(
        err.to_string().starts_with(
            "http://hub.invalid:5080 is not on this computer and does not use https://"
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
    let err = app
        .sign_in_with(&far, "ann", PASSWORD, Unencrypted::Allow)
        .await
        .unwrap_err();
    assert_ne!(
        err.code(),
        ErrorCode::UnencryptedServer,
        "allowed, the sign-in goes out (and finds no such host): {err:?}"
    );

    // A real hubkeyd on this computer's network address (not loopback).
    let Some(address) = non_loopback_address() else {
        println!("this computer has no non-loopback address: the rest is skipped");
        return;
    };
    let hub = Hubkeyd::start_with(
        tempfile::tempdir().unwrap(),
        "0.0.0.0:0",
        hubkeyd::Site {
            public_url: None,
            registry_host: Some(REGISTRY.into()),
        },
    )
    .await;
    hub.add_user("ann", PASSWORD).await;
    let port = hub.url.rsplit(':').next().unwrap();
    let remote = ServerUrl::parse(&format!("http://{address}:{port}")).unwrap();
    assert!(remote.is_unencrypted_remote());
    let err = app.sign_in(&remote, "ann", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnencryptedServer);
    // Nothing reached the server or the keyring (the test reaches it at 0.0.0.0, locally).
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(stored_token(&keyring).is_none());

    // The same server, the person having chosen to send their password unencrypted.
    let account = signed_in(
        app.sign_in_with(&remote, "ann", PASSWORD, Unencrypted::Allow)
            .await
            .unwrap(),
    );
    assert_eq!(account.username, "ann");
    assert_eq!(auto_tokens(&hub).await.len(), 1);
    assert!(stored_token(&keyring).is_some());
}

/// Uses `refresh_token` as someone holding a copy would, until the server refuses it.
async fn replay_until_refused(hub: &Hubkeyd, refresh_token: &str) {
    for _ in 0..5 {
        if hub.client().refresh(refresh_token).await.is_err() {
            return;
        }
    }
    panic!("a spent refresh token kept working");
}

#[tokio::test]
async fn a_session_revoked_for_a_reused_refresh_token_signs_the_app_out_and_says_why() {
    let (hub, keyring, home) = setup().await;
    home.write(br#"{"credHelpers": {"gcr.io": "gcloud"}}"#);
    let app = desktop(&keyring, &home);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    // Someone with a copy of the keyring's refresh token uses it, again and again: the
    // server ends the whole session.
    let stored = crate::desktop_core::session_entry(&keyring, &hub).unwrap();
    replay_until_refused(&hub, stored["refresh_token"].as_str().unwrap()).await;

    // The app finds out at its next renewal (here: a restart) and signs out for good.
    let err = desktop(&keyring, &home)
        .restore(&server(&hub.url))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionRevoked, "{err:?}");
    assert_eq!(
        err.to_string(),
        "Your session was ended because its sign-in was used from elsewhere. Sign in again, then change your password."
    );
    assert!(crate::desktop_core::session_entry(&keyring, &hub).is_none());
    assert!(stored_token(&keyring).is_none());
    assert_eq!(
        home.json(),
        serde_json::json!({"credHelpers": {"gcr.io": "gcloud"}})
    );
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_every_other() {
    let (hub, keyring, home) = setup().await;
    let app = desktop(&keyring, &home);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let elsewhere = hub.sign_in("ann", PASSWORD).await;
    const NEW: &str = "a brand new passphrase 7";

    // Refusals change nothing and are told as such, never as an ended session.
    let wrong = app
        .change_password(&server(&hub.url), "not it", NEW, NEW, false)
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::InvalidInput, "{wrong:?}");
    assert!(wrong.to_string().contains("current password is not right"));
    let differ = app
        .change_password(
            &server(&hub.url),
            PASSWORD,
            NEW,
            "a brand new passphrase 8",
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(differ.code(), ErrorCode::InvalidInput);
    for err in [&wrong, &differ] {
        assert!(!err.to_string().contains(PASSWORD) && !err.to_string().contains(NEW));
    }
    assert!(elsewhere.list_all_tokens().await.is_ok());

    let changed = app
        .change_password(&server(&hub.url), PASSWORD, NEW, NEW, false)
        .await
        .unwrap();
    assert!(changed.other_sessions_signed_out && !changed.tokens_deactivated);
    // This app's session lives on; the other one ended; tokens stay active.
    let tokens = app
        .session_client(&server(&hub.url))
        .unwrap()
        .list_all_tokens()
        .await
        .unwrap();
    assert!(tokens.iter().all(|token| token.is_active), "{tokens:?}");
    assert!(elsewhere.list_all_tokens().await.is_err());
    assert!(hub.client().login("ann", PASSWORD).await.is_err());
    assert!(hub.client().login("ann", NEW).await.is_ok());

    // Asked, the change also deactivates every access token.
    let changed = app
        .change_password(&server(&hub.url), NEW, PASSWORD, PASSWORD, true)
        .await
        .unwrap();
    assert!(changed.tokens_deactivated);
    let tokens = app
        .session_client(&server(&hub.url))
        .unwrap()
        .list_all_tokens()
        .await
        .unwrap();
    assert!(!tokens.is_empty() && tokens.iter().all(|token| !token.is_active));
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_and_signs_out_here() {
    let (hub, keyring, home) = setup().await;
    home.write(br#"{"credHelpers": {"gcr.io": "gcloud"}}"#);
    let app = desktop(&keyring, &home);
    signed_in(
        app.sign_in(&server(&hub.url), "ann", PASSWORD)
            .await
            .unwrap(),
    );
    let elsewhere = hub.sign_in("ann", PASSWORD).await;
    let mine = app.session_client(&server(&hub.url)).unwrap();

    let report = app.sign_out_everywhere(&server(&hub.url)).await.unwrap();
    assert!(report.not_done.is_empty(), "{report:?}");
    assert!(
        elsewhere.list_all_tokens().await.is_err(),
        "the other session ended"
    );
    assert!(mine.list_all_tokens().await.is_err(), "this session ended");
    // And this app signed out as a plain sign-out does.
    assert!(auto_tokens(&hub).await.is_empty());
    assert!(crate::desktop_core::session_entry(&keyring, &hub).is_none());
    assert!(stored_token(&keyring).is_none());
    assert_eq!(
        home.json(),
        serde_json::json!({"credHelpers": {"gcr.io": "gcloud"}})
    );
    assert!(app.session_client(&server(&hub.url)).is_none());
}
