//! `hubkey-bench flushes [--tokens M] [--distinct N] [--batch B] [--rounds R]`: the CPU time
//! the store's side of the usage and access-log flushes costs a token on SQLite, with nothing
//! else running.
//!
//! Under the endpoint bench's load of distinct tokens these writes run on hubkeyd's background
//! thread next to wrk and the token checks, and their share (`of it bg`) moves by a third
//! between runs of one binary as the machine's other work comes and goes. Here the same store
//! calls run alone, so two builds can be compared by their figures a token:
//! - the new-address probes of a batch (`Store::new_addresses`: one candidate a token, from
//!   one address),
//! - the usage write (`Store::record_uses`, in runs of `USES_PER_STATEMENT` tokens),
//! - the access-log write (`Store::record_access`, in runs of `ACCESS_LINES_PER_TRANSACTION`
//!   lines, one line a token).
//!
//! It seeds `--tokens` tokens (default 1 000 000) in a fresh SQLite database, then flushes `R`
//! batches of `B` tokens (default 4 of 25 000, about what a flush takes under the endpoint
//! bench's distinct load) drawn at random from the first `--distinct` (default 200 000), and
//! a last batch of the previous batch's tokens again. The first batch is every token's first
//! use of the day (each row inserted); the last, every row there already (each row updated);
//! the ones between, a mix, as in the endpoint bench's successive runs. The CPU time is the
//! process's (user and system, all threads) around each call, from `clock_gettime` to the
//! nanosecond (`/proc/self/stat` counts ticks of 10 ms: 0.4 µs a token in a batch of 25 000).
//!
//! Then it times the token check's read on a cache miss ([`lookups`]), the other store work
//! a request of distinct tokens adds: CPU µs and page reads a lookup, alone and between
//! commits of the flushes' connection.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hubkeyd::access_log::{AccessLine, NewAddress};
use hubkeyd::store::{
    BatchRun, PendingUse, Store, ACCESS_LINES_PER_TRANSACTION, USES_PER_STATEMENT,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::{proc_stat, Result, PASSWORD, USER};

const USAGE: &str =
    "usage: hubkey-bench flushes [--tokens M] [--distinct N] [--batch B] [--rounds R]";

struct Options {
    tokens: usize,
    distinct: usize,
    batch: usize,
    rounds: usize,
}

fn options(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut options = Options {
        tokens: 1_000_000,
        distinct: 200_000,
        batch: 25_000,
        rounds: 4,
    };
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?
            .parse()?;
        match flag.as_str() {
            "--tokens" => options.tokens = value,
            "--distinct" => options.distinct = value,
            "--batch" => options.batch = value,
            "--rounds" => options.rounds = value.max(1),
            other => return Err(format!("unknown flag {other}; {USAGE}").into()),
        }
    }
    if options.batch == 0 || options.batch > options.distinct || options.distinct > options.tokens {
        return Err(format!("needs 0 < --batch <= --distinct <= --tokens; {USAGE}").into());
    }
    Ok(options)
}

/// What one batch cost, in CPU µs a token.
struct Cost {
    probes: f64,
    usage: f64,
    access: f64,
}

pub async fn run(args: impl Iterator<Item = String>) -> Result<()> {
    let options = options(args)?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("hubkeyd.db");
    let instance = hubkeyd::open(dir.path(), &format!("sqlite://{}", file.display())).await?;
    let store = instance.hub.store();
    let now = Utc::now();
    instance
        .hub
        .add_user(USER, PASSWORD.to_owned().into(), now)
        .await?;
    let user = store.user_by_name(USER).await?.ok_or("no user")?;
    let started = std::time::Instant::now();
    crate::insert_tokens(store, &user.id, options.tokens, 0, now).await?;
    println!(
        "seeded {} tokens in {:.1} s; flushing {} batches of {} of the first {} at random, then \
         the last batch again",
        options.tokens,
        started.elapsed().as_secs_f64(),
        options.rounds,
        options.batch,
        options.distinct
    );
    let (mut uuids, mut digests): (Vec<String>, Vec<String>) = {
        let conn = rusqlite::Connection::open(&file)?;
        let mut query = conn.prepare("SELECT uuid, digest FROM access_tokens ORDER BY rowid")?;
        let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .unzip()
    };
    uuids.truncate(options.distinct);
    digests.truncate(options.distinct);

    println!("  batch   rows there   probes µs   usage µs   access µs   total µs   (CPU a token)");
    let mut rng = StdRng::seed_from_u64(13);
    let mut seen: HashSet<String> = HashSet::new();
    let mut batch = Vec::new();
    for round in 0..=options.rounds {
        if round < options.rounds {
            batch = uuids
                .choose_multiple(&mut rng, options.batch)
                .cloned()
                .collect();
            batch.sort_unstable();
        }
        let there = batch.iter().filter(|uuid| seen.contains(*uuid)).count();
        let cost = flush(store, &batch).await?;
        seen.extend(batch.iter().cloned());
        let name = if round < options.rounds {
            format!("{}", round + 1)
        } else {
            "again".to_owned()
        };
        println!(
            "  {name:>5}   {:>9.0} %   {:>9.1}   {:>8.1}   {:>9.1}   {:>8.1}",
            100.0 * there as f64 / batch.len() as f64,
            cost.probes,
            cost.usage,
            cost.access,
            cost.probes + cost.usage + cost.access,
        );
    }
    lookups(store, &digests, &uuids).await?;
    store.close().await;
    Ok(())
}

/// Token checks each pass of [`lookups`] times (after a tenth as many to warm the caches).
const LOOKUPS: usize = 100_000;

/// Lookups between two commits of the flushes' connection in the second pass: about as many
/// as under the endpoint bench's distinct load while a flush runs. A commit empties the page
/// cache of every reader connection, so the next lookup of each reads its B-trees' upper
/// pages again.
const LOOKUPS_A_COMMIT: usize = 200;

/// Times the token check's read on a cache miss (`Store::token_check_by_digest`) on one
/// thread, for [`LOOKUPS`] digests drawn at random from `digests`: alone, then with one
/// token's usage written and committed every [`LOOKUPS_A_COMMIT`] lookups (on the flushes'
/// thread, which is not counted). Prints the looking thread's CPU time and read calls (a page
/// read from the kernel's cache each) a lookup.
async fn lookups(store: &Store, digests: &[String], uuids: &[String]) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(17);
    let sample: Arc<Vec<String>> = Arc::new(
        (0..LOOKUPS + LOOKUPS / 10)
            .map(|_| digests.choose(&mut rng).cloned())
            .collect::<Option<_>>()
            .ok_or("no tokens to look up")?,
    );
    let now = Utc::now();
    let writes: Arc<Vec<(String, PendingUse)>> = Arc::new(
        uuids
            .choose_multiple(&mut rng, LOOKUPS / LOOKUPS_A_COMMIT + 1)
            .map(|uuid| one_use(uuid, now))
            .collect(),
    );
    println!("  lookups   a commit every   CPU µs a lookup   reads a lookup");
    for committing in [false, true] {
        let (store, sample, writes) = (store.clone(), Arc::clone(&sample), Arc::clone(&writes));
        let handle = tokio::runtime::Handle::current();
        let (cpu, reads) = tokio::task::spawn_blocking(move || -> Result<(f64, f64)> {
            let check = |digest: &String| -> Result<()> {
                handle
                    .block_on(store.token_check_by_digest(digest))?
                    .ok_or("a seeded token was not found")?;
                Ok(())
            };
            let (warm, measured) = sample.split_at(LOOKUPS / 10);
            warm.iter().try_for_each(check)?;
            let cpu = proc_stat::this_thread_cpu_seconds();
            let reads = proc_stat::this_thread_reads()?;
            for (index, digest) in measured.iter().enumerate() {
                if committing && index % LOOKUPS_A_COMMIT == 0 {
                    let at = index / LOOKUPS_A_COMMIT;
                    handle.block_on(store.record_uses(BatchRun::of(&writes, at..at + 1)))?;
                }
                check(digest)?;
            }
            let count = measured.len() as f64;
            Ok((
                (proc_stat::this_thread_cpu_seconds() - cpu) * 1e6 / count,
                (proc_stat::this_thread_reads()? - reads) as f64 / count,
            ))
        })
        .await??;
        let every = if committing {
            format!("{LOOKUPS_A_COMMIT} lookups")
        } else {
            "-".to_owned()
        };
        println!("  {LOOKUPS:>7}   {every:>14}   {cpu:>15.1}   {reads:>14.2}");
    }
    Ok(())
}

/// Flushes one use of each of `batch` (sorted) as hubkeyd's flushes do: the new-address
/// probes, then the usage and the access-log writes in their runs.
async fn flush(store: &Store, batch: &[String]) -> Result<Cost> {
    let now = Utc::now();
    let at = now.timestamp_millis();
    let day = hubkeyd::usage::epoch_day(now);
    let candidates: Vec<NewAddress> = batch
        .iter()
        .map(|uuid| NewAddress {
            token_uuid: uuid.clone(),
            address: "127.0.0.1".to_owned(),
            user_agent: "hubkey-bench".to_owned(),
            at,
        })
        .collect();
    let uses: Arc<Vec<(String, PendingUse)>> =
        Arc::new(batch.iter().map(|uuid| one_use(uuid, now)).collect());
    let lines: Arc<Vec<AccessLine>> = Arc::new(
        batch
            .iter()
            .map(|uuid| AccessLine {
                token_uuid: uuid.clone(),
                day,
                address: "127.0.0.1".to_owned(),
                user_agent: "hubkey-bench".to_owned(),
                action: "pull".to_owned(),
                first_at: at,
                last_at: at,
                uses: 1,
            })
            .collect(),
    );
    let per_token = |seconds: f64| seconds * 1e6 / batch.len() as f64;

    let before = proc_stat::own_cpu_seconds();
    store.new_addresses(candidates).await?;
    let probed = proc_stat::own_cpu_seconds();
    for start in (0..uses.len()).step_by(USES_PER_STATEMENT) {
        store
            .record_uses(BatchRun::of(&uses, start..start + USES_PER_STATEMENT))
            .await?;
    }
    let used = proc_stat::own_cpu_seconds();
    for start in (0..lines.len()).step_by(ACCESS_LINES_PER_TRANSACTION) {
        store
            .record_access(BatchRun::of(
                &lines,
                start..start + ACCESS_LINES_PER_TRANSACTION,
            ))
            .await?;
    }
    let logged = proc_stat::own_cpu_seconds();
    Ok(Cost {
        probes: per_token(probed - before),
        usage: per_token(used - probed),
        access: per_token(logged - used),
    })
}

/// One use of token `uuid` at `now`, as the usage log holds it pending.
fn one_use(uuid: &str, now: DateTime<Utc>) -> (String, PendingUse) {
    let pending = PendingUse {
        last_used: now.timestamp_millis(),
        days: [(hubkeyd::usage::epoch_day(now), 1)].into_iter().collect(),
    };
    (uuid.to_owned(), pending)
}
