//! Sign-in limits under the attacks they exist for: a thousand guesses in flight at once, codes
//! thrown at one 2FA challenge, a second factor guessed across challenges, and the memory and
//! disk an hour of guessing leaves behind.

use std::net::Ipv4Addr;
use std::time::Duration;

use hubkey_client::{ClientError, HubClient, LoginOutcome};

use crate::harness::{password_session, totp_code, ClockedServer, TestServer, PASSWORD};

/// Requests an attacker keeps in flight at once.
pub(crate) const IN_FLIGHT: usize = 1000;

/// The i-th of many attacker addresses: 127.1.x.y, none of them the tests' usual 127.0.0.x.
pub(crate) fn attacker_address(i: usize) -> Ipv4Addr {
    let byte = |n: usize| u8::try_from(n).expect("fewer than 62 500 addresses");
    Ipv4Addr::new(127, 1, byte(i / 250), byte(i % 250 + 1))
}

/// How answers to guesses fell out.
#[derive(Default)]
pub(crate) struct Tally {
    /// 401 with the message of the guess being checked and found wrong.
    pub(crate) evaluated: usize,
    /// 429.
    pub(crate) throttled: usize,
    /// Anything else, with what it was.
    pub(crate) other: Vec<String>,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} evaluated, {} throttled, {} other (first: {:?})",
            self.evaluated,
            self.throttled,
            self.other.len(),
            self.other.first()
        )
    }
}

impl Tally {
    pub(crate) fn add<T: std::fmt::Debug>(
        &mut self,
        answer: Result<T, ClientError>,
        evaluated: &str,
    ) {
        match answer {
            Err(ClientError::Unauthorized { message }) if message == evaluated => {
                self.evaluated += 1;
            }
            Err(ClientError::Throttled { retry_after, .. }) => {
                assert!(
                    retry_after.is_some_and(|wait| wait > Duration::ZERO),
                    "a 429 says when to retry: {retry_after:?}"
                );
                self.throttled += 1;
            }
            other => self.other.push(format!("{other:?}")),
        }
    }
}

/// Runs every future at once (each its own task, as many connections) and returns their
/// answers.
pub(crate) async fn all_at_once<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("an attacker task"));
    }
    answers
}

pub(crate) const BAD_CREDENTIALS: &str = "Incorrect authentication credentials";
pub(crate) const WRONG_CODE: &str = "Incorrect verification code";

/// `count` wrong password logins of `name`, all in flight at once, the i-th through
/// `client(i)` (an address, an instance).
pub(crate) async fn concurrent_wrong_passwords(
    client: impl Fn(usize) -> HubClient,
    name: &str,
    count: usize,
) -> Tally {
    let name = name.to_owned();
    let answers = all_at_once((0..count).map(|i| {
        let (client, name) = (client(i), name.clone());
        async move { client.login(&name, &format!("wrong-guess-{i}")).await }
    }))
    .await;
    let mut tally = Tally::default();
    for answer in answers {
        tally.add(answer, BAD_CREDENTIALS);
    }
    tally
}

/// Sequential wrong passwords, the i-th through `client(i)`, until the first 429: how many
/// were still evaluated (at most `most`).
pub(crate) async fn wrong_passwords_until_throttled(
    client: impl Fn(usize) -> HubClient,
    name: &str,
    most: usize,
) -> usize {
    for i in 0..most {
        match client(i).login(name, "wrong-guess-after").await {
            Err(ClientError::Unauthorized { .. }) => {}
            Err(ClientError::Throttled { .. }) => return i,
            other => panic!("guess {i}: expected 401 or 429, got {other:?}"),
        }
    }
    panic!("{most} sequential wrong passwords were never throttled");
}

#[tokio::test]
async fn a_thousand_concurrent_wrong_passwords_from_one_address_evaluate_at_most_its_limit() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 9);

    let burst = concurrent_wrong_passwords(|_| server.client_at(attacker), "ann", IN_FLIGHT).await;
    println!("1 000 in flight from one address: {burst:?}");
    assert!(burst.other.is_empty(), "only 401 and 429: {burst:?}");
    assert_eq!(burst.evaluated + burst.throttled, IN_FLIGHT);
    let after = wrong_passwords_until_throttled(|_| server.client_at(attacker), "ann", 200).await;
    // The address's limit (30 in 3 minutes) is reached exactly, never overshot.
    assert_eq!(burst.evaluated + after, 30, "guesses evaluated in all");

    // The real user, from another address, still gets in.
    password_session(&server.client_from(10), "ann", PASSWORD).await;
}

#[tokio::test]
async fn a_thousand_concurrent_wrong_passwords_from_a_thousand_addresses_evaluate_at_most_the_account_limit(
) {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;

    let burst =
        concurrent_wrong_passwords(|i| server.client_at(attacker_address(i)), "ann", IN_FLIGHT)
            .await;
    println!("1 000 in flight from 1 000 addresses: {burst:?}");
    assert!(burst.other.is_empty(), "only 401 and 429: {burst:?}");
    assert_eq!(burst.evaluated + burst.throttled, IN_FLIGHT);
    let after = wrong_passwords_until_throttled(
        |i| server.client_at(attacker_address(IN_FLIGHT + i)),
        "ann",
        200,
    )
    .await;
    // The account's limit (100 an hour) is reached exactly, never overshot.
    assert_eq!(burst.evaluated + after, 100, "guesses evaluated in all");
}

/// A 2FA challenge of `name`, with the password, from `client`.
pub(crate) async fn challenge(client: &HubClient, name: &str) -> String {
    match client.login(name, PASSWORD).await {
        Ok(LoginOutcome::SecondFactor { login_2fa_token }) => login_2fa_token,
        other => panic!("expected a 2FA challenge, got {other:?}"),
    }
}

/// `count` six-digit codes that are none of those valid around `now`.
pub(crate) fn wrong_codes(secret: &str, now: u64, count: usize) -> Vec<String> {
    let valid: Vec<String> = (now - 90..=now + 90)
        .step_by(30)
        .map(|t| totp_code(secret, t))
        .collect();
    (0u32..)
        .map(|n| format!("{:06}", (n * 7919 + 13) % 1_000_000))
        .filter(|code| !valid.contains(code))
        .take(count)
        .collect()
}

#[tokio::test]
async fn a_thousand_concurrent_codes_on_one_challenge_compare_at_most_five() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    let challenge = challenge(&server.client_from(12), "ann").await;
    let codes = wrong_codes(&secret, crate::harness::unix_now(), IN_FLIGHT);

    // From a thousand addresses, so that no address's own limit is what stops them.
    let answers = all_at_once(codes.iter().enumerate().map(|(i, code)| {
        let client = server.client_at(attacker_address(i));
        let (challenge, code) = (challenge.clone(), code.clone());
        async move { client.login_2fa(&challenge, &code).await }
    }))
    .await;
    let mut tally = Tally::default();
    let mut expired = 0;
    for answer in answers {
        match answer {
            Err(ClientError::ChallengeExpired) => expired += 1,
            answer => tally.add(answer, WRONG_CODE),
        }
    }
    println!("1 000 codes in flight on one challenge: {tally:?}, {expired} challenge_expired");
    assert!(tally.other.is_empty(), "unexpected answers: {tally:?}");
    assert!(
        tally.evaluated <= 5,
        "{} codes were compared; a challenge allows 5",
        tally.evaluated
    );
    // Whatever is left of the challenge's five attempts (an attempt refused with 429 after
    // it took one is spent too), it ends there.
    let mut compared = tally.evaluated;
    let last = server.client_at(attacker_address(IN_FLIGHT));
    let mut ended = false;
    for code in codes.iter().take(6) {
        match last.login_2fa(&challenge, code).await {
            Err(ClientError::Unauthorized { message }) if message == WRONG_CODE => compared += 1,
            Err(ClientError::ChallengeExpired) => {
                ended = true;
                break;
            }
            other => panic!("expected a wrong code or the end of the challenge, got {other:?}"),
        }
    }
    assert!(ended, "the challenge ends after its attempts");
    assert!(
        compared <= 5,
        "{compared} codes compared on the challenge in all"
    );
}

/// The answer to `code` on `challenge`, sent from `client`.
async fn try_code(
    client: &HubClient,
    challenge: &str,
    code: &str,
) -> Result<LoginOutcome, ClientError> {
    client
        .login_2fa(challenge, code)
        .await
        .map(LoginOutcome::Session)
}

#[tokio::test]
async fn ten_consecutive_wrong_codes_void_the_challenges_and_back_off_even_from_a_known_address_and_across_a_restart(
) {
    let mut server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let secret = server.enable_totp("ann").await;
    let home = Ipv4Addr::new(127, 0, 0, 40);
    // The real user's place: a full sign-in from it makes it known to the account.
    let first = challenge(&server.client_at(home), "ann").await;
    server
        .client_at(home)
        .login_2fa(&first, &totp_code(&secret, server.unix_now()))
        .await
        .expect("a full sign-in from home");
    // The next code step, so the right code is never a replay of the one just used.
    server.advance(chrono::Duration::seconds(30));

    // Someone at that address with the password guesses codes: two challenges, five each.
    let client = server.client_at(home);
    let open = challenge(&client, "ann").await;
    let wrong = wrong_codes(&secret, server.unix_now(), 10);
    for pair in wrong.chunks(5) {
        let challenge = challenge(&client, "ann").await;
        for code in pair {
            match client.login_2fa(&challenge, code).await {
                Err(ClientError::Unauthorized { message }) if message == WRONG_CODE => {}
                other => panic!("expected a wrong code, got {other:?}"),
            }
        }
    }
    // The tenth wrong code in a row voided every open challenge: the password is needed again.
    let right = totp_code(&secret, server.unix_now());
    assert_eq!(
        try_code(&client, &open, &right).await.unwrap_err(),
        ClientError::ChallengeExpired,
        "a challenge opened before the tenth wrong code is void"
    );
    // With the password again, even the right code waits, from the known address too.
    let fresh = challenge(&client, "ann").await;
    let waited = match try_code(&client, &fresh, &right).await {
        Err(ClientError::Throttled { retry_after, .. }) => {
            retry_after.expect("a 429 says when to retry")
        }
        other => panic!("expected 429 after ten wrong codes, got {other:?}"),
    };
    assert!(waited > Duration::ZERO);

    // A restart forgets nothing.
    server.restart().await;
    let client = server.client_at(home);
    let fresh = challenge(&client, "ann").await;
    assert!(
        matches!(
            try_code(&client, &fresh, &right).await,
            Err(ClientError::Throttled { .. })
        ),
        "still backing off after a restart"
    );

    // Once the wait is over the right code signs in, and that success starts the count over.
    server.advance(chrono::Duration::from_std(waited).unwrap() + chrono::Duration::seconds(30));
    let fresh = challenge(&client, "ann").await;
    let right = totp_code(&secret, server.unix_now());
    let signed_in = try_code(&client, &fresh, &right)
        .await
        .expect("the right code after the wait signs in");
    // The owner was told once, with where the codes came from.
    let LoginOutcome::Session(session) = signed_in else {
        panic!("a session, not {signed_in:?}");
    };
    let events = client
        .with_token(session.token)
        .account_events(None)
        .await
        .expect("the security events");
    let locked: Vec<_> = events
        .events
        .iter()
        .filter(|event| event.kind == hubkey_api::AccountEventKind::SecondFactorLocked)
        .collect();
    assert_eq!(locked.len(), 1, "{:?}", events.events);
    // The tenth wrong code came from one of the test's loopback addresses.
    let from = locked[0].address.as_deref().unwrap_or_default();
    assert!(from.starts_with("127.0.0."), "{from:?}");
    server.advance(chrono::Duration::seconds(30));
    let wrong = wrong_codes(&secret, server.unix_now(), 9);
    for pair in wrong.chunks(5) {
        let challenge = challenge(&client, "ann").await;
        for code in pair {
            assert!(client.login_2fa(&challenge, code).await.is_err());
        }
    }
    let fresh = challenge(&client, "ann").await;
    try_code(&client, &fresh, &totp_code(&secret, server.unix_now()))
        .await
        .expect("nine wrong codes after a sign-in do not back off");
}

/// The server process's resident memory, KiB (the clocked server runs in the test process).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// The database's size, after [`ClockedServer::stop_and_close`]. SQLite: its pages, as a
/// connection of its own sees them (the file plus what the write-ahead log adds; waiting for
/// the log to be folded into the file depended on when the server's connection threads
/// finished closing, which a busy machine delays past any wait). PostgreSQL: its tables' and
/// indexes' files.
async fn db_bytes(server: &ClockedServer) -> u64 {
    sqlx::any::install_default_drivers();
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&server.data().database_url())
            .await
            .expect("open the database");
    let bytes: i64 = if server.data().postgres_database().is_some() {
        // The main fork of every table and index (what SQLite's file holds), without the free
        // space and visibility maps PostgreSQL adds to a table when autovacuum first visits it.
        sqlx::query_scalar(
            "SELECT CAST(SUM(pg_relation_size(c.oid)) AS BIGINT) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')",
        )
        .fetch_one(&mut conn)
        .await
        .expect("read the database's size")
    } else {
        sqlx::query_scalar(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("read the database's size")
    };
    u64::try_from(bytes).expect("a size")
}

#[tokio::test]
async fn impossible_user_names_get_the_usual_answer_and_make_no_key() {
    let server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let attacker = server.client_at(Ipv4Addr::new(127, 0, 0, 9));
    let usual = attacker
        .login("nobody", "wrong-password")
        .await
        .unwrap_err();
    let before = server.hub().throttle().footprint();
    // Names account creation refuses: 64 KiB, capitals, a slash, an empty one.
    let long = "a".repeat(64 * 1024 - 100);
    for name in [long.as_str(), "Ann", "ann/x", "", "a", "ann..b"] {
        assert_eq!(
            attacker.login(name, "wrong-password").await.unwrap_err(),
            usual,
            "the answer for {:.20}… is a wrong password's",
            name
        );
    }
    // No subject was added for any of those names: they count against the address only.
    let after = server.hub().throttle().footprint();
    assert_eq!(after.subjects, before.subjects, "{before:?} → {after:?}");
    assert_eq!(after.failures, before.failures + 6);
    // And the address's limit still holds them back: 7 failures so far, 23 more to go.
    for _ in 0..23 {
        let _ = attacker.login(&long, "wrong-password").await.unwrap_err();
    }
    assert!(matches!(
        attacker.login("ann", PASSWORD).await,
        Err(ClientError::Throttled { .. })
    ));
}

/// Attacker addresses of the hour-long attack.
const HOUR_ADDRESSES: usize = 1;

/// What the throttle holds after the sweep its timer runs, at the server's time.
async fn swept_footprint(server: &ClockedServer) -> hubkeyd::throttle::Footprint {
    let throttle = server.hub().throttle();
    throttle.sweep(server.clock.now()).await.expect("sweep");
    throttle.footprint()
}

#[tokio::test]
async fn an_hour_of_guessing_at_the_limits_leaves_bounded_memory_and_disk() {
    let mut server = ClockedServer::start().await;
    server.add_user("ann", PASSWORD).await;
    server.stop_and_close().await;
    let db_before = db_bytes(&server).await;
    server.restart().await;
    // Each address guesses at its limit (30 failures every 3 minutes) for an hour of the
    // server's clock, a new valid user name every time: the most state guessing can make.
    let rounds = 20;
    let mut rss_before = 0;
    for round in 0..rounds {
        let answers = all_at_once((0..HOUR_ADDRESSES).map(|a| {
            let client = server.client_at(Ipv4Addr::new(127, 2, 0, u8::try_from(a + 1).unwrap()));
            async move {
                let mut tally = Tally::default();
                for i in 0..30 {
                    let name = format!("guess-{a}-{round}-{i}");
                    tally.add(client.login(&name, "wrong-password").await, BAD_CREDENTIALS);
                }
                tally
            }
        }))
        .await;
        for tally in answers {
            assert_eq!(tally.evaluated, 30, "round {round}: {tally:?}");
        }
        if round == 0 {
            // After the first round the password threads' memory is in use already.
            rss_before = rss_kib();
        }
        server.advance(chrono::Duration::seconds(181));
    }
    let failures = HOUR_ADDRESSES * rounds * 30;
    // What the timer's sweep keeps at the end of the hour (failures of the last hour).
    let footprint = swept_footprint(&server).await;
    let rss_after = rss_kib();
    server.stop_and_close().await;
    let db_after = db_bytes(&server).await;
    let per_guess = db_after.saturating_sub(db_before) / failures as u64;
    println!(
        "an hour from {HOUR_ADDRESSES} addresses at the limits: {failures} guesses; throttle \
         memory {footprint:?} ({} bytes per guess); process RSS {rss_before} → {rss_after} KiB \
         after the first round; database file {db_before} → {db_after} bytes ({per_guess} per \
         guess)",
        footprint.bytes / failures
    );
    // One subject per guessed name and per address, no more; the addresses keep 30 each.
    assert!(
        footprint.subjects <= failures + HOUR_ADDRESSES,
        "{footprint:?}"
    );
    assert!(
        footprint.failures <= failures + HOUR_ADDRESSES * 30,
        "{footprint:?}"
    );
    assert!(footprint.bytes / failures <= 256, "{footprint:?}");
    // Two rows per guess (a 16-byte subject, a time and the attempt's key), indexed by time and
    // by subject. Measured 191 bytes a guess on SQLite; PostgreSQL adds 24 bytes of header to
    // each row and keeps the space of deleted rows until autovacuum passes: 273 with the
    // machine busy.
    let disk_bound = if server.data().postgres_database().is_some() {
        512
    } else {
        256
    };
    assert!(
        per_guess <= disk_bound,
        "{per_guess} bytes on disk per guess (bound {disk_bound})"
    );

    // An hour after the attack, the timer's sweep has forgotten all of it.
    server.restart().await;
    server.advance(chrono::Duration::minutes(61));
    let footprint = swept_footprint(&server).await;
    assert_eq!(footprint.subjects, 0, "{footprint:?}");
    assert_eq!(footprint.failures, 0, "{footprint:?}");
}
