//! Sessions that cannot be stolen for long, and containing a compromised account: refresh
//! token reuse detection, the absolute session lifetime, password change, sign-out
//! everywhere, the admin's disable / enable / reset-password / revoke-sessions, TOTP changes,
//! the security events feed, and the sweep of ended sessions and expired challenges.

use std::time::{Duration, Instant};

use hubkey_api::{AccountEvent, AccountEventKind, PatchAccessTokenRequest, TokenEventKind};
use hubkey_client::{ClientError, HubClient, LoginOutcome};
use reqwest::Method;

use crate::harness::{
    all_events, assert_success, manual, password_session, status_of, totp_code, ClockedServer,
    TestServer, PASSWORD,
};

/// A second password that passes the policy.
const NEW_PASSWORD: &str = "lantern-meadow-73";

/// The account's whole security feed, from the start.
async fn security_events(client: &HubClient) -> Vec<AccountEvent> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .account_events(after.as_deref())
            .await
            .expect("read the security events");
        events.extend(page.events);
        if !page.has_more {
            return events;
        }
        after = Some(page.cursor);
    }
}

fn kinds(events: &[AccountEvent]) -> Vec<AccountEventKind> {
    events.iter().map(|event| event.kind).collect()
}

/// A registry token for `name` with `secret` through `/token` (Basic auth): the status.
async fn registry_token_status(server: &TestServer, name: &str, secret: &str) -> u16 {
    let basic = data_encoding::BASE64.encode(format!("{name}:{secret}").as_bytes());
    server
        .raw_bytes(
            Method::GET,
            "/token?service=hubkey-registry&scope=repository:ann/app:pull",
            &[("authorization", format!("Basic {basic}").as_bytes())],
            None,
        )
        .await
        .status
}

/// Polls `check` every 250 ms until it holds, for at most `within` (each refused PAT counts
/// against the address's sign-in limit: few polls).
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---- item 5: refresh-token reuse and the absolute lifetime -------------------------------

#[tokio::test]
async fn concurrent_replays_of_a_spent_refresh_token_revoke_the_whole_session() {
    const REPLAYS: usize = 64;
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let session = password_session(&client, "ann", PASSWORD).await;
    let stolen = session.refresh_token.clone().expect("refresh token");
    // The real client refreshes: `stolen` is spent, its one grace use still open.
    let real = client.refresh(&stolen).await.expect("refresh");

    // The thief replays the spent token, many times at once.
    let thief = HubClient::builder(&server.url)
        .user_agent("thief/1.0")
        .build()
        .unwrap();
    let replays: Vec<_> = (0..REPLAYS)
        .map(|_| {
            let thief = thief.clone();
            let stolen = stolen.clone();
            tokio::spawn(async move { thief.refresh(&stolen).await })
        })
        .collect();
    let mut won = Vec::new();
    let mut revoked = 0;
    for replay in replays {
        match replay.await.unwrap() {
            Ok(answer) => won.push(answer),
            Err(ClientError::SessionRevoked) => revoked += 1,
            Err(other) => panic!("a replay failed otherwise: {other:?}"),
        }
    }
    println!(
        "{REPLAYS} concurrent replays of a spent refresh token: {} succeeded, {revoked} answered session_revoked",
        won.len()
    );
    assert!(won.len() <= 1, "{} replays succeeded", won.len());
    assert_eq!(won.len() + revoked, REPLAYS);

    // Nobody keeps the session: not the real client, not the one replay that won.
    let real_refresh = real.refresh_token.unwrap();
    assert_eq!(
        client.refresh(&real_refresh).await.unwrap_err(),
        ClientError::SessionRevoked
    );
    assert_eq!(
        client
            .with_token(real.token)
            .list_tokens(1, 10)
            .await
            .unwrap_err(),
        ClientError::SessionRevoked
    );
    for answer in won {
        assert_eq!(
            client
                .refresh(&answer.refresh_token.unwrap())
                .await
                .unwrap_err(),
            ClientError::SessionRevoked
        );
        assert_eq!(
            status_of(client.with_token(answer.token).list_tokens(1, 10).await),
            401
        );
    }

    // One event, saying where the replay came from.
    let ann = server.sign_in("ann", PASSWORD).await;
    let events = security_events(&ann).await;
    assert_eq!(kinds(&events), vec![AccountEventKind::RefreshReuse]);
    assert_eq!(events[0].address.as_deref(), Some("127.0.0.1"));
    assert_eq!(events[0].user_agent.as_deref(), Some("thief/1.0"));
}

#[tokio::test]
async fn a_session_ends_thirty_days_after_sign_in_however_often_it_is_refreshed() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let mut session = password_session(&client, "ann", PASSWORD).await;
    // Refreshed every 6 days, the last time a minute before the 30th day ends.
    for step in [6, 6, 6, 6] {
        server.advance(chrono::Duration::days(step));
        session = client
            .refresh(&session.refresh_token.unwrap())
            .await
            .expect("refresh within the 30 days");
    }
    server.advance(chrono::Duration::days(6) - chrono::Duration::minutes(1));
    let last = client
        .refresh(&session.refresh_token.unwrap())
        .await
        .expect("refresh a minute before the 30 days end");
    client
        .with_token(last.token.clone())
        .list_tokens(1, 10)
        .await
        .expect("the bearer works until the session ends");

    server.advance(chrono::Duration::minutes(2));
    assert_eq!(
        status_of(client.refresh(&last.refresh_token.unwrap()).await),
        401,
        "refreshing never extends a session past 30 days from its sign-in"
    );
    assert_eq!(
        status_of(client.with_token(last.token).list_tokens(1, 10).await),
        401,
        "its last bearer ends with it"
    );
}

// ---- item 6: containing a compromised account --------------------------------------------

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_every_other_session() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let here = server.sign_in("ann", PASSWORD).await;
    let elsewhere = password_session(&client, "ann", PASSWORD).await;
    let pat = here
        .create_token(&manual("ci"))
        .await
        .expect("create")
        .token;

    assert_eq!(
        status_of(
            here.change_password("not-the-password", NEW_PASSWORD, false)
                .await
        ),
        401
    );
    match here.change_password(PASSWORD, "password123", false).await {
        Err(ClientError::Invalid { body }) => {
            assert!(body.fields.contains_key("new_password"), "{body:?}");
        }
        other => panic!("a common new password: {other:?}"),
    }
    // Nothing changed yet.
    client
        .with_token(elsewhere.token.clone())
        .list_tokens(1, 10)
        .await
        .expect("the other session still works");

    here.change_password(PASSWORD, NEW_PASSWORD, false)
        .await
        .expect("change the password");
    here.list_tokens(1, 10)
        .await
        .expect("the caller's session lives on");
    assert_eq!(
        status_of(client.with_token(elsewhere.token).list_tokens(1, 10).await),
        401,
        "the other session ended"
    );
    assert_eq!(
        status_of(client.refresh(&elsewhere.refresh_token.unwrap()).await),
        401,
        "and its refresh token with it"
    );
    assert_eq!(status_of(client.login("ann", PASSWORD).await), 401);
    password_session(&client, "ann", NEW_PASSWORD).await;
    client
        .auth_token("ann", &pat)
        .await
        .expect("access tokens stay unless asked");

    let events = security_events(&here).await;
    assert_eq!(kinds(&events), vec![AccountEventKind::PasswordChanged]);
    assert_eq!(events[0].address.as_deref(), Some("127.0.0.1"));
    assert!(events[0]
        .user_agent
        .as_deref()
        .is_some_and(|agent| agent.starts_with("hubkey-client/")));
}

#[tokio::test]
async fn changing_the_password_with_revoke_tokens_deactivates_every_token() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let ann = server.sign_in("ann", PASSWORD).await;
    let mut pats = Vec::new();
    for label in ["ci", "laptop", "backup"] {
        pats.push(ann.create_token(&manual(label)).await.expect("create"));
    }
    pats.push(
        ann.desktop_generate(None)
            .await
            .map(|generated| {
                let mut token = pats[0].clone();
                token.uuid = generated.data.uuid;
                token.token = generated.data.token;
                token
            })
            .expect("desktop-generate"),
    );
    // One already inactive: it gets no second event.
    ann.patch_token(
        pats[2].uuid,
        &PatchAccessTokenRequest {
            is_active: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("deactivate");
    for pat in &pats[..2] {
        server
            .client()
            .auth_token("ann", &pat.token)
            .await
            .expect("the PAT works before");
    }

    ann.change_password(PASSWORD, NEW_PASSWORD, true)
        .await
        .expect("change the password and revoke tokens");
    for pat in &pats {
        assert_eq!(
            status_of(server.client().auth_token("ann", &pat.token).await),
            401,
            "/v2/auth/token still takes {}",
            pat.uuid
        );
        assert_eq!(registry_token_status(&server, "ann", &pat.token).await, 401);
        assert!(!ann.get_token(pat.uuid).await.expect("get").is_active);
    }
    let deactivated: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|event| event.kind == TokenEventKind::Deactivated)
        .map(|event| event.token_uuid)
        .collect();
    assert_eq!(
        deactivated.len(),
        4,
        "one event per token, once: {deactivated:?}"
    );
    for pat in [&pats[0], &pats[1], &pats[3]] {
        assert!(deactivated.contains(&pat.uuid));
    }
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_sign_ins() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let ann = server.sign_in("ann", PASSWORD).await;
    let mut refused = 0;
    let throttled = loop {
        match ann
            .change_password("wrong-guess-000", NEW_PASSWORD, false)
            .await
        {
            Err(ClientError::Unauthorized { .. }) => refused += 1,
            Err(ClientError::Throttled { .. }) => break true,
            other => panic!("a wrong current password: {other:?}"),
        }
        if refused > 200 {
            break false;
        }
    };
    println!("change-password: throttled after {refused} wrong current passwords");
    assert!(throttled, "200 wrong current passwords were all compared");
    assert!(matches!(
        ann.change_password(PASSWORD, NEW_PASSWORD, false).await,
        Err(ClientError::Throttled { .. })
    ));
    // The failures count against sign-ins too.
    assert!(matches!(
        server.client().login("ann", PASSWORD).await,
        Err(ClientError::Throttled { .. })
    ));
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_account_and_no_other() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    server.add_user("bob", PASSWORD).await;
    let client = server.client();
    let here = server.sign_in("ann", PASSWORD).await;
    let elsewhere = password_session(&client, "ann", PASSWORD).await;
    let bob = server.sign_in("bob", PASSWORD).await;
    let pat = here
        .create_token(&manual("ci"))
        .await
        .expect("create")
        .token;

    assert_eq!(here.revoke_all_sessions().await.expect("revoke-all"), 2);
    assert_eq!(status_of(here.list_tokens(1, 10).await), 401);
    assert_eq!(
        status_of(client.with_token(elsewhere.token).list_tokens(1, 10).await),
        401
    );
    assert_eq!(
        status_of(client.refresh(&elsewhere.refresh_token.unwrap()).await),
        401
    );
    bob.list_tokens(1, 10)
        .await
        .expect("other accounts keep theirs");
    client.auth_token("ann", &pat).await.expect("PATs stay");

    let ann = server.sign_in("ann", PASSWORD).await;
    let events = security_events(&ann).await;
    assert_eq!(kinds(&events), vec![AccountEventKind::SessionsRevoked]);
    assert!(security_events(&bob).await.is_empty());
}

#[tokio::test]
async fn a_session_made_from_a_pat_cannot_change_the_password_or_revoke_sessions() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let pat = ann.create_token(&manual("ci")).await.expect("create").token;
    let session = server
        .client()
        .auth_token("ann", &pat)
        .await
        .expect("auth/token");
    let from_pat = server.client().with_token(session.access_token);
    assert_eq!(
        status_of(from_pat.change_password(PASSWORD, NEW_PASSWORD, true).await),
        403
    );
    assert_eq!(status_of(from_pat.revoke_all_sessions().await), 403);
    assert_eq!(status_of(from_pat.account_events(None).await), 403);
    ann.list_tokens(1, 10).await.expect("nothing was revoked");
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere_until_enabled() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let session = password_session(&client, "ann", PASSWORD).await;
    let ann = client.with_token(session.token.clone());
    let pat = ann.create_token(&manual("ci")).await.expect("create").token;
    // The PAT is looked up (and cached) before the account is disabled.
    client.auth_token("ann", &pat).await.expect("auth/token");
    assert_eq!(registry_token_status(&server, "ann", &pat).await, 200);

    let output = server.data().run(&["user", "disable", "ann"], None).await;
    assert_success(&output, "user disable");
    let disabled_at = Instant::now();

    assert_eq!(status_of(ann.list_tokens(1, 10).await), 401, "bearer");
    assert_eq!(
        status_of(client.refresh(&session.refresh_token.unwrap()).await),
        401,
        "refresh token"
    );
    assert_eq!(status_of(client.login("ann", PASSWORD).await), 401);
    assert_eq!(status_of(client.auth_token("ann", PASSWORD).await), 401);
    // The cached PAT too, at once: the command returned once the server had forgotten it
    // (SQLite: the change table; PostgreSQL: the change channel's confirmation).
    let other = server.client_from(60);
    assert_eq!(status_of(other.auth_token("ann", &pat).await), 401);
    assert_eq!(registry_token_status(&server, "ann", &pat).await, 401);
    println!(
        "a disabled user's cached PAT was refused {} ms after `user disable`",
        disabled_at.elapsed().as_millis()
    );
    let listed = server.data().run(&["user", "list"], None).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("ann\t2fa=off\ttokens=1\tdisabled"));

    let output = server.data().run(&["user", "enable", "ann"], None).await;
    assert_success(&output, "user enable");
    // Its cached answer (disabled) is forgotten likewise.
    assert_eq!(registry_token_status(&server, "ann", &pat).await, 200);
    other
        .auth_token("ann", &pat)
        .await
        .expect("the PAT works again");
    let ann = server.sign_in("ann", PASSWORD).await;
    ann.list_tokens(1, 10).await.expect("signed in again");
}

#[tokio::test]
async fn reset_password_from_the_cli_ends_every_session() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let ann = server.sign_in("ann", PASSWORD).await;
    let pat = ann.create_token(&manual("ci")).await.expect("create").token;

    let weak = server
        .data()
        .run(
            &["user", "reset-password", "ann", "--password-stdin"],
            Some("password123\n"),
        )
        .await;
    assert!(!weak.status.success(), "a common password was accepted");
    ann.list_tokens(1, 10).await.expect("nothing changed");

    let output = server
        .data()
        .run(
            &["user", "reset-password", "ann", "--password-stdin"],
            Some(&format!("{NEW_PASSWORD}\n")),
        )
        .await;
    assert_success(&output, "user reset-password");
    assert_eq!(status_of(ann.list_tokens(1, 10).await), 401);
    assert_eq!(status_of(server.client().login("ann", PASSWORD).await), 401);
    let ann = server.sign_in("ann", NEW_PASSWORD).await;
    server
        .client()
        .auth_token("ann", &pat)
        .await
        .expect("PATs stay");
    assert_eq!(
        kinds(&security_events(&ann).await),
        vec![AccountEventKind::PasswordChanged]
    );
}

#[tokio::test]
async fn revoke_sessions_from_the_cli_ends_them_and_keeps_the_tokens() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let other = server.sign_in("ann", PASSWORD).await;
    let pat = ann.create_token(&manual("ci")).await.expect("create").token;
    let output = server
        .data()
        .run(&["user", "revoke-sessions", "ann"], None)
        .await;
    assert_success(&output, "user revoke-sessions");
    assert!(String::from_utf8_lossy(&output.stdout).contains("ended 2 sessions"));
    assert_eq!(status_of(ann.list_tokens(1, 10).await), 401);
    assert_eq!(status_of(other.list_tokens(1, 10).await), 401);
    server
        .client()
        .auth_token("ann", &pat)
        .await
        .expect("PATs stay");
    let unknown = server
        .data()
        .run(&["user", "revoke-sessions", "nobody"], None)
        .await;
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn turning_on_totp_ends_the_sessions_opened_without_it() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let client = server.client();
    let before = password_session(&client, "ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    assert_eq!(
        status_of(client.with_token(before.token).list_tokens(1, 10).await),
        401
    );
    assert_eq!(
        status_of(client.refresh(&before.refresh_token.unwrap()).await),
        401
    );
    let Ok(LoginOutcome::SecondFactor { login_2fa_token }) = client.login("ann", PASSWORD).await
    else {
        panic!("ann is asked for a second factor");
    };
    let session = client
        .login_2fa(&login_2fa_token, &totp_code(&secret, server.unix_now()))
        .await
        .expect("2FA sign-in");
    let ann = client.with_token(session.token);
    assert_eq!(
        kinds(&security_events(&ann).await),
        vec![AccountEventKind::TwoFactorChanged]
    );
    // A new secret ends the 2FA session too, and a challenge issued before it.
    server.advance(chrono::Duration::seconds(30));
    let Ok(LoginOutcome::SecondFactor { login_2fa_token }) = client.login("ann", PASSWORD).await
    else {
        panic!("ann is asked for a second factor");
    };
    let secret = server.enable_totp("ann").await;
    assert_eq!(status_of(ann.list_tokens(1, 10).await), 401);
    assert_eq!(
        client
            .login_2fa(&login_2fa_token, &totp_code(&secret, server.unix_now()))
            .await
            .unwrap_err(),
        ClientError::ChallengeExpired
    );
}

// ---- item 13: ended sessions and expired challenges are deleted --------------------------

/// Rows of `table` in the database at `db` (read beside the running server).
#[tokio::test]
async fn ended_sessions_and_expired_challenges_are_deleted_after_their_retention() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    server.add_user("bob", PASSWORD).await;
    server.enable_totp("bob").await;
    let client = server.client();
    let live = password_session(&client, "ann", PASSWORD).await;
    let live = client
        .refresh(&live.refresh_token.unwrap())
        .await
        .expect("refresh");
    let ended = client.with_token(password_session(&client, "ann", PASSWORD).await.token);
    ended.logout().await.expect("logout");
    for _ in 0..3 {
        assert!(matches!(
            client.login("bob", PASSWORD).await,
            Ok(LoginOutcome::SecondFactor { .. })
        ));
    }
    assert_eq!(server.data().count_rows("sessions").await, 2);
    assert_eq!(server.data().count_rows("mfa_challenges").await, 3);
    assert!(server.data().count_rows("spent_refresh_tokens").await >= 2);

    // Challenges live 5 minutes; nothing keeps them longer.
    server.advance(chrono::Duration::minutes(6));
    eventually(
        Duration::from_secs(5),
        "expired challenges deleted",
        || async { server.data().count_rows("mfa_challenges").await == 0 },
    )
    .await;
    assert_eq!(
        server.data().count_rows("sessions").await,
        2,
        "ended sessions are kept a while"
    );

    // A week after it ended, the signed-out session goes, with its spent refresh tokens.
    server.advance(chrono::Duration::days(7));
    eventually(
        Duration::from_secs(5),
        "the ended session deleted",
        || async { server.data().count_rows("sessions").await == 1 },
    )
    .await;
    let live = client
        .refresh(&live.refresh_token.unwrap())
        .await
        .expect("the live session is untouched");
    assert_eq!(
        server.data().count_rows("spent_refresh_tokens").await,
        2,
        "the live session's"
    );

    // The live one ends 30 days after its sign-in, and goes a week later.
    server.advance(chrono::Duration::days(30));
    eventually(Duration::from_secs(5), "every session deleted", || async {
        server.data().count_rows("sessions").await == 0
    })
    .await;
    assert_eq!(server.data().count_rows("spent_refresh_tokens").await, 0);
    assert_eq!(
        status_of(client.refresh(&live.refresh_token.unwrap()).await),
        401
    );
}
