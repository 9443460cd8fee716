//! The default benchmark's load runs: `GET /token` under wrk with 1 000 tokens stored (and
//! during a login flood), then with `--tokens` stored under two loads side by side: the 1 000
//! hot tokens and `--distinct` tokens picked at random per request. Prints throughput, p50,
//! p99, the ratios, hubkeyd's memory at the end, and where the time went, read from hubkeyd's
//! own `/metrics` around each run (token cache hits and misses, usage flushes).

use std::time::Duration;

use crate::{wrk, Flood, Options, Result, Run, Server, StoreKind, LOAD_TOKENS};

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

struct Row {
    stored: usize,
    load: Load,
    connections: usize,
    run: Run,
    /// What hubkeyd's counters did during the run (none for the 1 000-token server's flood).
    profile: Option<Profile>,
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

/// One measured wrk run with hubkeyd's counters around it.
async fn measured(
    server: &Server,
    script: &tempfile::NamedTempFile,
    connections: usize,
    seconds: u64,
) -> Result<(Run, Profile)> {
    let before = counters(server).await?;
    let run = wrk(&server.url, script, connections, seconds)?;
    // The last flush of the run lands within 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = counters(server).await?;
    Ok((run, Profile::between(&before, &after)))
}

pub async fn run(options: &Options, ceiling: f64) -> Result<()> {
    // Before minutes of other runs: a store this hubkeyd cannot serve stops the bench now.
    if let StoreKind::Postgres(url) = &options.store {
        hubkeyd::store::Store::check_url(url).map_err(|err| {
            format!(
                "--store postgres: not yet: this hubkeyd does not serve PostgreSQL (the \
                 PostgreSQL store of issue 13 is not merged on this branch?): {err}"
            )
        })?;
    }
    let mut rows = Vec::new();

    let server = Server::seed_and_start(&options.hubkeyd, LOAD_TOKENS).await?;
    let script = server.wrk_script(LOAD_TOKENS)?;
    wrk(&server.url, &script, 32, 2)?; // warm-up: fills the lookup cache
    for connections in [32, 256] {
        let (run, profile) = measured(&server, &script, connections, options.seconds).await?;
        rows.push(Row {
            stored: LOAD_TOKENS,
            load: Load::Hot,
            connections,
            run,
            profile: Some(profile),
        });
    }
    let flood = Flood::start(&server.url);
    let run = wrk(&server.url, &script, 32, options.seconds)?;
    let (attempts, throttled) = flood.stop().await;
    rows.push(Row {
        stored: LOAD_TOKENS,
        load: Load::HotDuringFlood,
        connections: 32,
        run,
        profile: None,
    });
    println!("login flood during that run: {attempts} attempts, {throttled} answered 429");
    server.stop();

    let store = match &options.store {
        StoreKind::Sqlite => "SQLite",
        StoreKind::Postgres(_) => "PostgreSQL",
    };
    let server = Server::seed_and_start_in(
        &options.hubkeyd,
        &options.store,
        options.large,
        options.distinct,
        &[],
    )
    .await?;
    let hot = server.wrk_script(LOAD_TOKENS)?;
    let distinct = server.wrk_script(options.distinct)?;
    wrk(&server.url, &hot, 32, 2)?;
    wrk(&server.url, &distinct, 32, 2)?;
    // Alternated, so a change in the shared machine's load hits both loads alike.
    for connections in [32, 256] {
        for (load, script) in [(Load::Hot, &hot), (Load::Distinct, &distinct)] {
            let (run, profile) = measured(&server, script, connections, options.seconds).await?;
            rows.push(Row {
                stored: options.large,
                load,
                connections,
                run,
                profile: Some(profile),
            });
        }
    }
    let rss = server.rss_mib()?;
    server.stop();

    print_rows(&rows, options.distinct);
    let find = |stored: usize, load: Load, connections: usize| {
        rows.iter()
            .find(|row| row.stored == stored && row.load == load && row.connections == connections)
            .map_or((f64::NAN, f64::NAN), |row| {
                (row.run.requests_per_second, row.run.p99_ms)
            })
    };
    let large = options.large;
    let distinct = options.distinct;
    println!("\nratios, measured side by side in this run ({store} for {large} tokens):");
    println!(
        "  endpoint(1k stored, 32 conns) / in-process ceiling          {:.2}",
        find(LOAD_TOKENS, Load::Hot, 32).0 / ceiling
    );
    for connections in [32, 256] {
        println!(
            "  {large} stored / 1k stored, 1k hot, {connections:>3} conns            {:.2}",
            find(large, Load::Hot, connections).0 / find(LOAD_TOKENS, Load::Hot, connections).0
        );
    }
    for connections in [32, 256] {
        let (hot_rps, hot_p99) = find(large, Load::Hot, connections);
        let (distinct_rps, distinct_p99) = find(large, Load::Distinct, connections);
        println!(
            "  {distinct} distinct / 1k hot, {large} stored, {connections:>3} conns  {:.2}   (p99 {distinct_p99:.2} ms vs {hot_p99:.2} ms)",
            distinct_rps / hot_rps
        );
    }
    println!(
        "  during login flood / undisturbed, 32 conns                  {:.2}",
        find(LOAD_TOKENS, Load::HotDuringFlood, 32).0 / find(LOAD_TOKENS, Load::Hot, 32).0
    );
    println!("\nhubkeyd VmRSS at the end ({large} stored, after the {distinct}-distinct load): {rss:.1} MiB");
    Ok(())
}

fn print_rows(rows: &[Row], distinct: usize) {
    println!(
        "\n{:>10} {:>14} {:>6} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>9} {:>9}",
        "stored",
        "load",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "hit %",
        "flushes",
        "tok/flush",
        "ms/flush"
    );
    for row in rows {
        let load = match row.load {
            Load::Hot => "1k hot".to_owned(),
            Load::Distinct => format!("{distinct} rand"),
            Load::HotDuringFlood => "1k hot+flood".to_owned(),
        };
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
            "{:>10} {:>14} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>7} {:>8} {:>9} {:>9}",
            row.stored,
            load,
            row.connections,
            row.run.requests_per_second,
            row.run.p50_ms,
            row.run.p99_ms,
            row.run.errors,
            hit,
            flushes,
            per_flush,
            ms
        );
    }
}
