//! The tray-resident figure (`hubkey-bench desktop --resident-runs N`): what the app costs
//! while it lives in the tray with its window closed, against the same app with the window
//! open, and how long the way back takes.
//!
//! One launch on the Security screen (the `SMALL` list), then `N` cycles of:
//! - **open**: 2 s after the Security screen painted, the PSS of every process of the app
//!   (`/proc/PID/smaps_rollup`, its anonymous and file-backed parts apart);
//! - **close** the window as its close button does (`WM_DELETE_WINDOW`); when each WebKit
//!   child process ended is noted;
//! - **closed**: 30 s after the close, the same PSS;
//! - **reopen** through the tray's Security item: from the moment the click is sent on the
//!   bus to the UI's `hubkey:security-painted` mark (the first task after the frame that
//!   paints the rows: those of the list the core kept from its last listing, which the
//!   server's list replaces), with the page's own times in between, and to the server's list
//!   (`hubkey:tokens-received`).
//!
//! `--smaps DIR` keeps every process's `/proc/PID/smaps` of each open and closed sample.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::tray::click_tray_item_at;
use serde_json::Value;
use tempfile::TempDir;

use super::{app_processes, median, number, Options, SETTLE};
use crate::Result;

/// How long after the close the resident figure is taken (issue 16).
const AFTER_CLOSE: Duration = Duration::from_secs(30);

/// Resolves true once the page has marked `hubkey:security-painted` and received the
/// server's list (`hubkey:tokens-received`), false after 10 s.
const WAIT_SECURITY_PAINTED: &str = r#"
const done = arguments[arguments.length - 1];
const started = Date.now();
const marked = (name) => performance.getEntriesByName(name, 'mark').length > 0;
const check = () => {
  if (marked('hubkey:security-painted') && marked('hubkey:tokens-received')) done(true);
  else if (Date.now() - started > 10000) done(false);
  else setTimeout(check, 10);
};
check();
"#;

/// The page's start, its navigation times and the UI's marks (ms since the page's origin).
const READ_PAGE: &str = r#"
const first = (name) => {
  const found = performance.getEntriesByName(name, 'mark')[0];
  return found ? found.startTime : null;
};
const nav = performance.getEntriesByType('navigation')[0];
return {
  origin: performance.timeOrigin,
  responseEnd: nav ? nav.responseEnd : null,
  domContentLoaded: nav ? nav.domContentLoadedEventStart : null,
  restored: first('hubkey:restored'),
  kept: first('hubkey:tokens-kept'),
  received: first('hubkey:tokens-received'),
  painted: first('hubkey:security-painted'),
};
"#;

/// One process's PSS, KiB.
#[derive(Clone, Copy, Default)]
struct Pss {
    total: u64,
    anon: u64,
    file: u64,
}

/// The PSS of each process of the app at one moment, by process name.
type Sample = BTreeMap<String, Pss>;

/// One close and reopen.
struct Cycle {
    open: Sample,
    closed: Sample,
    /// After the close, when each WebKit child process was seen gone (None: still there).
    gone: BTreeMap<String, Option<Duration>>,
    reopen: Reopen,
    /// The largest mappings of each process, closed (name, PSS KiB), largest first.
    closed_mappings: BTreeMap<String, Vec<(String, u64)>>,
}

/// The way back, ms from the tray click.
struct Reopen {
    page_start: f64,
    response_end: f64,
    script_done: f64,
    restored: f64,
    /// The list the core kept (None: the page had none and waited for the server's).
    kept: Option<f64>,
    received: f64,
    painted: f64,
}

/// Runs the resident cycles on a signed-in `home` and prints the figures; hands `home` back.
pub(super) async fn run(
    keyring: &KeyringSession,
    url: &str,
    home: TempDir,
    options: &Options,
) -> Result<TempDir> {
    let binary = options.app.as_path();
    let mut app = DesktopApp::start_binary(keyring, url, home, binary).await;
    app.wait_for("#nav-security").await;
    app.click("#nav-security").await;
    wait_security_painted(&app).await?;
    let pid = app_processes(binary)
        .first()
        .map(|process| process.pid)
        .ok_or("the app's process is gone")?;
    let mut cycles = Vec::new();
    for run in 1..=options.resident_runs {
        eprintln!(
            "resident {run}/{}: open, closed {} s, reopened",
            options.resident_runs,
            AFTER_CLOSE.as_secs()
        );
        tokio::time::sleep(SETTLE).await;
        let open = sample(binary);
        keep_smaps(
            options.smaps.as_deref(),
            &format!("resident-open-{run}"),
            binary,
        )?;

        app.close_window().await;
        let closed_at = Instant::now();
        let mut gone: BTreeMap<String, Option<Duration>> = open
            .keys()
            .filter(|name| name.starts_with("WebKit"))
            .map(|name| (name.clone(), None))
            .collect();
        while closed_at.elapsed() < AFTER_CLOSE {
            let running: Vec<String> = app_processes(binary).into_iter().map(|p| p.name).collect();
            for (name, when) in gone.iter_mut() {
                if when.is_none() && !running.contains(name) {
                    *when = Some(closed_at.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closed = sample(binary);
        let closed_mappings = app_processes(binary)
            .into_iter()
            .map(|process| (process.name, largest_mappings(process.pid, 12)))
            .collect();
        keep_smaps(
            options.smaps.as_deref(),
            &format!("resident-closed-{run}"),
            binary,
        )?;

        let clicked =
            click_tray_item_at(keyring, pid, "Security").ok_or("the tray has no Security item")?;
        app.switch_to_new_window().await;
        wait_security_painted(&app).await?;
        let page = app.webdriver.execute(READ_PAGE, vec![]).await?;
        let origin = number(&page, "origin")?;
        let at = |name: &str| number(&page, name).map(|ms| origin + ms - clicked);
        let reopen = Reopen {
            page_start: origin - clicked,
            response_end: at("responseEnd")?,
            script_done: at("domContentLoaded")?,
            restored: at("restored")?,
            kept: at("kept").ok(),
            received: at("received")?,
            painted: at("painted")?,
        };
        cycles.push(Cycle {
            open,
            closed,
            gone,
            reopen,
            closed_mappings,
        });
    }
    report(&cycles);
    Ok(app.quit().await)
}

async fn wait_security_painted(app: &DesktopApp) -> Result<()> {
    for _ in 0..12 {
        let painted = app
            .webdriver
            .execute_async(WAIT_SECURITY_PAINTED, vec![])
            .await?;
        if painted == Value::Bool(true) {
            return Ok(());
        }
    }
    Err("the Security screen was not painted within 2 minutes".into())
}

/// Every process of the app now, by name (two of one name are added up).
fn sample(binary: &Path) -> Sample {
    let mut sample = Sample::new();
    for process in app_processes(binary) {
        if let Some(pss) = pss(process.pid) {
            let entry = sample.entry(process.name).or_default();
            entry.total += pss.total;
            entry.anon += pss.anon;
            entry.file += pss.file;
        }
    }
    sample
}

fn pss(pid: u32) -> Option<Pss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some(Pss {
        total: field("Pss:")?,
        anon: field("Pss_Anon:").unwrap_or(0),
        file: field("Pss_File:").unwrap_or(0),
    })
}

/// A process's mappings grouped by what backs them (a file's name, `[heap]`, `anonymous`…),
/// the `count` with the most PSS, KiB.
fn largest_mappings(pid: u32, count: usize) -> Vec<(String, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.contains('-') && !first.ends_with(':') {
            // "start-end perms offset dev inode [path]"
            let path = line.split_whitespace().nth(5).unwrap_or("");
            current = match path {
                "" => "anonymous".to_owned(),
                path => Path::new(path)
                    .file_name()
                    .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned()),
            };
        } else if first == "Pss:" {
            let kib: u64 = fields.next().and_then(|k| k.parse().ok()).unwrap_or(0);
            *by_name.entry(current.clone()).or_default() += kib;
        }
    }
    let mut largest: Vec<(String, u64)> = by_name.into_iter().collect();
    largest.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    largest.truncate(count);
    largest
}

fn keep_smaps(dir: Option<&Path>, name: &str, binary: &Path) -> Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir)?;
    for process in app_processes(binary) {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{}/smaps", process.pid)) {
            std::fs::write(
                dir.join(format!("{}-{}.smaps", process.name, process.pid)),
                text,
            )?;
        }
    }
    Ok(())
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn report(cycles: &[Cycle]) {
    let runs = cycles.len();
    println!(
        "\ntray-resident: PSS of every process of the app, window open on the Security screen \
         vs {} s after closing it (median of {runs} closes; target closed/open ≤ 0.25):",
        AFTER_CLOSE.as_secs()
    );
    let mut names: Vec<String> = Vec::new();
    for cycle in cycles {
        for name in cycle.open.keys().chain(cycle.closed.keys()) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    println!(
        "  {:<18} {:>10} {:>10}   {:>22} {:>22}",
        "process (MiB)", "open", "closed", "open anon/file", "closed anon/file"
    );
    let figure = |sample: fn(&Cycle) -> &Sample, name: &str, part: fn(&Pss) -> u64| {
        median(
            cycles
                .iter()
                .map(|cycle| sample(cycle).get(name).map_or(0, part) as f64)
                .collect(),
        )
    };
    for name in &names {
        let open = |part| figure(|c| &c.open, name, part);
        let closed = |part| figure(|c| &c.closed, name, part);
        println!(
            "  {name:<18} {:>10.1} {:>10.1}   {:>10.1} /{:>10.1} {:>10.1} /{:>10.1}",
            mib(open(|p| p.total)),
            mib(closed(|p| p.total)),
            mib(open(|p| p.anon)),
            mib(open(|p| p.file)),
            mib(closed(|p| p.anon)),
            mib(closed(|p| p.file)),
        );
    }
    let sum = |sample: &Sample| sample.values().map(|p| p.total).sum::<u64>() as f64;
    let open: Vec<f64> = cycles.iter().map(|c| sum(&c.open)).collect();
    let closed: Vec<f64> = cycles.iter().map(|c| sum(&c.closed)).collect();
    let ratios: Vec<f64> = open.iter().zip(&closed).map(|(o, c)| c / o).collect();
    println!(
        "  {:<18} {:>10.1} {:>10.1}   closed/open {:.2} (each close: {})",
        "all",
        mib(median(open.clone())),
        mib(median(closed.clone())),
        median(ratios.clone()),
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(cycle) = cycles.last() {
        let gone: Vec<String> = cycle
            .gone
            .iter()
            .map(|(name, when)| match when {
                Some(after) => format!("{name} gone after {:.1} s", after.as_secs_f64()),
                None => format!("{name} still running"),
            })
            .collect();
        println!("  after the last close: {}", gone.join(", "));
        println!("  closed, the largest mappings of each process (MiB of PSS), last close:");
        for (process, mappings) in &cycle.closed_mappings {
            let each: Vec<String> = mappings
                .iter()
                .map(|(name, kib)| format!("{name} {:.1}", mib(*kib as f64)))
                .collect();
            println!("    {process}: {}", each.join(", "));
        }
    }

    println!("\nreopen through the tray's Security → Security screen painted (target < 1000 ms), {runs} reopens:");
    let stats = |what: &str, figure: fn(&Reopen) -> f64| {
        let values: Vec<f64> = cycles.iter().map(|c| figure(&c.reopen)).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "  {what:<52} median {:>7.1} ms  min {min:>7.1}  max {max:>7.1}",
            median(values.clone())
        );
    };
    stats("click → Security screen painted", |r| r.painted);
    stats(
        "  click → page start (window, webview, web process)",
        |r| r.page_start,
    );
    stats("  page start → page loaded", |r| {
        r.response_end - r.page_start
    });
    stats("  page loaded → script run (DOMContentLoaded)", |r| {
        r.script_done - r.response_end
    });
    stats("  script run → session restored", |r| {
        r.restored - r.script_done
    });
    let kept = cycles.iter().filter(|c| c.reopen.kept.is_some()).count();
    if kept == runs {
        stats("  session restored → kept token list received", |r| {
            r.kept.unwrap_or(f64::NAN) - r.restored
        });
        stats("  kept token list received → rows painted", |r| {
            r.painted - r.kept.unwrap_or(f64::NAN)
        });
    } else {
        println!("  ({kept} of {runs} reopens had a kept list: the rows painted are the server's)");
        stats("  session restored → token list received", |r| {
            r.received - r.restored
        });
        stats("  token list received → rows painted", |r| {
            r.painted - r.received
        });
    }
    stats("click → the server's token list received", |r| r.received);
    stats(
        "  session restored → the server's token list received",
        |r| r.received - r.restored,
    );
}
