//! `new_address` events: a token accepted from an address it was never used from is recorded
//! (not its first use ever), with the address and agent; at most ten per token per hour; none
//! for a token whose `new_address_alerts` is off. Runs on SQLite and PostgreSQL alike.

use std::net::{IpAddr, Ipv4Addr};

use hubkey_api::{PatchAccessTokenRequest, TokenEvent, TokenEventKind};
use hubkey_client::HubClient;
use uuid::Uuid;

use crate::harness::{manual, password_session, ClockedServer, TestServer, PASSWORD};

/// `GET /token` with Basic `ann:secret` from `address` with `agent`; the status.
async fn use_token(url: &str, address: Ipv4Addr, agent: &str, secret: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .user_agent(agent)
        .build()
        .unwrap();
    client
        .get(format!("{url}/token"))
        .query(&[("service", "hubkey-registry")])
        .basic_auth("ann", Some(secret))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `new_address` events of `token` in the feed after `after`, once the access log is
/// written (reading a token's activity writes the pending lines first).
async fn new_address_events(ann: &HubClient, token: Uuid, after: Option<&str>) -> Vec<TokenEvent> {
    ann.token_activity(token, None, None).await.unwrap();
    let mut events = Vec::new();
    let mut cursor = after.map(str::to_owned);
    loop {
        let page = ann.events(cursor.as_deref()).await.unwrap();
        events.extend(
            page.events
                .into_iter()
                .filter(|e| e.kind == TokenEventKind::NewAddress && e.token_uuid == token),
        );
        if !page.has_more {
            return events;
        }
        cursor = Some(page.cursor);
    }
}

fn address(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 13, 0, last)
}

#[tokio::test]
async fn a_use_from_a_new_address_is_an_event_with_address_and_agent_and_the_first_use_is_not() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("laptop")).await.unwrap();
    // The first use ever, from two places in one batch: the earliest is the first use.
    assert_eq!(
        use_token(&server.url, address(1), "docker/28", &token.token).await,
        200
    );
    assert!(new_address_events(&ann, token.uuid, None).await.is_empty());
    // Again from the same address: nothing new.
    for _ in 0..3 {
        assert_eq!(
            use_token(&server.url, address(1), "docker/28", &token.token).await,
            200
        );
    }
    assert!(new_address_events(&ann, token.uuid, None).await.is_empty());
    // Another address: one event naming it and its agent, however often it is used.
    for _ in 0..3 {
        assert_eq!(
            use_token(&server.url, address(2), "skopeo/1.13", &token.token).await,
            200
        );
    }
    let events = new_address_events(&ann, token.uuid, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].address.as_deref(), Some("127.13.0.2"));
    assert_eq!(events[0].user_agent.as_deref(), Some("skopeo/1.13"));
    assert_eq!(events[0].token_label, "laptop");
    // Used again from there in a later batch (the memo knows it): still one.
    assert_eq!(
        use_token(&server.url, address(2), "skopeo/1.13", &token.token).await,
        200
    );
    assert_eq!(new_address_events(&ann, token.uuid, None).await.len(), 1);
    // A refused use (wrong secret) from a third address is no use of the token.
    assert_eq!(
        use_token(&server.url, address(3), "curl", "hkpat_wrong").await,
        401
    );
    assert_eq!(new_address_events(&ann, token.uuid, None).await.len(), 1);
}

#[tokio::test]
async fn a_restarted_server_still_knows_the_addresses_a_token_was_used_from() {
    // The memo is per process; the stored log is the truth: a second instance of the same
    // deployment, with an empty memo, records nothing for an address already used.
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("laptop")).await.unwrap();
    assert_eq!(
        use_token(&server.url, address(1), "docker/28", &token.token).await,
        200
    );
    assert_eq!(
        use_token(&server.url, address(2), "docker/28", &token.token).await,
        200
    );
    assert_eq!(new_address_events(&ann, token.uuid, None).await.len(), 1);
    let other = server.another_instance().await;
    let session = password_session(&other.client(), "ann", PASSWORD).await;
    let ann_there = other.client().with_token(session.token);
    for last in [1, 2] {
        assert_eq!(
            use_token(&other.url, address(last), "docker/28", &token.token).await,
            200
        );
    }
    assert_eq!(
        new_address_events(&ann_there, token.uuid, None).await.len(),
        1
    );
}

#[tokio::test]
async fn at_most_ten_new_address_events_per_token_per_hour() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("leaked")).await.unwrap();
    assert_eq!(
        use_token(&server.url, address(1), "x", &token.token).await,
        200
    );
    new_address_events(&ann, token.uuid, None).await;
    for last in 2..=30 {
        assert_eq!(
            use_token(&server.url, address(last), "x", &token.token).await,
            200
        );
    }
    let events = new_address_events(&ann, token.uuid, None).await;
    assert_eq!(events.len(), 10, "{events:?}");
    // Another token of the account has its own cap.
    let other = ann.create_token(&manual("other")).await.unwrap();
    for last in 1..=2 {
        assert_eq!(
            use_token(&server.url, address(last), "x", &other.token).await,
            200
        );
    }
    assert_eq!(new_address_events(&ann, other.uuid, None).await.len(), 1);
}

#[tokio::test]
async fn a_token_with_new_address_alerts_off_records_none() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("ci")).await.unwrap();
    assert!(token.new_address_alerts, "on by default");
    let off = PatchAccessTokenRequest {
        new_address_alerts: Some(false),
        ..Default::default()
    };
    let patched = ann.patch_token(token.uuid, &off).await.unwrap();
    assert!(!patched.new_address_alerts);
    assert!(!ann.get_token(token.uuid).await.unwrap().new_address_alerts);
    let listed = ann.list_tokens(1, 10).await.unwrap();
    assert!(!listed.results[0].new_address_alerts);
    for last in 1..=4 {
        assert_eq!(
            use_token(&server.url, address(last), "ci-runner", &token.token).await,
            200
        );
    }
    assert!(new_address_events(&ann, token.uuid, None).await.is_empty());
    // Switched back on: the next new address is told again.
    let on = PatchAccessTokenRequest {
        new_address_alerts: Some(true),
        ..Default::default()
    };
    assert!(
        ann.patch_token(token.uuid, &on)
            .await
            .unwrap()
            .new_address_alerts
    );
    assert_eq!(
        use_token(&server.url, address(9), "ci-runner", &token.token).await,
        200
    );
    let events = new_address_events(&ann, token.uuid, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].address.as_deref(), Some("127.13.0.9"));
    // A rotation keeps the switch off for the successor.
    ann.patch_token(token.uuid, &off).await.unwrap();
    let rotated = ann.rotate_token(token.uuid, 0).await.unwrap();
    assert!(!rotated.new_address_alerts);
}

#[tokio::test]
async fn a_created_event_names_the_creating_address_and_agent() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("laptop")).await.unwrap();
    let page = ann.events(None).await.unwrap();
    let created = page
        .events
        .iter()
        .find(|e| e.kind == TokenEventKind::Created && e.token_uuid == token.uuid)
        .unwrap();
    assert_eq!(created.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        created.user_agent.as_deref(),
        Some(hubkey_client::DEFAULT_USER_AGENT)
    );
}

/// The flush's question to the store with more candidates than one probe statement holds (on
/// PostgreSQL it asks in statements of `ADDRESS_PROBES_PER_STATEMENT` probes, on SQLite one
/// prepared query each): a pair already in the log is not new, nor is the first use of a
/// token never used; every other pair is.
#[tokio::test]
async fn new_addresses_are_told_apart_beyond_one_probe_statement() {
    use hubkeyd::access_log::{AccessLine, NewAddress};
    use hubkeyd::store::{BatchRun, ACCESS_LINES_PER_TRANSACTION};

    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let count = hubkeyd::store::ADDRESS_PROBES_PER_STATEMENT + 150;
    let mut uuids = Vec::with_capacity(count);
    for i in 0..count {
        let token = ann.create_token(&manual(&format!("ci {i}"))).await.unwrap();
        uuids.push(token.uuid.to_string());
    }
    let store = server.hub().store();
    let now = chrono::Utc::now();
    let at = now.timestamp_millis();
    let (used, fresh) = uuids.split_at(count / 2);
    let stored: Vec<AccessLine> = used
        .iter()
        .map(|token| AccessLine {
            token_uuid: token.clone(),
            day: at / 86_400_000,
            address: "10.0.0.1".to_owned(),
            user_agent: "test".to_owned(),
            action: "pull".to_owned(),
            first_at: at,
            last_at: at,
            uses: 1,
        })
        .collect();
    for chunk in stored.chunks(ACCESS_LINES_PER_TRANSACTION) {
        store
            .record_access(BatchRun::whole(chunk.to_vec()))
            .await
            .unwrap();
    }

    let candidates: Vec<NewAddress> = uuids
        .iter()
        .flat_map(|token| {
            [("10.0.0.1", at + 1), ("10.0.0.2", at + 2)].map(|(address, at)| NewAddress {
                token_uuid: token.clone(),
                address: address.to_owned(),
                user_agent: "test".to_owned(),
                at,
            })
        })
        .collect();
    let found = store.new_addresses(candidates.to_vec()).await.unwrap();

    let mut found: Vec<(String, String)> = found
        .into_iter()
        .map(|new| (new.token_uuid, new.address))
        .collect();
    found.sort();
    let mut expected: Vec<(String, String)> = used
        .iter()
        .chain(fresh)
        .map(|token| (token.clone(), "10.0.0.2".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
}

/// Uses counted in a token's overflow line (the pending set was full: no address kept) do not
/// make the first address later recorded for it a new one. Before, every token of a busy
/// flush (over 20 000 pending lines, as 200 000 distinct tokens in a load test make) alerted
/// on its next use.
#[tokio::test]
async fn a_token_used_only_in_the_overflow_line_has_no_address_to_be_new_against() {
    use hubkeyd::access_log::{AccessLine, NewAddress, OVERFLOW};
    use hubkeyd::store::BatchRun;

    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let busy = ann
        .create_token(&manual("busy"))
        .await
        .unwrap()
        .uuid
        .to_string();
    let known = ann
        .create_token(&manual("known"))
        .await
        .unwrap()
        .uuid
        .to_string();
    let store = server.hub().store();
    let at = chrono::Utc::now().timestamp_millis();
    // An overflow line says `OVERFLOW` for its address, agent and action alike.
    let line = |token: &str, address: &str, detail: &str| AccessLine {
        token_uuid: token.to_owned(),
        day: at / 86_400_000,
        address: address.to_owned(),
        user_agent: detail.to_owned(),
        action: detail.to_owned(),
        first_at: at,
        last_at: at,
        uses: 1,
    };
    let stored = [
        line(&busy, OVERFLOW, OVERFLOW),
        line(&known, OVERFLOW, OVERFLOW),
        line(&known, "10.0.0.1", "pull"),
    ];
    store
        .record_access(BatchRun::whole(stored.to_vec()))
        .await
        .unwrap();

    let candidate = |token: &str| NewAddress {
        token_uuid: token.to_owned(),
        address: "10.0.0.2".to_owned(),
        user_agent: "test".to_owned(),
        at: at + 1,
    };
    let candidates = [candidate(&busy), candidate(&known)];
    let found = store.new_addresses(candidates.to_vec()).await.unwrap();
    let found: Vec<&str> = found.iter().map(|new| new.token_uuid.as_str()).collect();
    assert_eq!(found, [known.as_str()], "busy: {busy}, known: {known}");
}
