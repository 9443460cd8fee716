//! Issue 14 item 3: anonymous `/token` scopes, attacked. Scope names follow distribution's
//! grammar (at most 255 characters) and a request names at most 64 resources, checked before
//! any lookup; a lookup that finds nothing is never cached, and the caches are bounded by
//! size. The attacker sends, concurrently and at volume, the largest requests the edge
//! accepts and more (64 KiB query strings, thousands of scopes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{ClockedServer, TestServer};

/// The most resources one request may name, and the longest name (hubkeyd's limits).
const MAX_SCOPES: usize = 64;
const MAX_NAME: usize = 255;
/// Requests of the flood, a fifth of each kind.
const REQUESTS: u64 = 2000;

/// A valid repository name of exactly 255 characters, unique per `n`.
fn longest_name(n: u64) -> String {
    let prefix = format!("ns{n}/r");
    format!("{prefix}{}", "a".repeat(MAX_NAME - prefix.len()))
}

/// The status of an anonymous `GET /token?QUERY`.
async fn anonymous_status(http: &reqwest::Client, url: &str, query: &str) -> u16 {
    http.get(format!("{url}/token?{query}"))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// The status of one raw HTTP/1.1 request written on its own connection (for request lines
/// longer than an HTTP client library will build).
async fn raw_status(url: &str, request: &[u8]) -> u16 {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no HTTP status in {:?}",
                text.chars().take(200).collect::<String>()
            )
        })
}

#[tokio::test]
async fn anonymous_scope_floods_get_400s_and_memory_stays_bounded() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let http = reqwest::Client::new();
    // Warm up: the allocator and the connection pool settle before the first reading.
    for n in 0..200 {
        let answer = http
            .get(format!(
                "{url}/token?service=registry&scope=repository:warm/r{n}:pull"
            ))
            .send()
            .await
            .expect("warm-up");
        assert_eq!(answer.status(), 200);
    }
    let before = server.rss_kib();

    let counter = Arc::new(AtomicU64::new(0));
    let server_errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (http, url, counter, server_errors) = (
            http.clone(),
            url.clone(),
            counter.clone(),
            server_errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= REQUESTS {
                    break;
                }
                let (what, status) = match n % 5 {
                    // The largest request accepted: 64 distinct names of 255 characters.
                    0 => {
                        let query: Vec<String> = (0..MAX_SCOPES as u64)
                            .map(|i| format!("scope=repository:{}:pull", longest_name(n * 100 + i)))
                            .collect();
                        let answer = http
                            .get(format!("{url}/token?service=registry&{}", query.join("&")))
                            .send()
                            .await
                            .expect("request");
                        ("64 longest scopes", answer.status().as_u16())
                    }
                    // One name of ~60 000 characters, unique: a 60 KiB query string.
                    1 => {
                        let name = format!("ns{n}/{}", "b".repeat(60_000));
                        let answer = http
                            .get(format!("{url}/token?scope=repository:{name}:pull"))
                            .send()
                            .await
                            .expect("request");
                        ("a 60 000-character name", answer.status().as_u16())
                    }
                    // Thousands of scopes in one query.
                    2 => {
                        let query: Vec<String> = (0..2000)
                            .map(|i| format!("scope=repository:x/r{i}:pull"))
                            .collect();
                        let answer = http
                            .get(format!("{url}/token?{}", query.join("&")))
                            .send()
                            .await
                            .expect("request");
                        ("2 000 scopes", answer.status().as_u16())
                    }
                    // Thousands of resources packed in one form parameter, and a wrong password
                    // (the scopes are refused before the credential is read).
                    3 => {
                        let packed: Vec<String> =
                            (0..1500).map(|i| format!("repository:y/r{n}x{i}:pull")).collect();
                        let answer = http
                            .post(format!("{url}/token"))
                            .form(&[
                                ("grant_type", "password"),
                                ("username", "nobody"),
                                ("password", "wrong"),
                                ("scope", &packed.join(" ")),
                            ])
                            .send()
                            .await
                            .expect("request");
                        ("1 500 packed scopes", answer.status().as_u16())
                    }
                    // Beyond what the edge reads: a 64 KiB query string, written raw.
                    _ => {
                        let name = "c".repeat(64 * 1024);
                        let request = format!(
                            "GET /token?scope=repository:ns{n}/{name}:pull HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n"
                        );
                        ("a 64 KiB query string", raw_status(&url, request.as_bytes()).await)
                    }
                };
                if status >= 500 {
                    server_errors.fetch_add(1, Ordering::Relaxed);
                }
                seen.push((what, status));
            }
            seen
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for worker in workers {
        for (what, status) in worker.await.expect("worker") {
            *statuses.entry((what, status)).or_insert(0u32) += 1;
        }
    }
    let after = server.rss_kib();
    println!("statuses: {statuses:?}");
    println!("VmRSS before {before} KiB, after {after} KiB ({REQUESTS} requests, 16 in flight)");
    assert_eq!(
        server_errors.load(Ordering::Relaxed),
        0,
        "no 5xx: {statuses:?}"
    );
    for ((what, status), count) in &statuses {
        let expected = if *what == "64 longest scopes" {
            *status == 200
        } else {
            (400..500).contains(status)
        };
        assert!(expected, "{count} × {what}: {status}");
    }
    // 64 × 400 lookups of unknown repositories were made; none may stay in memory, and the
    // refused requests left nothing. 24 MiB covers allocator noise and the worker threads'
    // arenas; caching the 60 KiB names (as before) grows it by hundreds of MiB.
    assert!(
        after.saturating_sub(before) < 24 * 1024,
        "VmRSS grew from {before} KiB to {after} KiB"
    );
    // Still serving the real thing.
    let query = "service=registry&scope=repository:ann/app:pull";
    assert_eq!(anonymous_status(&http, &url, query).await, 200);
}

#[tokio::test]
async fn scope_errors_are_registry_shaped_400s_naming_the_limit() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let too_many: Vec<String> = (0..=MAX_SCOPES)
        .map(|i| format!("scope=repository:a/r{i}:pull"))
        .collect();
    let too_long = format!("scope=repository:a/{}:pull", "a".repeat(MAX_NAME - 1));
    let cases = [
        (too_many.join("&"), "at most 64"),
        (too_long, "255"),
        ("scope=repository:ann/App:pull".to_owned(), "invalid scope"),
        (
            "scope=repository:ann/app:pull;drop".to_owned(),
            "invalid scope",
        ),
        (format!("service={}", "s".repeat(256)), "service"),
    ];
    for (query, says) in cases {
        let answer = http
            .get(format!("{}/token?{query}", server.url))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), 400, "{query:.80}");
        let body: serde_json::Value = answer.json().await.expect("JSON body");
        let details = body["details"].as_str().expect("registry error shape");
        assert!(details.contains(says), "{details}");
    }
    // The edge of what is accepted: 64 scopes, a 255-character name, a registry host.
    let most: Vec<String> = (0..MAX_SCOPES)
        .map(|i| format!("scope=repository:a/r{i}:pull"))
        .collect();
    let longest = format!("scope=repository:{}:pull", longest_name(1));
    for query in [
        most.join("&"),
        longest,
        "scope=repository:localhost:5000/ann/app:pull".to_owned(),
        "scope=registry:catalog:*".to_owned(),
    ] {
        let query = format!("service=registry&{query}");
        let status = anonymous_status(&http, &server.url, &query).await;
        assert_eq!(status, 200, "{query:.80}");
    }
}

#[tokio::test]
async fn lookups_that_find_nothing_are_not_cached() {
    let server = ClockedServer::start().await;
    let http = reqwest::Client::new();
    for n in 0..500 {
        let query = format!("scope=repository:ghost/r{n}:pull");
        assert_eq!(anonymous_status(&http, &server.url, &query).await, 200);
    }
    let (tokens, repositories) = server.hub.cache_usage();
    assert_eq!(
        repositories.entries, 0,
        "misses were cached: {repositories:?}"
    );
    assert_eq!(tokens.entries, 0);
    // A repository that exists is cached once, however often it is asked for.
    server
        .hub
        .set_visibility("ann", "app", false, chrono::Utc::now())
        .await
        .expect("make ann/app public");
    for _ in 0..10 {
        let query = "scope=repository:ann/app:pull";
        assert_eq!(anonymous_status(&http, &server.url, query).await, 200);
    }
    let (_, repositories) = server.hub.cache_usage();
    assert_eq!(repositories.entries, 1, "{repositories:?}");
}
