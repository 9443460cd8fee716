//! `hubkey-bench HUBKEYD bruteforce`: what a password-guessing attacker gets from hubkeyd's
//! throttling, on loopback. Each scenario runs on a fresh server for `--seconds`:
//!
//! 1. one address against one account;
//! 2. many addresses (client sockets bound to 127.0.1.x, which the server sees as distinct
//!    peers) against one account;
//! 3. one address against many accounts, one guess each in turn.
//!
//! It prints the guesses the server really evaluated (answered 401: the password was
//! checked; with [`CONCURRENCY`] requests in flight, at most the limit's worth) per minute,
//! the attempts refused with 429, and whether the real user gets in while the attack runs
//! (halfway and at the end): with the password from the address they signed in from before
//! the attack, with the password from a new address, and with a personal access token (a
//! registry token exchange, as docker does) from the new address.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Result, Server, PASSWORD, USER};

/// Accounts the third scenario spreads its guesses over.
const OTHER_ACCOUNTS: usize = 60;
/// Source addresses of the second scenario.
const MANY_ADDRESSES: u8 = 250;
/// Attacker requests in flight at once: far more than any limit, so that a limit checked
/// before its failures are counted would show its overshoot.
const CONCURRENCY: usize = 1000;
/// Where the real user signed in from before the attack (a known address).
const REAL_USER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
/// Where the real user tries from for the first time during the attack.
const NEW_PLACE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);

struct Scenario {
    name: &'static str,
    addresses: Vec<Ipv4Addr>,
    accounts: Vec<String>,
}

/// What one scenario measured.
struct Outcome {
    evaluated: u64,
    throttled: u64,
    other: u64,
    first_429: Option<Duration>,
    real_user: Vec<String>,
}

pub async fn run(hubkeyd: &Path, seconds: u64) -> Result<()> {
    println!(
        "brute force: {seconds} s per scenario, {CONCURRENCY} attacker requests in flight; limits: \
         {} failures per account per {} min, {} per address per {} min",
        hubkeyd::throttle::PER_ACCOUNT.failures,
        hubkeyd::throttle::PER_ACCOUNT.window.num_minutes(),
        hubkeyd::throttle::PER_ADDRESS.failures,
        hubkeyd::throttle::PER_ADDRESS.window.num_minutes(),
    );
    let others: Vec<String> = (0..OTHER_ACCOUNTS).map(|i| format!("acct{i:02}")).collect();
    let scenarios = [
        Scenario {
            name: "one address, one account",
            addresses: vec![Ipv4Addr::new(127, 0, 0, 50)],
            accounts: vec![USER.to_owned()],
        },
        Scenario {
            name: "many addresses, one account",
            addresses: (1..=MANY_ADDRESSES)
                .map(|last| Ipv4Addr::new(127, 0, 1, last))
                .collect(),
            accounts: vec![USER.to_owned()],
        },
        Scenario {
            name: "one address, many accounts",
            addresses: vec![Ipv4Addr::new(127, 0, 0, 60)],
            accounts: others.clone(),
        },
    ];
    let mut rows = Vec::new();
    for scenario in &scenarios {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("hubkeyd.db").display());
        let tokens = crate::seed(dir.path(), &url, 1, 1).await?;
        add_users(dir.path(), &others).await?;
        let server = Server::start(hubkeyd, dir, tokens)?;
        let pat = server
            .tokens
            .first()
            .ok_or("no token seeded")?
            .expose()
            .to_owned();
        let outcome = attack(&server.url, &pat, scenario, Duration::from_secs(seconds)).await?;
        server.stop();
        rows.push((scenario, outcome));
    }

    println!(
        "\n{:<30} {:>6} {:>6} {:>10} {:>10} {:>12} {:>10} {:>6}",
        "scenario", "addrs", "accts", "evaluated", "per min", "per min/acct", "429s", "other"
    );
    for (scenario, outcome) in &rows {
        let per_minute = outcome.evaluated as f64 * 60.0 / seconds as f64;
        println!(
            "{:<30} {:>6} {:>6} {:>10} {:>10.1} {:>12.2} {:>10} {:>6}",
            scenario.name,
            scenario.addresses.len(),
            scenario.accounts.len(),
            outcome.evaluated,
            per_minute,
            per_minute / scenario.accounts.len() as f64,
            outcome.throttled,
            outcome.other,
        );
    }
    for (scenario, outcome) in &rows {
        println!("\n{}:", scenario.name);
        if let Some(first) = outcome.first_429 {
            println!("  first 429 after {:.1} s", first.as_secs_f64());
        }
        for line in &outcome.real_user {
            println!("  {line}");
        }
    }
    let account = hubkeyd::throttle::PER_ACCOUNT;
    let address = hubkeyd::throttle::PER_ADDRESS;
    println!(
        "\nsteady state the limits allow (after the first window): per account {:.2}/min from any \
         number of addresses; per address {:.2}/min over all accounts",
        account.failures as f64 / account.window.num_minutes() as f64,
        address.failures as f64 / address.window.num_minutes() as f64
    );
    Ok(())
}

/// Adds accounts (the bench password) to the data directory before the server starts.
async fn add_users(dir: &Path, names: &[String]) -> Result<()> {
    let db = format!("sqlite://{}", dir.join("hubkeyd.db").display());
    let instance = hubkeyd::open(dir, &db).await?;
    for name in names {
        instance
            .hub
            .add_user(name, PASSWORD.to_owned().into(), chrono::Utc::now())
            .await?;
    }
    instance.hub.store().close().await;
    Ok(())
}

async fn attack(url: &str, pat: &str, scenario: &Scenario, duration: Duration) -> Result<Outcome> {
    // The real user's usual place: signed in from before the attack.
    let status = try_login(
        &client_from(REAL_USER)?,
        &format!("{url}/v2/users/login"),
        USER,
        PASSWORD,
    )
    .await?;
    if status != 200 {
        return Err(format!("the real user's first sign-in answered {status}").into());
    }
    let clients = scenario
        .addresses
        .iter()
        .map(|address| client_from(*address))
        .collect::<Result<Vec<_>>>()?;
    let clients = Arc::new(clients);
    let accounts = Arc::new(scenario.accounts.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let first_429 = Arc::new(AtomicU64::new(u64::MAX));
    let started = Instant::now();
    let login = format!("{url}/v2/users/login");
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (clients, accounts, stop, next, counts, first_429, login) = (
                clients.clone(),
                accounts.clone(),
                stop.clone(),
                next.clone(),
                counts.clone(),
                first_429.clone(),
                login.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let client = &clients[(n % clients.len() as u64) as usize];
                    let account = &accounts[(n % accounts.len() as u64) as usize];
                    let status = try_login(client, &login, account, &format!("guess {n}")).await;
                    let slot = match status {
                        Ok(401) => 0,
                        Ok(429) => {
                            let at = started.elapsed().as_millis() as u64;
                            first_429.fetch_min(at, Ordering::Relaxed);
                            1
                        }
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let known = client_from(REAL_USER)?;
    let new_place = client_from(NEW_PLACE)?;
    let basic = data_encoding::BASE64.encode(format!("{USER}:{pat}").as_bytes());
    let exchange = format!("{url}/token?service=hubkey-registry&scope=repository:{USER}/app:pull");
    let mut real_user = Vec::new();
    for checkpoint in [duration / 2, duration] {
        tokio::time::sleep(checkpoint.saturating_sub(started.elapsed())).await;
        let at = started.elapsed().as_secs_f64();
        let pulled = new_place
            .get(&exchange)
            .header("authorization", format!("Basic {basic}"))
            .send()
            .await
            .map(|response| response.status().as_u16());
        for (what, status) in [
            (
                format!("password sign-in from known {REAL_USER}"),
                try_login(&known, &login, USER, PASSWORD).await,
            ),
            (
                format!("password sign-in from new {NEW_PLACE}"),
                try_login(&new_place, &login, USER, PASSWORD).await,
            ),
            (
                format!("registry token with a PAT from new {NEW_PLACE}"),
                pulled,
            ),
        ] {
            let answer = match status {
                Ok(200) => "200 (in)".to_owned(),
                Ok(other) => format!("{other} (refused)"),
                Err(err) => format!("error {err}"),
            };
            real_user.push(format!("{at:>4.0} s: real user, {what}: {answer}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let first = first_429.load(Ordering::Relaxed);
    Ok(Outcome {
        evaluated: counts[0].load(Ordering::Relaxed),
        throttled: counts[1].load(Ordering::Relaxed),
        other: counts[2].load(Ordering::Relaxed),
        first_429: (first != u64::MAX).then(|| Duration::from_millis(first)),
        real_user,
    })
}

/// The status of a password sign-in at `login` (the endpoint's URL).
async fn try_login(
    client: &reqwest::Client,
    login: &str,
    username: &str,
    password: &str,
) -> reqwest::Result<u16> {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    let response = client
        .post(login)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// A client whose connections come from `address` (any 127.x address is loopback).
fn client_from(address: Ipv4Addr) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .timeout(Duration::from_secs(10))
        .build()?)
}
