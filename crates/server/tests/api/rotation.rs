//! Rotation with an overlap: the successor works at once, the old token until the overlap
//! ends and not a millisecond after, also when the token cache holds it.

use hubkey_api::{TokenEventKind, TokenState};

use crate::harness::{all_events, manual, status_of, ClockedServer};

#[tokio::test]
async fn a_rotated_token_works_until_its_overlap_ends_then_is_refused_even_from_the_cache() {
    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let mut request = manual("ci");
    request.scopes = vec![hubkey_api::Scope::Write];
    request.expires_at = Some(server.clock.now() + chrono::Duration::days(30));
    let old = ann.create_token(&request).await.unwrap();
    let new = ann.rotate_token(old.uuid, 600).await.expect("rotate");
    assert_ne!(new.token, old.token);
    assert!(new.token.starts_with("hkpat_"));
    assert_eq!(new.token_label, "ci");
    assert_eq!(new.scopes, old.scopes);
    assert_eq!(new.expires_at, old.expires_at);
    assert_eq!(new.generated_by, old.generated_by);
    assert_eq!(new.rotated_from, Some(old.uuid));
    let old_now = ann.get_token(old.uuid).await.unwrap();
    assert_eq!(old_now.rotated_to, Some(new.uuid));
    let overlap_until = old_now.overlap_until.expect("an overlap end");
    let to_end = overlap_until - server.clock.now();
    assert_eq!(to_end, chrono::Duration::seconds(600));
    assert_eq!(old_now.state, TokenState::Active);

    let anyone = server.client();
    anyone
        .auth_token("ann", &new.token)
        .await
        .expect("the successor works");
    // 1 ms before the end: the old token works (and is now in the token cache).
    server.advance(to_end - chrono::Duration::milliseconds(1));
    let bearer = anyone
        .auth_token("ann", &old.token)
        .await
        .expect("the old token works during the overlap")
        .access_token;
    let pat_session = server.client().with_token(bearer);
    // A session made from a token is alive (403: it may not manage tokens, but it is known).
    assert_eq!(status_of(pat_session.get_token(old.uuid).await), 403);
    // At the end: refused at once, though the cache entry is 0 s old (TOKEN_CACHE_AGE 5 s).
    server.advance(chrono::Duration::milliseconds(1));
    assert_eq!(status_of(anyone.auth_token("ann", &old.token).await), 401);
    assert_eq!(
        status_of(pat_session.get_token(old.uuid).await),
        401,
        "the bearer made from it ends with it"
    );
    assert_eq!(
        ann.get_token(old.uuid).await.unwrap().state,
        TokenState::Inactive
    );
    anyone
        .auth_token("ann", &new.token)
        .await
        .expect("the successor still works");

    let rotated: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::Rotated)
        .map(|e| (e.token_uuid, e.related_token))
        .collect();
    assert_eq!(
        rotated,
        vec![(old.uuid, Some(new.uuid)), (new.uuid, Some(old.uuid))]
    );
    // A rotated token is not rotated twice; the overlap is bounded.
    assert_eq!(status_of(ann.rotate_token(old.uuid, 0).await), 400);
    assert_eq!(status_of(ann.rotate_token(new.uuid, 604_801).await), 400);
    let third = ann
        .rotate_token(new.uuid, 0)
        .await
        .expect("rotate the successor");
    assert_eq!(
        status_of(anyone.auth_token("ann", &new.token).await),
        401,
        "overlap 0: at once"
    );
    anyone.auth_token("ann", &third.token).await.unwrap();
}

/// A client from `127.2.0.<last>` with the User-Agent `agent`.
fn attacker(
    server: &crate::harness::TestServer,
    last: u8,
    agent: &str,
) -> hubkey_client::HubClient {
    hubkey_client::HubClient::builder(&server.url)
        .local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127, 2, 0, last,
        )))
        .user_agent(agent)
        .build()
        .unwrap()
}

#[tokio::test]
async fn reuse_after_the_overlap_is_refused_and_recorded_once_per_address_and_agent() {
    let server = crate::harness::TestServer::start().await;
    let ann = server.user("ann").await;
    let old = ann.create_token(&manual("ci")).await.unwrap();
    let new = ann.rotate_token(old.uuid, 0).await.unwrap();
    let mallory = attacker(&server, 9, "curl/8.0 (stolen)");
    // Hammering from one address and agent (below the address's 30 failures that would turn
    // the answer into 429): refused every time, one event.
    for _ in 0..25 {
        assert_eq!(status_of(mallory.auth_token("ann", &old.token).await), 401);
    }
    let registry = reqwest::Client::new()
        .get(format!("{}/token?service=hubkey-registry", server.url))
        .basic_auth("ann", Some(&old.token))
        .header("user-agent", "curl/8.0 (stolen)")
        .send()
        .await
        .unwrap();
    assert_eq!(
        registry.status().as_u16(),
        401,
        "refused by the registry endpoint too"
    );
    let reuse: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::ReuseDetected)
        .collect();
    assert_eq!(reuse.len(), 2, "one per address and agent: {reuse:?}");
    assert_eq!(reuse[0].token_uuid, old.uuid);
    assert_eq!(reuse[0].related_token, Some(new.uuid));
    assert_eq!(reuse[0].address.as_deref(), Some("127.2.0.9"));
    assert_eq!(reuse[0].user_agent.as_deref(), Some("curl/8.0 (stolen)"));
    assert_eq!(reuse[1].address.as_deref(), Some("127.0.0.1"));
    // Many addresses and agents: at most REUSE_EVENTS_PER_TOKEN events in the window.
    for last in 10..40 {
        let other = attacker(&server, last, &format!("agent-{last}"));
        assert_eq!(status_of(other.auth_token("ann", &old.token).await), 401);
    }
    let count = all_events(&ann)
        .await
        .iter()
        .filter(|e| e.kind == TokenEventKind::ReuseDetected)
        .count();
    assert_eq!(
        count,
        usize::try_from(hubkeyd::hub::REUSE_EVENTS_PER_TOKEN).unwrap()
    );
    // revoke_on_reuse is off by default: the successor works.
    assert!(!ann.account_settings().await.unwrap().revoke_on_reuse);
    server
        .client()
        .auth_token("ann", &new.token)
        .await
        .expect("successor works");
}

#[tokio::test]
async fn with_revoke_on_reuse_a_reuse_also_deactivates_the_successor() {
    let server = crate::harness::TestServer::start().await;
    let ann = server.user("ann").await;
    let on = ann
        .patch_account_settings(&hubkey_api::PatchAccountSettings {
            revoke_on_reuse: Some(true),
        })
        .await
        .unwrap();
    assert!(on.revoke_on_reuse);
    assert!(ann.account_settings().await.unwrap().revoke_on_reuse);
    let old = ann.create_token(&manual("ci")).await.unwrap();
    let new = ann.rotate_token(old.uuid, 0).await.unwrap();
    server
        .client()
        .auth_token("ann", &new.token)
        .await
        .expect("successor works");
    // A session made from a token may not change the setting.
    let pat_session = server.client().with_token(
        server
            .client()
            .auth_token("ann", &new.token)
            .await
            .unwrap()
            .access_token,
    );
    assert_eq!(
        status_of(
            pat_session
                .patch_account_settings(&hubkey_api::PatchAccountSettings {
                    revoke_on_reuse: Some(false),
                })
                .await
        ),
        403
    );
    let mallory = attacker(&server, 9, "stolen");
    assert_eq!(status_of(mallory.auth_token("ann", &old.token).await), 401);
    assert!(!ann.get_token(new.uuid).await.unwrap().is_active);
    assert_eq!(
        status_of(server.client().auth_token("ann", &new.token).await),
        401,
        "the successor is refused at once"
    );
    let kinds: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.token_uuid == new.uuid || e.token_uuid == old.uuid)
        .map(|e| (e.kind, e.token_uuid))
        .collect();
    assert!(
        kinds.ends_with(&[
            (TokenEventKind::ReuseDetected, old.uuid),
            (TokenEventKind::Deactivated, new.uuid)
        ]),
        "{kinds:?}"
    );
}
