//! `hubkey-bench`: measures hubkeyd's registry token endpoint on loopback and prints figures.
//!
//! Usage: `hubkey-bench PATH/TO/hubkeyd [soak|bruteforce] [--seconds N] [--tokens M]
//! [--distinct N] [--store sqlite|postgres|both] [--database-url URL] [--token-cache-mib N]
//! [--connections N]` (see `scripts/bench`). `soak` and `bruteforce` are described in their modules. Without a
//! subcommand it prints, in one run:
//! - the in-process ceiling: SHA-256 of a token plus an ES256-signed registry token, per
//!   second on one core;
//! - `GET /token` under wrk at 32 and 256 connections with 1 000 tokens stored, and with
//!   `--tokens` stored (default 1 000 000) under two loads side by side: the 1 000 hot tokens,
//!   and `--distinct` tokens (default 200 000) picked at random per request: requests/s, p50,
//!   p99, the ratios endpoint/ceiling, large/1k and distinct/hot, hubkeyd's resident memory at
//!   the end, and where the time went (token cache hits and misses, usage flushes: from the
//!   server's own `/metrics`); with `--store postgres` or `both`, the large run on PostgreSQL
//!   too (a private cluster unless `--database-url`), and two hubkeyd instances on that one
//!   database under two wrk processes, summed; the ratios PostgreSQL/SQLite and two/one side
//!   by side;
//! - the same load while a second client floods `/v2/users/login` with wrong passwords from
//!   many loopback addresses: throughput as a ratio of the undisturbed run.
//!
//! `hubkey-bench desktop --app PATH --bare PATH [--runs N]` measures the desktop app instead
//! (see `desktop.rs` and `scripts/bench desktop`); `hubkey-bench flushes` the store's side of
//! the usage and access-log flushes alone, in CPU time a token, and the token check's lookup
//! on a cache miss (see `flushes.rs`).

#![allow(clippy::print_stderr, clippy::cast_possible_truncation)]

mod bare;
mod bruteforce;
mod endpoint;
mod flushes;
mod pg;
mod proc_stat;
mod soak;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hubkey_api::{Origin, PlainToken, Scope};
use hubkeyd::store::{NewToken, Store, TokenSpec};

mod desktop;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const USER: &str = "bench";
const PASSWORD: &str = "bench password 2026";
/// Tokens the load generator cycles through (all cached after the warm-up).
const LOAD_TOKENS: usize = 1000;

const USAGE: &str =
    "usage: hubkey-bench PATH/TO/hubkeyd [soak|bruteforce|access-log] [--seconds N] \
                     [--tokens M] [--distinct N] [--store sqlite|postgres|both] [--database-url URL] \
                     [--token-cache-mib N] [--access-log on|off] [--connections N] [--pairs N]";

/// Which stores the large run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stores {
    Sqlite,
    Postgres,
    Both,
}

/// Which store a large run seeds and serves.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoreKind {
    /// A SQLite file in a fresh data directory (the default).
    Sqlite,
    /// An empty PostgreSQL database at this URL (never printed: it may hold a password).
    Postgres(String),
}

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Benchmark {
    /// The token endpoint under wrk (the default).
    Endpoint,
    /// Mixed traffic for a bounded time, with memory over time.
    Soak,
    /// Password guessing under the throttling.
    Bruteforce,
    /// The token endpoint with the per-token access log off and on, alternately.
    AccessLog,
}

struct Options {
    hubkeyd: PathBuf,
    benchmark: Benchmark,
    seconds: u64,
    /// Tokens stored in the large run.
    large: usize,
    /// Of those, how many the distinct load picks from.
    distinct: usize,
    stores: Stores,
    /// An empty PostgreSQL database for the PostgreSQL run (else a private cluster).
    database_url: Option<String>,
    /// hubkeyd's `--token-cache-mib` in the large runs (its default when None).
    token_cache_mib: Option<u64>,
    /// hubkeyd's `--access-log` in the large runs (its default, on, when None).
    access_log: Option<String>,
    connections: usize,
    /// How many alternated hot/distinct pairs the large runs measure at 32 connections: on a
    /// shared machine one pair's ratio moves by a quarter between runs of one binary.
    pairs: usize,
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1).peekable();
    let hubkeyd = PathBuf::from(args.next().ok_or(USAGE)?);
    let benchmark = match args.peek().map(String::as_str) {
        Some("soak") => Benchmark::Soak,
        Some("bruteforce") => Benchmark::Bruteforce,
        Some("access-log") => Benchmark::AccessLog,
        Some(other) if !other.starts_with("--") => return Err(format!("{other}? {USAGE}").into()),
        _ => Benchmark::Endpoint,
    };
    if benchmark != Benchmark::Endpoint {
        args.next();
    }
    let mut options = Options {
        hubkeyd,
        benchmark,
        seconds: match benchmark {
            Benchmark::Endpoint | Benchmark::AccessLog => 10,
            Benchmark::Soak => 300,
            Benchmark::Bruteforce => 60,
        },
        large: 1_000_000,
        distinct: 200_000,
        stores: Stores::Sqlite,
        database_url: None,
        token_cache_mib: None,
        access_log: None,
        connections: 8,
        pairs: 1,
    };
    let mut store = "sqlite".to_owned();
    let mut database_url = None;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--tokens" | "--large" => options.large = value.parse()?,
            "--distinct" => options.distinct = value.parse()?,
            "--store" => store = value,
            "--database-url" => database_url = Some(value),
            "--token-cache-mib" => options.token_cache_mib = Some(value.parse()?),
            "--access-log" => match value.as_str() {
                "on" | "off" => options.access_log = Some(value),
                other => return Err(format!("--access-log {other}? on or off").into()),
            },
            "--connections" => options.connections = value.parse()?,
            "--pairs" => options.pairs = value.parse::<usize>()?.max(1),
            other => return Err(format!("unknown flag {other}; {USAGE}").into()),
        }
    }
    options.stores = match (store.as_str(), &database_url) {
        ("sqlite", None) => Stores::Sqlite,
        ("postgres", _) => Stores::Postgres,
        ("both", _) => Stores::Both,
        ("sqlite", Some(_)) => return Err("--database-url is for --store postgres or both".into()),
        (other, _) => return Err(format!("--store {other}? sqlite, postgres or both").into()),
    };
    options.database_url = database_url;
    if options.distinct < LOAD_TOKENS || options.distinct > options.large {
        return Err(format!(
            "--distinct must be between {LOAD_TOKENS} (the hot set) and --tokens ({})",
            options.large
        )
        .into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("desktop") => return desktop::run(std::env::args().skip(2)).await,
        Some("bare-token-server") => return bare::serve(std::env::args().skip(2)).await,
        Some("flushes") => return flushes::run(std::env::args().skip(2)).await,
        _ => {}
    }
    let options = options()?;
    match options.benchmark {
        Benchmark::Endpoint => {}
        Benchmark::Soak => {
            let server = Server::seed_and_start(&options.hubkeyd, LOAD_TOKENS).await?;
            let result = soak::run(
                &server,
                options.seconds,
                soak::Mix::for_connections(options.connections),
            )
            .await;
            server.stop();
            return result;
        }
        Benchmark::Bruteforce => return bruteforce::run(&options.hubkeyd, options.seconds).await,
        Benchmark::AccessLog => {
            return access_log_comparison(&options.hubkeyd, options.seconds, 3).await;
        }
    }
    println!(
        "hubkeyd token endpoint benchmark ({} s per run, {} cores)",
        options.seconds,
        cores()
    );

    let argon2 = argon2_cost(5)?;
    println!(
        "\nargon2id (m=19456 KiB, t=2, p=1), one password check: {:.1} ms",
        argon2.as_secs_f64() * 1000.0
    );

    let ceiling = ceiling(Duration::from_secs(3))?;
    println!(
        "\nin-process ceiling (SHA-256 of a token + ES256-signed token), one core: {ceiling:.0}/s"
    );

    endpoint::run(&options, ceiling).await?;
    access_log_comparison(&options.hubkeyd, options.seconds, 2).await
}

/// `/token` throughput (1 000 tokens, 32 connections) with the per-token access log off
/// (as before issue 16) and on, in `pairs` alternating off/on runs of `seconds` each, each
/// on a fresh server; prints each run and the ratio of the means.
async fn access_log_comparison(hubkeyd: &Path, seconds: u64, pairs: usize) -> Result<()> {
    println!("\n/token with the access log off and on ({pairs} alternating pairs, 32 conns):");
    let mut off = Vec::new();
    let mut on = Vec::new();
    for _ in 0..pairs {
        for mode in ["off", "on"] {
            let server = Server::seed_and_start_in(
                hubkeyd,
                &StoreKind::Sqlite,
                LOAD_TOKENS,
                LOAD_TOKENS,
                &["--access-log", mode],
            )
            .await?;
            let script = server.wrk_script(LOAD_TOKENS)?;
            wrk(&server.url, &script, 32, 2)?;
            let run = wrk(&server.url, &script, 32, seconds)?;
            println!(
                "  access log {mode:>3}: {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                run.requests_per_second, run.p50_ms, run.p99_ms, run.errors
            );
            if mode == "on" { &mut on } else { &mut off }.push(run.requests_per_second);
            server.stop();
        }
    }
    let mean = |runs: &[f64]| runs.iter().sum::<f64>() / runs.len().max(1) as f64;
    println!(
        "  on / off, mean of {pairs} runs each               {:.2}",
        mean(&on) / mean(&off)
    );
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The mean time of one argon2id hash with hubkeyd's parameters, over `rounds`.
fn argon2_cost(rounds: u32) -> Result<Duration> {
    let started = Instant::now();
    for round in 0..rounds {
        std::hint::black_box(hubkeyd::password::hash_blocking(&format!(
            "bench password {round}"
        ))?);
    }
    Ok(started.elapsed() / rounds)
}

/// Token checks plus signed registry tokens per second on this thread.
fn ceiling(duration: Duration) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let keys = hubkeyd::registry::keys::RegistryKeys::open(dir.path())?;
    let issuer = hubkeyd::registry::TokenIssuer::new(keys.signer()?)?;
    let access = hubkeyd::registry::access::parse_scopes(&["repository:bench/app:pull"])?;
    let token = PlainToken::generate();
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < duration {
        let digest = PlainToken::parse(token.expose())?.digest();
        std::hint::black_box(digest);
        std::hint::black_box(issuer.issue(USER, "hubkey-registry", &access, Utc::now())?);
        done += 1;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// A release hubkeyd over a seeded data directory.
struct Server {
    url: String,
    /// Its `GET /metrics`, when started with one.
    metrics_url: Option<String>,
    child: Child,
    tokens: Vec<PlainToken>,
    /// The data directory, its global and `serve` arguments (for another instance).
    data_dir: PathBuf,
    hubkeyd: PathBuf,
    global: Vec<String>,
    serve: Vec<String>,
    /// Removed when the first instance is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Seeds `stored` tokens in SQLite and serves them; keeps the first [`LOAD_TOKENS`]
    /// plaintexts.
    async fn seed_and_start(hubkeyd: &Path, stored: usize) -> Result<Self> {
        Self::seed_and_start_in(hubkeyd, &StoreKind::Sqlite, stored, LOAD_TOKENS, &[]).await
    }

    /// Seeds `stored` tokens in `store` and serves them with a metrics listener; keeps the
    /// first `keep` plaintexts.
    async fn seed_and_start_in(
        hubkeyd: &Path,
        store: &StoreKind,
        stored: usize,
        keep: usize,
        serve: &[&str],
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let database_url = match store {
            StoreKind::Sqlite => format!("sqlite://{}", dir.path().join("hubkeyd.db").display()),
            StoreKind::Postgres(url) => url.clone(),
        };
        let started = Instant::now();
        let tokens = seed(dir.path(), &database_url, stored, keep).await?;
        eprintln!(
            "seeded {stored} tokens in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let extra = match store {
            StoreKind::Sqlite => Vec::new(),
            StoreKind::Postgres(url) => vec!["--database".to_owned(), url.clone()],
        };
        Self::start_with(hubkeyd, dir, tokens, &extra, serve)
    }

    /// Starts hubkeyd on a data directory seeded before.
    fn start(hubkeyd: &Path, dir: tempfile::TempDir, tokens: Vec<PlainToken>) -> Result<Self> {
        Self::start_with(hubkeyd, dir, tokens, &[], &[])
    }

    /// Starts hubkeyd with `global` arguments (e.g. `--database URL`), a metrics listener and
    /// more `serve` arguments (e.g. `--access-log off`).
    fn start_with(
        hubkeyd: &Path,
        dir: tempfile::TempDir,
        tokens: Vec<PlainToken>,
        global: &[String],
        serve: &[&str],
    ) -> Result<Self> {
        let data_dir = dir.path().to_owned();
        let serve: Vec<String> = serve.iter().map(|arg| (*arg).to_owned()).collect();
        let (url, metrics_url, child) = spawn_serve(hubkeyd, &data_dir, global, &serve)?;
        Ok(Server {
            url,
            metrics_url,
            child,
            tokens,
            data_dir,
            hubkeyd: hubkeyd.to_owned(),
            global: global.to_vec(),
            serve,
            _dir: Some(dir),
        })
    }

    /// A second instance of the same deployment: the same data directory (`server.key`) and
    /// database, its own port. No plaintexts: the first's wrk scripts serve it.
    fn another_instance(&self) -> Result<Self> {
        let (url, metrics_url, child) =
            spawn_serve(&self.hubkeyd, &self.data_dir, &self.global, &self.serve)?;
        Ok(Server {
            url,
            metrics_url,
            child,
            tokens: Vec::new(),
            data_dir: self.data_dir.clone(),
            hubkeyd: self.hubkeyd.clone(),
            global: self.global.clone(),
            serve: self.serve.clone(),
            _dir: None,
        })
    }

    /// hubkeyd's resident memory now, in MiB: all of it (`VmRSS`) and its private part
    /// (`RssAnon`: the heap, the caches; the rest is mapped files, the binary itself).
    fn rss_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> Result<f64> {
            let kib: f64 = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("no {name}"))?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("RssAnon:")?))
    }

    /// A wrk Lua script that sends `GET /token` with Basic auth of a random one of the first
    /// `count` tokens.
    fn wrk_script(&self, count: usize) -> Result<tempfile::NamedTempFile> {
        let mut script = tempfile::Builder::new().suffix(".lua").tempfile()?;
        let mut out = std::io::BufWriter::new(script.as_file_mut());
        writeln!(out, "local auth = {{")?;
        for token in self.tokens.iter().take(count) {
            let basic =
                data_encoding::BASE64.encode(format!("{USER}:{}", token.expose()).as_bytes());
            writeln!(out, "  \"Basic {basic}\",")?;
        }
        writeln!(
            out,
            "}}\nlocal path = \"/token?service=hubkey-registry&scope=repository:{USER}/app:pull,push\"\n\
             local requests = {{}}\n\
             -- Built once: formatting a request per call would cost the load generator more\n\
             -- CPU than the server spends answering it.\n\
             init = function(args)\n  for i, header in ipairs(auth) do\n    \
             requests[i] = wrk.format(\"GET\", path, {{ Authorization = header }})\n  end\nend\n\
             request = function()\n  return requests[math.random(#requests)]\nend\n\
             done = function(summary, latency, requests)\n  io.write(string.format(\"HUBKEY %d %d %d %d %d\\n\", \
             summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, \
             latency:percentile(50), latency:percentile(99), latency.max))\nend"
        )?;
        out.flush()?;
        drop(out);
        Ok(script)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hubkeyd serve` on `data_dir` with a metrics listener; answers its URL, its metrics
/// URL and the child.
fn spawn_serve(
    hubkeyd: &Path,
    data_dir: &Path,
    global: &[String],
    serve: &[String],
) -> Result<(String, Option<String>, Child)> {
    let mut child = Command::new(hubkeyd)
        .args(["--data-dir"])
        .arg(data_dir)
        .args(global)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(serve)
        .env("HUBKEYD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    lines.read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or("hubkeyd did not start")?
        .to_owned();
    line.clear();
    lines.read_line(&mut line)?;
    let metrics_url = line.trim().strip_prefix("metrics on ").map(str::to_owned);
    Ok((url, metrics_url, child))
}

/// Creates the bench user and `count` manual tokens in the database at `database_url`;
/// returns the plaintexts of the first `keep`.
async fn seed(
    dir: &Path,
    database_url: &str,
    count: usize,
    keep: usize,
) -> Result<Vec<PlainToken>> {
    let instance = hubkeyd::open(dir, database_url).await?;
    let now = Utc::now();
    instance
        .hub
        .add_user(USER, PASSWORD.to_owned().into(), now)
        .await?;
    let user = instance
        .hub
        .store()
        .user_by_name(USER)
        .await?
        .ok_or("no user")?;
    let kept = insert_tokens(instance.hub.store(), &user.id, count, keep, now).await?;
    instance.hub.store().close().await;
    Ok(kept)
}

/// Inserts `count` manual tokens of `user_id` through the store (one transaction per
/// 50 000, in multi-row statements: a million in well under a minute, where one statement per
/// token took three; the digests are the store's own); returns the plaintexts of the first
/// `keep`.
async fn insert_tokens(
    store: &Store,
    user_id: &str,
    count: usize,
    keep: usize,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<PlainToken>> {
    let mut kept = Vec::new();
    let mut made = 0;
    while made < count {
        let batch = (count - made).min(50_000);
        let plain: Vec<PlainToken> = (0..batch).map(|_| PlainToken::generate()).collect();
        let fields: Vec<(String, String, String)> = plain
            .iter()
            .enumerate()
            .map(|(i, token)| {
                (
                    token.digest().as_str().to_owned(),
                    token.hint(),
                    format!("bench {}", made + i),
                )
            })
            .collect();
        let new: Vec<NewToken<'_>> = fields
            .iter()
            .map(|(digest, hint, label)| NewToken {
                uuid: uuid::Uuid::new_v4(),
                digest,
                hint,
                spec: TokenSpec {
                    label,
                    scopes: &[Scope::Write],
                    origin: Origin::Manual,
                    client_id: "",
                    expires_at: None,
                },
                creator_ip: "127.0.0.1",
                creator_ua: "hubkey-bench",
            })
            .collect();
        let mut tx = store.begin().await?;
        // Like every token change, the insert runs under the account's token lock.
        let mut tokens = Store::lock_account_tokens(&mut tx, user_id, now).await?;
        Store::insert_tokens(&mut tokens, &new).await?;
        drop(tokens);
        tx.commit().await?;
        kept.extend(plain.into_iter().take(keep.saturating_sub(kept.len())));
        made += batch;
    }
    Ok(kept)
}

/// One wrk run's figures. wrk corrects its latency histogram for coordinated omission before
/// the percentiles are read: a response that took T adds about T / I samples between I and T,
/// where I is the run's time divided by the requests a connection made (about 1 ms here). So
/// a few responses of seconds make the p99 seconds; `max_ms` is the slowest response itself.
struct Run {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
}

fn wrk(
    url: &str,
    script: &tempfile::NamedTempFile,
    connections: usize,
    seconds: u64,
) -> Result<Run> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(script.path())
        .arg(url)
        .output()
        .map_err(|err| format!("running wrk (apt-get install wrk): {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("HUBKEY "))
        .ok_or_else(|| format!("wrk said: {text}"))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let [requests, errors, p50_us, p99_us, max_us] = numbers[..] else {
        return Err(format!("unexpected wrk summary {line:?}").into());
    };
    Ok(Run {
        requests_per_second: requests / seconds as f64,
        p50_ms: p50_us / 1000.0,
        p99_ms: p99_us / 1000.0,
        max_ms: max_us / 1000.0,
        errors: errors.max(0.0).round() as u64,
    })
}

/// Wrong-password logins from many loopback addresses and user names, so that throttling
/// lets most of them reach password hashing.
struct Flood {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flood {
    fn start(url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(AtomicU64::new(0));
        let tasks = (0..8u8)
            .map(|worker| {
                let (stop, attempts, throttled) =
                    (stop.clone(), attempts.clone(), throttled.clone());
                let url = format!("{url}/v2/users/login");
                tokio::spawn(async move {
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let source =
                            std::net::Ipv4Addr::new(127, 0, 1 + worker, (n % 250) as u8 + 2);
                        let Ok(client) = reqwest::Client::builder()
                            .local_address(std::net::IpAddr::V4(source))
                            .build()
                        else {
                            break;
                        };
                        let body = format!(
                            r#"{{"username":"victim{}","password":"guess {n}"}}"#,
                            n % 50
                        );
                        if let Ok(response) = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                        {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            if response.status() == 429 {
                                throttled.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Flood {
            stop,
            attempts,
            throttled,
            tasks,
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        (
            self.attempts.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }
}
