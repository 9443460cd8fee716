//! `--trusted-proxy`: forwarded headers name the client only when a trusted proxy sent them,
//! attacked the way an attacker would (spoofed headers, rotated per request, the largest
//! header the edge takes).

use std::net::{IpAddr, Ipv4Addr};

use crate::harness::{DataDir, TestServer, PASSWORD};

/// Failed sign-ins an address may make before it is throttled (the server's per-address
/// limit).
const ADDRESS_LIMIT: usize = 30;

/// A raw `POST /v2/users/login` from `local` with one extra header; returns the status.
async fn login_from(
    server: &TestServer,
    local: Ipv4Addr,
    header: (&str, &str),
    username: &str,
    password: &str,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(local))
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/v2/users/login", server.url))
        .header(header.0, header.1)
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Wrong passwords from `local` with `header` until the first 429; returns how many were
/// answered before it (each with a new, unknown user name, so only the address limit counts).
async fn wrong_passwords_until_throttled(
    server: &TestServer,
    local: Ipv4Addr,
    header: impl Fn(usize) -> (String, String),
) -> usize {
    for i in 0..=ADDRESS_LIMIT + 5 {
        let (name, value) = header(i);
        let (status, _) = login_from(
            server,
            local,
            (&name, &value),
            &format!("nobody{i}"),
            "wrong",
        )
        .await;
        match status {
            401 => {}
            429 => return i,
            other => panic!("attempt {i}: unexpected status {other}"),
        }
    }
    panic!("never throttled after {} attempts", ADDRESS_LIMIT + 5);
}

async fn server_trusting(args: &[&str]) -> TestServer {
    let data = DataDir::new();
    data.add_user("ann", PASSWORD).await;
    TestServer::start_with(data, args).await
}

/// The address the server records for a request from `local` carrying `header`: the
/// `creator_ip` of a token created by a session signed in through the same path.
async fn recorded_address(server: &TestServer, local: Ipv4Addr, header: (&str, &str)) -> String {
    let (status, session) = login_from(server, local, header, "ann", PASSWORD).await;
    assert_eq!(status, 200, "sign-in: {session}");
    let bearer = session["token"].as_str().unwrap();
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(local))
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/v2/access-tokens", server.url))
        .bearer_auth(bearer)
        .header(header.0, header.1)
        .json(&serde_json::json!({ "token_label": "where", "scopes": ["repo:read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["creator_ip"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotating_forwarded_headers_from_an_untrusted_peer_still_hit_the_address_limit() {
    // 127.0.0.1 is trusted; the attacker connects from 127.0.0.2 and claims a new address in
    // every request, in both header forms.
    let server = server_trusting(&["--trusted-proxy", "127.0.0.1/32"]).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let answered = wrong_passwords_until_throttled(&server, attacker, |i| {
        if i % 2 == 0 {
            (
                "x-forwarded-for".to_owned(),
                format!("198.51.100.{}, 203.0.113.{}", i % 250, i % 250),
            )
        } else {
            (
                "forwarded".to_owned(),
                format!("for=198.51.100.{}", i % 250),
            )
        }
    })
    .await;
    assert_eq!(answered, ADDRESS_LIMIT);
    // And what it records is the peer, not the claim.
    assert_eq!(
        recorded_address(
            &server,
            Ipv4Addr::new(127, 0, 0, 3),
            ("x-forwarded-for", "198.51.100.77")
        )
        .await,
        "127.0.0.3"
    );
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_headers_are_ignored_even_from_loopback() {
    let server = server_trusting(&[]).await;
    let answered = wrong_passwords_until_throttled(&server, Ipv4Addr::LOCALHOST, |i| {
        ("x-forwarded-for".to_owned(), format!("198.51.100.{i}"))
    })
    .await;
    assert_eq!(answered, ADDRESS_LIMIT);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit() {
    let server = server_trusting(&["--trusted-proxy", "127.0.0.1/32"]).await;
    let proxy = Ipv4Addr::LOCALHOST;
    let xff = |value: &'static str| move |_| ("x-forwarded-for".to_owned(), value.to_owned());
    // An attacker's own header left of what the proxy appended changes nothing.
    assert_eq!(
        wrong_passwords_until_throttled(&server, proxy, |i| (
            "x-forwarded-for".to_owned(),
            format!("10.{i}.0.1, 198.51.100.1")
        ))
        .await,
        ADDRESS_LIMIT
    );
    // Another client behind the same proxy is not throttled by the first.
    assert_eq!(
        wrong_passwords_until_throttled(&server, proxy, xff("198.51.100.2")).await,
        ADDRESS_LIMIT
    );
    // IPv6: a /64 is one address.
    assert_eq!(
        wrong_passwords_until_throttled(&server, proxy, xff("2001:db8:0:1::1")).await,
        ADDRESS_LIMIT
    );
    let (status, _) = login_from(
        &server,
        proxy,
        ("x-forwarded-for", "[2001:db8:0:1:ffff::9]:4711"),
        "someone",
        "wrong",
    )
    .await;
    assert_eq!(status, 429, "the same /64 shares the limit");
    let (status, _) = login_from(
        &server,
        proxy,
        ("x-forwarded-for", "2001:db8:0:2::1"),
        "someone",
        "wrong",
    )
    .await;
    assert_eq!(status, 401, "another /64 has its own limit");
    // Sign-ins and tokens record the forwarded address.
    assert_eq!(
        recorded_address(&server, proxy, ("x-forwarded-for", "192.0.2.44")).await,
        "192.0.2.44"
    );
    // The proxy itself, without a header, is the client.
    assert_eq!(
        recorded_address(&server, proxy, ("x-unrelated", "1")).await,
        "127.0.0.1"
    );
    // A malformed header from the proxy falls back to the proxy's address.
    assert_eq!(
        recorded_address(&server, proxy, ("x-forwarded-for", "192.0.2.44, not-an-ip")).await,
        "127.0.0.1"
    );
}

#[tokio::test]
async fn rfc_7239_forwarded_header_names_ipv6_clients_with_ports() {
    let server = server_trusting(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--trusted-proxy",
        "10.0.0.0/8",
        "--forwarded-header",
        "forwarded",
    ])
    .await;
    let proxy = Ipv4Addr::LOCALHOST;
    assert_eq!(
        recorded_address(
            &server,
            proxy,
            (
                "forwarded",
                r#"for="[2001:db8::1]:4711";proto=https, for=10.1.2.3;by=10.0.0.1"#
            )
        )
        .await,
        "2001:db8::1"
    );
    // The header the proxies do not set is the client's own: ignored.
    assert_eq!(
        recorded_address(&server, proxy, ("x-forwarded-for", "192.0.2.1")).await,
        "127.0.0.1"
    );
    // Unbalanced quotes: the peer.
    assert_eq!(
        recorded_address(&server, proxy, ("forwarded", r#"for="192.0.2.1"#)).await,
        "127.0.0.1"
    );
}

/// The largest request head the edge reads, measured (axum::serve keeps hyper's defaults: a
/// 400 KiB maximum checked as its read buffer doubles, so heads up to 512 KiB pass and the
/// next byte gets 431).
const HEAD_LIMIT: usize = 512 * 1024;

#[tokio::test]
async fn the_largest_forwarded_header_is_walked_to_its_client_or_ignored() {
    let server = server_trusting(&["--trusted-proxy", "127.0.0.0/24"]).await;
    // About 500 KB of trusted hops with the client at the far left: the whole chain is read.
    let hops = (HEAD_LIMIT - 8192) / "127.0.0.9, ".len();
    let chain = format!("198.51.100.200{}", ", 127.0.0.9".repeat(hops));
    assert!(chain.len() > 500_000, "{}", chain.len());
    assert_eq!(
        recorded_address(&server, Ipv4Addr::LOCALHOST, ("x-forwarded-for", &chain)).await,
        "198.51.100.200"
    );
    // The same from an untrusted peer: ignored.
    assert_eq!(
        recorded_address(
            &server,
            Ipv4Addr::new(127, 0, 1, 5),
            ("x-forwarded-for", &chain)
        )
        .await,
        "127.0.1.5"
    );
    // As large and malformed (a hop that is no address, near the client): the peer.
    let broken = format!("198.51.100.200, junk{}", ", 127.0.0.9".repeat(hops));
    assert_eq!(
        recorded_address(&server, Ipv4Addr::LOCALHOST, ("x-forwarded-for", &broken)).await,
        "127.0.0.1"
    );
    // Past the edge's limit the request is refused before any handler runs.
    let too_large = "127.0.0.9, ".repeat(HEAD_LIMIT / 11 * 2);
    let answer = reqwest::Client::new()
        .post(format!("{}/v2/users/login", server.url))
        .header("x-forwarded-for", too_large)
        .json(&serde_json::json!({ "username": "ann", "password": PASSWORD }))
        .send()
        .await;
    // hyper answers 431 and closes; the client may still be writing and see the close.
    if let Ok(response) = answer {
        assert_eq!(response.status(), 431);
    }
}
