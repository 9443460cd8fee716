//! Auto-token pruning: after each `desktop-generate` the account keeps its five most recently
//! used auto tokens (never-used ones rank by creation time, the new one always stays), the
//! others are deleted with a `pruned` event each, and manual tokens are never touched.

use hubkey_api::{GeneratedToken, Origin, TokenEvent, TokenEventKind};
use hubkey_client::HubClient;
use std::collections::HashSet;
use uuid::Uuid;

use crate::harness::{all_events, manual, status_of, ClockedServer, TestServer};

/// The uuids of the account's auto tokens.
async fn auto_tokens(client: &HubClient) -> HashSet<Uuid> {
    client
        .list_all_tokens()
        .await
        .expect("list tokens")
        .into_iter()
        .filter(|token| token.generated_by == Origin::Auto)
        .map(|token| token.uuid)
        .collect()
}

/// The events of one kind, in feed order.
fn of_kind(events: &[TokenEvent], kind: TokenEventKind) -> Vec<&TokenEvent> {
    events.iter().filter(|event| event.kind == kind).collect()
}

async fn generate(client: &HubClient) -> GeneratedToken {
    client
        .desktop_generate(None)
        .await
        .expect("desktop-generate")
        .data
}

/// Uses a token through `/v2/auth/token`, then turns the server's clock a second, so that
/// successive uses get distinct `last_used` times.
async fn use_token(server: &ClockedServer, token: &str) {
    server
        .client()
        .auth_token("ann", token)
        .await
        .expect("auth/token with the PAT");
    server.advance(chrono::Duration::seconds(1));
}

#[tokio::test]
async fn desktop_generate_keeps_the_five_most_recently_used_auto_tokens() {
    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    // A manual token used before every auto token: least recently used of all, never pruned.
    let manual_token = ann.create_token(&manual("ci")).await.expect("create");
    use_token(&server, &manual_token.token).await;

    let mut auto = Vec::new();
    for _ in 0..5 {
        auto.push(generate(&ann).await);
    }
    // Use order t5, t4, t1, t3, t2: by creation t1 and t2 would go; by use t5 and t4 must.
    for index in [4, 3, 0, 2, 1] {
        use_token(&server, &auto[index].token).await;
    }
    let sixth = generate(&ann).await;
    let pruned_first: HashSet<Uuid> = auto
        .iter()
        .map(|t| t.uuid)
        .collect::<HashSet<_>>()
        .difference(&auto_tokens(&ann).await)
        .copied()
        .collect();
    assert_eq!(
        pruned_first,
        HashSet::from([auto[4].uuid]),
        "the least recently used goes"
    );
    use_token(&server, &sixth.token).await;
    let seventh = generate(&ann).await;
    use_token(&server, &seventh.token).await;

    let remaining = auto_tokens(&ann).await;
    let expected: HashSet<Uuid> = [&auto[0], &auto[2], &auto[1], &sixth, &seventh]
        .iter()
        .map(|t| t.uuid)
        .collect();
    assert_eq!(remaining, expected);
    for gone in [&auto[4], &auto[3]] {
        assert_eq!(status_of(ann.get_token(gone.uuid).await), 404);
        assert_eq!(
            status_of(server.client().auth_token("ann", &gone.token).await),
            401
        );
    }

    let events = all_events(&ann).await;
    let pruned = of_kind(&events, TokenEventKind::Pruned);
    assert_eq!(
        pruned.iter().map(|e| e.token_uuid).collect::<Vec<_>>(),
        vec![auto[4].uuid, auto[3].uuid]
    );
    for (event, token) in pruned.iter().zip([&auto[4], &auto[3]]) {
        assert_eq!(event.generated_by, Origin::Auto);
        assert_eq!(event.token_label, token.token_label);
        assert!(
            event.last_used.is_some(),
            "a used token's pruned event says when: {event:?}"
        );
    }

    let untouched = ann
        .get_token(manual_token.uuid)
        .await
        .expect("manual token");
    assert!(untouched.is_active);
    assert!(untouched.last_used.is_some());
    for event in pruned {
        assert_eq!(
            event.client_id, "hubkey-client",
            "without a body, the client is the User-Agent's product"
        );
    }
}

#[tokio::test]
async fn never_used_auto_tokens_rank_by_creation_time() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let mut auto = Vec::new();
    for _ in 0..7 {
        auto.push(generate(&ann).await);
    }
    let expected: HashSet<Uuid> = auto[2..].iter().map(|t| t.uuid).collect();
    assert_eq!(auto_tokens(&ann).await, expected);
    let events = all_events(&ann).await;
    let pruned: Vec<_> = of_kind(&events, TokenEventKind::Pruned)
        .iter()
        .map(|e| (e.token_uuid, e.last_used))
        .collect();
    assert_eq!(pruned, vec![(auto[0].uuid, None), (auto[1].uuid, None)]);
}

#[tokio::test]
async fn manual_tokens_and_other_accounts_are_never_pruned() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let bobs_auto = generate(&bob).await;
    let mut manual_uuids = HashSet::new();
    for n in 0..6 {
        let created = ann
            .create_token(&manual(&format!("m{n}")))
            .await
            .expect("create");
        manual_uuids.insert(created.uuid);
    }
    for _ in 0..6 {
        generate(&ann).await;
    }
    let tokens = ann.list_all_tokens().await.expect("list");
    let manual_left: HashSet<Uuid> = tokens
        .iter()
        .filter(|t| t.generated_by == Origin::Manual)
        .map(|t| t.uuid)
        .collect();
    assert_eq!(manual_left, manual_uuids);
    assert_eq!(auto_tokens(&ann).await.len(), 5);
    assert_eq!(auto_tokens(&bob).await, HashSet::from([bobs_auto.uuid]));
    assert!(of_kind(&all_events(&bob).await, TokenEventKind::Pruned).is_empty());
}

#[tokio::test]
async fn concurrent_desktop_generate_leaves_the_five_newest() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = ann.clone();
            tokio::spawn(async move { client.desktop_generate(None).await })
        })
        .collect();
    let mut returned = Vec::new();
    for call in calls {
        let answer = call.await.expect("join").expect("every call succeeds");
        returned.push(answer.data);
    }
    let returned_uuids: HashSet<Uuid> = returned.iter().map(|t| t.uuid).collect();
    assert_eq!(returned_uuids.len(), 50, "every call made its own token");

    let tokens = ann.list_all_tokens().await.expect("list");
    let remaining: Vec<_> = tokens
        .iter()
        .filter(|t| t.generated_by == Origin::Auto)
        .collect();
    assert_eq!(remaining.len(), 5, "never more than five auto tokens");

    let remaining_uuids: HashSet<Uuid> = remaining.iter().map(|t| t.uuid).collect();
    let events = all_events(&ann).await;
    let created: Vec<&TokenEvent> = of_kind(&events, TokenEventKind::Created);
    assert_eq!(created.len(), 50);
    let pruned: Vec<Uuid> = of_kind(&events, TokenEventKind::Pruned)
        .iter()
        .map(|e| e.token_uuid)
        .collect();
    assert_eq!(pruned.len(), 45);
    let pruned: HashSet<Uuid> = pruned.into_iter().collect();
    assert_eq!(pruned.len(), 45, "each token is pruned once");
    let gone: HashSet<Uuid> = returned_uuids
        .difference(&remaining_uuids)
        .copied()
        .collect();
    assert_eq!(
        gone, pruned,
        "every returned token that is gone has a pruned event"
    );

    // The survivors are the five created last: none was created before a pruned token (the
    // `created` event's time is the token's `created_at`; equal milliseconds are a tie).
    for survivor in &remaining {
        let newer_pruned: Vec<_> = created
            .iter()
            .filter(|e| pruned.contains(&e.token_uuid) && e.at > survivor.created_at)
            .map(|e| (e.token_uuid, e.at))
            .collect();
        assert!(
            newer_pruned.is_empty(),
            "survivor {} (created {}) outlived newer tokens that were pruned: {newer_pruned:?}",
            survivor.uuid,
            survivor.created_at
        );
    }
    let last_in_feed: HashSet<Uuid> = created[45..].iter().map(|e| e.token_uuid).collect();
    assert_eq!(
        remaining_uuids, last_in_feed,
        "the survivors are the last five in the feed"
    );
}

/// Issue 14 item 14: a use taken by a background flush that has not written it yet still
/// counts for pruning. The flush is held between taking its batch and writing it (the test
/// hook of a slow disk); `desktop-generate` runs meanwhile, and must prune the least recently
/// used auto token, not the one just used.
#[tokio::test]
async fn pruning_sees_the_uses_a_flush_is_still_writing() {
    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let mut auto = Vec::new();
    for _ in 0..5 {
        auto.push(generate(&ann).await);
    }
    // Use order t0, t1, t2, t3, t4, all written: t0 is the least recently used…
    for token in &auto {
        use_token(&server, &token.token).await;
    }
    let usage = server.hub.usage().clone();
    usage.flush(server.hub.store()).await.expect("flush");
    // …until it is used again: now t1 is.
    let hold = usage.hold_writes().await;
    let taken = usage.batches_taken();
    use_token(&server, &auto[0].token).await;
    let flushing = {
        let usage = usage.clone();
        let store = server.hub.store().clone();
        tokio::spawn(async move { usage.flush(&store).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while usage.batches_taken() == taken {
        assert!(
            std::time::Instant::now() < deadline,
            "no flush took the use"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The use is now in a flush's hands, not yet written. Sign in again meanwhile.
    let sixth = {
        let ann = ann.clone();
        tokio::spawn(async move { generate(&ann).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(hold);
    let sixth = sixth.await.expect("desktop-generate task");
    flushing.await.expect("flush task").expect("flush");
    let left = auto_tokens(&ann).await;
    let pruned: Vec<usize> = (0..5).filter(|&i| !left.contains(&auto[i].uuid)).collect();
    assert_eq!(
        pruned,
        vec![1],
        "the least recently used (t1) goes, not t0 whose use was being written"
    );
    assert!(left.contains(&sixth.uuid));
}
