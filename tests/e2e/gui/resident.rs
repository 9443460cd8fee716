//! The app lives in the tray all day: closing its window frees the webview (its WebKit web
//! process ends), the app, its watcher and its tray stay, and every way back (the tray's two
//! items, a second launch) makes the window again on the restored session; what happened
//! while it was closed (the server ending the session) is told when it opens. The Security
//! screen made again paints the list the core kept at once, until the server's replaces it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hubkey_api::{PatchAccessTokenRequest, Scope};
use hubkey_e2e::desktop::{app_binary, image_of, restarted, DesktopApp};
use hubkey_e2e::faults::{Fault, FaultProxy};
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::pages::Screen;
use hubkey_e2e::server::manual_token;
use hubkey_e2e::tray::{app_pids, click_tray_item, tray_item};

use super::{hub_with_registry, PASSWORD};

/// The names (`comm`) of the processes whose parent is `pid`: WebKit's web and network
/// processes, for the app.
fn children(pid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let parent: u32 = rest.split(' ').nth(1)?.parse().ok()?;
            (parent == pid).then(|| name.to_owned())
        })
        .collect()
}

/// `pid`'s resident pages of each mapped file that no other process maps, in KiB
/// (`Private_Clean` in its `smaps`). Pages other processes map too (another app under test,
/// Xvfb's Mesa) are not counted: the kernel keeps those.
fn private_clean_by_file(pid: u32) -> BTreeMap<String, u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap_or_else(|err| panic!("the app (pid {pid}) is gone: {err}"));
    let mut by_file = BTreeMap::<String, u64>::new();
    let mut file = String::new();
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Private_Clean:") {
            let kib: u64 = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            *by_file.entry(file.clone()).or_default() += kib;
        } else if let Some((range, rest)) = line.split_once(' ') {
            // A mapping's header: `start-end perms offset dev inode [path]`.
            if range.contains('-') && !range.ends_with(':') {
                file = rest
                    .split_whitespace()
                    .nth(4)
                    .unwrap_or("[anonymous]")
                    .to_owned();
            }
        }
    }
    by_file
}

/// The libraries' part of [`private_clean_by_file`], in KiB, and the five largest, a line
/// each. The app's own binary is left out: after a restart, a page-out leaves about 13 MiB of
/// the debug build's pages resident (measured, on this machine's kernel 6.18), while it
/// leaves none of the libraries'.
fn private_library_kib(pid: u32) -> (u64, String) {
    let binary = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let mut libraries: Vec<(String, u64)> = private_clean_by_file(pid)
        .into_iter()
        .filter(|(file, _)| Path::new(file) != binary)
        .collect();
    libraries.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    let largest = libraries
        .iter()
        .take(5)
        .map(|(file, kib)| format!("  {kib} KiB {file}\n"))
        .collect();
    (libraries.iter().map(|(_, kib)| kib).sum(), largest)
}

/// The devices `pid` has open (`/dev/…` targets of its descriptors): what a C library opens
/// once per image and keeps, such as `/dev/urandom`.
fn open_devices(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.starts_with("/dev/"))
        .collect()
}

fn has_web_process(pid: u32) -> bool {
    children(pid)
        .iter()
        .any(|name| name.starts_with("WebKitWebProces"))
}

/// Closes the window and waits until its web process is gone; the app itself stays.
pub(super) async fn close_and_wait(app: &DesktopApp, pid: u32) {
    app.close_window().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while has_web_process(pid) {
        assert!(
            Instant::now() < deadline,
            "the web process outlived its window: {:?}",
            children(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "closing the window ended the app"
    );
}

/// Closes the window and waits until the app has started itself again without it
/// (`resident.rs`): a new image of the same process, its tray up.
pub(super) async fn close_and_restart(app: &DesktopApp, keyring: &KeyringSession, pid: u32) {
    let before = image_of(pid);
    close_and_wait(app, pid).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while image_of(pid) == before || !restarted(pid) {
        assert!(
            Instant::now() < deadline,
            "the app did not start itself again without its window"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_tray(keyring, pid, "the new image's tray", |menu| {
        !menu.is_empty()
    })
    .await;
}

fn click(keyring: &KeyringSession, pid: u32, label: &str) {
    assert!(click_tray_item(keyring, pid, label), "no tray item {label}");
}

/// Waits up to 20 s for `condition` on the tray item of `pid`.
async fn wait_for_tray(
    keyring: &KeyringSession,
    pid: u32,
    what: &str,
    condition: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tray_item(keyring, pid).is_some_and(|item| condition(&item.menu)) {
            return;
        }
        assert!(Instant::now() < deadline, "the tray never showed {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_frees_its_webview_and_every_way_back_restores_it() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    // The watcher polls every second, so the server's end of the session is seen quickly.
    std::env::set_var("HUBKEY_WATCH_INTERVAL_SECS", "1");
    let hub = hub_with_registry().await;
    let mut app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let [pid] = app_pids(&app_binary(), app.home.path())[..] else {
        panic!("one app process expected");
    };
    assert!(has_web_process(pid), "{:?}", children(pid));
    wait_for_tray(&keyring, pid, "the account", |menu| {
        menu.iter().any(|label| label == "Signed in as ann")
    })
    .await;

    // Closed: the webview's process ends; the app and its tray stay, still signed in. Then
    // the app starts itself again without the window (`resident.rs`): same process, a fresh
    // image that never loaded a webview, WebKit's network process gone with the old one
    // (reaped, not left a zombie), and the pages of its start-up code given back
    // (`memory.rs`).
    close_and_restart(&app, &keyring, pid).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !children(pid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the old image's children outlived it: {:?}",
            children(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without the page-out, the new image holds about 30 MiB of them; after it, the few the
    // tray and the watcher touch again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (kept, largest) = private_library_kib(pid);
        if kept < 8 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kept} KiB of library pages only the app maps still resident 15 s after the \
             close, most in:\n{largest}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The new image's tray, on the session carried over.
    wait_for_tray(&keyring, pid, "the account after the restart", |menu| {
        menu.iter().any(|label| label == "Signed in as ann")
    })
    .await;
    let devices_after_one_restart = open_devices(pid);

    // The tray's Open: a new window, on the restored session's Account screen.
    click(&keyring, pid, "Open hubkey");
    app.switch_to_new_window().await;
    assert_eq!(app.home().signed_in_as().await, "Signed in as ann");
    app.screenshot("resident-reopened").await;

    // The tray's Security: a new window on the Security screen (asked for before its page
    // was there to hear it).
    close_and_restart(&app, &keyring, pid).await;
    click(&keyring, pid, "Security");
    app.switch_to_new_window().await;
    app.security().wait_for_rows().await;
    assert!(app.nav().is_current(Screen::Security).await);

    // A second launch: the running app opens its window and the launch leaves.
    close_and_restart(&app, &keyring, pid).await;
    let launched = Command::new(app_binary())
        .envs(keyring.env())
        .env("DISPLAY", app.display())
        .env("HOME", app.home.path())
        .env("XDG_CONFIG_HOME", app.home.path().join(".config"))
        .env("XDG_CACHE_HOME", app.home.path().join(".cache"))
        .env("DOCKER_CONFIG", &app.docker_config)
        .env("HUBKEY_SERVER_URL", &hub.url)
        .env("NO_AT_BRIDGE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("a second launch");
    assert!(launched.success(), "{launched:?}");
    app.switch_to_new_window().await;
    assert_eq!(app.home().signed_in_as().await, "Signed in as ann");

    // Closed while the server ends the session: the watcher signs the app out, and the
    // window, opened later, says why.
    close_and_restart(&app, &keyring, pid).await;
    hub.sign_in("ann", PASSWORD)
        .await
        .revoke_all_sessions()
        .await
        .unwrap();
    wait_for_tray(&keyring, pid, "the sign-out", |menu| {
        menu.iter().any(|label| label == "Not signed in")
    })
    .await;
    // Four restarts on, no descriptor an image left open was handed on to the next.
    let devices = open_devices(pid);
    assert!(
        devices.len() <= devices_after_one_restart.len(),
        "after four restarts {devices:?}, after one {devices_after_one_restart:?}"
    );
    click(&keyring, pid, "Open hubkey");
    app.switch_to_new_window().await;
    let notice = app.sign_in_page().notice().await;
    assert_eq!(notice.code.as_deref(), Some("session_ended"), "{notice:?}");
    app.screenshot("resident-signed-out-while-closed").await;
    assert_eq!(app_pids(&app_binary(), app.home.path()), [pid]);
}

/// Reopened from the tray, the Security screen paints the list the core kept from its last
/// listing at once, marked as being refreshed, while the server is asked (its answer is held
/// back by a proxy until the kept list was seen); the server's list then replaces it whole (a
/// token deactivated meanwhile shows deactivated). With the server gone, the kept list stays
/// with "Could not refresh".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_security_screen_paints_the_kept_list_until_the_servers_replaces_it() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let proxy = FaultProxy::start(hub.host()).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    let ci = manual_token(&ann, "ci deploy", Scope::Read).await;
    let mut app = DesktopApp::start(&keyring, &proxy.url).await;
    app.sign_in_page().sign_in("ann", PASSWORD).await;
    let [pid] = app_pids(&app_binary(), app.home.path())[..] else {
        panic!("one app process expected");
    };
    let security = app.nav().security().await;
    security.row(ci.uuid).wait_state("active").await;

    // Closed while the token is deactivated through the API.
    close_and_restart(&app, &keyring, pid).await;
    let deactivate = PatchAccessTokenRequest {
        is_active: Some(false),
        ..PatchAccessTokenRequest::default()
    };
    ann.patch_token(ci.uuid, &deactivate).await.unwrap();
    proxy.set(Fault::Held {
        path: "/v2/access-tokens?".into(),
    });

    // Reopened: the kept list at once, the token as it was, while the server's answer is held.
    click(&keyring, pid, "Security");
    app.switch_to_new_window().await;
    let security = app.security();
    security.wait_kept().await;
    security.row(ci.uuid).wait_state("active").await;
    app.screenshot("resident-reopened-kept-list").await;

    // The server's answer replaces it.
    proxy.release();
    security.row(ci.uuid).wait_state("inactive").await;
    security.wait_kept_gone().await;
    assert!(proxy.faulted() >= 1, "the list was never asked for");
    app.screenshot("resident-reopened-refreshed").await;

    // Closed, and the server goes: the kept list (as last refreshed) with "Could not refresh".
    close_and_restart(&app, &keyring, pid).await;
    drop(hub.stop().await);
    drop(proxy);
    click(&keyring, pid, "Security");
    app.switch_to_new_window().await;
    let security = app.security();
    assert_eq!(
        security.wait_refresh_failed().await.as_deref(),
        Some("unreachable")
    );
    security.row(ci.uuid).wait_state("inactive").await;
    app.screenshot("resident-reopened-server-gone").await;
}
