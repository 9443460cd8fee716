//! On SQLite, what the admin CLI (another process on the same file) changes is refused by the
//! running server on the first request after the command returns: the command writes what it
//! made stale into the change table in its transaction, the server polls it every 100 ms and
//! records what it has forgotten, and the command waits for that
//! (`hubkeyd::change_table`). Without it the server would trust its cached answer for the
//! cache's age (5 s).

use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::harness::{
    assert_success, jwt_part, manual, percentiles_ms, DataDir, Stopped, TestServer, PASSWORD,
};
use crate::metrics::{metrics_url, scrape, value};
use crate::pg::skip_unless_sqlite;

const USER: &str = "ann";
const TOKEN_HITS: &str = "hubkeyd_cache_hits_total{cache=\"token\"}";

/// HTTP clients from many loopback addresses, taken in turn: the refusals these tests
/// provoke count against the address's sign-in limit, and one address may fail only so often.
struct Clients {
    clients: Vec<reqwest::Client>,
    next: AtomicUsize,
}

impl Clients {
    fn new() -> Arc<Self> {
        let clients = (0..200u8)
            .map(|i| {
                reqwest::Client::builder()
                    .local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                        127,
                        0,
                        1,
                        20 + i,
                    )))
                    .build()
                    .expect("an HTTP client")
            })
            .collect();
        Arc::new(Clients {
            clients,
            next: AtomicUsize::new(0),
        })
    }

    /// The registry's `GET /token` on `url` with `ann:secret`: the status.
    async fn registry_token(&self, url: &str, secret: &str) -> u16 {
        let client = &self.clients[self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()];
        client
            .get(format!(
                "{url}/token?service=hubkey-registry&scope=repository:{USER}/app:pull"
            ))
            .basic_auth(USER, Some(secret))
            .send()
            .await
            .expect("send GET /token")
            .status()
            .as_u16()
    }
}

/// A server with metrics, `ann`, and a PAT of hers.
async fn server_with_token() -> (TestServer, String, String) {
    let data = DataDir::new();
    data.add_user(USER, PASSWORD).await;
    let server = TestServer::start_with(data, &["--metrics-addr", "127.0.0.1:0"]).await;
    let ann = server.sign_in(USER, PASSWORD).await;
    let pat = ann.create_token(&manual("ci")).await.expect("create").token;
    let metrics = metrics_url(&server).await;
    (server, pat, metrics)
}

/// Uses `secret` until the server answers it from its cache (a hit), so that a refusal
/// after a change shows the cache was told.
async fn warm(server: &TestServer, clients: &Clients, metrics: &str, secret: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = value(&scrape(metrics).await, TOKEN_HITS);
        assert_eq!(clients.registry_token(&server.url, secret).await, 200);
        let after = value(&scrape(metrics).await, TOKEN_HITS);
        if after > before {
            return;
        }
        assert!(Instant::now() < deadline, "the token was never a cache hit");
    }
}

/// `hubkeyd user ACTION ann` on the server's data directory, which must succeed; answers its
/// output and when it had exited.
async fn user_command(server: &TestServer, action: &str) -> (Output, Instant) {
    let output = server.data().run(&["user", action, USER], None).await;
    let exited = Instant::now();
    assert_success(&output, &format!("user {action}"));
    (output, exited)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `waited_ms` the command logged when the running server confirmed its change.
fn confirmed_after(output: &Output) -> Duration {
    let text = stderr(output);
    let line = text
        .lines()
        .find(|line| line.contains("the running server dropped what this change made stale"))
        .unwrap_or_else(|| panic!("the command did not say the server confirmed: {text}"));
    let millis = line
        .split("waited_ms=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no waited_ms in {line:?}"));
    Duration::from_millis(millis)
}

#[tokio::test]
async fn sqlite_only_an_account_disabled_with_the_cli_is_refused_from_its_exit_on_under_load() {
    if skip_unless_sqlite(
        "sqlite_only_an_account_disabled_with_the_cli_is_refused_from_its_exit_on_under_load",
    ) {
        return;
    }
    let (server, pat, metrics) = server_with_token().await;
    let clients = Clients::new();
    warm(&server, &clients, &metrics, &pat).await;

    // Requests in flight all along: each loop records when it sent a request and the answer.
    let answers: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..8)
        .map(|_| {
            let (answers, stop, clients) = (answers.clone(), stop.clone(), clients.clone());
            let (url, pat) = (server.url.clone(), pat.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let status = clients.registry_token(&url, &pat).await;
                    answers.lock().unwrap().push((sent, status));
                }
            })
        })
        .collect();
    let (output, exited) = user_command(&server, "disable").await;
    // The very next request, then the loops' until enough were sent after the exit.
    assert_eq!(
        clients.registry_token(&server.url, &pat).await,
        401,
        "the first request after `user disable` returned"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while answers
        .lock()
        .unwrap()
        .iter()
        .filter(|(sent, _)| *sent >= exited)
        .count()
        < 80
    {
        assert!(Instant::now() < deadline, "too few requests after the exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    let answers = answers.lock().unwrap();
    let before: Vec<u16> = answers
        .iter()
        .filter(|(sent, _)| *sent < exited)
        .map(|(_, status)| *status)
        .collect();
    let after: Vec<u16> = answers
        .iter()
        .filter(|(sent, _)| *sent >= exited)
        .map(|(_, status)| *status)
        .collect();
    let accepted_after = after.iter().filter(|status| **status == 200).count();
    println!(
        "{} requests while the CLI ran ({} accepted), {} after its exit ({accepted_after} accepted); the CLI waited {:?}",
        before.len(),
        before.iter().filter(|status| **status == 200).count(),
        after.len(),
        confirmed_after(&output),
    );
    assert!(
        before.contains(&200),
        "the load ran while the token still worked"
    );
    assert_eq!(
        accepted_after, 0,
        "accepted after the CLI's exit: {after:?}"
    );
    assert!(
        after.iter().all(|status| matches!(status, 401 | 429)),
        "{after:?}"
    );
}

#[tokio::test]
async fn sqlite_only_the_bound_from_a_cli_change_to_the_servers_answer() {
    if skip_unless_sqlite("sqlite_only_the_bound_from_a_cli_change_to_the_servers_answer") {
        return;
    }
    // 50 changes: 25 times the account disabled while its token is warm (the next request
    // must be refused) and enabled again while the cache holds its disabled answer (the
    // next request must be accepted).
    let (server, pat, metrics) = server_with_token().await;
    let clients = Clients::new();
    let mut answered = Vec::new();
    let mut waited = Vec::new();
    let mut commands = Vec::new();
    for _ in 0..25 {
        warm(&server, &clients, &metrics, &pat).await;
        for (action, expected) in [("disable", 401), ("enable", 200)] {
            let started = Instant::now();
            let (output, exited) = user_command(&server, action).await;
            let status = clients.registry_token(&server.url, &pat).await;
            answered.push(exited.elapsed());
            commands.push(exited - started);
            waited.push(confirmed_after(&output));
            assert_eq!(status, expected, "the first request after `user {action}`");
        }
    }
    let (a50, a99, amax) = percentiles_ms(&mut answered);
    let (w50, w99, wmax) = percentiles_ms(&mut waited);
    let (c50, c99, cmax) = percentiles_ms(&mut commands);
    println!(
        "50 changes, the first request sent at the CLI's exit: answered after {a50:.1} / {a99:.1} / {amax:.1} ms \
         (median / p99 / worst), none wrong; the CLI's wait for the server {w50:.1} / {w99:.1} / {wmax:.1} ms; \
         the whole command {c50:.0} / {c99:.0} / {cmax:.0} ms"
    );
}

#[tokio::test]
async fn sqlite_only_with_no_server_running_the_cli_does_not_wait() {
    if skip_unless_sqlite("sqlite_only_with_no_server_running_the_cli_does_not_wait") {
        return;
    }
    let data = DataDir::new();
    data.add_user(USER, PASSWORD).await;
    let no_wait = |output: &Output| {
        let text = stderr(output);
        assert!(
            text.contains("no server is running on this database"),
            "{text}"
        );
        assert!(!text.contains("warning"), "{text}");
    };
    let started = Instant::now();
    let output = data.run(&["user", "disable", USER], None).await;
    assert_success(&output, "user disable");
    no_wait(&output);
    println!("`user disable` with no server: {:?}", started.elapsed());

    // A server that stopped cleanly left: it is not waited for either.
    let mut server = TestServer::start_in(data).await;
    server.client().health().await.expect("serving");
    assert!(server.stop().success());
    let output = server.data().run(&["user", "enable", USER], None).await;
    assert_success(&output, "user enable");
    no_wait(&output);
}

#[tokio::test]
async fn sqlite_only_a_stopped_server_is_waited_for_at_most_the_bound_and_the_cli_says_so() {
    if skip_unless_sqlite(
        "sqlite_only_a_stopped_server_is_waited_for_at_most_the_bound_and_the_cli_says_so",
    ) {
        return;
    }
    let (server, pat, metrics) = server_with_token().await;
    let clients = Clients::new();
    warm(&server, &clients, &metrics, &pat).await;
    let stopped = Stopped::new(server.pid());
    let started = Instant::now();
    let output = server.data().run(&["user", "disable", USER], None).await;
    let took = started.elapsed();
    drop(stopped);
    assert_success(&output, "user disable");
    let text = stderr(&output);
    assert!(
        text.contains("hubkeyd: warning: 1 of the 1 running servers did not confirm"),
        "{text}"
    );
    assert!(took >= hubkeyd::invalidation::CONFIRM_WITHIN, "{took:?}");
    println!("`user disable` with the server stopped: {took:?}");
    // Resumed, it reads the change at its next poll (well before its cached answer is 5 s
    // old, which alone would have it refused by then).
    let deadline = Instant::now() + Duration::from_secs(1);
    while clients.registry_token(&server.url, &pat).await != 401 {
        assert!(Instant::now() < deadline, "still accepted after SIGCONT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection to the server's SQLite database, for what only a test does.
async fn database(data: &DataDir) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&data.database_url())
        .await
        .expect("open the database")
}

#[tokio::test]
async fn sqlite_only_the_sweep_deletes_the_changes_every_server_has_read() {
    if skip_unless_sqlite("sqlite_only_the_sweep_deletes_the_changes_every_server_has_read") {
        return;
    }
    let server = crate::harness::ClockedServer::start().await;
    server.add_user(USER, PASSWORD).await;
    // A server that stopped 59 minutes ago without leaving: not waited for (its heartbeat is
    // old), but it has read nothing, so its rows stay until it counts as gone (an hour).
    let mut conn = database(server.data()).await;
    let silent_since = chrono::Utc::now().timestamp_millis() - 59 * 60 * 1000;
    sqlx::query("INSERT INTO cache_listeners (id, seen, heartbeat_at) VALUES ('gone', 0, $1)")
        .bind(silent_since)
        .execute(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        for action in ["disable", "enable"] {
            let output = server.data().run(&["user", action, USER], None).await;
            assert_success(&output, action);
            confirmed_after(&output);
        }
    }
    let swept = server.hub().sweep(server.clock.now()).await.unwrap();
    assert_eq!(
        (swept.cache_changes, swept.cache_listeners),
        (0, 0),
        "the silent listener has not read them"
    );
    assert_eq!(server.data().count_rows("cache_changes").await, 6);

    // Two minutes later it counts as gone: its row, and every row the server has read but
    // the newest, are swept (by this sweep or the server's own, every 50 ms here).
    server.advance(chrono::Duration::minutes(2));
    server.hub().sweep(server.clock.now()).await.unwrap();
    assert_eq!(server.data().count_rows("cache_changes").await, 1);
    assert_eq!(server.data().count_rows("cache_listeners").await, 1);

    // The server still hears the next change.
    let output = server.data().run(&["user", "disable", USER], None).await;
    assert_success(&output, "user disable");
    confirmed_after(&output);
    conn.close().await.ok();
}

/// The actions an anonymous registry token grants on `ann/app`.
async fn anonymous_pull(url: &str) -> Vec<String> {
    let answer: serde_json::Value = reqwest::get(format!(
        "{url}/token?service=hubkey-registry&scope=repository:{USER}/app:pull"
    ))
    .await
    .expect("send GET /token")
    .json()
    .await
    .expect("a token answer");
    let claims = jwt_part(answer["token"].as_str().expect("a token"), 1);
    claims["access"]
        .as_array()
        .expect("access")
        .iter()
        .flat_map(|grant| grant["actions"].as_array().cloned().unwrap_or_default())
        .map(|action| action.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn sqlite_only_a_repository_made_private_with_the_cli_is_refused_on_the_next_request() {
    if skip_unless_sqlite(
        "sqlite_only_a_repository_made_private_with_the_cli_is_refused_on_the_next_request",
    ) {
        return;
    }
    let (server, _, metrics) = server_with_token().await;
    let repo = format!("{USER}/app");
    let public = server.data().run(&["repo", "public", &repo], None).await;
    assert_success(&public, "repo public");
    // Looked up, then answered from the cache.
    const REPOSITORY_HITS: &str = "hubkeyd_cache_hits_total{cache=\"repository\"}";
    let before = value(&scrape(&metrics).await, REPOSITORY_HITS);
    for _ in 0..2 {
        assert_eq!(anonymous_pull(&server.url).await, ["pull"]);
    }
    assert!(value(&scrape(&metrics).await, REPOSITORY_HITS) > before);
    let private = server.data().run(&["repo", "private", &repo], None).await;
    assert_success(&private, "repo private");
    confirmed_after(&private);
    assert!(
        anonymous_pull(&server.url).await.is_empty(),
        "pull granted after `repo private` returned"
    );
}
