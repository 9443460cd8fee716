//! Several hubkeyd instances of one deployment: the same `server.key` and database, each
//! its own process and port, as an operator runs them behind a load balancer. A person's
//! requests may land on any of them; what one instance changes, every other one honours.
//!
//! The `postgres_only_` tests run two instances on one PostgreSQL database (SQLite serves
//! one instance): a token changed through the first (A) is refused by the second (B) although
//! B had it in its cache, because A announces the change on the channel B listens to
//! (`hubkeyd::invalidation`); without that, B would go on accepting it for the cache's age.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hubkey_api::{
    CreateAccessTokenRequest, DesktopGenerateRequest, Origin, PatchAccessTokenRequest, Scope,
    TokenEventKind,
};
use hubkey_client::HubClient;
use sqlx::Connection;

use crate::harness::{
    assert_success, manual, password_session, percentiles_ms, DataDir, Stopped, TestServer,
    PASSWORD,
};
use crate::metrics::{metrics_url, scrape, value};
use crate::pg::skip_unless_postgres;

const USER: &str = "ann";

/// How long B may go on accepting a token after A acknowledged its change, in these tests:
/// far under the token cache's age (5 s), so that without the change channel they fail.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_session_and_a_token_from_one_instance_work_on_another() {
    let first = TestServer::start().await;
    let second = first.another_instance().await;
    assert_ne!(first.url, second.url);
    first.add_user("ann", PASSWORD).await;

    // A session opened on the first is signed with the shared server.key: the second
    // instance accepts it.
    let session = password_session(&first.client(), "ann", PASSWORD).await;
    let on_first = first.client().with_token(session.token.clone());
    let on_second = second.client().with_token(session.token);
    let created = on_first.create_token(&manual("ci")).await.expect("create");
    let listed = on_second
        .list_all_tokens()
        .await
        .expect("list on the second");
    assert!(listed.iter().any(|token| token.uuid == created.uuid));
    second
        .client()
        .auth_token("ann", &created.token)
        .await
        .expect("the token made on the first signs in on the second");
}

/// Two instances on one database, with metrics, and `ann` signed in on each.
struct Pair {
    a: TestServer,
    b: TestServer,
    ann_a: HubClient,
    ann_b: HubClient,
    b_metrics: String,
}

async fn pair() -> Pair {
    let data = DataDir::new();
    data.add_user(USER, PASSWORD).await;
    let a = TestServer::start_with(data, &["--metrics-addr", "127.0.0.1:0"]).await;
    let b = a.another_instance().await;
    let ann_a = a.sign_in(USER, PASSWORD).await;
    let ann_b = b.sign_in(USER, PASSWORD).await;
    let b_metrics = metrics_url(&b).await;
    Pair {
        a,
        b,
        ann_a,
        ann_b,
        b_metrics,
    }
}

/// An HTTP client whose requests come from the next loopback address: the refusals these
/// tests provoke count as failed sign-ins, and one address may fail only so often.
fn from_next_address() -> reqwest::Client {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let last = 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 240;
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("an HTTP client")
}

/// The status `request` is answered with.
async fn status(request: reqwest::RequestBuilder, what: &str) -> u16 {
    let answer = request.send().await;
    answer
        .unwrap_or_else(|err| panic!("send {what}: {err}"))
        .status()
        .as_u16()
}

/// The registry's `GET /token` on `url` with `ann:secret`: the status.
async fn registry_token(url: &str, secret: &str) -> u16 {
    let request = from_next_address()
        .get(format!(
            "{url}/token?service=hubkey-registry&scope=repository:{USER}/app:pull"
        ))
        .basic_auth(USER, Some(secret));
    status(request, "GET /token").await
}

/// `POST /v2/auth/token` on `url` with `ann` and `secret`: the status.
async fn auth_token_status(url: &str, secret: &str) -> u16 {
    let request = from_next_address()
        .post(format!("{url}/v2/auth/token"))
        .json(&serde_json::json!({ "identifier": USER, "secret": secret }));
    status(request, "POST /v2/auth/token").await
}

/// A bearer check on `url`: `ann`'s repository read with `bearer`; the status.
async fn bearer_status(url: &str, bearer: &str) -> u16 {
    let request = from_next_address()
        .get(format!("{url}/v2/repositories/{USER}/app"))
        .bearer_auth(bearer);
    status(request, "GET /v2/repositories").await
}

const TOKEN_HITS: &str = "hubkeyd_cache_hits_total{cache=\"token\"}";

/// Uses `secret` on B until B answers it from its cache (so that a test after this would
/// fail if B never heard of a change), and opens a bearer from it on B; returns the bearer.
/// A load that races B forgetting something else is not kept: then it tries again.
async fn warm(pair: &Pair, secret: &str) -> String {
    assert_eq!(registry_token(&pair.b.url, secret).await, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = value(&scrape(&pair.b_metrics).await, TOKEN_HITS);
        assert_eq!(registry_token(&pair.b.url, secret).await, 200);
        let bearer = pair
            .b
            .client()
            .auth_token(USER, secret)
            .await
            .expect("the token signs in on B")
            .access_token;
        let after = value(&scrape(&pair.b_metrics).await, TOKEN_HITS);
        if after >= before + 2.0 {
            return bearer;
        }
        assert!(
            Instant::now() < deadline,
            "B never answered from its cache: {before} → {after}"
        );
    }
}

/// When B started refusing a token, after the change was acknowledged.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    /// When the first refused request was sent: B accepted every request sent before.
    sent: Duration,
    /// When its answer (401) arrived: includes the refusal's own time.
    answered: Duration,
    /// How many requests B accepted after the change.
    accepted: u32,
}

/// Asks B's `/token` with `secret` until it refuses; panics if it still accepts it
/// [`REFUSED_WITHIN`] after `since`.
async fn refused_by(url: &str, secret: &str, since: Instant) -> Refusal {
    let mut accepted = 0;
    loop {
        let sent = since.elapsed();
        match registry_token(url, secret).await {
            401 => {
                return Refusal {
                    sent,
                    answered: since.elapsed(),
                    accepted,
                }
            }
            200 => accepted += 1,
            other => panic!("unexpected status {other}"),
        }
        assert!(
            since.elapsed() < REFUSED_WITHIN,
            "{url} still accepts the token {:?} after the change ({accepted} answers)",
            since.elapsed()
        );
    }
}

/// B refuses `secret` at `/token`, at `/v2/auth/token`, and the bearer opened from it.
async fn refused_everywhere_on_b(pair: &Pair, secret: &str, bearer: &str, since: Instant) {
    let refusal = refused_by(&pair.b.url, secret, since).await;
    println!("B after A acknowledged the change: {refusal:?}");
    let exchange = pair.b.client().auth_token(USER, secret).await;
    assert_eq!(exchange.err().and_then(|err| err.status()), Some(401));
    let with_bearer = pair
        .b
        .client()
        .with_token(bearer.to_owned())
        .repository(USER, "app")
        .await;
    assert_eq!(with_bearer.err().and_then(|err| err.status()), Some(401));
}

fn deactivate() -> PatchAccessTokenRequest {
    PatchAccessTokenRequest {
        token_label: None,
        is_active: Some(false),
        new_address_alerts: None,
    }
}

#[tokio::test]
async fn postgres_only_a_token_deactivated_through_one_instance_is_refused_by_the_other() {
    if skip_unless_postgres(
        "postgres_only_a_token_deactivated_through_one_instance_is_refused_by_the_other",
    ) {
        return;
    }
    let pair = pair().await;
    let token = pair.ann_a.create_token(&manual("ci")).await.unwrap();
    let bearer = warm(&pair, &token.token).await;
    pair.ann_a
        .patch_token(token.uuid, &deactivate())
        .await
        .unwrap();
    refused_everywhere_on_b(&pair, &token.token, &bearer, Instant::now()).await;
}

#[tokio::test]
async fn postgres_only_a_token_deleted_through_one_instance_is_refused_by_the_other() {
    if skip_unless_postgres(
        "postgres_only_a_token_deleted_through_one_instance_is_refused_by_the_other",
    ) {
        return;
    }
    let pair = pair().await;
    let token = pair.ann_a.create_token(&manual("ci")).await.unwrap();
    let bearer = warm(&pair, &token.token).await;
    pair.ann_a.delete_token(token.uuid).await.unwrap();
    refused_everywhere_on_b(&pair, &token.token, &bearer, Instant::now()).await;
}

fn device(name: &str) -> DesktopGenerateRequest {
    DesktopGenerateRequest {
        client_name: None,
        device_name: Some(name.to_owned()),
    }
}

#[tokio::test]
async fn postgres_only_an_auto_token_pruned_by_a_sign_in_on_one_instance_is_refused_by_the_other() {
    if skip_unless_postgres(
        "postgres_only_an_auto_token_pruned_by_a_sign_in_on_one_instance_is_refused_by_the_other",
    ) {
        return;
    }
    let pair = pair().await;
    let mut autos = Vec::new();
    for i in 0..5 {
        let made = pair
            .ann_a
            .desktop_generate(Some(&device(&format!("laptop-{i}"))))
            .await
            .unwrap();
        autos.push(made.data);
    }
    let oldest = autos[0].clone();
    let bearer = warm(&pair, &oldest.token).await;
    // The other four are used later (on A, whose uses the pruning flushes first), so the
    // oldest ranks last whenever B writes its own use.
    for newer in &autos[1..] {
        assert_eq!(registry_token(&pair.a.url, &newer.token).await, 200);
    }
    pair.ann_a
        .desktop_generate(Some(&device("laptop-5")))
        .await
        .unwrap();
    let since = Instant::now();
    let events = crate::harness::all_events(&pair.ann_a).await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == TokenEventKind::Pruned && e.token_uuid == oldest.uuid),
        "the oldest auto token was pruned"
    );
    refused_everywhere_on_b(&pair, &oldest.token, &bearer, since).await;
}

#[tokio::test]
async fn postgres_only_a_token_expired_meanwhile_is_refused_by_an_instance_that_cached_it() {
    if skip_unless_postgres(
        "postgres_only_a_token_expired_meanwhile_is_refused_by_an_instance_that_cached_it",
    ) {
        return;
    }
    let pair = pair().await;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let token = pair
        .ann_a
        .create_token(&CreateAccessTokenRequest {
            token_label: "short".into(),
            scopes: vec![Scope::Read],
            expires_at: Some(expires_at),
        })
        .await
        .unwrap();
    let bearer = warm(&pair, &token.token).await;
    // The binary runs on the system clock: wait for it to pass the expiry (nothing is
    // announced; the cached row carries its expiry, checked at every use).
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(20)).await;
    let since = Instant::now();
    assert_eq!(
        registry_token(&pair.b.url, &token.token).await,
        401,
        "refused at the first request after the expiry"
    );
    refused_everywhere_on_b(&pair, &token.token, &bearer, since).await;
}

#[tokio::test]
async fn postgres_only_an_account_disabled_with_the_cli_is_refused_by_every_instance() {
    if skip_unless_postgres(
        "postgres_only_an_account_disabled_with_the_cli_is_refused_by_every_instance",
    ) {
        return;
    }
    let pair = pair().await;
    let token = pair.ann_a.create_token(&manual("ci")).await.unwrap();
    let bearer = warm(&pair, &token.token).await;
    let output = pair.a.data().run(&["user", "disable", USER], None).await;
    assert_success(&output, "user disable");
    // The command waited for the instances' confirmations (on a connection of its own):
    // B refuses the first requests after it returned.
    let mut accepted = AcceptedAfterAck::default();
    first_requests_after_ack(&pair, &token.token, &bearer, &mut accepted).await;
    assert_eq!(
        (accepted.registry, accepted.exchange, accepted.bearer),
        (0, 0, 0)
    );
    let since = Instant::now();
    refused_everywhere_on_b(&pair, &token.token, &bearer, since).await;
    assert_eq!(registry_token(&pair.a.url, &token.token).await, 401);
    // Its password sessions end too, on both.
    for session in [&pair.ann_a, &pair.ann_b] {
        let listed = session.list_all_tokens().await;
        assert_eq!(listed.err().and_then(|err| err.status()), Some(401));
    }
}

/// A connection to the pair's PostgreSQL database, for what only an administrator does.
async fn admin(pair: &Pair) -> sqlx::PgConnection {
    let url = pair
        .a
        .data()
        .postgres_database()
        .expect("a PostgreSQL database");
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test database")
}

/// The server process id of B's change listener (by its `application_name`), once there.
async fn listener_backend(conn: &mut sqlx::PgConnection, b: &TestServer) -> i32 {
    let name = format!("hubkeyd-notify-{}", b.pid());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
                 ORDER BY backend_start DESC LIMIT 1",
        )
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await
        .expect("read pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "no backend named {name}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn terminate(conn: &mut sqlx::PgConnection, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut *conn)
        .await
        .expect("pg_terminate_backend");
    assert!(done, "the listener's backend was terminated");
}

/// Waits until B's metric `series` satisfies `ok`; returns its value.
async fn metric_until(pair: &Pair, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = value(&scrape(&pair.b_metrics).await, series);
        if ok(now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{series} stays at {now}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const LISTENING: &str = "hubkeyd_notify_listening";
const RECONNECTS: &str = "hubkeyd_notify_reconnects_total";

#[tokio::test]
async fn postgres_only_an_instance_whose_channel_is_down_answers_from_the_database_and_resubscribes(
) {
    if skip_unless_postgres(
        "postgres_only_an_instance_whose_channel_is_down_answers_from_the_database_and_resubscribes",
    ) {
        return;
    }
    let pair = pair().await;
    let mut conn = admin(&pair).await;
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // A database cannot close itself to connections from inside: from the cluster's own.
    let url = pair.a.data().postgres_database().unwrap();
    let cluster_url = format!("{}/postgres", &url[..url.rfind('/').unwrap()]);
    let mut conn = sqlx::PgConnection::connect(&cluster_url).await.unwrap();
    let doomed = pair.ann_a.create_token(&manual("doomed")).await.unwrap();
    let kept = pair.ann_a.create_token(&manual("kept")).await.unwrap();
    let later = pair.ann_a.create_token(&manual("later")).await.unwrap();
    let bearer = warm(&pair, &doomed.token).await;
    warm(&pair, &kept.token).await;
    assert_eq!(value(&scrape(&pair.b_metrics).await, LISTENING), 1.0);
    assert_eq!(value(&scrape(&pair.b_metrics).await, RECONNECTS), 0.0);

    // The channel goes down and stays down: no new connection to the database is allowed
    // (the instances' pools keep the ones they have), and B's listener is killed. First the
    // pools open several connections: refused requests in parallel each query the database.
    for server in [&pair.a, &pair.b] {
        let mut refused = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let url = server.url.clone();
            refused.spawn(async move {
                registry_token(&url, hubkey_api::PlainToken::generate().expose()).await
            });
        }
        while let Some(status) = refused.join_next().await {
            assert_eq!(status.unwrap(), 401);
        }
    }
    sqlx::query(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let backend = listener_backend(&mut conn, &pair.b).await;
    terminate(&mut conn, backend).await;
    metric_until(&pair, LISTENING, |v| v == 0.0).await;

    // A token deactivated through A meanwhile is refused by B at once: B keeps nothing.
    pair.ann_a
        .patch_token(doomed.uuid, &deactivate())
        .await
        .unwrap();
    assert_eq!(registry_token(&pair.b.url, &doomed.token).await, 401);
    refused_everywhere_on_b(&pair, &doomed.token, &bearer, Instant::now()).await;
    // A good token still works on B, answered by the database, not the cache.
    let hits = value(&scrape(&pair.b_metrics).await, TOKEN_HITS);
    for _ in 0..3 {
        assert_eq!(registry_token(&pair.b.url, &kept.token).await, 200);
    }
    assert_eq!(value(&scrape(&pair.b_metrics).await, TOKEN_HITS), hits);
    assert_eq!(value(&scrape(&pair.b_metrics).await, RECONNECTS), 0.0);

    // Back: B subscribes again (counted) and caches again, and hears changes again.
    sqlx::query(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        .execute(&mut conn)
        .await
        .unwrap();
    metric_until(&pair, RECONNECTS, |v| v == 1.0).await;
    metric_until(&pair, LISTENING, |v| v == 1.0).await;
    let bearer = warm(&pair, &later.token).await;
    pair.ann_a
        .patch_token(later.uuid, &deactivate())
        .await
        .unwrap();
    refused_everywhere_on_b(&pair, &later.token, &bearer, Instant::now()).await;
    assert!(pair
        .b
        .log_text()
        .contains("change channel lost: caching suspended"));
}

/// How many requests B accepted after A acknowledged a change, by endpoint.
#[derive(Debug, Default)]
struct AcceptedAfterAck {
    registry: u32,
    exchange: u32,
    bearer: u32,
}

/// Right after A acknowledged a change to `secret`: B's `/token`, `/v2/auth/token` and the
/// bearer opened from `secret`, at once; counts into `accepted` what B did not refuse.
/// Answers when B's `/token` refusal arrived.
async fn first_requests_after_ack(
    pair: &Pair,
    secret: &str,
    bearer: &str,
    accepted: &mut AcceptedAfterAck,
) -> Duration {
    let since = Instant::now();
    let registry = async {
        let status = registry_token(&pair.b.url, secret).await;
        (status, since.elapsed())
    };
    let ((registry, answered), exchange, with_bearer) = tokio::join!(
        registry,
        auth_token_status(&pair.b.url, secret),
        bearer_status(&pair.b.url, bearer)
    );
    accepted.registry += u32::from(registry != 401);
    accepted.exchange += u32::from(exchange != 401);
    accepted.bearer += u32::from(with_bearer != 401);
    answered
}

/// Waits until the backend `pid` has left `pg_stat_activity`; answers how long that took.
async fn gone_from_activity(conn: &mut sqlx::PgConnection, pid: i32) -> Duration {
    let since = Instant::now();
    loop {
        let there: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&mut *conn)
            .await
            .expect("read pg_stat_activity");
        if there == 0 {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "backend {pid} is still there"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Staleness: the time from A acknowledging a deactivation to B refusing the token (B held it
/// in its cache), over [`CHANGES`] changes each, with the channel healthy and with B's
/// listener killed just before each change. With the channel healthy, A acknowledges only
/// once B confirmed it forgot: B refuses the very first request after the acknowledgement,
/// at `/token`, `/v2/auth/token` and with a bearer. Prints the figures (ARCHITECTURE.md
/// quotes them).
#[tokio::test]
async fn postgres_only_staleness_between_instances_with_the_channel_healthy_and_killed() {
    const CHANGES: usize = 50;
    if skip_unless_postgres(
        "postgres_only_staleness_between_instances_with_the_channel_healthy_and_killed",
    ) {
        return;
    }
    let pair = pair().await;
    let mut conn = admin(&pair).await;
    let mut tokens = Vec::new();
    for i in 0..2 * CHANGES {
        tokens.push(
            pair.ann_a
                .create_token(&manual(&format!("t{i}")))
                .await
                .unwrap(),
        );
    }
    let mut healthy = Vec::new();
    let mut accepted = AcceptedAfterAck::default();
    for token in &tokens[..CHANGES] {
        let bearer = warm(&pair, &token.token).await;
        pair.ann_a
            .patch_token(token.uuid, &deactivate())
            .await
            .unwrap();
        let answered = first_requests_after_ack(&pair, &token.token, &bearer, &mut accepted).await;
        healthy.push(Refusal {
            sent: Duration::ZERO,
            answered,
            accepted: 0,
        });
    }
    println!("channel healthy, accepted by B after A's acknowledgement: {accepted:?}");
    assert_eq!(
        (accepted.registry, accepted.exchange, accepted.bearer),
        (0, 0, 0),
        "B accepted requests after A acknowledged the change"
    );
    let a_metrics = metrics_url(&pair.a).await;
    assert_eq!(
        value(&scrape(&a_metrics).await, CUT_OFF),
        0.0,
        "no listener was cut off"
    );
    let mut killed = Vec::new();
    for (i, token) in tokens[CHANGES..].iter().enumerate() {
        warm(&pair, &token.token).await;
        let backend = listener_backend(&mut conn, &pair.b).await;
        terminate(&mut conn, backend).await;
        pair.ann_a
            .patch_token(token.uuid, &deactivate())
            .await
            .unwrap();
        killed.push(refused_by(&pair.b.url, &token.token, Instant::now()).await);
        metric_until(&pair, RECONNECTS, |v| v >= (i + 1) as f64).await;
        metric_until(&pair, LISTENING, |v| v == 1.0).await;
    }
    // "answered" includes the refusal's own time (a refused secret is also tried as a
    // password, which costs a hash); "sent" is when B began refusing.
    for (name, refusals) in [("healthy", &healthy), ("killed", &killed)] {
        let stale: u32 = refusals.iter().map(|r| r.accepted).sum();
        for (what, pick) in [
            (
                "first refused request sent",
                (|r: &Refusal| r.sent) as fn(&Refusal) -> Duration,
            ),
            ("refusal answered", |r: &Refusal| r.answered),
        ] {
            let mut figures: Vec<Duration> = refusals.iter().map(pick).collect();
            let (median, p99, worst) = percentiles_ms(&mut figures);
            println!(
                "staleness, channel {name}, {what}: median {median:.1} ms, p99 {p99:.1} ms, worst {worst:.1} ms over {CHANGES} changes ({stale} stale answers in all)"
            );
        }
    }
    // A change may find B's killed listener still in pg_stat_activity (its backend exits a
    // moment after the signal): A then waits for it until the bound and cuts it off.
    println!(
        "channel killed: listeners A waited for in vain and cut off: {}",
        value(&scrape(&a_metrics).await, CUT_OFF)
    );
}

const CUT_OFF: &str = "hubkeyd_notify_cut_off_total";

/// Stops B at a moment when none of the database's sessions is inside a transaction (B's
/// background writers must not be stopped holding a lock A's change needs).
async fn stop_idle(pair: &Pair, conn: &mut sqlx::PgConnection) -> Stopped {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stopped = Stopped::new(pair.b.pid());
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%' OR state = 'active')",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("read pg_stat_activity");
        if busy == 0 {
            return stopped;
        }
        drop(stopped);
        assert!(Instant::now() < deadline, "the database never was idle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener that never confirms (instance B stopped with SIGSTOP): A acknowledges its
/// change within the bound, having cut off B's listener (counted); once resumed, B notices
/// its channel was lost, refuses the token and subscribes again.
#[tokio::test]
async fn postgres_only_a_listener_that_never_confirms_is_cut_off_and_the_change_acknowledged_in_time(
) {
    if skip_unless_postgres(
        "postgres_only_a_listener_that_never_confirms_is_cut_off_and_the_change_acknowledged_in_time",
    ) {
        return;
    }
    let pair = pair().await;
    let a_metrics = metrics_url(&pair.a).await;
    let mut conn = admin(&pair).await;
    let token = pair.ann_a.create_token(&manual("ci")).await.unwrap();
    let bearer = warm(&pair, &token.token).await;
    let backend = listener_backend(&mut conn, &pair.b).await;

    let stopped = stop_idle(&pair, &mut conn).await;
    let started = Instant::now();
    pair.ann_a
        .patch_token(token.uuid, &deactivate())
        .await
        .unwrap();
    let acknowledged = started.elapsed();
    println!("A acknowledged the change in {acknowledged:?} with B stopped");
    assert!(
        acknowledged >= hubkeyd::invalidation::CONFIRM_WITHIN
            && acknowledged < hubkeyd::invalidation::CONFIRM_WITHIN + Duration::from_secs(2),
        "acknowledged after {acknowledged:?}"
    );
    gone_from_activity(&mut conn, backend).await;
    assert_eq!(value(&scrape(&a_metrics).await, CUT_OFF), 1.0);
    assert!(pair.a.log_text().contains("did not confirm a change"));

    // Resumed, B refuses the token once it has read that its channel was lost.
    drop(stopped);
    let resumed = Instant::now();
    let refusal = refused_by(&pair.b.url, &token.token, resumed).await;
    println!("B after SIGCONT: {refusal:?}");
    refused_everywhere_on_b(&pair, &token.token, &bearer, resumed).await;
    metric_until(&pair, RECONNECTS, |v| v == 1.0).await;
    metric_until(&pair, LISTENING, |v| v == 1.0).await;
    assert!(pair
        .b
        .log_text()
        .contains("change channel lost: caching suspended"));

    // Subscribed again, B confirms changes again: the next one is not waited for in vain.
    let later = pair.ann_a.create_token(&manual("later")).await.unwrap();
    let bearer = warm(&pair, &later.token).await;
    let started = Instant::now();
    pair.ann_a
        .patch_token(later.uuid, &deactivate())
        .await
        .unwrap();
    assert!(started.elapsed() < hubkeyd::invalidation::CONFIRM_WITHIN);
    let mut accepted = AcceptedAfterAck::default();
    first_requests_after_ack(&pair, &later.token, &bearer, &mut accepted).await;
    assert_eq!(
        (accepted.registry, accepted.exchange, accepted.bearer),
        (0, 0, 0)
    );
    assert_eq!(value(&scrape(&a_metrics).await, CUT_OFF), 1.0);
}

/// Deactivates each of `tokens` through `client`, one after another; answers how long each
/// took to be acknowledged.
async fn timed_deactivations(
    client: &HubClient,
    tokens: &[hubkey_api::AccessToken],
) -> Vec<Duration> {
    let mut took = Vec::new();
    for token in tokens {
        let started = Instant::now();
        client.patch_token(token.uuid, &deactivate()).await.unwrap();
        took.push(started.elapsed());
    }
    took
}

/// What waiting for the other instance's confirmation adds to a change: deactivations
/// through A, timed at the client, with B running and after B stopped for good. Prints the
/// figures (ARCHITECTURE.md quotes them); asserts only that no wait ran into the bound.
#[tokio::test]
async fn postgres_only_the_latency_a_confirmation_adds_to_a_change() {
    const CHANGES: usize = 100;
    if skip_unless_postgres("postgres_only_the_latency_a_confirmation_adds_to_a_change") {
        return;
    }
    let mut pair = pair().await;
    let a_metrics = metrics_url(&pair.a).await;
    let mut conn = admin(&pair).await;
    let mut tokens = Vec::new();
    for i in 0..2 * CHANGES {
        tokens.push(
            pair.ann_a
                .create_token(&manual(&format!("t{i}")))
                .await
                .unwrap(),
        );
    }
    let mut two = timed_deactivations(&pair.ann_a, &tokens[..CHANGES]).await;
    let backend = listener_backend(&mut conn, &pair.b).await;
    pair.b.kill();
    gone_from_activity(&mut conn, backend).await;
    let mut one = timed_deactivations(&pair.ann_a, &tokens[CHANGES..]).await;
    for (name, figures) in [("two instances", &mut two), ("one instance", &mut one)] {
        let (median, p99, worst) = percentiles_ms(figures);
        println!(
            "deactivation through A, {name}: median {median:.1} ms, p99 {p99:.1} ms, worst {worst:.1} ms over {CHANGES} changes"
        );
    }
    assert_eq!(value(&scrape(&a_metrics).await, CUT_OFF), 0.0);
}

#[tokio::test]
async fn postgres_only_concurrent_sign_ins_on_two_instances_keep_five_auto_tokens_and_lose_none() {
    const SIGN_INS: usize = 32;
    if skip_unless_postgres(
        "postgres_only_concurrent_sign_ins_on_two_instances_keep_five_auto_tokens_and_lose_none",
    ) {
        return;
    }
    let pair = pair().await;
    // The password step first, one after another: the sign-in throttle counts attempts in
    // flight against the account's limit, whatever their outcome. The token each desktop
    // sign-in ends with is what races.
    let mut sessions = Vec::new();
    for i in 0..SIGN_INS {
        let server = if i % 2 == 0 { &pair.a } else { &pair.b };
        let session = password_session(&server.client(), USER, PASSWORD).await;
        sessions.push(server.client().with_token(session.token));
    }
    let mut calls = tokio::task::JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        calls.spawn(async move {
            let made = session
                .desktop_generate(Some(&device(&format!("device-{i}"))))
                .await
                .expect("desktop-generate");
            made.data
        });
    }
    let mut returned = Vec::new();
    while let Some(made) = calls.join_next().await {
        returned.push(made.unwrap());
    }
    let listed = pair.ann_b.list_all_tokens().await.unwrap();
    let autos: Vec<_> = listed
        .iter()
        .filter(|token| token.generated_by == Origin::Auto)
        .collect();
    assert_eq!(autos.len(), 5, "five auto tokens are kept");
    // The survivors are the five created last (none was used), and every token a call
    // returned is either one of them, and works on both instances, or was pruned later,
    // with its event: none was lost.
    let events = crate::harness::all_events(&pair.ann_a).await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.kind == TokenEventKind::Created)
        .map(|e| e.token_uuid)
        .collect();
    assert_eq!(created.len(), SIGN_INS);
    let last_five: HashSet<_> = created[SIGN_INS - 5..].iter().collect();
    let kept: HashSet<_> = autos.iter().map(|token| &token.uuid).collect();
    assert_eq!(kept, last_five);
    let pruned: HashSet<_> = events
        .iter()
        .filter(|e| e.kind == TokenEventKind::Pruned)
        .map(|e| e.token_uuid)
        .collect();
    assert_eq!(pruned.len(), SIGN_INS - 5);
    for made in &returned {
        if kept.contains(&made.uuid) {
            for server in [&pair.a, &pair.b] {
                assert_eq!(registry_token(&server.url, &made.token).await, 200);
            }
        } else {
            assert!(pruned.contains(&made.uuid), "{} was lost", made.token_label);
            assert_eq!(registry_token(&pair.b.url, &made.token).await, 401);
        }
    }
}

#[tokio::test]
async fn postgres_only_usage_flushed_by_two_instances_merges_latest_use_and_added_counts() {
    if skip_unless_postgres(
        "postgres_only_usage_flushed_by_two_instances_merges_latest_use_and_added_counts",
    ) {
        return;
    }
    let mut pair = pair().await;
    let token = pair.ann_a.create_token(&manual("ci")).await.unwrap();
    for _ in 0..3 {
        assert_eq!(registry_token(&pair.a.url, &token.token).await, 200);
    }
    let between = chrono::Utc::now();
    for _ in 0..2 {
        assert_eq!(registry_token(&pair.b.url, &token.token).await, 200);
    }
    // B writes its later use first, then A its earlier one: the later stays.
    assert!(pair.b.stop().success());
    assert!(pair.a.stop().success());
    pair.a.restart().await;
    let ann = pair.a.sign_in(USER, PASSWORD).await;
    let stored = ann.get_token(token.uuid).await.unwrap();
    let last_used = stored.last_used.expect("a last use");
    assert!(
        last_used >= between,
        "the latest use (on B) wins: {last_used} < {between}"
    );
    let uses: u64 = stored.usage.iter().map(|day| day.uses).sum();
    assert_eq!(uses, 5, "both instances' counts add: {:?}", stored.usage);
}

#[tokio::test]
async fn postgres_only_a_feed_reader_alternating_instances_sees_every_event_once_while_both_write()
{
    const PER_WRITER: usize = 15;
    if skip_unless_postgres(
        "postgres_only_a_feed_reader_alternating_instances_sees_every_event_once_while_both_write",
    ) {
        return;
    }
    let pair = pair().await;
    let mut writers = tokio::task::JoinSet::new();
    for (name, writer) in [("a", pair.ann_a.clone()), ("b", pair.ann_b.clone())] {
        writers.spawn(async move {
            for i in 0..PER_WRITER {
                let token = writer
                    .create_token(&manual(&format!("{name}-{i}")))
                    .await
                    .expect("create");
                writer
                    .patch_token(token.uuid, &deactivate())
                    .await
                    .expect("deactivate");
            }
        });
    }
    let readers = [pair.ann_a.clone(), pair.ann_b.clone()];
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut reads_while_writing = 0;
    for turn in 0.. {
        while let Some(done) = writers.try_join_next() {
            done.unwrap();
        }
        let finished = writers.is_empty();
        let page = readers[turn % 2]
            .events_limited(cursor.as_deref(), 7)
            .await
            .expect("read the feed");
        let caught_up = page.events.is_empty() && !page.has_more;
        seen.extend(page.events);
        cursor = Some(page.cursor);
        if !finished {
            reads_while_writing += 1;
        } else if caught_up {
            break;
        }
    }
    let all = crate::harness::all_events(&pair.ann_a).await;
    assert_eq!(all.len(), 4 * PER_WRITER);
    let seen_ids: Vec<_> = seen.iter().map(|e| (e.token_uuid, e.kind)).collect();
    let all_ids: Vec<_> = all.iter().map(|e| (e.token_uuid, e.kind)).collect();
    assert_eq!(
        seen_ids, all_ids,
        "read in turns: no event skipped or repeated"
    );
    let mut per_token: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for (uuid, kind) in &seen_ids {
        per_token.entry(uuid).or_default().push(*kind);
    }
    for kinds in per_token.values() {
        assert_eq!(
            kinds,
            &[TokenEventKind::Created, TokenEventKind::Deactivated]
        );
    }
    assert!(
        reads_while_writing > 2,
        "the reader read while the writers wrote"
    );
}

#[tokio::test]
async fn uses_flushed_by_two_instances_merge_the_latest_use_wins_and_counts_add() {
    let mut first = TestServer::start().await;
    let mut second = first.another_instance().await;
    first.add_user("ann", PASSWORD).await;
    let session = password_session(&first.client(), "ann", PASSWORD).await;
    let created = first
        .client()
        .with_token(session.token.clone())
        .create_token(&manual("ci"))
        .await
        .expect("create");

    // Two earlier uses through the second instance, three later ones through the first.
    for _ in 0..2 {
        second
            .client()
            .auth_token("ann", &created.token)
            .await
            .expect("a use on the second");
    }
    let later = chrono::Utc::now();
    for _ in 0..3 {
        first
            .client()
            .auth_token("ann", &created.token)
            .await
            .expect("a use on the first");
    }
    // The first flushes (at its stop) before the second: the second's older use arrives last
    // and must not move last_used back; its counts add to the first's.
    first.stop();
    second.stop();
    first.restart().await;
    let token = first
        .client()
        .with_token(session.token)
        .get_token(created.uuid)
        .await
        .expect("get");
    let last_used = token.last_used.expect("last_used after the uses");
    assert!(
        last_used >= later - chrono::Duration::milliseconds(1),
        "{last_used} is older than the first instance's uses ({later})"
    );
    let uses: u64 = token.usage.iter().map(|day| day.uses).sum();
    assert_eq!(uses, 5, "{:?}", token.usage);
}
