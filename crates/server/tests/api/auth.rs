//! Sign-in: password and TOTP logins, refresh, logout, `/v2/auth/token`, sessions made from
//! access tokens, and the throttling of failed attempts.

use std::time::Duration;

use hubkey_api::error::{MFA_REQUIRED, PAT_SESSION_FORBIDDEN};
use hubkey_api::{DesktopGenerateRequest, PatchAccessTokenRequest};
use hubkey_client::{ClientError, HubClient, LoginOutcome};
use reqwest::Method;
use uuid::Uuid;

use crate::harness::{
    manual, password_session, status_of, totp_code, unix_now, ClockedServer, DataDir, TestServer,
    PASSWORD,
};

/// Signs in with a password, expecting the account to ask for a second factor.
async fn challenge(client: &HubClient, name: &str) -> String {
    match client.login(name, PASSWORD).await {
        Ok(LoginOutcome::SecondFactor { login_2fa_token }) => login_2fa_token,
        other => panic!("expected a 2FA challenge, got {other:?}"),
    }
}

/// A six-digit code that is none of the codes valid around `now`.
fn wrong_code(secret: &str, now: u64) -> String {
    let valid: Vec<String> = (now - 60..=now + 60)
        .step_by(30)
        .map(|t| totp_code(secret, t))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|code| !valid.contains(code))
        .expect("some code is wrong")
}

#[tokio::test]
async fn password_login_returns_a_session_with_a_refresh_token() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let session = password_session(&server.client(), "ann", PASSWORD).await;
    assert!(!session.token.is_empty());
    assert!(session.refresh_token.is_some_and(|t| !t.is_empty()));
    assert!(session.expires_in.is_some_and(|s| s > 0));
    let ann = server.client().with_token(session.token);
    assert_eq!(ann.list_tokens(1, 10).await.expect("list").count, 0);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let wrong_password = client.login("ann", "not-the-password").await.unwrap_err();
    let unknown_user = client.login("nobody", PASSWORD).await.unwrap_err();
    let ClientError::Unauthorized { message } = &wrong_password else {
        panic!("expected 401, got {wrong_password:?}");
    };
    assert!(!message.is_empty());
    assert_eq!(wrong_password, unknown_user);

    let (status, body) = server
        .raw(
            Method::POST,
            "/v2/users/login",
            None,
            Some(r#"{"username":"ann","password":"nope-nope-nope"}"#),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], body["message"], "{body}");
}

#[tokio::test]
async fn login_rejects_unknown_json_fields() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let body = format!(r#"{{"username":"ann","password":"{PASSWORD}","remember":true}}"#);
    let (status, answer) = server
        .raw(Method::POST, "/v2/users/login", None, Some(&body))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["text"].is_string(),
        "400 body has Hub's shape: {answer}"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let first = password_session(&client, "ann", PASSWORD).await;
    let first_refresh = first
        .refresh_token
        .expect("a password login gives a refresh token");

    let second = client.refresh(&first_refresh).await.expect("refresh");
    let second_refresh = second
        .refresh_token
        .clone()
        .expect("refresh gives a new refresh token");
    assert_ne!(second_refresh, first_refresh);
    client
        .with_token(second.token)
        .list_tokens(1, 10)
        .await
        .expect("the refreshed session works");
    let third = client
        .refresh(&second_refresh)
        .await
        .expect("the new refresh token works")
        .refresh_token
        .unwrap();

    client
        .refresh(&third)
        .await
        .expect("the newest refresh token works");
    assert_eq!(status_of(client.refresh("not-a-refresh-token").await), 401);
    // Once the client used its new token, the one it replaced is spent: presenting it again
    // means someone else holds a copy, and the whole session ends.
    assert_eq!(
        client.refresh(&first_refresh).await.unwrap_err(),
        ClientError::SessionRevoked
    );
}

#[tokio::test]
async fn a_lost_refresh_answer_can_be_asked_again_with_the_old_token() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let old = password_session(&client, "ann", PASSWORD)
        .await
        .refresh_token
        .unwrap();
    // The server rotated, but its answer never reached the client ...
    let lost = client.refresh(&old).await.unwrap().refresh_token.unwrap();
    // ... which asks again with the token it has, and gets a working session.
    let again = client
        .refresh(&old)
        .await
        .expect("the grace of the old token");
    client
        .with_token(again.token)
        .list_tokens(1, 10)
        .await
        .expect("the session works");
    // The newest token works; the old one had its one grace use.
    let newest = client
        .refresh(&again.refresh_token.unwrap())
        .await
        .expect("the newest refresh token works");
    // The lost answer's token never reached the client: if it turns up, someone else has it,
    // and the session ends for everyone.
    assert_eq!(
        client.refresh(&lost).await.unwrap_err(),
        ClientError::SessionRevoked
    );
    assert_eq!(
        client
            .refresh(&newest.refresh_token.unwrap())
            .await
            .unwrap_err(),
        ClientError::SessionRevoked
    );
}

#[tokio::test]
async fn logout_revokes_the_bearer_and_its_refresh_token() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let session = password_session(&client, "ann", PASSWORD).await;
    let ann = client.with_token(session.token);
    let kept = ann.create_token(&manual("kept")).await.expect("create");
    ann.logout().await.expect("logout");

    assert_eq!(status_of(ann.list_tokens(1, 10).await), 401);
    assert_eq!(status_of(ann.get_token(kept.uuid).await), 401);
    assert_eq!(status_of(ann.create_token(&manual("after")).await), 401);
    assert_eq!(status_of(ann.desktop_generate(None).await), 401);
    assert_eq!(status_of(ann.events(None).await), 401);
    assert_eq!(status_of(ann.logout().await), 401);
    let refresh = session.refresh_token.expect("refresh token");
    assert_eq!(status_of(client.refresh(&refresh).await), 401);
}

#[tokio::test]
async fn auth_token_accepts_the_password_when_2fa_is_off() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let answer = server
        .client()
        .auth_token("ann", PASSWORD)
        .await
        .expect("auth/token with the password");
    assert!(!answer.access_token.is_empty());
}

#[tokio::test]
async fn auth_token_refuses_a_wrong_secret_and_another_users_pat() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let bob = server.user("bob").await;
    let bobs = bob.create_token(&manual("bob's")).await.expect("create");
    let client = server.client();
    assert_eq!(
        status_of(client.auth_token("ann", "wrong-password-1").await),
        401
    );
    assert_eq!(status_of(client.auth_token("ann", &bobs.token).await), 401);
    assert_eq!(
        status_of(client.auth_token("nobody", &bobs.token).await),
        401
    );
    client
        .auth_token("bob", &bobs.token)
        .await
        .expect("the owner's PAT works");
    // Not a token at all, but shaped like one.
    let forged = format!("hkpat_{}", "a".repeat(36));
    assert_eq!(status_of(client.auth_token("ann", &forged).await), 401);
}

#[tokio::test]
async fn auth_token_with_a_pat_updates_its_last_used() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("ci")).await.expect("create");
    assert_eq!(created.last_used, None);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    server
        .client()
        .auth_token("ann", &created.token)
        .await
        .expect("auth/token with the PAT");
    let used = ann.get_token(created.uuid).await.expect("get");
    let last_used = used.last_used.expect("last_used is set after a use");
    assert!(last_used >= before, "{last_used} < {before}");
}

#[tokio::test]
async fn pat_session_may_not_manage_access_tokens() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("ci")).await.expect("create");
    let session = server
        .client()
        .auth_token("ann", &created.token)
        .await
        .expect("auth/token with the PAT");
    let from_pat = server.client().with_token(session.access_token);

    let forbidden = |result: Result<(), ClientError>| match result {
        Err(ClientError::Forbidden { message }) => assert_eq!(message, PAT_SESSION_FORBIDDEN),
        other => panic!("expected 403, got {other:?}"),
    };
    forbidden(from_pat.list_tokens(1, 10).await.map(drop));
    forbidden(from_pat.create_token(&manual("more")).await.map(drop));
    forbidden(from_pat.get_token(created.uuid).await.map(drop));
    let deactivate = PatchAccessTokenRequest {
        is_active: Some(false),
        ..Default::default()
    };
    forbidden(
        from_pat
            .patch_token(created.uuid, &deactivate)
            .await
            .map(drop),
    );
    forbidden(from_pat.delete_token(created.uuid).await);
    forbidden(from_pat.desktop_generate(None).await.map(drop));
    let request = DesktopGenerateRequest::default();
    forbidden(from_pat.desktop_generate(Some(&request)).await.map(drop));
    forbidden(from_pat.events(None).await.map(drop));
    forbidden(from_pat.get_token(Uuid::new_v4()).await.map(drop));

    let still = ann.get_token(created.uuid).await.expect("get");
    assert!(still.is_active, "the forbidden calls changed nothing");
}

#[tokio::test]
async fn totp_login_needs_a_valid_code() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    let client = server.client();

    let body = format!(r#"{{"username":"ann","password":"{PASSWORD}"}}"#);
    let (status, answer) = server
        .raw(Method::POST, "/v2/users/login", None, Some(&body))
        .await;
    assert_eq!(status, 401);
    assert_eq!(answer["detail"], MFA_REQUIRED, "{answer}");
    assert!(answer["login_2fa_token"].is_string(), "{answer}");

    let now = server.unix_now();
    let first = challenge(&client, "ann").await;
    assert_eq!(
        status_of(client.login_2fa(&first, &wrong_code(&secret, now)).await),
        401
    );
    assert_eq!(
        client
            .login_2fa("not-a-challenge", &totp_code(&secret, now))
            .await
            .unwrap_err(),
        ClientError::ChallengeExpired,
        "a forged challenge is told from a wrong code"
    );

    let second = challenge(&client, "ann").await;
    let session = client
        .login_2fa(&second, &totp_code(&secret, now))
        .await
        .expect("2FA login with the current code");
    assert!(session.refresh_token.is_some());
    client
        .with_token(session.token)
        .list_tokens(1, 10)
        .await
        .expect("the 2FA session works");
}

#[tokio::test]
async fn accepted_totp_code_cannot_be_replayed_on_a_fresh_challenge() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    let client = server.client();
    let code = totp_code(&secret, server.unix_now());

    let first = challenge(&client, "ann").await;
    client
        .login_2fa(&first, &code)
        .await
        .expect("first use of the code");
    let second = challenge(&client, "ann").await;
    assert_eq!(status_of(client.login_2fa(&second, &code).await), 401);
}

#[tokio::test]
async fn second_factor_challenge_is_single_use() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    let client = server.client();
    let now = server.unix_now();
    // The server accepts one step of drift: the previous step's code signs in, and the
    // current one stays unused for the second attempt.
    let previous = totp_code(&secret, now - 30);
    let current = totp_code(&secret, now);

    let used = challenge(&client, "ann").await;
    client.login_2fa(&used, &previous).await.expect("2FA login");
    assert_eq!(
        client.login_2fa(&used, &current).await.unwrap_err(),
        ClientError::ChallengeExpired,
        "a spent challenge says so, and is not a wrong code"
    );

    let fresh = challenge(&client, "ann").await;
    client
        .login_2fa(&fresh, &current)
        .await
        .expect("the refused code was valid: only the challenge was spent");
}

#[tokio::test]
async fn a_challenge_expires_after_five_minutes_with_its_own_error_code() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    let client = server.client();
    let stale = challenge(&client, "ann").await;
    let live = challenge(&client, "ann").await;
    // A wrong code is an ordinary 401, and the challenge stays usable.
    let wrong = wrong_code(&secret, server.unix_now());
    assert!(matches!(
        client.login_2fa(&live, &wrong).await,
        Err(ClientError::Unauthorized { .. })
    ));
    server.advance(chrono::Duration::minutes(5));
    let code = totp_code(&secret, server.unix_now());
    let body = format!(r#"{{"login_2fa_token":"{stale}","code":"{code}"}}"#);
    let (status, answer) = server
        .raw(Method::POST, "/v2/users/2fa-login", None, Some(&body))
        .await;
    assert_eq!(status, 401);
    assert_eq!(answer["code"], "challenge_expired", "{answer}");
    assert!(answer["detail"].is_string() && answer["message"].is_string());
    assert_eq!(
        client.login_2fa(&live, &code).await.unwrap_err(),
        ClientError::ChallengeExpired
    );
    let fresh = challenge(&client, "ann").await;
    client
        .login_2fa(&fresh, &code)
        .await
        .expect("a new sign-in works with the same code");
}

#[tokio::test]
async fn auth_token_refuses_the_password_when_2fa_is_on() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let created = ann.create_token(&manual("ci")).await.expect("create");
    server.enable_totp("ann").await;
    let client = server.client();
    assert_eq!(status_of(client.auth_token("ann", PASSWORD).await), 401);
    client
        .auth_token("ann", &created.token)
        .await
        .expect("a PAT still works with 2FA on");
}

/// Fails `count` password logins of `name` through `client`, each an ordinary 401.
async fn fail_logins(client: &HubClient, name: &str, count: usize) {
    for attempt in 0..count {
        match client.login(name, "wrong-password-x").await {
            Err(ClientError::Unauthorized { .. }) => {}
            other => panic!("attempt {attempt}: expected 401, got {other:?}"),
        }
    }
}

/// Asserts a 429 that says when to retry.
fn assert_throttled<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    match result {
        Err(ClientError::Throttled {
            retry_after,
            message,
        }) => {
            assert!(
                retry_after.is_some_and(|wait| wait > Duration::ZERO),
                "Retry-After missing or zero: {retry_after:?}"
            );
            assert!(!message.is_empty());
        }
        other => panic!("expected 429, got {other:?}"),
    }
}

#[tokio::test]
async fn failed_logins_from_one_address_are_throttled_there_only() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let attacker = server.client_from(9);
    fail_logins(&attacker, "ann", 30).await;

    assert_throttled(attacker.login("ann", PASSWORD).await);
    assert_throttled(attacker.auth_token("ann", PASSWORD).await);
    assert_throttled(attacker.login("someone-else", PASSWORD).await);

    // The real user, from another address, still gets in.
    password_session(&server.client_from(10), "ann", PASSWORD).await;
}

#[tokio::test]
async fn failures_at_every_sign_in_endpoint_count_toward_the_address_limit() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    // Genuine challenges, fetched from another address (a right password is no failure).
    let mut challenges = Vec::new();
    for _ in 0..10 {
        challenges.push(challenge(&server.client_from(12), "ann").await);
    }
    let wrong = wrong_code(&secret, unix_now());

    let attacker = server.client_from(11);
    fail_logins(&attacker, "ann", 10).await;
    for _ in 0..10 {
        assert_eq!(
            status_of(attacker.auth_token("ann", "wrong-password-x").await),
            401
        );
    }
    for challenge in &challenges {
        assert_eq!(status_of(attacker.login_2fa(challenge, &wrong).await), 401);
    }
    assert_throttled(attacker.login("ann", PASSWORD).await);
    assert_throttled(attacker.auth_token("ann", "wrong-password-x").await);
    let fresh = challenge(&server.client_from(12), "ann").await;
    assert_throttled(attacker.login_2fa(&fresh, &wrong).await);
}

#[tokio::test]
async fn forged_2fa_challenges_count_toward_the_address_limit() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let attacker = server.client_from(13);
    for attempt in 0..30 {
        let forged = format!("forged-challenge-{attempt}");
        assert_eq!(status_of(attacker.login_2fa(&forged, "123456").await), 401);
    }
    assert_throttled(attacker.login_2fa("forged-challenge", "123456").await);
    assert_throttled(attacker.login("ann", PASSWORD).await);
}

#[tokio::test]
async fn failures_from_many_addresses_throttle_the_account() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    server.add_user("bob", PASSWORD).await;
    // 100 failures from four addresses, 25 each: no address reaches its own limit of 30.
    let attackers: Vec<_> = (21..25)
        .map(|last| {
            let client = server.client_from(last);
            tokio::spawn(async move { fail_logins(&client, "ann", 25).await })
        })
        .collect();
    for attacker in attackers {
        attacker.await.expect("attacker task");
    }

    let fresh = server.client_from(30);
    assert_throttled(fresh.login("ann", PASSWORD).await);
    assert_throttled(fresh.auth_token("ann", PASSWORD).await);
    // Other accounts are not throttled.
    password_session(&fresh, "bob", PASSWORD).await;
}

#[tokio::test]
async fn the_old_refresh_token_works_once_more_only_within_five_minutes_of_its_rotation() {
    let dir = DataDir::new();
    let hub = hubkeyd::open(dir.path(), &dir.database_url())
        .await
        .unwrap()
        .hub;
    let start = chrono::Utc::now();
    hub.add_user("ann", zeroize::Zeroizing::new(PASSWORD.to_owned()), start)
        .await
        .unwrap();
    let client = hubkeyd::hub::ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: "test".into(),
    };
    let minutes = |n: i64| start + chrono::Duration::minutes(n);
    let login = |at| {
        hub.login(
            "ann",
            zeroize::Zeroizing::new(PASSWORD.to_owned()),
            &client,
            at,
        )
    };
    let refresh_token = |answer: hubkey_api::LoginResponse| answer.refresh_token.unwrap();
    let revoked = |result: hubkeyd::Result<hubkey_api::LoginResponse>| {
        matches!(result, Err(hubkeyd::Error::SessionRevoked))
    };

    // Asked again 4 minutes after the rotation: fine, once; a second time revokes.
    let old = refresh_token(login(start).await.unwrap());
    hub.refresh(&old, &client, minutes(0)).await.unwrap();
    let again = refresh_token(
        hub.refresh(&old, &client, minutes(4))
            .await
            .expect("within the grace"),
    );
    assert!(revoked(hub.refresh(&old, &client, minutes(4)).await));
    assert!(revoked(hub.refresh(&again, &client, minutes(4)).await));

    // Six minutes after its rotation the old token has no grace left: it is a spent token
    // presented again, and the session ends.
    let old = refresh_token(login(start).await.unwrap());
    let newest = refresh_token(hub.refresh(&old, &client, minutes(0)).await.unwrap());
    assert!(revoked(hub.refresh(&old, &client, minutes(6)).await));
    assert!(revoked(hub.refresh(&newest, &client, minutes(7)).await));

    // Without a replay, the newest token keeps working.
    let old = refresh_token(login(start).await.unwrap());
    let newest = refresh_token(hub.refresh(&old, &client, minutes(0)).await.unwrap());
    hub.refresh(&newest, &client, minutes(7))
        .await
        .expect("the newest token works");
}

/// 100 failed password logins of `name`, 25 from each of four addresses (`first`..`first+3`):
/// enough to reach the account's limit without any address reaching its own.
async fn distributed_guessing(server: &TestServer, name: &'static str, first: u8) {
    let attackers: Vec<_> = (first..first + 4)
        .map(|last| {
            let client = server.client_from(last);
            tokio::spawn(async move { fail_logins(&client, name, 25).await })
        })
        .collect();
    for attacker in attackers {
        attacker.await.expect("attacker task");
    }
}

#[tokio::test]
async fn distributed_guessing_does_not_lock_the_user_out_of_a_known_address() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    // The real user signed in from .40 before the attack.
    password_session(&server.client_from(40), "ann", PASSWORD).await;

    distributed_guessing(&server, "ann", 41).await;

    // An address the account never signed in from is held back by the account's limit...
    assert_throttled(server.client_from(50).login("ann", PASSWORD).await);
    // ...the known one is not, with a password login or a password exchange,
    password_session(&server.client_from(40), "ann", PASSWORD).await;
    server
        .client_from(40)
        .auth_token("ann", PASSWORD)
        .await
        .expect("a password exchange from the known address");
    // ...but a wrong password from it still counts, and is refused like any other.
    match server
        .client_from(40)
        .login("ann", "wrong-password-x")
        .await
    {
        Err(ClientError::Unauthorized { .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn known_addresses_and_failures_survive_a_restart() {
    let mut server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    password_session(&server.client_from(60), "ann", PASSWORD).await;
    distributed_guessing(&server, "ann", 61).await;

    server.restart().await;
    assert_throttled(server.client_from(70).login("ann", PASSWORD).await);
    password_session(&server.client_from(60), "ann", PASSWORD).await;
}

#[tokio::test]
async fn distributed_guessing_does_not_refuse_the_accounts_tokens() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let pat = ann
        .create_token(&manual("ci"))
        .await
        .expect("create a PAT")
        .token;

    distributed_guessing(&server, "ann", 81).await;

    // From an address that never signed in: the password is held back, the PAT is not.
    let fresh = server.client_from(90);
    assert_throttled(fresh.auth_token("ann", PASSWORD).await);
    fresh
        .auth_token("ann", &pat)
        .await
        .expect("the PAT still gets a session");
    let basic = data_encoding::BASE64.encode(format!("ann:{pat}").as_bytes());
    let answer = server
        .raw_bytes(
            Method::GET,
            "/token?service=hubkey-registry&scope=repository:ann/app:pull",
            &[("authorization", format!("Basic {basic}").as_bytes())],
            None,
        )
        .await;
    assert_eq!(
        answer.status, 200,
        "registry token with the PAT: {}",
        answer.body
    );
    // Wrong PATs still count against the address that sends them.
    let guesser = server.client_from(91);
    for _ in 0..30 {
        assert_eq!(
            status_of(
                guesser
                    .auth_token("ann", "hkpat_000000000000000000000000000000000000")
                    .await
            ),
            401
        );
    }
    assert_throttled(guesser.auth_token("ann", &pat).await);
}
