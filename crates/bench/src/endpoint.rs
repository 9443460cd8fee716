//! The default benchmark's load runs: `GET /token` under wrk with 1 000 tokens stored (and
//! during a login flood), then with `--tokens` stored under two loads side by side: the 1 000
//! hot tokens and `--distinct` tokens picked at random per request. Prints throughput, p50,
//! p99, the ratios, hubkeyd's memory at the end, and where the time went, read from hubkeyd's
//! own `/metrics` around each run (token cache hits and misses, usage flushes).

use std::time::Duration;

use crate::bare::BareServer;
use crate::proc_stat::{cpu_seconds, threads_cpu_seconds};
use crate::{pg, wrk, Flood, Options, Result, Run, Server, StoreKind, Stores, LOAD_TOKENS};

/// Which tokens a load picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// The first 1 000, all cached after the warm-up.
    Hot,
    /// The first `--distinct`, at random.
    Distinct,
    /// The hot load while a second client floods the sign-in with wrong passwords.
    HotDuringFlood,
}

/// Which server answered a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Hubkeyd,
    /// The bare lookup-and-sign server ([`crate::bare`]) on hubkeyd's SQLite file.
    Bare,
}

struct Row {
    server: Served,
    stored: usize,
    load: Load,
    connections: usize,
    /// hubkeyd instances the load was spread over (one wrk process each).
    instances: usize,
    run: Run,
    /// What hubkeyd's counters did during the run (none for the 1 000-token server's flood).
    profile: Option<Profile>,
    /// The server process's CPU time (user and system, every thread) per request answered,
    /// in microseconds: steadier than throughput on a shared machine, where wrk and other
    /// work take cores from the server.
    cpu_us: Option<f64>,
    /// Of that, the time of hubkeyd's background thread (its flushes' writes and batch work,
    /// below the token checks' priority).
    background_us: Option<f64>,
}

/// Deltas of hubkeyd's own counters over one run.
#[derive(Debug, Default, Clone, Copy)]
struct Profile {
    cache_hits: f64,
    cache_misses: f64,
    flushes: f64,
    flush_seconds: f64,
    flushed_tokens: f64,
}

impl Profile {
    fn between(before: &Counters, after: &Counters) -> Self {
        Profile {
            cache_hits: after.0.cache_hits - before.0.cache_hits,
            cache_misses: after.0.cache_misses - before.0.cache_misses,
            flushes: after.0.flushes - before.0.flushes,
            flush_seconds: after.0.flush_seconds - before.0.flush_seconds,
            flushed_tokens: after.0.flushed_tokens - before.0.flushed_tokens,
        }
    }
}

/// hubkeyd's counters at one moment.
struct Counters(Profile);

async fn counters(server: &Server) -> Result<Counters> {
    let url = server
        .metrics_url
        .as_deref()
        .ok_or("hubkeyd printed no metrics address")?;
    let text = reqwest::get(url).await?.text().await?;
    let value = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(Counters(Profile {
        cache_hits: value("hubkeyd_cache_hits_total{cache=\"token\"}"),
        cache_misses: value("hubkeyd_cache_misses_total{cache=\"token\"}"),
        flushes: value("hubkeyd_usage_flush_duration_seconds_count"),
        flush_seconds: value("hubkeyd_usage_flush_duration_seconds_sum"),
        flushed_tokens: value("hubkeyd_usage_flush_tokens_sum"),
    }))
}

/// One measured wrk run with hubkeyd's counters around it, and its CPU time per request
/// (the run's last usage flush included): the whole process's, and its background thread's.
async fn measured(
    server: &Server,
    script: &tempfile::NamedTempFile,
    connections: usize,
    seconds: u64,
) -> Result<(Run, Profile, f64, f64)> {
    let pid = server.child.id();
    let before = counters(server).await?;
    let cpu_before = (
        cpu_seconds(pid)?,
        threads_cpu_seconds(pid, BACKGROUND_THREAD)?,
    );
    let run = wrk(&server.url, script, connections, seconds)?;
    // The last flush of the run lands within 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cpu = cpu_seconds(pid)? - cpu_before.0;
    let background = threads_cpu_seconds(pid, BACKGROUND_THREAD)? - cpu_before.1;
    let after = counters(server).await?;
    let cpu_us = cpu_per_request_us(cpu, &run, seconds);
    let background_us = cpu_per_request_us(background, &run, seconds);
    Ok((
        run,
        Profile::between(&before, &after),
        cpu_us,
        background_us,
    ))
}

/// The name hubkeyd's background thread starts with (`crate::background` there).
const BACKGROUND_THREAD: &str = "flushes-";

/// `cpu` seconds spread over the requests of `run`, in microseconds each.
fn cpu_per_request_us(cpu: f64, run: &Run, seconds: u64) -> f64 {
    let requests = run.requests_per_second * seconds as f64;
    1e6 * cpu / requests.max(1.0)
}

/// Runs `script` against every server at once, `connections` split over them, one wrk process
/// each; the requests per second summed, the worst p50, p99 and max. Prints each server's own
/// figures under `label` (the sum hides an instance that served little).
fn wrk_over(
    servers: &[&Server],
    script: &tempfile::NamedTempFile,
    connections: usize,
    seconds: u64,
    label: &str,
) -> Result<Run> {
    let each = (connections / servers.len()).max(1);
    let runs: Vec<Result<Run>> = std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .map(|server| scope.spawn(move || wrk(&server.url, script, each, seconds)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err("a wrk thread panicked".into()))
            })
            .collect()
    });
    let mut total = Run {
        requests_per_second: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        errors: 0,
    };
    for (instance, run) in runs.into_iter().enumerate() {
        let run = run?;
        println!(
            "  {label}, instance {} of {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms, errors {}",
            instance + 1,
            servers.len(),
            run.requests_per_second,
            run.p50_ms,
            run.p99_ms,
            run.max_ms,
            run.errors
        );
        total.requests_per_second += run.requests_per_second;
        total.p50_ms = total.p50_ms.max(run.p50_ms);
        total.p99_ms = total.p99_ms.max(run.p99_ms);
        total.max_ms = total.max_ms.max(run.max_ms);
        total.errors += run.errors;
    }
    Ok(total)
}

/// The large run's figures on one store: (load, instances, connections) → run.
struct StoreRows {
    name: &'static str,
    rows: Vec<Row>,
    /// VmRSS and RssAnon.
    rss_mib: (f64, f64),
}

pub async fn run(options: &Options, ceiling: f64) -> Result<()> {
    let mut rows = Vec::new();

    let server = Server::seed_and_start(&options.hubkeyd, LOAD_TOKENS).await?;
    let script = server.wrk_script(LOAD_TOKENS)?;
    wrk(&server.url, &script, 32, 2)?; // warm-up: fills the lookup cache
    for connections in [32, 256] {
        let (run, profile, cpu_us, background_us) =
            measured(&server, &script, connections, options.seconds).await?;
        rows.push(Row {
            server: Served::Hubkeyd,
            stored: LOAD_TOKENS,
            load: Load::Hot,
            connections,
            instances: 1,
            run,
            profile: Some(profile),
            cpu_us: Some(cpu_us),
            background_us: Some(background_us),
        });
    }
    let flood = Flood::start(&server.url);
    let run = wrk(&server.url, &script, 32, options.seconds)?;
    let (attempts, throttled) = flood.stop().await;
    rows.push(Row {
        server: Served::Hubkeyd,
        stored: LOAD_TOKENS,
        load: Load::HotDuringFlood,
        connections: 32,
        instances: 1,
        run,
        profile: None,
        // The flood's sign-ins share the process.
        cpu_us: None,
        background_us: None,
    });
    println!("login flood during that run: {attempts} attempts, {throttled} answered 429");
    server.stop();
    print_rows(&rows, options.distinct);
    let small = |load: Load, connections: usize| {
        rows.iter()
            .find(|row| row.load == load && row.connections == connections)
            .map_or(f64::NAN, |row| row.run.requests_per_second)
    };
    println!(
        "  endpoint(1k stored, 32 conns) / in-process ceiling          {:.2}",
        small(Load::Hot, 32) / ceiling
    );
    println!(
        "  during login flood / undisturbed, 32 conns                  {:.2}",
        small(Load::HotDuringFlood, 32) / small(Load::Hot, 32)
    );

    // The PostgreSQL cluster outlives its runs (dropped at the end: stopped, removed).
    let mut cluster = None;
    let mut stores = Vec::new();
    if matches!(options.stores, Stores::Sqlite | Stores::Both) {
        stores.push(("SQLite", StoreKind::Sqlite));
    }
    if matches!(options.stores, Stores::Postgres | Stores::Both) {
        let url = match &options.database_url {
            Some(url) => url.clone(),
            None => {
                let started = pg::PgCluster::start()?;
                let url = started.create_database("hubkey_bench")?;
                cluster = Some(started);
                url
            }
        };
        hubkeyd::store::Store::check_url(&url).map_err(|err| format!("--database-url: {err}"))?;
        stores.push(("PostgreSQL", StoreKind::Postgres(url)));
    }
    let cache_arg = options.token_cache_mib.map(|mib| mib.to_string());
    let mut serve: Vec<&str> = Vec::new();
    if let Some(mib) = &cache_arg {
        serve.extend(["--token-cache-mib", mib.as_str()]);
    }
    if let Some(mode) = &options.access_log {
        serve.extend(["--access-log", mode.as_str()]);
    }
    let mut results = Vec::new();
    for (name, store) in &stores {
        let rows = large_run(options, store, &serve).await?;
        println!("\n{name}, {} tokens stored:", options.large);
        print_rows(&rows.0, options.distinct);
        results.push(StoreRows {
            name,
            rows: rows.0,
            rss_mib: rows.1,
        });
    }
    drop(cluster);

    let large = options.large;
    let distinct = options.distinct;
    let find_of =
        |server: Served, result: &StoreRows, load: Load, instances: usize, connections: usize| {
            result
                .rows
                .iter()
                .find(|row| {
                    row.server == server
                        && row.load == load
                        && row.instances == instances
                        && row.connections == connections
                })
                .map_or((f64::NAN, f64::NAN), |row| {
                    (row.run.requests_per_second, row.run.p99_ms)
                })
        };
    let find = |result: &StoreRows, load: Load, instances: usize, connections: usize| {
        find_of(Served::Hubkeyd, result, load, instances, connections)
    };
    println!("\nratios, measured side by side in this run ({large} tokens stored):");
    for result in &results {
        for connections in [32, 256] {
            let (hot_rps, hot_p99) = find(result, Load::Hot, 1, connections);
            let (distinct_rps, distinct_p99) = find(result, Load::Distinct, 1, connections);
            println!(
                "  {:<10} {distinct} distinct / 1k hot, {connections:>3} conns  {:.2}   (p99 {distinct_p99:.2} ms vs {hot_p99:.2} ms)",
                result.name,
                distinct_rps / hot_rps
            );
        }
        print_pairs(result, distinct);
        let (bare_distinct, bare_distinct_p99) =
            find_of(Served::Bare, result, Load::Distinct, 1, 32);
        if bare_distinct.is_finite() {
            let (bare_hot, bare_hot_p99) = find_of(Served::Bare, result, Load::Hot, 1, 32);
            let (hot, _) = find(result, Load::Hot, 1, 32);
            let (distinct_rps, distinct_p99) = find(result, Load::Distinct, 1, 32);
            println!(
                "  {:<10} bare {distinct} distinct / hubkeyd 1k hot, 32 conns  {:.2}   (the floor: a lookup per request)",
                result.name,
                bare_distinct / hot
            );
            println!(
                "  {:<10} hubkeyd / bare, {distinct} distinct, 32 conns  {:.2}   (p99 {distinct_p99:.2} ms vs {bare_distinct_p99:.2} ms)",
                result.name,
                distinct_rps / bare_distinct
            );
            println!(
                "  {:<10} bare {distinct} distinct / bare 1k hot, 32 conns  {:.2}   (p99 {bare_distinct_p99:.2} ms vs {bare_hot_p99:.2} ms)",
                result.name,
                bare_distinct / bare_hot
            );
        }
        for load in [Load::Hot, Load::Distinct] {
            let (one, one_p99) = find(result, load, 1, 32);
            let (two, two_p99) = find(result, load, 2, 32);
            if two.is_finite() {
                println!(
                    "  {:<10} two instances / one, {:<14} 32 conns  {:.2}   ({two:.0} vs {one:.0} req/s; p99 {two_p99:.2} vs {one_p99:.2} ms)",
                    result.name,
                    load_name(load, distinct),
                    two / one
                );
            }
        }
    }
    if let [sqlite, postgres] = &results[..] {
        for connections in [32, 256] {
            for load in [Load::Hot, Load::Distinct] {
                let (lite, _) = find(sqlite, load, 1, connections);
                let (pg, _) = find(postgres, load, 1, connections);
                println!(
                    "  PostgreSQL / SQLite, {:<14} {connections:>3} conns      {:.2}",
                    load_name(load, distinct),
                    pg / lite
                );
            }
        }
    }
    for result in &results {
        println!(
            "\nhubkeyd VmRSS at the end on {} ({large} stored, after the {distinct}-distinct load, token cache {}): {:.1} MiB (RssAnon {:.1} MiB)",
            result.name,
            options
                .token_cache_mib
                .map_or("default".to_owned(), |mib| format!("{mib} MiB")),
            result.rss_mib.0,
            result.rss_mib.1
        );
    }
    Ok(())
}

/// The large run on `store`: hot and distinct loads at 32 and 256 connections, then on
/// PostgreSQL both loads again over two instances of one deployment at 32 connections in all.
/// Answers the rows and the first instance's VmRSS after its distinct load.
async fn large_run(
    options: &Options,
    store: &StoreKind,
    serve: &[&str],
) -> Result<(Vec<Row>, (f64, f64))> {
    let mut rows = Vec::new();
    let server = Server::seed_and_start_in(
        &options.hubkeyd,
        store,
        options.large,
        options.distinct,
        serve,
    )
    .await?;
    let hot = server.wrk_script(LOAD_TOKENS)?;
    let distinct = server.wrk_script(options.distinct)?;
    wrk(&server.url, &hot, 32, 2)?;
    wrk(&server.url, &distinct, 32, 2)?;
    // Alternated, so a change in the shared machine's load hits both loads alike.
    for connections in [32, 256] {
        let pairs = if connections == 32 { options.pairs } else { 1 };
        for (load, script) in
            std::iter::repeat_n([(Load::Hot, &hot), (Load::Distinct, &distinct)], pairs).flatten()
        {
            let (run, profile, cpu_us, background_us) =
                measured(&server, script, connections, options.seconds).await?;
            rows.push(Row {
                server: Served::Hubkeyd,
                stored: options.large,
                load,
                connections,
                instances: 1,
                run,
                profile: Some(profile),
                cpu_us: Some(cpu_us),
                background_us: Some(background_us),
            });
        }
        if connections == 32 && *store == StoreKind::Sqlite {
            rows.extend(bare_runs(options, &server, &hot, &distinct)?);
        }
    }
    let rss = server.rss_mib()?;
    if matches!(store, StoreKind::Postgres(_)) {
        let second = server.another_instance()?;
        wrk(&second.url, &hot, 16, 2)?;
        wrk(&second.url, &distinct, 16, 2)?;
        for (load, script) in [(Load::Hot, &hot), (Load::Distinct, &distinct)] {
            let label = format!("two instances, {}", load_name(load, options.distinct));
            let run = wrk_over(&[&server, &second], script, 32, options.seconds, &label)?;
            rows.push(Row {
                server: Served::Hubkeyd,
                stored: options.large,
                load,
                connections: 32,
                instances: 2,
                run,
                profile: None,
                cpu_us: None,
                background_us: None,
            });
        }
        second.stop();
    }
    server.stop();
    Ok((rows, rss))
}

/// The bare server on hubkeyd's SQLite file (hubkeyd idle meanwhile) at 32 connections: the
/// distinct load, then the hot one (the reverse of hubkeyd's order, so a drift in the shared
/// machine's speed does not favour one side).
fn bare_runs(
    options: &Options,
    server: &Server,
    hot: &tempfile::NamedTempFile,
    distinct: &tempfile::NamedTempFile,
) -> Result<Vec<Row>> {
    let bare = BareServer::start(&server.data_dir)?;
    wrk(&bare.url, distinct, 32, 2)?;
    let mut rows = Vec::new();
    for (load, script) in [(Load::Distinct, distinct), (Load::Hot, hot)] {
        let cpu_before = cpu_seconds(bare.pid())?;
        let run = wrk(&bare.url, script, 32, options.seconds)?;
        let cpu = cpu_seconds(bare.pid())? - cpu_before;
        rows.push(Row {
            server: Served::Bare,
            stored: options.large,
            load,
            connections: 32,
            instances: 1,
            cpu_us: Some(cpu_per_request_us(cpu, &run, options.seconds)),
            background_us: None,
            run,
            profile: None,
        });
    }
    Ok(rows)
}

/// With more than one alternated pair at 32 connections (`--pairs`), each pair's distinct /
/// hot and the median, and the distinct load's p99 in each.
fn print_pairs(result: &StoreRows, distinct: usize) {
    let of = |load: Load| -> Vec<&Row> {
        result
            .rows
            .iter()
            .filter(|row| {
                row.server == Served::Hubkeyd
                    && row.load == load
                    && row.instances == 1
                    && row.connections == 32
            })
            .collect()
    };
    let (hot, spread) = (of(Load::Hot), of(Load::Distinct));
    if hot.len() < 2 {
        return;
    }
    let mut ratios: Vec<f64> = hot
        .iter()
        .zip(&spread)
        .map(|(hot, spread)| spread.run.requests_per_second / hot.run.requests_per_second)
        .collect();
    let each: Vec<String> = ratios.iter().map(|ratio| format!("{ratio:.2}")).collect();
    let p99s: Vec<String> = spread
        .iter()
        .map(|row| format!("{:.2}", row.run.p99_ms))
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "  {:<10} {distinct} distinct / 1k hot,  32 conns, {} alternated pairs  {} (median {:.2}; distinct p99 {} ms)",
        result.name,
        ratios.len(),
        each.join(" "),
        ratios[ratios.len() / 2],
        p99s.join(" ")
    );
}

fn load_name(load: Load, distinct: usize) -> String {
    match load {
        Load::Hot => "1k hot".to_owned(),
        Load::Distinct => format!("{distinct} rand"),
        Load::HotDuringFlood => "1k hot+flood".to_owned(),
    }
}

fn print_rows(rows: &[Row], distinct: usize) {
    println!(
        "{:>8} {:>10} {:>14} {:>5} {:>6} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "server",
        "stored",
        "load",
        "inst",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "hit %",
        "flushes",
        "tok/flush",
        "ms/flush",
        "cpu µs/req",
        "of it bg"
    );
    for row in rows {
        let load = load_name(row.load, distinct);
        let (hit, flushes, per_flush, ms) = match row.profile {
            Some(p) if p.cache_hits + p.cache_misses > 0.0 => (
                format!(
                    "{:.1}",
                    100.0 * p.cache_hits / (p.cache_hits + p.cache_misses)
                ),
                format!("{:.0}", p.flushes),
                format!("{:.0}", p.flushed_tokens / p.flushes.max(1.0)),
                format!("{:.1}", 1000.0 * p.flush_seconds / p.flushes.max(1.0)),
            ),
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:>8} {:>10} {:>14} {:>5} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>7.0} {:>7} {:>7} {:>8} {:>9} {:>9} {:>10} {:>8}",
            match row.server {
                Served::Hubkeyd => "hubkeyd",
                Served::Bare => "bare",
            },
            row.stored,
            load,
            row.instances,
            row.connections,
            row.run.requests_per_second,
            row.run.p50_ms,
            row.run.p99_ms,
            row.run.max_ms,
            row.run.errors,
            hit,
            flushes,
            per_flush,
            ms,
            row.cpu_us.map_or_else(|| "-".to_owned(), |us| format!("{us:.0}")),
            row.background_us.map_or_else(|| "-".to_owned(), |us| format!("{us:.0}")),
        );
    }
}
