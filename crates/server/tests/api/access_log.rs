//! The per-token access log: every accepted use, coalesced per address, agent, action and
//! day, paged, shown as `last_addresses`, deleted after its retention.

use std::net::{IpAddr, Ipv4Addr};

use crate::harness::{manual, password_session, status_of, ClockedServer, TestServer, PASSWORD};

/// `GET /token` with Basic `user:secret` from `address` with `agent`; the status.
async fn registry_token(
    url: &str,
    address: Ipv4Addr,
    agent: &str,
    user: &str,
    secret: &str,
    scope: Option<&str>,
) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .user_agent(agent)
        .build()
        .unwrap();
    let mut request = client
        .get(format!("{url}/token"))
        .query(&[("service", "hubkey-registry")])
        .basic_auth(user, Some(secret));
    if let Some(scope) = scope {
        request = request.query(&[("scope", scope)]);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_accepted_use_is_logged_coalesced_and_paged() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let mut request = manual("ci");
    request.scopes = vec![hubkey_api::Scope::Write];
    let token = ann.create_token(&request).await.unwrap();
    let home = Ipv4Addr::new(127, 3, 0, 1);
    let ci = Ipv4Addr::new(127, 3, 0, 2);
    for _ in 0..5 {
        let status = registry_token(
            &server.url,
            home,
            "docker/28.2",
            "ann",
            &token.token,
            Some("repository:ann/app:pull"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let status = registry_token(
        &server.url,
        ci,
        "skopeo/1.13",
        "ann",
        &token.token,
        Some("repository:ann/app:pull,push"),
    )
    .await;
    assert_eq!(status, 200);
    let status = registry_token(&server.url, ci, "skopeo/1.13", "ann", &token.token, None).await;
    assert_eq!(status, 200);
    server
        .client()
        .auth_token("ann", &token.token)
        .await
        .unwrap();
    server
        .client()
        .auth_token("ann", &token.token)
        .await
        .unwrap();
    // Refused uses are not accesses.
    assert_eq!(
        status_of(server.client().auth_token("bob", &token.token).await),
        401
    );

    let page = ann.token_activity(token.uuid, None, None).await.unwrap();
    let mut lines: Vec<_> = page
        .entries
        .iter()
        .map(|e| {
            (
                e.address.as_str(),
                e.user_agent.as_str(),
                e.action.as_str(),
                e.uses,
            )
        })
        .collect();
    lines.sort_unstable();
    let agent = hubkey_client::DEFAULT_USER_AGENT;
    assert_eq!(
        lines,
        vec![
            ("127.0.0.1", agent, "api:sign-in", 2),
            ("127.3.0.1", "docker/28.2", "registry:ann/app:pull", 5),
            ("127.3.0.2", "skopeo/1.13", "registry:ann/app:pull,push", 1),
            ("127.3.0.2", "skopeo/1.13", "registry:login", 1),
        ]
    );
    assert!(!page.has_more);
    assert!(page.entries.iter().all(|e| e.first_at <= e.last_at));
    // Paged like the events feed.
    let first = ann.token_activity(token.uuid, None, Some(3)).await.unwrap();
    assert_eq!(first.entries.len(), 3);
    assert!(first.has_more);
    let rest = ann
        .token_activity(token.uuid, Some(&first.cursor), Some(3))
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), 1);
    assert!(!rest.has_more);
    // The token's JSON names the latest addresses, newest first.
    let shown = ann.get_token(token.uuid).await.unwrap();
    assert_eq!(
        shown.last_addresses,
        ["127.0.0.1", "127.3.0.2", "127.3.0.1"]
    );
    let listed = ann.list_tokens(1, 10).await.unwrap();
    assert_eq!(listed.results[0].last_addresses, shown.last_addresses);
    // Another account's token: 404.
    let bob = server.user("bob").await;
    assert_eq!(
        status_of(bob.token_activity(token.uuid, None, None).await),
        404
    );
}

#[tokio::test]
async fn the_access_log_is_deleted_after_its_retention() {
    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("ci")).await.unwrap();
    server
        .client()
        .auth_token("ann", &token.token)
        .await
        .unwrap();
    let before = ann.token_activity(token.uuid, None, None).await.unwrap();
    assert_eq!(before.entries.len(), 1);
    // 89 days later the line is kept; 90 days later (the default retention) it is gone.
    server.advance(chrono::Duration::days(89));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = |server: &ClockedServer| {
        let client = server.client();
        async move {
            let session = password_session(&client, "ann", PASSWORD).await;
            client.with_token(session.token)
        }
    };
    let ann = again(&server).await;
    assert_eq!(
        ann.token_activity(token.uuid, None, None)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    server.advance(chrono::Duration::days(1));
    let ann = again(&server).await;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if ann
            .token_activity(token.uuid, None, None)
            .await
            .unwrap()
            .entries
            .is_empty()
        {
            return;
        }
    }
    panic!("the access log was not swept after 90 days");
}

/// The list reads every token's latest addresses with one query for the page: each token
/// still shows its own five newest, as its own JSON does, on every page.
#[tokio::test]
async fn the_list_shows_each_tokens_own_latest_addresses() {
    let mut server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let mut tokens = Vec::new();
    for n in 0..3u8 {
        let token = ann.create_token(&manual(&format!("ci-{n}"))).await.unwrap();
        // Token n is used from 6 + n addresses of its own, one a second, oldest first.
        for host in 1..=6 + n {
            server.advance(chrono::Duration::seconds(1));
            let address = Ipv4Addr::new(127, 4, n, host);
            let status = registry_token(
                &server.url,
                address,
                "docker/28.2",
                "ann",
                &token.token,
                None,
            )
            .await;
            assert_eq!(status, 200);
        }
        tokens.push((token.uuid, n));
    }
    // Stopping writes the pending lines out: the answers below come from the database.
    server.restart().await;
    let session = password_session(&server.client(), "ann", PASSWORD).await;
    let ann = server.client().with_token(session.token);
    let expected = |n: u8| -> Vec<String> {
        (2 + n..=6 + n)
            .rev()
            .map(|host| Ipv4Addr::new(127, 4, n, host).to_string())
            .collect()
    };
    let listed = ann.list_tokens(1, 10).await.unwrap();
    assert_eq!(listed.results.len(), 3);
    for (uuid, n) in &tokens {
        let row = listed.results.iter().find(|t| t.uuid == *uuid).unwrap();
        assert_eq!(row.last_addresses, expected(*n), "token {n} in the list");
        let shown = ann.get_token(*uuid).await.unwrap();
        assert_eq!(shown.last_addresses, expected(*n), "token {n} alone");
    }
    // One token a page: the page's own token, whatever its offset.
    for page in 1..=3u32 {
        let listed = ann.list_tokens(page, 1).await.unwrap();
        let (_, n) = tokens
            .iter()
            .find(|(uuid, _)| *uuid == listed.results[0].uuid)
            .unwrap();
        assert_eq!(
            listed.results[0].last_addresses,
            expected(*n),
            "page {page}"
        );
    }
}

/// An attacker using one token from many addresses and agents: every use is counted, one
/// line per address and agent, and the pending batch stays within its bound.
#[tokio::test]
async fn one_token_from_many_addresses_and_agents_is_counted_within_bounded_memory() {
    const ADDRESSES: u16 = 200;
    const AGENTS: u16 = 10;
    let server = ClockedServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("ci")).await.unwrap();
    let url = server.url.clone();
    let mut peak = 0;
    let uses = futures_stream(
        ADDRESSES * AGENTS,
        16,
        |n| {
            let url = url.clone();
            let secret = token.token.clone();
            async move {
                let address = Ipv4Addr::new(
                    127,
                    4,
                    (n / AGENTS / 250) as u8,
                    (n / AGENTS % 250) as u8 + 1,
                );
                let agent = format!("agent-{}-{}", n % AGENTS, "x".repeat(1000));
                registry_token(
                    &url,
                    address,
                    &agent,
                    "ann",
                    &secret,
                    Some("repository:ann/app:pull"),
                )
                .await
            }
        },
        || {
            peak = peak.max(server.hub().access_log().pending_lines());
        },
    )
    .await;
    assert!(uses.iter().all(|s| *s == 200));
    assert!(peak <= hubkeyd::access_log::MAX_PENDING + 1, "{peak}");
    let mut lines = 0;
    let mut total = 0;
    let mut after: Option<String> = None;
    loop {
        let page = ann
            .token_activity(token.uuid, after.as_deref(), Some(500))
            .await
            .unwrap();
        lines += page.entries.len();
        total += page.entries.iter().map(|e| e.uses).sum::<u64>();
        assert!(page
            .entries
            .iter()
            .all(|e| e.user_agent.len() <= hubkeyd::access_log::MAX_AGENT));
        if !page.has_more {
            break;
        }
        after = Some(page.cursor);
    }
    println!(
        "{} uses from {ADDRESSES} addresses x {AGENTS} agents: {lines} lines, peak pending {peak}",
        ADDRESSES * AGENTS
    );
    assert_eq!(total, u64::from(ADDRESSES * AGENTS));
    assert_eq!(lines, usize::from(ADDRESSES * AGENTS));
}

/// Runs `count` futures made by `make`, `parallel` at a time, calling `sample` between
/// completions; their outputs in completion order.
async fn futures_stream<F, Fut>(
    count: u16,
    parallel: usize,
    make: F,
    mut sample: impl FnMut(),
) -> Vec<u16>
where
    F: Fn(u16) -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut out = Vec::new();
    for n in 0..count {
        if set.len() >= parallel {
            out.push(set.join_next().await.unwrap().unwrap());
            sample();
        }
        set.spawn(make(n));
    }
    while let Some(done) = set.join_next().await {
        out.push(done.unwrap());
        sample();
    }
    out
}
