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
    // From the rotation's stamp (the account's token clock: now, or 1 ms after the last change).
    let to_end = overlap_until - server.clock.now();
    assert!(
        (600_000..=600_010).contains(&to_end.num_milliseconds()),
        "{to_end}"
    );
    assert_eq!(old_now.state, TokenState::Active);

    let anyone = server.client();
    anyone
        .auth_token("ann", &new.token)
        .await
        .expect("the successor works");
    // 1 ms before the end: the old token works (and is now in the token cache).
    server.advance(to_end - chrono::Duration::milliseconds(1));
    anyone
        .auth_token("ann", &old.token)
        .await
        .expect("the old token works during the overlap");
    // At the end: refused at once, though the cache entry is 0 s old (TOKEN_CACHE_AGE 5 s).
    server.advance(chrono::Duration::milliseconds(1));
    assert_eq!(status_of(anyone.auth_token("ann", &old.token).await), 401);
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
