//! `hubkey-bench HUBKEYD soak`: a bounded soak of mixed traffic against a release hubkeyd on
//! loopback, with a fixed number of connections, each a closed loop of one kind of request:
//! registry token exchanges (`GET /token`, Basic with a PAT), token lists, manual token
//! create + delete, and password sign-ins (argon2id, so one connection only).
//!
//! Prints throughput, p50 and p99 per kind, the error count (any answer but 2xx, and any
//! transport error; there is no expected 429: right passwords are never throttled), and
//! hubkeyd's VmRSS/VmHWM (from `/proc/PID/status`) at the start, at intervals and at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubkey_api::{AccessToken, LoginResponse};

use crate::{Result, Server, PASSWORD, USER};

/// Connections per kind.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub exchange: usize,
    pub list: usize,
    pub churn: usize,
    pub login: usize,
}

impl Mix {
    /// `connections` in all: one for sign-ins, one for lists, one for create/delete, the rest
    /// (at least one) for token exchanges.
    pub fn for_connections(connections: usize) -> Self {
        Mix {
            exchange: connections.saturating_sub(3).max(1),
            list: 1,
            churn: 1,
            login: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exchange,
    List,
    Create,
    Delete,
    Login,
}

const KINDS: [Kind; 5] = [
    Kind::Exchange,
    Kind::List,
    Kind::Create,
    Kind::Delete,
    Kind::Login,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Exchange => "GET /token (exchange)",
            Kind::List => "GET /v2/access-tokens",
            Kind::Create => "POST /v2/access-tokens",
            Kind::Delete => "DELETE /v2/access-tokens/{id}",
            Kind::Login => "POST /v2/users/login",
        }
    }
}

/// What one connection saw: latencies (µs) per kind, and errors with a sample.
#[derive(Default)]
struct Tally {
    latencies: Vec<(Kind, u32)>,
    errors: Vec<(Kind, String)>,
}

impl Tally {
    fn note(&mut self, kind: Kind, started: Instant, outcome: std::result::Result<(), String>) {
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match outcome {
            Ok(()) => self.latencies.push((kind, micros)),
            Err(err) => self.errors.push((kind, err)),
        }
    }
}

/// Runs the soak for `seconds` and prints its figures.
pub async fn run(server: &Server, seconds: u64, mix: Mix) -> Result<()> {
    let pid = server.child.id();
    println!(
        "soak: {seconds} s on loopback, {} connections: {} exchange, {} list, {} create+delete, {} login",
        mix.exchange + mix.list + mix.churn + mix.login,
        mix.exchange,
        mix.list,
        mix.churn,
        mix.login
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()?;
    let session = login(&http, &server.url).await?.token;

    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        http: http.clone(),
        url: server.url.clone(),
        session,
        stop: stop.clone(),
    };
    let mut tasks = Vec::new();
    for index in 0..mix.exchange {
        let basics: Vec<String> = server
            .tokens
            .iter()
            .skip(index)
            .step_by(mix.exchange)
            .map(|token| {
                let pair = format!("{USER}:{}", token.expose());
                format!("Basic {}", data_encoding::BASE64.encode(pair.as_bytes()))
            })
            .collect();
        tasks.push(tokio::spawn(exchange_loop(load.clone(), basics)));
    }
    for _ in 0..mix.list {
        tasks.push(tokio::spawn(list_loop(load.clone())));
    }
    for _ in 0..mix.churn {
        tasks.push(tokio::spawn(churn_loop(load.clone())));
    }
    for _ in 0..mix.login {
        tasks.push(tokio::spawn(login_loop(load.clone())));
    }

    let started = Instant::now();
    let interval = Duration::from_secs((seconds / 10).max(1));
    let mut memory = vec![(Duration::ZERO, rss(pid)?)];
    while started.elapsed() < Duration::from_secs(seconds) {
        let left = Duration::from_secs(seconds).saturating_sub(started.elapsed());
        tokio::time::sleep(interval.min(left)).await;
        memory.push((started.elapsed(), rss(pid)?));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut tally = Tally::default();
    for task in tasks {
        let mut one = task.await?;
        tally.latencies.append(&mut one.latencies);
        tally.errors.append(&mut one.errors);
    }
    // After the load, once the last uses are flushed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    memory.push((started.elapsed(), rss(pid)?));

    println!(
        "\n{:<32} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "kind", "requests", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let mut total = 0;
    for kind in KINDS {
        let mut micros: Vec<u32> = tally
            .latencies
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, m)| *m)
            .collect();
        micros.sort_unstable();
        let errors = tally.errors.iter().filter(|(k, _)| *k == kind).count();
        total += micros.len();
        println!(
            "{:<32} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>7}",
            kind.name(),
            micros.len(),
            micros.len() as f64 / elapsed,
            percentile(&micros, 0.50),
            percentile(&micros, 0.99),
            errors
        );
    }
    println!(
        "{:<32} {:>9} {:>9.1} {:>9} {:>9} {:>7}",
        "all",
        total,
        total as f64 / elapsed,
        "",
        "",
        tally.errors.len()
    );
    for (kind, error) in tally.errors.iter().take(5) {
        println!("  error sample ({}): {error}", kind.name());
    }

    println!("\nhubkeyd memory (pid {pid}):");
    println!("{:>8} {:>12} {:>12}", "t s", "VmRSS MiB", "VmHWM MiB");
    for (at, (rss, hwm)) in &memory {
        println!(
            "{:>8.0} {:>12.1} {:>12.1}",
            at.as_secs_f64(),
            *rss as f64 / 1024.0,
            *hwm as f64 / 1024.0
        );
    }
    // The lowest VmRSS under load in the first half against the lowest in the second half
    // (and after the load): the steady state, not the 19 MiB of an argon2 hash that may be
    // in progress when a sample is taken.
    let half = Duration::from_secs(seconds / 2);
    let lowest = |samples: &mut dyn Iterator<Item = &(Duration, (u64, u64))>| {
        samples.map(|(_, (rss, _))| *rss).min().unwrap_or(0)
    };
    let early = lowest(&mut memory.iter().skip(1).filter(|(at, _)| *at <= half));
    let late = lowest(&mut memory.iter().filter(|(at, _)| *at > half));
    println!(
        "lowest VmRSS in the first half under load {:.1} MiB, in the second half {:.1} MiB: {:+.1} MiB",
        early as f64 / 1024.0,
        late as f64 / 1024.0,
        (late as f64 - early as f64) / 1024.0
    );
    if !tally.errors.is_empty() {
        return Err(format!("{} requests failed", tally.errors.len()).into());
    }
    Ok(())
}

/// What every connection's loop needs: the client, the server, a session, the stop flag.
#[derive(Clone)]
struct Load {
    http: reqwest::Client,
    url: String,
    session: String,
    stop: Arc<AtomicBool>,
}

async fn exchange_loop(load: Load, basics: Vec<String>) -> Tally {
    let Load {
        http, url, stop, ..
    } = load;
    let mut tally = Tally::default();
    let target =
        format!("{url}/token?service=hubkey-registry&scope=repository:{USER}/app:pull,push");
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let basic = &basics[next % basics.len()];
        next += 1;
        let started = Instant::now();
        let outcome = answered(
            http.get(&target)
                .header("authorization", basic)
                .send()
                .await,
        )
        .await;
        tally.note(Kind::Exchange, started, outcome);
    }
    tally
}

async fn list_loop(load: Load) -> Tally {
    let Load {
        http,
        url,
        session,
        stop,
    } = load;
    let mut tally = Tally::default();
    let target = format!("{url}/v2/access-tokens?page=1&page_size=25");
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let outcome = answered(http.get(&target).bearer_auth(&session).send().await).await;
        tally.note(Kind::List, started, outcome);
    }
    tally
}

async fn churn_loop(load: Load) -> Tally {
    let Load {
        http,
        url,
        session,
        stop,
    } = load;
    let mut tally = Tally::default();
    let create = format!("{url}/v2/access-tokens");
    let mut serial = 0u64;
    while !stop.load(Ordering::Relaxed) {
        serial += 1;
        let started = Instant::now();
        let body = format!(r#"{{"token_label":"soak {serial}","scopes":["repo:read"]}}"#);
        let created = http
            .post(&create)
            .bearer_auth(&session)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let uuid = match created {
            Ok(response) if response.status().is_success() => {
                match response.json::<AccessToken>().await {
                    Ok(token) => {
                        tally.note(Kind::Create, started, Ok(()));
                        token.uuid
                    }
                    Err(err) => {
                        tally.note(Kind::Create, started, Err(err.to_string()));
                        continue;
                    }
                }
            }
            Ok(response) => {
                let outcome = success(response).await;
                tally.note(Kind::Create, started, outcome);
                continue;
            }
            Err(err) => {
                tally.note(Kind::Create, started, Err(err.to_string()));
                continue;
            }
        };
        let started = Instant::now();
        let deleted = http
            .delete(format!("{create}/{uuid}"))
            .bearer_auth(&session)
            .send()
            .await;
        let outcome = answered(deleted).await;
        tally.note(Kind::Delete, started, outcome);
    }
    tally
}

async fn login_loop(load: Load) -> Tally {
    let Load {
        http, url, stop, ..
    } = load;
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let outcome = login(&http, &url)
            .await
            .map(|_| ())
            .map_err(|err| err.to_string());
        tally.note(Kind::Login, started, outcome);
    }
    tally
}

/// A password sign-in of the bench user.
async fn login(http: &reqwest::Client, url: &str) -> Result<LoginResponse> {
    let body = format!(r#"{{"username":"{USER}","password":"{PASSWORD}"}}"#);
    let response = http
        .post(format!("{url}/v2/users/login"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("login answered {}", response.status()).into());
    }
    Ok(response.json().await?)
}

/// [`success`] of a sent request, or the transport error.
async fn answered(sent: reqwest::Result<reqwest::Response>) -> std::result::Result<(), String> {
    match sent {
        Ok(response) => success(response).await,
        Err(err) => Err(err.to_string()),
    }
}

/// Ok for a 2xx (the body is read so the connection is reused), else the status and body.
async fn success(response: reqwest::Response) -> std::result::Result<(), String> {
    let status = response.status();
    let body = response.bytes().await.map_err(|err| err.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index.min(sorted.len() - 1)]) / 1000.0
}

/// VmRSS and VmHWM of `pid`, in KiB.
pub fn rss(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
