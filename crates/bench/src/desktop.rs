//! `hubkey-bench desktop`: the desktop app's launch time, its Security screen's render time and
//! its memory, side by side with a bare Tauri window (`hubkey-bare-window`) built in the same
//! run. Prints figures; asserts nothing.
//!
//! Both programs run as the GUI tests run them (`hubkey_e2e::desktop::DesktopApp`: Xvfb, a
//! private D-Bus with an unlocked gnome-keyring, tauri-driver and WebKitWebDriver), against an
//! in-process hubkeyd whose user is signed in once through the window; every later launch
//! restores that session from the keyring, as a person's second launch does.
//!
//! How each figure is taken, so that it measures the app and not the driver:
//! - **Spawn**: the kernel's start time of the app process (`/proc/PID/stat`, in 10 ms clock
//!   ticks since boot), turned into wall-clock time; so a launch may read up to 10 ms long.
//! - **Page marks**: the UI sets `performance.mark`s (`hubkey:restored` when the signed-in
//!   screen replaces "Opening hubkey…", `hubkey:tokens-received` when the token list arrives);
//!   a probe injected through WebDriver records the click on Security, the moment the first
//!   row is in the DOM (MutationObserver) and "painted": the first task after the next
//!   animation frame (the frame that lays out and paints the rows). Page times are wall
//!   clock through `performance.timeOrigin`.
//! - **Launch → Security screen**: (spawn → signed-in screen) + (click on Security → rows
//!   painted), i.e. launch with the driver's reaction time between the two taken out. The
//!   driver-inclusive wall time is printed too.
//! - **Render**: list received → rows painted, on a list of 10 000 tokens.
//! - **Memory**: every 10 ms, the sum of PSS (`/proc/PID/smaps_rollup`: shared libraries
//!   divided among their users, so the sum counts each page once) and of RSS over the app
//!   process and all its descendants (WebKitWebProcess, WebKitNetworkProcess…), found by
//!   walking `/proc` from this process; the peak over the whole run (launch, Security screen
//!   with 10 000 tokens painted, then 2 s idle). The bare window is sampled the same way
//!   over launch, first paint and the same 2 s, alternately with the app. Each process's
//!   share at the peak sample is printed too; `--smaps DIR` keeps every process's
//!   `/proc/PID/smaps` and thread names from the end of each memory run.
//! - **Tray-resident** (`resident.rs`, first): the app's PSS with its window open and 30 s
//!   after closing it, and the reopen through the tray.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::Hubkeyd;
use serde_json::Value;
use tempfile::TempDir;

use crate::proc_stat::stat;
use crate::{insert_tokens, Result, PASSWORD, USER};

mod resident;

/// Tokens for the launch figure; the render and memory figures use `--large` (10 000).
const SMALL: usize = 1_000;
/// The registry host hubkeyd names (as in the GUI tests; nothing listens there): with it the
/// sign-in gets this device's auto token, as a real one does.
const REGISTRY: &str = "127.0.0.1:5999";
/// How long each memory run stays on its final screen after painting it.
const SETTLE: Duration = Duration::from_secs(2);
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How often the sampler looks for new processes of the app (it reads their memory every sample).
const RESCAN_EVERY: Duration = Duration::from_millis(50);

/// Records the click on Security, the first row in the DOM, and the first task after the
/// frame that paints it. Injected once the signed-in screen is up, before the click.
const PROBE: &str = r#"
const bench = { click: null, rows: null, frame: null, painted: null };
window.__hubkeyBench = bench;
document.addEventListener('click', (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (bench.click === null && target && target.closest('#nav-security')) bench.click = performance.now();
}, true);
const observer = new MutationObserver(() => {
  if (bench.rows !== null || document.querySelector('tbody tr[data-uuid]') === null) return;
  observer.disconnect();
  bench.rows = performance.now();
  requestAnimationFrame(() => {
    bench.frame = performance.now();
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { bench.painted = performance.now(); };
    channel.port2.postMessage(null);
  });
});
observer.observe(document.body, { childList: true, subtree: true });
"#;

/// Resolves true once the probe saw the rows painted, false after 10 s (the caller retries).
const WAIT_PAINTED: &str = r#"
const done = arguments[arguments.length - 1];
const started = Date.now();
const check = () => {
  const bench = window.__hubkeyBench;
  if (bench && bench.painted !== null) done(true);
  else if (Date.now() - started > 10000) done(false);
  else setTimeout(check, 25);
};
check();
"#;

/// The probe's times and the UI's marks (the first of each after the click).
const READ: &str = r#"
const bench = window.__hubkeyBench;
const first = (name, after) => {
  const found = performance.getEntriesByName(name, 'mark').find((mark) => mark.startTime >= after);
  return found ? found.startTime : null;
};
const count = document.querySelector('[data-testid=token-count]');
return {
  origin: performance.timeOrigin,
  restored: first('hubkey:restored', 0),
  received: first('hubkey:tokens-received', bench.click),
  click: bench.click,
  rows: bench.rows,
  painted: bench.painted,
  count: count ? count.textContent : null,
  domRows: document.querySelectorAll('tbody tr[data-uuid]').length,
};
"#;

/// Resolves after the next frame has been painted (the bare window's "rendered").
const NEXT_PAINT: &str = r#"
const done = arguments[arguments.length - 1];
requestAnimationFrame(() => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => done(performance.timeOrigin + performance.now());
  channel.port2.postMessage(null);
});
"#;

struct Options {
    app: PathBuf,
    bare: PathBuf,
    runs: usize,
    memory_runs: usize,
    large: usize,
    /// Where to write every process's `/proc/PID/smaps` at the end of each memory run.
    smaps: Option<PathBuf>,
    /// Closes and reopens of the tray-resident figure (`resident.rs`).
    resident_runs: usize,
    /// Only the tray-resident figure.
    resident_only: bool,
}

fn options(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let (mut app, mut bare) = (None, None);
    let (mut runs, mut memory_runs, mut large) = (5, 3, 10_000);
    let mut smaps = None;
    let (mut resident_runs, mut resident_only) = (3, false);
    while let Some(flag) = args.next() {
        if flag == "--resident-only" {
            resident_only = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--app" => app = Some(PathBuf::from(value)),
            "--bare" => bare = Some(PathBuf::from(value)),
            "--runs" => runs = value.parse()?,
            "--memory-runs" => memory_runs = value.parse()?,
            "--large" => large = value.parse()?,
            "--smaps" => smaps = Some(PathBuf::from(value)),
            "--resident-runs" => resident_runs = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let usage = "usage: hubkey-bench desktop --app PATH/TO/hubkey \
                 --bare PATH/TO/hubkey-bare-window [--runs N] [--memory-runs N] [--large N] [--smaps DIR] \
                 [--resident-runs N] [--resident-only]";
    Ok(Options {
        app: app.ok_or(usage)?.canonicalize()?,
        bare: bare.ok_or(usage)?.canonicalize()?,
        runs: runs.max(1),
        memory_runs: memory_runs.max(1),
        large: large.max(SMALL),
        smaps,
        resident_runs: if resident_only {
            resident_runs.max(1)
        } else {
            resident_runs
        },
        resident_only,
    })
}

/// Runs the desktop benchmark and prints its figures.
pub async fn run(args: impl Iterator<Item = String>) -> Result<()> {
    let options = options(args)?;
    let clock = Clock::new()?;
    println!(
        "hubkey desktop benchmark ({} launches per timing, {} memory runs each, {} cores)",
        options.runs,
        options.memory_runs,
        crate::cores()
    );
    println!("app:         {}", options.app.display());
    println!("bare window: {}", options.bare.display());

    let keyring = KeyringSession::start();
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(REGISTRY.to_owned()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir()?, "127.0.0.1:0", site).await;
    hub.add_user(USER, PASSWORD).await;
    let store = hub.hub.store();
    let user = store.user_by_name(USER).await?.ok_or("no bench user")?;
    // The sign-in below adds this device's auto token: SMALL in all.
    insert_tokens(store, &user.id, SMALL - 1, crate::LOAD_TOKENS, Utc::now()).await?;

    eprintln!("signing in once through the window");
    let app =
        DesktopApp::start_binary(&keyring, &hub.url, tempfile::tempdir()?, &options.app).await;
    app.sign_in(USER, PASSWORD).await;
    let mut home = app.quit().await;
    if options.resident_runs > 0 {
        home = resident::run(&keyring, &hub.url, home, &options).await?;
    }
    if options.resident_only {
        return Ok(());
    }

    let (small, home) = launches(&keyring, &hub.url, home, &options, &clock, SMALL).await?;
    insert_tokens(
        store,
        &user.id,
        options.large - SMALL,
        crate::LOAD_TOKENS,
        Utc::now(),
    )
    .await?;
    let (large, mut home) =
        launches(&keyring, &hub.url, home, &options, &clock, options.large).await?;

    let (mut app_memory, mut bare_memory, mut bare_launches) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=options.memory_runs {
        eprintln!(
            "memory {run}/{}: app with {} tokens, then the bare window",
            options.memory_runs, options.large
        );
        let sampler = Sampler::start(&options.app);
        let stay = Stay::settled(options.smaps.as_deref(), &format!("app-{run}"));
        let (_, back) =
            security_screen(&keyring, &hub.url, home, &options.app, &clock, stay).await?;
        app_memory.push(sampler.stop());
        home = back;
        let sampler = Sampler::start(&options.bare);
        let stay = Stay::settled(options.smaps.as_deref(), &format!("bare-{run}"));
        let (launch, back) =
            bare_window(&keyring, &hub.url, home, &options.bare, &clock, stay).await?;
        home = back;
        bare_launches.push(launch);
        bare_memory.push(sampler.stop());
    }

    report(options.large, &small, &large, &app_memory, &bare_memory);
    let values =
        |figure: fn(&BareLaunch) -> f64| bare_launches.iter().map(figure).collect::<Vec<_>>();
    println!(
        "\nthe bare window's own launch, for scale ({} launches, during the memory runs): \
         spawn → page start median {:.1} ms, spawn → load event median {:.1} ms",
        bare_launches.len(),
        median(values(|b| b.page_start)),
        median(values(|b| b.loaded)),
    );
    Ok(())
}

/// `options.runs` launches of the app, each ending on the Security screen (`tokens` tokens).
async fn launches(
    keyring: &KeyringSession,
    url: &str,
    mut home: TempDir,
    options: &Options,
    clock: &Clock,
    tokens: usize,
) -> Result<(Vec<Screen>, TempDir)> {
    let mut screens = Vec::new();
    for run in 1..=options.runs {
        eprintln!(
            "launch {run}/{}: Security screen with {tokens} tokens",
            options.runs
        );
        let (screen, back) =
            security_screen(keyring, url, home, &options.app, clock, Stay::NOT).await?;
        home = back;
        screens.push(screen);
    }
    Ok((screens, home))
}

/// One launch that ends on the Security screen with its rows painted (wall-clock ms).
struct Screen {
    spawned: f64,
    /// The signed-in screen is up (`hubkey:restored`).
    signed_in: f64,
    page_start: f64,
    click: f64,
    received: f64,
    /// The first row is in the DOM.
    rows: f64,
    painted: f64,
    count: String,
    dom_rows: u64,
}

impl Screen {
    /// Launch to the Security screen, without the driver's reaction time before the click.
    fn launch(&self) -> f64 {
        (self.signed_in - self.spawned) + (self.painted - self.click)
    }
    fn render(&self) -> f64 {
        self.painted - self.received
    }
}

/// How long a run stays on its final screen before quitting, and where to write its
/// processes' smaps then.
struct Stay {
    time: Duration,
    smaps: Option<PathBuf>,
}

impl Stay {
    /// Quit as soon as the screen is painted.
    const NOT: Stay = Stay {
        time: Duration::ZERO,
        smaps: None,
    };

    /// A memory run's stay: `SETTLE`, then the smaps into `smaps/name` if asked for.
    fn settled(smaps: Option<&Path>, name: &str) -> Self {
        Stay {
            time: SETTLE,
            smaps: smaps.map(|dir| dir.join(name)),
        }
    }

    async fn wait(self, binary: &Path) -> Result<()> {
        tokio::time::sleep(self.time).await;
        if let Some(dir) = self.smaps {
            std::fs::create_dir_all(&dir)?;
            for process in app_processes(binary) {
                let name = format!("{}-{}.smaps", process.name, process.pid);
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{}/smaps", process.pid)) {
                    std::fs::write(dir.join(name), text)?;
                }
                let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", process.pid))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                    .collect();
                let name = format!("{}-{}.threads", process.name, process.pid);
                std::fs::write(dir.join(name), threads.concat())?;
            }
            eprintln!("smaps written to {}", dir.display());
        }
        Ok(())
    }
}

/// Launches the app in `home`, opens Security, waits for its rows to be painted, stays
/// there as `stay` says, quits.
async fn security_screen(
    keyring: &KeyringSession,
    url: &str,
    home: TempDir,
    binary: &Path,
    clock: &Clock,
    stay: Stay,
) -> Result<(Screen, TempDir)> {
    let app = DesktopApp::start_binary(keyring, url, home, binary).await;
    app.wait_for("#nav-security").await;
    let spawned = spawned(binary, clock)?;
    app.webdriver.execute(PROBE, vec![]).await?;
    app.click("#nav-security").await;
    let mut painted = false;
    for _ in 0..12 {
        if app.webdriver.execute_async(WAIT_PAINTED, vec![]).await? == Value::Bool(true) {
            painted = true;
            break;
        }
    }
    if !painted {
        return Err("the Security screen's rows were not painted within 2 minutes".into());
    }
    let marks = app.webdriver.execute(READ, vec![]).await?;
    let origin = number(&marks, "origin")?;
    let at = |name: &str| number(&marks, name).map(|ms| origin + ms);
    let screen = Screen {
        spawned,
        page_start: origin,
        signed_in: at("restored")?,
        click: at("click")?,
        received: at("received")?,
        rows: at("rows")?,
        painted: at("painted")?,
        count: marks["count"].as_str().unwrap_or("?").to_owned(),
        dom_rows: marks["domRows"].as_u64().unwrap_or(0),
    };
    stay.wait(binary).await?;
    Ok((screen, app.quit().await))
}

/// The bare window's page start and load event, from its spawn (ms).
struct BareLaunch {
    page_start: f64,
    loaded: f64,
}

/// Launches the bare window in `home`, waits for its page to be painted, stays as `stay`
/// says, quits.
async fn bare_window(
    keyring: &KeyringSession,
    url: &str,
    home: TempDir,
    binary: &Path,
    clock: &Clock,
    stay: Stay,
) -> Result<(BareLaunch, TempDir)> {
    let app = DesktopApp::start_binary(keyring, url, home, binary).await;
    app.wait_for("body p").await;
    let spawned = spawned(binary, clock)?;
    app.webdriver.execute_async(NEXT_PAINT, vec![]).await?;
    let marks = app
        .webdriver
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0]; \
             return { origin: performance.timeOrigin, loaded: nav ? nav.loadEventEnd : null };",
            vec![],
        )
        .await?;
    let origin = number(&marks, "origin")?;
    let launch = BareLaunch {
        page_start: origin - spawned,
        loaded: origin + number(&marks, "loaded")? - spawned,
    };
    stay.wait(binary).await?;
    Ok((launch, app.quit().await))
}

/// When the running process of `binary` that this benchmark started was spawned (wall-clock ms).
fn spawned(binary: &Path, clock: &Clock) -> Result<f64> {
    let pid = app_processes(binary)
        .first()
        .map(|process| process.pid)
        .ok_or_else(|| format!("no {} among this benchmark's descendants", binary.display()))?;
    clock.start_of(pid)
}

fn number(marks: &Value, name: &str) -> Result<f64> {
    marks[name].as_f64().ok_or_else(|| {
        format!(
            "no {name} time from the page (is ui/dist older than its performance marks?): {marks}"
        )
        .into()
    })
}

fn report(tokens: usize, small: &[Screen], large: &[Screen], app: &[Peak], bare: &[Peak]) {
    let runs = small.len();
    println!(
        "\nlaunch → Security screen with {SMALL} tokens painted (target < 1000 ms), {runs} launches:"
    );
    print_stats(
        "launch (spawn → signed in + click → rows painted)",
        small,
        Screen::launch,
    );
    print_stats("  spawn → page start", small, |s| {
        s.page_start - s.spawned
    });
    print_stats("  page start → signed-in screen", small, |s| {
        s.signed_in - s.page_start
    });
    print_stats("  click → list received", small, |s| s.received - s.click);
    print_stats("  list received → rows painted", small, Screen::render);
    print_stats(
        "wall clock with the driver (spawn → rows painted)",
        small,
        |s| s.painted - s.spawned,
    );
    print_shown(small);

    println!("\nSecurity screen with {tokens} tokens, {runs} launches:");
    print_stats(
        "render: list received → rows painted (target < 200 ms)",
        large,
        Screen::render,
    );
    print_stats(
        "    list received → rows in the DOM (script)",
        large,
        |s| s.rows - s.received,
    );
    print_stats(
        "    rows in the DOM → painted (style, layout, paint)",
        large,
        |s| s.painted - s.rows,
    );
    print_stats("  click → list received (the list command)", large, |s| {
        s.received - s.click
    });
    print_stats("  launch, as above", large, Screen::launch);
    print_shown(large);

    println!(
        "\npeak memory of the app and of all its descendant processes, sampled every {} ms \
         (median of {} runs; target app/bare ≤ 1.3):",
        SAMPLE_EVERY.as_millis(),
        app.len()
    );
    let app_pss = median(app.iter().map(|p| p.pss_kib as f64).collect());
    let bare_pss = median(bare.iter().map(|p| p.pss_kib as f64).collect());
    let app_rss = median(app.iter().map(|p| p.rss_kib as f64).collect());
    let bare_rss = median(bare.iter().map(|p| p.rss_kib as f64).collect());
    println!(
        "  {:<10} {:>22} {:>14} {:>9}",
        "",
        format!("app ({tokens} tokens)"),
        "bare window",
        "app/bare"
    );
    for (name, a, b) in [
        ("PSS peak", app_pss, bare_pss),
        ("RSS peak", app_rss, bare_rss),
    ] {
        println!(
            "  {name:<10} {:>19.1} MiB {:>10.1} MiB {:>8.2}×",
            a / 1024.0,
            b / 1024.0,
            a / b
        );
    }
    for (name, peaks) in [("app", app), ("bare window", bare)] {
        let pss: Vec<String> = peaks
            .iter()
            .map(|p| format!("{:.1}", p.pss_kib as f64 / 1024.0))
            .collect();
        let samples: usize = peaks.iter().map(|p| p.samples).sum();
        println!(
            "  {name}: PSS peaks {} MiB ({samples} samples)",
            pss.join(", ")
        );
        if let Some(last) = peaks.last() {
            let mib = |processes: &BTreeMap<String, u64>| {
                let each: Vec<String> = processes
                    .iter()
                    .map(|(process, kib)| format!("{process} {:.1}", *kib as f64 / 1024.0))
                    .collect();
                each.join(", ")
            };
            println!(
                "    highest PSS per process, last run (MiB): {}",
                mib(&last.processes)
            );
            println!(
                "    at the peak, {:.1} s into the last run (MiB): {}",
                last.peak_after.as_secs_f64(),
                mib(&last.at_peak)
            );
        }
    }
}

fn print_stats(what: &str, screens: &[Screen], figure: impl Fn(&Screen) -> f64) {
    let values: Vec<f64> = screens.iter().map(figure).collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "  {what:<58} median {:>7.1} ms  min {min:>7.1}  max {max:>7.1}",
        median(values.clone())
    );
}

fn print_shown(screens: &[Screen]) {
    if let Some(screen) = screens.last() {
        println!(
            "  (the screen said \"{}\"; {} rows in the DOM)",
            screen.count, screen.dom_rows
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Converts a process's start time (clock ticks since boot) to wall-clock milliseconds.
struct Clock {
    boot_epoch_ms: f64,
    ticks_per_second: f64,
}

impl Clock {
    fn new() -> Result<Self> {
        let ticks_per_second = crate::proc_stat::ticks_per_second();
        // /proc/uptime counts in 10 ms steps: read it right after a step for a sharp origin.
        let first = uptime()?;
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let now = uptime()?;
            if now != first || Instant::now() > deadline {
                let seconds: f64 = now.parse()?;
                return Ok(Clock {
                    boot_epoch_ms: epoch_ms() - seconds * 1000.0,
                    ticks_per_second,
                });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn start_of(&self, pid: u32) -> Result<f64> {
        let fields = stat(pid).ok_or("the app's process is gone")?.1;
        let ticks: f64 = fields.get(19).ok_or("short /proc/PID/stat")?.parse()?;
        Ok(self.boot_epoch_ms + ticks / self.ticks_per_second * 1000.0)
    }
}

fn uptime() -> Result<String> {
    let text = std::fs::read_to_string("/proc/uptime")?;
    Ok(text.split_whitespace().next().unwrap_or("").to_owned())
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The highest memory seen over one run.
#[derive(Default)]
struct Peak {
    pss_kib: u64,
    rss_kib: u64,
    samples: usize,
    /// The highest PSS of each process, by name (peaks need not coincide).
    processes: BTreeMap<String, u64>,
    /// Each process's PSS in the sample with the highest sum, and when that was.
    at_peak: BTreeMap<String, u64>,
    peak_after: Duration,
}

/// Samples the memory of a program's processes on a thread until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Peak>,
}

impl Sampler {
    /// Starts sampling every process of `binary` started by this benchmark, and their descendants.
    fn start(binary: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let binary = binary.to_owned();
        let thread = std::thread::spawn(move || {
            let mut peak = Peak::default();
            let mut processes = Vec::new();
            let mut scanned: Option<Instant> = None;
            let started = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                if scanned.is_none_or(|at| at.elapsed() >= RESCAN_EVERY) {
                    processes = app_processes(&binary);
                    scanned = Some(Instant::now());
                }
                let (mut pss, mut rss) = (0, 0);
                let mut each = BTreeMap::new();
                for process in &processes {
                    if let Some((p, r)) = memory(process.pid) {
                        pss += p;
                        rss += r;
                        *each.entry(process.name.clone()).or_default() += p;
                        let highest = peak.processes.entry(process.name.clone()).or_default();
                        *highest = (*highest).max(p);
                    }
                }
                if !processes.is_empty() {
                    peak.samples += 1;
                    if pss > peak.pss_kib {
                        peak.at_peak = each;
                        peak.peak_after = started.elapsed();
                    }
                    peak.pss_kib = peak.pss_kib.max(pss);
                    peak.rss_kib = peak.rss_kib.max(rss);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            peak
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> Peak {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

struct Process {
    pid: u32,
    ppid: u32,
    name: String,
}

/// The processes of `binary` that descend from this one, followed by all their descendants.
fn app_processes(binary: &Path) -> Vec<Process> {
    let mut all: Vec<Process> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((name, fields)) = stat(pid) {
                if let Some(ppid) = fields.get(1).and_then(|p| p.parse().ok()) {
                    all.push(Process { pid, ppid, name });
                }
            }
        }
    }
    let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
    for (index, process) in all.iter().enumerate() {
        children.entry(process.ppid).or_default().push(index);
    }
    let descendants = |roots: Vec<usize>| {
        let mut found = roots;
        let mut next = 0;
        while next < found.len() {
            if let Some(kids) = children.get(&all[found[next]].pid) {
                found.extend(kids);
            }
            next += 1;
        }
        found
    };
    let ours = descendants(
        children
            .get(&std::process::id())
            .cloned()
            .unwrap_or_default(),
    );
    let roots: Vec<usize> = ours
        .into_iter()
        .filter(|&i| {
            std::fs::read_link(format!("/proc/{}/exe", all[i].pid)).is_ok_and(|exe| exe == binary)
        })
        .collect();
    let mut keep: Vec<usize> = descendants(roots);
    keep.dedup();
    let mut taken: Vec<Option<Process>> = all.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| taken[i].take()).collect()
}

/// (PSS, RSS) of a process in KiB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}
