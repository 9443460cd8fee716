//! No secret reaches the server's log or its database files in clear, even at debug level:
//! passwords, access tokens, the TOTP secret, refresh tokens, bearers and 2FA challenges.

use hubkey_api::{DesktopGenerateRequest, PatchAccessTokenRequest, TokenDigest};
use hubkey_client::LoginOutcome;

use crate::harness::{manual, password_session, totp_code, unix_now, TestServer, PASSWORD};

/// A secret to look for, with a name for the failure message (never the secret itself).
struct Secret {
    what: String,
    bytes: Vec<u8>,
}

impl Secret {
    fn new(what: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        Secret {
            what: what.into(),
            bytes: value.as_ref().to_vec(),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[tokio::test]
async fn no_secret_reaches_the_log_or_the_database() {
    let mut server = TestServer::start().await;
    let mut secrets = Vec::new();
    let bob_password = "bob-Secret-passphrase-77";
    let wrong_password = "almost-the-right-one-51";
    secrets.push(Secret::new("ann's password", PASSWORD));
    secrets.push(Secret::new("bob's password", bob_password));
    secrets.push(Secret::new("a wrong password", wrong_password));
    server.add_user("ann", PASSWORD).await;
    server.add_user("bob", bob_password).await;
    let client = server.client();

    // Password sign-in, refresh, a failed attempt, auth/token with the password.
    let bob_session = password_session(&client, "bob", bob_password).await;
    let bob_refresh = bob_session.refresh_token.clone().expect("refresh token");
    let refreshed = client.refresh(&bob_refresh).await.expect("refresh");
    secrets.push(Secret::new("bob's first bearer", &bob_session.token));
    secrets.push(Secret::new("bob's first refresh token", &bob_refresh));
    secrets.push(Secret::new("bob's bearer", &refreshed.token));
    secrets.push(Secret::new(
        "bob's refresh token",
        refreshed.refresh_token.as_deref().unwrap_or_default(),
    ));
    assert!(client.login("bob", wrong_password).await.is_err());
    let password_session = client
        .auth_token("bob", bob_password)
        .await
        .expect("auth/token");
    secrets.push(Secret::new(
        "bob's auth/token session",
        &password_session.access_token,
    ));
    let bob = client.with_token(refreshed.token);

    // TOTP: enable, then sign in with a second factor.
    let totp_secret = server.enable_totp("ann").await;
    secrets.push(Secret::new("ann's TOTP secret (base32)", &totp_secret));
    let raw_totp = data_encoding::BASE32_NOPAD
        .decode(totp_secret.as_bytes())
        .expect("base32");
    secrets.push(Secret::new("ann's TOTP secret (bytes)", &raw_totp));
    secrets.push(Secret::new(
        "ann's TOTP secret (hex)",
        data_encoding::HEXLOWER.encode(&raw_totp),
    ));
    // One code, the account's first: the server's step of tolerance covers a step boundary
    // between computing and checking it.
    let Ok(LoginOutcome::SecondFactor { login_2fa_token }) = client.login("ann", PASSWORD).await
    else {
        panic!("ann is asked for a second factor");
    };
    secrets.push(Secret::new("ann's 2FA challenge", &login_2fa_token));
    let ann_session = client
        .login_2fa(&login_2fa_token, &totp_code(&totp_secret, unix_now()))
        .await
        .expect("2FA login");
    secrets.push(Secret::new("ann's bearer", &ann_session.token));
    secrets.push(Secret::new(
        "ann's refresh token",
        ann_session.refresh_token.as_deref().unwrap_or_default(),
    ));
    let ann = client.with_token(ann_session.token);

    // Manual and auto tokens, used, changed and deleted.
    let mut kept_pats = Vec::new();
    for (owner, label) in [(&ann, "ann ci"), (&ann, "ann laptop"), (&bob, "bob ci")] {
        kept_pats.push(
            owner
                .create_token(&manual(label))
                .await
                .expect("create")
                .token,
        );
    }
    let named = DesktopGenerateRequest {
        client_name: Some("hubkey".into()),
        device_name: Some("ann's laptop".into()),
    };
    kept_pats.push(
        ann.desktop_generate(Some(&named))
            .await
            .expect("generate")
            .data
            .token,
    );
    kept_pats.push(
        bob.desktop_generate(None)
            .await
            .expect("generate")
            .data
            .token,
    );
    for (owner, index) in [("ann", 0), ("ann", 1), ("bob", 2), ("ann", 3), ("bob", 4)] {
        client
            .auth_token(owner, &kept_pats[index])
            .await
            .expect("the owner uses the PAT");
    }
    let deleted = ann
        .create_token(&manual("short-lived"))
        .await
        .expect("create");
    client.auth_token("ann", &deleted.token).await.expect("use");
    let deactivate = PatchAccessTokenRequest {
        is_active: Some(false),
        ..Default::default()
    };
    ann.patch_token(deleted.uuid, &deactivate)
        .await
        .expect("deactivate");
    ann.delete_token(deleted.uuid).await.expect("delete");
    ann.list_all_tokens().await.expect("list");
    ann.events(None).await.expect("events");
    for (n, pat) in kept_pats.iter().enumerate() {
        secrets.push(Secret::new(format!("PAT #{n}"), pat));
    }
    secrets.push(Secret::new("a deleted PAT", &deleted.token));

    let status = server.stop();
    assert!(status.success(), "hubkeyd exits 0 on SIGTERM: {status}");

    let log = server.log_text();
    assert!(log.contains("DEBUG"), "HUBKEYD_LOG=debug gives debug lines");
    // The SQLite files, or every value of the PostgreSQL database (pg_dump).
    let db_bytes = server.data().stored_bytes();
    assert!(
        !db_bytes.is_empty(),
        "the database is {}",
        server.data().database_url()
    );

    let mut leaks = Vec::new();
    for secret in &secrets {
        assert!(!secret.bytes.is_empty(), "{} is empty", secret.what);
        if contains(log.as_bytes(), &secret.bytes) {
            leaks.push(format!("{} is in the log", secret.what));
        }
        for (path, bytes) in &db_bytes {
            if contains(bytes, &secret.bytes) {
                leaks.push(format!("{} is in {path}", secret.what));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");

    // The scan reads the right files: what the server does keep of each PAT is found there.
    let all_db: Vec<u8> = db_bytes.into_iter().flat_map(|(_, bytes)| bytes).collect();
    for (n, pat) in kept_pats.iter().enumerate() {
        let digest = TokenDigest::of(pat);
        assert!(
            contains(&all_db, digest.as_str().as_bytes()),
            "the SHA-256 of PAT #{n} is in the database"
        );
    }
}
