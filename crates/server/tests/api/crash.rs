//! Crash safety: a write load from concurrent clients against the real `hubkeyd` binary,
//! SIGKILLed at random moments and restarted on the same SQLite file each time.
//!
//! After every kill the database must pass `PRAGMA integrity_check` and
//! `PRAGMA foreign_key_check`; every write a client saw acknowledged must be there with the
//! acknowledged content (deletes stay deleted); a write that was in flight may or may not be
//! there but is whole (a PATCH of label and state lands both or neither); the events feed,
//! replayed, gives exactly the token list, and no committed transaction ever left an account
//! with more than five auto tokens (the created auto token and its prunes land together);
//! `last_used` loses at most [`FLUSH_INTERVAL`] of uses (plus the time one flush takes).
//!
//! The run is seeded: the seed is printed, and `HUBKEY_CRASH_SEED=N` replays its choices
//! (the interleaving of the clients still varies).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hubkey_api::{
    AccessToken, DesktopGenerateRequest, Origin, PatchAccessTokenRequest, TokenEvent,
    TokenEventKind,
};
use hubkey_client::{ClientError, HubClient};
use hubkeyd::usage::FLUSH_INTERVAL;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};
use uuid::Uuid;

use crate::harness::{all_events, manual, password_session, DataDir, TestServer, PASSWORD};
use crate::pg::{skip_unless_postgres, PgCluster};

/// SIGKILLs per run.
const KILLS: usize = 24;
/// Writers per account: three share `ann`, one has `bob`.
const WRITERS: [&str; 4] = ["ann", "ann", "ann", "bob"];
/// The load runs this long (uniformly chosen, in ms) before each kill: some rounds see a
/// usage flush (every 2 s), some do not.
const KILL_AFTER_MS: std::ops::Range<u64> = 150..2600;
/// What a flush may take beyond its interval before `last_used` counts as lost.
const FLUSH_SLACK: Duration = Duration::from_millis(500);
/// Every third round the writers make no `desktop-generate` call, which flushes the usage
/// log before it prunes: those rounds measure the bare flush window.
const QUIET_EVERY: usize = 3;
/// The pruning rule's limit.
const MAX_AUTO: usize = 5;

/// A manual token's content as a client last saw it acknowledged.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    label: String,
    active: bool,
}

/// What a writer knows about one of its manual tokens.
#[derive(Debug, Clone)]
enum Expect {
    /// Acknowledged: exactly this.
    Is(Content),
    /// A PATCH was in flight: the old content or the new one, never a mix.
    EitherOf(Content, Content),
    /// A DELETE was in flight: as before, or gone.
    MaybeGone(Content),
    /// Deleted, acknowledged.
    Gone,
}

/// One writer's view of what it did in one round.
#[derive(Debug, Default)]
struct Writes {
    manual: HashMap<Uuid, Expect>,
    /// The label of a create that was in flight at the kill.
    unsure_create: Vec<String>,
    /// When the calls that failed were sent (only calls in flight during an outage may fail).
    failed: Vec<DateTime<Utc>>,
    /// Auto tokens whose `desktop-generate` was acknowledged.
    auto: Vec<Uuid>,
    acknowledged: usize,
}

/// Uses of the probe token, each as (sent, acknowledged).
type Uses = Vec<(DateTime<Utc>, DateTime<Utc>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_whole() {
    let seed = std::env::var("HUBKEY_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen::<u64>());
    println!("crash seed: {seed} (replay with HUBKEY_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let data = DataDir::new();
    data.add_user("ann", PASSWORD).await;
    data.add_user("bob", PASSWORD).await;
    let mut server = TestServer::start_in(data).await;
    let mut sessions = HashMap::new();
    for name in ["ann", "bob"] {
        let session = password_session(&server.client(), name, PASSWORD).await;
        sessions.insert(name, session.token);
    }
    // The probe token, used all the time, whose `last_used` is checked after each kill.
    let ann = server.client().with_token(sessions["ann"].clone());
    let probe = ann
        .create_token(&manual("usage-probe"))
        .await
        .expect("create the probe token");
    let probe_secret = probe.token.clone();

    // What each writer believes exists, carried from round to round.
    let mut known: Vec<HashMap<Uuid, Content>> = vec![HashMap::new(); WRITERS.len()];
    let mut worst_usage_loss = Duration::ZERO;
    let mut worst_quiet_loss = Duration::ZERO;
    let mut acknowledged = 0;
    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = WRITERS
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let client = server.client().with_token(sessions[name].clone());
                let start = known[index].clone();
                let rng = StdRng::seed_from_u64(seed ^ ((round * 16 + index + 1) as u64));
                let stop = stop.clone();
                let generate = round % QUIET_EVERY != QUIET_EVERY - 1;
                tokio::spawn(write_load(
                    client,
                    index,
                    round,
                    start,
                    generate,
                    rng,
                    (stop, Outage::Kill),
                ))
            })
            .collect();
        let prober = tokio::spawn(use_token(
            server.client(),
            probe_secret.clone(),
            stop.clone(),
            Outage::Kill,
        ));

        tokio::time::sleep(Duration::from_millis(rng.gen_range(KILL_AFTER_MS))).await;
        let killed_at = Utc::now();
        server.kill();
        stop.store(true, Ordering::Release);
        let mut writes = Vec::new();
        for writer in writers {
            writes.push(writer.await.expect("writer task"));
        }
        let (uses, _) = prober.await.expect("probe task");
        acknowledged += writes.iter().map(|w| w.acknowledged).sum::<usize>() + uses.len();

        check_database(&server).await;
        server.restart().await;

        for name in ["ann", "bob"] {
            let client = server.client().with_token(sessions[name].clone());
            let tokens = client.list_all_tokens().await.expect("list after restart");
            let events = all_events(&client).await;
            check_feed_matches_list(name, round, &tokens, &events);
            for (index, writer) in WRITERS.iter().enumerate() {
                if *writer == name {
                    known[index] = check_writes(name, round, &writes[index], &tokens, &events);
                }
            }
        }
        let client = server.client().with_token(sessions["ann"].clone());
        let stored = client.get_token(probe.uuid).await.expect("read the probe");
        let loss = usage_loss(&uses, stored.last_used, killed_at);
        println!(
            "round {round}{}: killed after {} acknowledged writes and {} uses; last_used lost {} ms",
            if round % QUIET_EVERY == QUIET_EVERY - 1 { " (no desktop-generate)" } else { "" },
            writes.iter().map(|w| w.acknowledged).sum::<usize>(),
            uses.len(),
            loss.as_millis()
        );
        assert!(
            loss <= FLUSH_INTERVAL + FLUSH_SLACK,
            "round {round}: last_used lost {loss:?} of uses, more than the {FLUSH_INTERVAL:?} flush window (seed {seed})"
        );
        worst_usage_loss = worst_usage_loss.max(loss);
        if round % QUIET_EVERY == QUIET_EVERY - 1 {
            worst_quiet_loss = worst_quiet_loss.max(loss);
        }
    }
    println!(
        "{KILLS} SIGKILLs, {acknowledged} acknowledged writes and uses checked; \
         worst last_used loss {} ms, {} ms in rounds without desktop-generate (window {} ms)",
        worst_usage_loss.as_millis(),
        worst_quiet_loss.as_millis(),
        FLUSH_INTERVAL.as_millis()
    );
}

/// One writer: manual creates, PATCHes (label and state together), deletes of its own
/// tokens, and (when `generate`) `desktop-generate` calls, until the server dies under it.
async fn write_load(
    client: HubClient,
    index: usize,
    round: usize,
    start: HashMap<Uuid, Content>,
    generate: bool,
    mut rng: StdRng,
    (stop, outage): (Arc<AtomicBool>, Outage),
) -> Writes {
    let mut writes = Writes {
        manual: start
            .into_iter()
            .map(|(uuid, content)| (uuid, Expect::Is(content)))
            .collect(),
        ..Writes::default()
    };
    let mut serial = 0;
    while !stop.load(Ordering::Acquire) {
        serial += 1;
        let sent = Utc::now();
        let live: Vec<(Uuid, Content)> = writes
            .manual
            .iter()
            .filter_map(|(uuid, expect)| match expect {
                Expect::Is(content) => Some((*uuid, content.clone())),
                _ => None,
            })
            .collect();
        let roll = rng.gen_range(0..100);
        if live.is_empty() || roll < 35 {
            let label = format!("w{index} r{round} n{serial} '; DROP TABLE access_tokens; --");
            match client.create_token(&manual(&label)).await {
                Ok(token) => {
                    assert_eq!(token.token_label, label);
                    assert!(token.is_active);
                    let content = Content {
                        label,
                        active: true,
                    };
                    writes.manual.insert(token.uuid, Expect::Is(content));
                }
                Err(err) => {
                    writes.unsure_create.push(label);
                    if outage.failed(&err, "create") {
                        break;
                    }
                    writes.failed.push(sent);
                }
            }
        } else if roll < 60 {
            let (uuid, old) = &live[rng.gen_range(0..live.len())];
            let new = Content {
                label: format!("w{index} r{round} n{serial} patched"),
                active: !old.active,
            };
            let patch = PatchAccessTokenRequest {
                token_label: Some(new.label.clone()),
                is_active: Some(new.active),
                new_address_alerts: None,
            };
            match client.patch_token(*uuid, &patch).await {
                Ok(token) => {
                    assert_eq!(
                        (&token.token_label, token.is_active),
                        (&new.label, new.active)
                    );
                    writes.manual.insert(*uuid, Expect::Is(new));
                }
                Err(err) => {
                    writes
                        .manual
                        .insert(*uuid, Expect::EitherOf(old.clone(), new));
                    if outage.failed(&err, "patch") {
                        break;
                    }
                    writes.failed.push(sent);
                }
            }
        } else if roll < 75 || !generate {
            let (uuid, old) = &live[rng.gen_range(0..live.len())];
            match client.delete_token(*uuid).await {
                Ok(()) => {
                    writes.manual.insert(*uuid, Expect::Gone);
                }
                Err(err) => {
                    writes.manual.insert(*uuid, Expect::MaybeGone(old.clone()));
                    if outage.failed(&err, "delete") {
                        break;
                    }
                    writes.failed.push(sent);
                }
            }
        } else {
            let request = DesktopGenerateRequest {
                client_name: Some("crash-test".into()),
                device_name: Some(format!("writer {index}")),
            };
            match client.desktop_generate(Some(&request)).await {
                Ok(answer) => writes.auto.push(answer.data.uuid),
                Err(err) => {
                    if outage.failed(&err, "desktop-generate") {
                        break;
                    }
                    writes.failed.push(sent);
                }
            }
        }
        writes.acknowledged += 1;
    }
    writes
}

/// Uses the probe token (`/v2/auth/token` with the PAT) until the server dies.
async fn use_token(
    client: HubClient,
    secret: String,
    stop: Arc<AtomicBool>,
    outage: Outage,
) -> (Uses, Vec<DateTime<Utc>>) {
    let mut uses = Vec::new();
    let mut failed = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let sent = Utc::now();
        match client.auth_token("ann", &secret).await {
            Ok(_) => uses.push((sent, Utc::now())),
            Err(err) => {
                if outage.failed(&err, "token use") {
                    break;
                }
                failed.push(sent);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (uses, failed)
}

/// What interrupts the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outage {
    /// hubkeyd is SIGKILLed: a call may fail only with no HTTP answer at all, and the client
    /// stops (the server is gone).
    Kill,
    /// PostgreSQL restarts under a running hubkeyd: a call in flight may get a 5xx answer (the
    /// database went away under it), and the client goes on.
    DatabaseRestart,
}

impl Outage {
    /// Checks that `err` is one this outage may cause; true when the client should stop.
    fn failed(self, err: &ClientError, what: &str) -> bool {
        match self {
            Outage::Kill => {
                assert!(
                    err.status().is_none(),
                    "{what} failed with an HTTP answer while the server was up: {err:?}"
                );
                true
            }
            Outage::DatabaseRestart => {
                assert!(
                    err.status().is_some_and(|status| status >= 500),
                    "{what} failed otherwise than with a 5xx while the database restarted: {err:?}"
                );
                false
            }
        }
    }
}

/// The database the kill left: on SQLite, its own checks of the file, before the server opens
/// it again.
async fn check_database(server: &TestServer) {
    if server.data().postgres_database().is_some() {
        // PostgreSQL checks foreign keys at every statement and rolls back what a killed
        // client left unfinished; the feed and list checks after the restart do the rest.
        assert_eq!(server.data().count_rows("users").await, 2, "both accounts");
        return;
    }
    let mut db = SqliteConnectOptions::new()
        .filename(server.db_path())
        .connect()
        .await
        .expect("open the database after the kill");
    let integrity: Vec<String> = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut db)
        .await
        .expect("run integrity_check")
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
    assert_eq!(integrity, ["ok"], "PRAGMA integrity_check after a kill");
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut db)
        .await
        .expect("run foreign_key_check");
    assert!(
        dangling.is_empty(),
        "{} rows point at nothing",
        dangling.len()
    );
    sqlx::Connection::close(db)
        .await
        .expect("close the database");
}

/// Replays the events feed and compares it with the token list; checks, at the end of every
/// committed transaction (events of one transaction share their time), that the account had
/// at most five auto tokens.
fn check_feed_matches_list(
    name: &str,
    round: usize,
    tokens: &[AccessToken],
    events: &[TokenEvent],
) {
    let mut replayed: BTreeMap<Uuid, (String, bool, Origin)> = BTreeMap::new();
    let mut index = 0;
    while index < events.len() {
        let at = events[index].at;
        while index < events.len() && events[index].at == at {
            let event = &events[index];
            let uuid = event.token_uuid;
            match event.kind {
                TokenEventKind::Created => {
                    let before = replayed
                        .insert(uuid, (event.token_label.clone(), true, event.generated_by));
                    assert!(before.is_none(), "{name}: {uuid} created twice");
                }
                TokenEventKind::Deleted | TokenEventKind::Pruned => {
                    let before = replayed.remove(&uuid);
                    assert!(before.is_some(), "{name}: {uuid} removed but never created");
                }
                kind => {
                    let entry = replayed
                        .get_mut(&uuid)
                        .unwrap_or_else(|| panic!("{name}: {kind:?} of unknown {uuid}"));
                    match kind {
                        TokenEventKind::Activated => entry.1 = true,
                        TokenEventKind::Deactivated => entry.1 = false,
                        TokenEventKind::Relabelled => entry.0 = event.token_label.clone(),
                        other => panic!("{name}: unexpected event {other:?}"),
                    }
                }
            }
            index += 1;
        }
        let auto = replayed
            .values()
            .filter(|(_, _, origin)| *origin == Origin::Auto)
            .count();
        assert!(
            auto <= MAX_AUTO,
            "round {round}: {name} had {auto} auto tokens after the transaction at {at}"
        );
    }
    let listed: BTreeMap<Uuid, (String, bool, Origin)> = tokens
        .iter()
        .map(|t| (t.uuid, (t.token_label.clone(), t.is_active, t.generated_by)))
        .collect();
    assert_eq!(
        listed, replayed,
        "round {round}: {name}'s token list and replayed events feed disagree"
    );
}

/// Checks one writer's acknowledged writes against the list; returns its tokens as they now
/// are, for the next round.
fn check_writes(
    name: &str,
    round: usize,
    writes: &Writes,
    tokens: &[AccessToken],
    events: &[TokenEvent],
) -> HashMap<Uuid, Content> {
    let listed: HashMap<Uuid, &AccessToken> = tokens.iter().map(|t| (t.uuid, t)).collect();
    let seen = |uuid: &Uuid| {
        listed.get(uuid).map(|t| Content {
            label: t.token_label.clone(),
            active: t.is_active,
        })
    };
    let mut now_known = HashMap::new();
    for (uuid, expect) in &writes.manual {
        let found = seen(uuid);
        match expect {
            Expect::Is(content) => assert_eq!(
                found.as_ref(),
                Some(content),
                "round {round}: {name}'s acknowledged token {uuid}"
            ),
            Expect::EitherOf(old, new) => assert!(
                found.as_ref() == Some(old) || found.as_ref() == Some(new),
                "round {round}: {uuid} after an interrupted PATCH is {found:?}, neither {old:?} nor {new:?}"
            ),
            Expect::MaybeGone(old) => assert!(
                found.is_none() || found.as_ref() == Some(old),
                "round {round}: {uuid} after an interrupted DELETE is {found:?}"
            ),
            Expect::Gone => {
                assert!(found.is_none(), "round {round}: deleted {uuid} is back");
                assert!(
                    events
                        .iter()
                        .any(|e| e.token_uuid == *uuid && e.kind == TokenEventKind::Deleted),
                    "round {round}: no deleted event for {uuid}"
                );
            }
        }
        if let Some(content) = found {
            now_known.insert(*uuid, content);
        }
    }
    // A create in flight either landed whole (active, its label) or not at all.
    for label in &writes.unsure_create {
        if let Some(token) = tokens.iter().find(|t| &t.token_label == label) {
            assert!(token.is_active && token.generated_by == Origin::Manual);
            now_known.insert(
                token.uuid,
                Content {
                    label: label.clone(),
                    active: true,
                },
            );
        }
    }
    let pruned: HashSet<Uuid> = events
        .iter()
        .filter(|e| e.kind == TokenEventKind::Pruned)
        .map(|e| e.token_uuid)
        .collect();
    for uuid in &writes.auto {
        assert!(
            listed.contains_key(uuid) || pruned.contains(uuid),
            "round {round}: acknowledged auto token {uuid} is neither listed nor pruned"
        );
    }
    now_known
}

/// How much of the probe's use history the kill took from `last_used`: from the first
/// acknowledged use the stored value does not cover, to the kill.
fn usage_loss(uses: &Uses, stored: Option<DateTime<Utc>>, killed_at: DateTime<Utc>) -> Duration {
    // A use whose answer the kill swallowed may be recorded; one after the kill may not.
    if let Some(stored) = stored {
        assert!(stored <= killed_at, "last_used {stored} is after the kill");
    }
    let first_lost = uses
        .iter()
        .find(|(_, acked)| stored.is_none_or(|stored| *acked > stored))
        .map(|(sent, _)| *sent);
    first_lost.map_or(Duration::ZERO, |first| {
        (killed_at - first).to_std().unwrap_or_default()
    })
}

/// PostgreSQL restarts under a running hubkeyd and its writers.
const DATABASE_RESTARTS: usize = 6;

/// PostgreSQL itself restarts while the writers and the probe run, a fast shutdown and an
/// immediate one in turns (the second replays the WAL at start): hubkeyd reconnects by itself
/// (it is never restarted), each client sees at most the one call it had in flight fail, with
/// a 5xx, and every acknowledged write is there afterwards, as in the SIGKILL test; the probe's
/// `last_used` catches up with its last acknowledged use (a failed flush is retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_only_acknowledged_writes_survive_database_restarts() {
    if skip_unless_postgres("postgres_only_acknowledged_writes_survive_database_restarts") {
        return;
    }
    let seed = std::env::var("HUBKEY_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen::<u64>());
    println!("crash seed: {seed} (replay with HUBKEY_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    // A cluster of the test's own: restarting the run's shared one would fail other tests.
    let cluster = Arc::new(PgCluster::private());
    let data = DataDir::on_postgres(cluster.create_database().1);
    data.add_user("ann", PASSWORD).await;
    data.add_user("bob", PASSWORD).await;
    let server = TestServer::start_in(data).await;
    let mut sessions = HashMap::new();
    for name in ["ann", "bob"] {
        let session = password_session(&server.client(), name, PASSWORD).await;
        sessions.insert(name, session.token);
    }
    let ann = server.client().with_token(sessions["ann"].clone());
    let probe = ann
        .create_token(&manual("usage-probe"))
        .await
        .expect("create the probe token");

    let mut known: Vec<HashMap<Uuid, Content>> = vec![HashMap::new(); WRITERS.len()];
    let (mut acknowledged, mut failed) = (0, 0);
    for round in 0..DATABASE_RESTARTS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = WRITERS
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let client = server.client().with_token(sessions[name].clone());
                let start = known[index].clone();
                let rng = StdRng::seed_from_u64(seed ^ ((round * 16 + index + 1) as u64));
                let stop = (stop.clone(), Outage::DatabaseRestart);
                tokio::spawn(write_load(client, index, round, start, true, rng, stop))
            })
            .collect();
        let prober = tokio::spawn(use_token(
            server.client(),
            probe.token.clone(),
            stop.clone(),
            Outage::DatabaseRestart,
        ));

        tokio::time::sleep(Duration::from_millis(rng.gen_range(KILL_AFTER_MS))).await;
        let mode = if round % 2 == 0 { "fast" } else { "immediate" };
        let restart = Instant::now();
        let restarting = cluster.clone();
        tokio::task::spawn_blocking(move || {
            restarting.stop(mode);
            restarting.start();
        })
        .await
        .expect("restart PostgreSQL");
        let down = restart.elapsed();
        let back_up = Utc::now();
        // The load goes on after the restart: new calls must succeed.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Release);
        let mut writes = Vec::new();
        for writer in writers {
            writes.push(writer.await.expect("writer task"));
        }
        let (uses, probe_failed) = prober.await.expect("probe task");
        // Only calls sent before PostgreSQL was back may fail: once it is up, hubkeyd serves
        // again without being told (its pool replaces the connections the restart closed).
        let failed_at: Vec<DateTime<Utc>> = writes
            .iter()
            .flat_map(|w| w.failed.iter().copied())
            .chain(probe_failed)
            .collect();
        for sent in &failed_at {
            assert!(
                *sent < back_up,
                "round {round} ({mode}): a call sent {} ms after PostgreSQL was back failed",
                (*sent - back_up).num_milliseconds()
            );
        }
        let errors = failed_at.len();
        let round_acks = writes.iter().map(|w| w.acknowledged).sum::<usize>() + uses.len();
        // Every writer went on after the restart.
        for (index, w) in writes.iter().enumerate() {
            assert!(
                w.acknowledged > 0,
                "round {round}: writer {index} acknowledged nothing"
            );
        }
        acknowledged += round_acks;
        failed += errors;

        for name in ["ann", "bob"] {
            let client = server.client().with_token(sessions[name].clone());
            let tokens = client.list_all_tokens().await.expect("list after restart");
            let events = all_events(&client).await;
            check_feed_matches_list(name, round, &tokens, &events);
            for (index, writer) in WRITERS.iter().enumerate() {
                if *writer == name {
                    known[index] = check_writes(name, round, &writes[index], &tokens, &events);
                }
            }
        }
        // The flush that failed with the database away is retried: after one more interval
        // the probe's last use is stored.
        tokio::time::sleep(FLUSH_INTERVAL + FLUSH_SLACK).await;
        let stored = ann.get_token(probe.uuid).await.expect("read the probe");
        if let Some((last_sent, _)) = uses.last() {
            // Stored in milliseconds, stamped by the server after the client sent the call.
            let floor = *last_sent - chrono::Duration::milliseconds(1);
            assert!(
                stored.last_used.is_some_and(|at| at >= floor),
                "round {round}: last_used {:?} is before the last acknowledged use, sent at \
                 {last_sent} (seed {seed})",
                stored.last_used
            );
        }
        println!(
            "round {round}: pg_ctl stop -m {mode} and start took {} ms; {round_acks} calls \
             acknowledged, {errors} failed (sent during the restart)",
            down.as_millis()
        );
    }
    println!(
        "{DATABASE_RESTARTS} PostgreSQL restarts under load: {acknowledged} acknowledged writes \
         and uses checked, {failed} calls failed, all of them sent before PostgreSQL was back"
    );
}
