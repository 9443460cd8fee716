//! The events feed: every token change of the account, in order, read from an opaque cursor.

use hubkey_api::{Origin, PatchAccessTokenRequest, TokenEventKind};
use hubkey_client::ClientError;

use crate::harness::{all_events, manual, TestServer};

#[tokio::test]
async fn events_record_every_change_in_order() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let created = ann.create_token(&manual("ci")).await.expect("create");
    let auto = ann
        .desktop_generate(None)
        .await
        .expect("desktop-generate")
        .data;
    let patch = |is_active: Option<bool>, token_label: Option<&str>| PatchAccessTokenRequest {
        is_active,
        token_label: token_label.map(str::to_owned),
        new_address_alerts: None,
    };
    ann.patch_token(created.uuid, &patch(Some(false), None))
        .await
        .expect("deactivate");
    ann.patch_token(created.uuid, &patch(Some(true), None))
        .await
        .expect("activate");
    ann.patch_token(created.uuid, &patch(None, Some("ci, renamed")))
        .await
        .expect("relabel");
    ann.delete_token(created.uuid).await.expect("delete");

    let events = all_events(&ann).await;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.token_uuid, e.generated_by))
        .collect();
    assert_eq!(
        seen,
        vec![
            (TokenEventKind::Created, created.uuid, Origin::Manual),
            (TokenEventKind::Created, auto.uuid, Origin::Auto),
            (TokenEventKind::Deactivated, created.uuid, Origin::Manual),
            (TokenEventKind::Activated, created.uuid, Origin::Manual),
            (TokenEventKind::Relabelled, created.uuid, Origin::Manual),
            (TokenEventKind::Deleted, created.uuid, Origin::Manual),
        ]
    );
    assert_eq!(events[0].token_label, "ci");
    assert_eq!(events[1].token_label, auto.token_label);
    assert_eq!(events[5].token_label, "ci, renamed");
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(events.iter().all(|e| e.at >= before));
    let cursors: std::collections::HashSet<_> = events.iter().map(|e| &e.cursor).collect();
    assert_eq!(cursors.len(), events.len(), "each event has its own cursor");
}

#[tokio::test]
async fn events_after_a_cursor_are_only_the_newer_ones() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let empty = ann.events(None).await.expect("empty feed");
    assert!(empty.events.is_empty());
    assert!(!empty.has_more);

    let first = ann.create_token(&manual("first")).await.expect("create");
    let page = ann.events(None).await.expect("feed");
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].token_uuid, first.uuid);

    let idle = ann.events(Some(&page.cursor)).await.expect("nothing new");
    assert!(idle.events.is_empty());
    assert!(!idle.has_more);
    assert_eq!(
        idle.cursor, page.cursor,
        "the cursor stays when nothing happened"
    );

    let second = ann.create_token(&manual("second")).await.expect("create");
    let newer = ann.events(Some(&page.cursor)).await.expect("newer");
    assert_eq!(newer.events.len(), 1);
    assert_eq!(newer.events[0].token_uuid, second.uuid);
    assert_ne!(newer.cursor, page.cursor);
    let from_event = ann
        .events(Some(&page.events[0].cursor))
        .await
        .expect("from event");
    assert_eq!(
        from_event.events, newer.events,
        "an event's cursor reads what follows it"
    );
}

#[tokio::test]
async fn events_limit_pages_the_feed() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    for n in 0..5 {
        ann.create_token(&manual(&format!("t{n}")))
            .await
            .expect("create");
    }
    let mut labels = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ann
            .events_limited(after.as_deref(), 2)
            .await
            .expect("events");
        assert!(page.events.len() <= 2);
        labels.extend(page.events.iter().map(|e| e.token_label.clone()));
        pages += 1;
        after = Some(page.cursor);
        if !page.has_more {
            break;
        }
        assert!(pages < 10, "the feed never ends");
    }
    assert_eq!(labels, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn events_refuse_a_garbage_cursor() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    ann.create_token(&manual("ci")).await.expect("create");
    for cursor in ["garbage", "💥"] {
        match ann.events(Some(cursor)).await {
            Err(ClientError::Invalid { body }) => assert!(!body.text.is_empty()),
            other => panic!("cursor {cursor:?}: expected 400, got {other:?}"),
        }
    }
}
