//! `GET /metrics` on `--metrics-addr`: after known traffic every counter moved by exactly what
//! was sent, and the text never carries a token, a user name, a password or an address.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hubkey_api::PlainToken;

use crate::harness::{manual, DataDir, TestServer, PASSWORD};

/// A user name that no metric name or help text contains.
const USER: &str = "quokka7";

pub(crate) async fn metrics_url(server: &TestServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(url) = server
            .stdout_lines()
            .iter()
            .find_map(|line| line.strip_prefix("metrics on "))
        {
            return url.to_owned();
        }
        assert!(Instant::now() < deadline, "no `metrics on` line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of one series (name with its labels, as rendered); 0 when absent.
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |rest| {
            rest.split_whitespace().next().unwrap().parse().unwrap()
        })
}

fn exchange(endpoint: &str, outcome: &str) -> String {
    format!("hubkeyd_token_exchanges_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}}")
}

fn sign_in(step: &str, outcome: &str) -> String {
    format!("hubkeyd_sign_ins_total{{step=\"{step}\",outcome=\"{outcome}\"}}")
}

async fn registry_token(server: &TestServer, secret: &str, origin: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .get(format!(
            "{}/token?service=hubkey-registry&scope=repository:{USER}/app:pull",
            server.url
        ))
        .basic_auth(USER, Some(secret));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn counters_move_by_exactly_the_traffic_sent_and_name_no_secret() {
    let data = DataDir::new();
    data.add_user(USER, PASSWORD).await;
    let server = TestServer::start_with(data, &["--metrics-addr", "127.0.0.1:0"]).await;
    let url = metrics_url(&server).await;
    assert_ne!(
        url.split('/').nth(2),
        server.url.split('/').nth(2),
        "a listener of its own"
    );
    // Not on the API's listener.
    let (status, _) = server
        .raw(reqwest::Method::GET, "/metrics", None, None)
        .await;
    assert_eq!(status, 404);

    let session = server.sign_in(USER, PASSWORD).await;
    let pat = session.create_token(&manual("ci")).await.unwrap().token;
    let before = scrape(&url).await;
    assert_eq!(value(&before, "hubkeyd_notify_reconnects_total"), 0.0);
    assert!(before.contains("hubkeyd_notify_reconnects_total 0"));

    // The traffic.
    for _ in 0..5 {
        assert_eq!(registry_token(&server, &pat, None).await, 200);
    }
    let unknown = PlainToken::generate();
    for _ in 0..3 {
        assert_eq!(registry_token(&server, unknown.expose(), None).await, 401);
    }
    assert_eq!(
        registry_token(&server, &pat, Some("https://elsewhere.example")).await,
        403
    );
    for _ in 0..2 {
        server.client().auth_token(USER, &pat).await.unwrap();
    }
    server.client().login(USER, PASSWORD).await.unwrap();
    for _ in 0..2 {
        assert!(server.client().login(USER, "wrong password").await.is_err());
    }
    // One address guessing until throttled: 30 refused, then 2 × 429.
    let guesser = server.client_at(Ipv4Addr::new(127, 0, 0, 5));
    let mut throttled = 0;
    for i in 0..32 {
        match guesser.login(&format!("nobody{i}"), "wrong").await {
            Err(err) if err.status() == Some(429) => throttled += 1,
            Err(err) => assert_eq!(err.status(), Some(401)),
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(throttled, 2);
    // Let a usage flush (every 2 s) write the PAT's uses.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let after = scrape(&url).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(&exchange("registry", "granted")), 5.0);
    assert_eq!(moved(&exchange("registry", "refused")), 3.0);
    assert_eq!(moved(&exchange("registry", "invalid")), 1.0);
    assert_eq!(moved(&exchange("auth_token", "granted")), 2.0);
    assert_eq!(moved(&exchange("auth_token", "refused")), 0.0);
    assert_eq!(moved(&sign_in("password", "granted")), 1.0);
    assert_eq!(moved(&sign_in("password", "refused")), 32.0);
    assert_eq!(moved(&sign_in("password", "throttled")), 2.0);
    assert_eq!(moved("hubkeyd_throttled_requests_total"), 2.0);
    // 10 token lookups: the PAT's first (not cached by its creation) and the 3 unknown ones
    // go to the database (a miss is never cached); the other 6 are answered from memory.
    assert_eq!(
        moved("hubkeyd_cache_hits_total{cache=\"token\"}")
            + moved("hubkeyd_cache_misses_total{cache=\"token\"}"),
        10.0
    );
    assert_eq!(moved("hubkeyd_cache_misses_total{cache=\"token\"}"), 4.0);
    // The owner's own repository needs no visibility lookup.
    assert_eq!(
        moved("hubkeyd_cache_hits_total{cache=\"repository\"}")
            + moved("hubkeyd_cache_misses_total{cache=\"repository\"}"),
        0.0
    );
    let flushes = moved("hubkeyd_usage_flush_duration_seconds_count");
    assert!(flushes >= 1.0, "{after}");
    assert_eq!(moved("hubkeyd_usage_flush_tokens_count"), flushes);
    let flushed = moved("hubkeyd_usage_flush_tokens_sum");
    assert!(
        (1.0..=flushes).contains(&flushed),
        "one token in {flushes} flushes: {flushed}"
    );
    assert!(value(&after, "hubkeyd_db_pool_connections") >= 1.0);
    assert_eq!(value(&after, "hubkeyd_notify_reconnects_total"), 0.0);

    // Nothing that identifies anyone.
    for secret in [
        pat.as_str(),
        unknown.expose(),
        USER,
        PASSWORD,
        "nobody",
        "127.0.0.",
        "elsewhere",
        "hkpat_",
    ] {
        assert!(
            !after.contains(secret),
            "{secret:?} in the metrics:\n{after}"
        );
    }
}
