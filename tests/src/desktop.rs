//! The real desktop app under a virtual display, driven through tauri-driver and
//! WebKitWebDriver, with its own HOME, XDG dirs, docker config and a private keyring.
//!
//! Needs: `Xvfb` (xvfb), `WebKitWebDriver` (webkit2gtk-driver), `tauri-driver`
//! (`cargo install tauri-driver --locked`), and the app built with
//! `cargo build -p hubkey --features ipc-audit` (scripts/test does both; the feature, which the
//! secrets scan needs, is for debug builds only).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use tempfile::TempDir;

use crate::keyring::KeyringSession;

/// A virtual X display. Dropping it stops Xvfb.
pub struct Display {
    pub number: u32,
    child: Child,
}

impl Display {
    /// Starts Xvfb on the first free display number from :90. A lock left by an X server
    /// that no longer runs counts as free.
    pub fn start() -> Self {
        let number = (90..200)
            .find(|&n| display_is_free(n))
            .expect("a free X display number");
        remove_display_files(number);
        let child = Command::new("Xvfb")
            .arg(format!(":{number}"))
            .args(["-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt-get install xvfb)");
        wait_until(Duration::from_secs(10), "Xvfb to open its socket", || {
            Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()
        });
        Display { number, child }
    }
}

/// Whether display `:n` has no lock, or a lock whose server is gone.
fn display_is_free(n: u32) -> bool {
    match std::fs::read_to_string(format!("/tmp/.X{n}-lock")) {
        Err(_) => !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists(),
        Ok(pid) => !Path::new(&format!("/proc/{}", pid.trim())).exists(),
    }
}

fn remove_display_files(n: u32) {
    let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
    let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
}

impl Drop for Display {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock and socket; SIGKILL only if it does not stop.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_display_files(self.number);
    }
}

/// The app binary: `HUBKEY_APP`, else `target/<profile>/hubkey` next to the test executable.
pub fn app_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HUBKEY_APP") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("hubkey");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p hubkey --features ipc-audit`",
        binary.display()
    );
    binary
}

/// The desktop app running under a display, a keyring and tauri-driver, with a WebDriver
/// session on its window. Dropping it ends the session and stops everything by PID.
pub struct DesktopApp {
    pub webdriver: Client,
    /// The app's HOME; XDG dirs live below it.
    pub home: TempDir,
    /// `$DOCKER_CONFIG`.
    pub docker_config: PathBuf,
    /// Sessions on earlier images of the app, kept open until the end: ending one would have
    /// its WebKitWebDriver end the browser process it launched, the app's PID.
    retired: Vec<Client>,
    /// The WebKitWebDriver processes attached to later images ([`DesktopApp::reattach`]).
    attached: Vec<ProcessGroup>,
    /// The image of the app the session is attached to, when it is not the launched one.
    attached_to: Option<String>,
    /// The app's binary, to find its process.
    binary: PathBuf,
    _driver: ProcessGroup,
    _display: Display,
}

/// A child started as the leader of its own process group. Dropping it kills the whole
/// group (tauri-driver, the WebKitWebDriver it starts and the app under test; chromedriver
/// and its Chromium), also when a test fails half-way through starting them, and returns
/// once every process of the group has exited.
pub struct ProcessGroup(Child);

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        std::os::unix::process::CommandExt::process_group(command, 0);
        command.spawn().map(ProcessGroup)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = self.0.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
        // A killed process keeps its files, its D-Bus connection among them, until its last
        // thread has torn down its address space: measured here, the app's bus name stayed
        // up to 1.7 s after SIGKILL on a loaded machine, its main thread already a zombie.
        // An app started meanwhile on the same bus finds its single-instance name taken,
        // hands over to the dying one and exits. So dropped means gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !group_members(group).iter().all(ProcessInfo::has_exited) {
            if Instant::now() >= deadline {
                println!(
                    "process group {group} still runs:\n{}",
                    describe(&group_members(group))
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A process as `/proc` shows it.
struct ProcessInfo {
    pid: u32,
    command: String,
    /// The state of each of its threads (`Z` once a thread has exited).
    thread_states: Vec<char>,
    exe: Option<PathBuf>,
}

impl ProcessInfo {
    /// Every thread has exited (only a zombie waiting to be reaped is left): its files
    /// are closed.
    fn has_exited(&self) -> bool {
        self.thread_states.iter().all(|state| *state == 'Z')
    }
}

impl std::fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let states: String = self.thread_states.iter().collect();
        write!(f, "{} {} (threads {states})", self.pid, self.command)
    }
}

/// The processes of a list, one a line, for failure messages.
fn describe(processes: &[ProcessInfo]) -> String {
    processes
        .iter()
        .map(|process| format!("  {process}\n"))
        .collect()
}

/// The processes of process group `group`.
fn group_members(group: u32) -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (command, state, pgrp) =
                parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            (pgrp == group).then_some((pid, command, state))
        })
        .map(|(pid, command, state)| {
            let mut thread_states: Vec<char> = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|task| {
                    let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                    Some(parse_stat(&stat)?.1)
                })
                .collect();
            if thread_states.is_empty() {
                thread_states.push(state);
            }
            ProcessInfo {
                pid,
                command,
                thread_states,
                exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok(),
            }
        })
        .collect()
}

/// The command name, state and process group of a `/proc/PID/stat` line
/// ("PID (COMMAND) STATE PPID PGRP ...": the command may hold spaces and parentheses).
fn parse_stat(stat: &str) -> Option<(String, char, u32)> {
    let (head, rest) = stat.rsplit_once(") ")?;
    let command = head.split_once(" (")?.1.to_owned();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((command, state, pgrp))
}

impl DesktopApp {
    /// Starts the app with `HUBKEY_SERVER_URL=server_url` in a fresh HOME.
    pub async fn start(keyring: &KeyringSession, server_url: &str) -> Self {
        Self::start_in(keyring, server_url, tempfile::tempdir().unwrap()).await
    }

    /// Starts the app in an existing HOME (to see what survives a restart).
    pub async fn start_in(keyring: &KeyringSession, server_url: &str, home: TempDir) -> Self {
        Self::start_binary(keyring, server_url, home, &app_binary()).await
    }

    /// Starts `binary`, a Tauri app (the desktop benchmark also starts a bare window this
    /// way), exactly as [`DesktopApp::start_in`] starts hubkey.
    pub async fn start_binary(
        keyring: &KeyringSession,
        server_url: &str,
        home: TempDir,
        binary: &Path,
    ) -> Self {
        // The bus drops a previous app's single-instance name a moment after that app is
        // gone; an app that finds the name taken hands over to its owner and exits.
        keyring.wait_until_name_is_free(SINGLE_INSTANCE_NAME, Duration::from_secs(30));
        let display = Display::start();
        let docker_config = home.path().join(".docker");
        std::fs::create_dir_all(&docker_config).unwrap();
        // What the driver, WebKitWebDriver and the app print, kept with the app's files (the
        // secrets scan reads it).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.path().join("app.log"))
            .unwrap();
        let port = free_port();
        let native_port = free_port();
        let mut command = Command::new(tauri_driver());
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .envs(keyring.env())
            .env("DISPLAY", format!(":{}", display.number))
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("XDG_CACHE_HOME", home.path().join(".cache"))
            .env("DOCKER_CONFIG", &docker_config)
            .env("HUBKEY_SERVER_URL", server_url)
            .env("NO_AT_BRIDGE", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let driver = ProcessGroup::spawn(&mut command)
            .expect("tauri-driver (cargo install tauri-driver --locked)");
        wait_until(Duration::from_secs(15), "tauri-driver to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": binary }),
        );
        let launch = Launch {
            group: driver.0.id(),
            binary: binary.canonicalize().unwrap_or_else(|_| binary.to_owned()),
            home: home.path(),
            keyring,
        };
        let webdriver = new_session(port, capabilities, &launch).await;
        let binary = launch.binary;
        DesktopApp {
            webdriver,
            home,
            docker_config,
            retired: Vec::new(),
            attached: Vec::new(),
            attached_to: None,
            binary,
            _driver: driver,
            _display: display,
        }
    }

    /// Waits up to 20 s for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let found = tokio::time::timeout(
            Duration::from_secs(20),
            self.webdriver.wait().for_element(Locator::Css(css)),
        )
        .await;
        match found {
            Ok(element) => element.unwrap(),
            Err(_) => panic!("no {css} within 20 s"),
        }
    }

    /// Types `text` into the field `css` (cleared first).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Signs in through the window and waits for the signed-in screen to name `username`
    /// (the sign-in page's [`crate::pages::SignInPage::sign_in`]; the desktop benchmark uses it).
    pub async fn sign_in(&self, username: &str, password: &str) {
        self.sign_in_page().sign_in(username, password).await;
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    /// The text of `css`, once present.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// Saves a screenshot as `NAME.png` in the test's screenshot folder and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        // Let the last DOM change reach the screen first.
        let _ = self
            .webdriver
            .execute_async(
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));",
                vec![],
            )
            .await;
        let png = self.webdriver.screenshot().await.unwrap();
        let dir = screenshot_dir();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The app's X display (`:N`).
    pub fn display(&self) -> String {
        format!(":{}", self._display.number)
    }

    /// Runs xdotool on the app's display: whether it succeeded, and what it printed.
    fn xdotool(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", self.display())
            .output()
            .expect("xdotool (Debian package xdotool)");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
    }

    /// The X window id of the visible window titled `title`, waiting up to 20 s for it.
    async fn x_window(&self, title: &str) -> String {
        let pattern = format!("^{title}$");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (found, ids) = self.xdotool(&["search", "--onlyvisible", "--name", &pattern]);
            if let Some(id) = ids.lines().next().filter(|_| found) {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no window titled {title:?} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Answers the native save dialog titled `title` (GTK's file chooser, out of WebDriver's
    /// reach) as a person would: types `path` into its name field and presses Enter, with
    /// xdotool on the app's display. Waits up to 20 s for the dialog.
    pub async fn answer_save_dialog(&self, title: &str, path: &Path) {
        let window = self.x_window(title).await;
        // The dialog opens with its name field focused and the suggested name selected.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for args in [
            &["windowfocus", "--sync", window.as_str()][..],
            &["key", "--clearmodifiers", "ctrl+a"],
            &["type", "--delay", "5", &path.display().to_string()],
            &["key", "Return"],
        ] {
            let (ok, _) = self.xdotool(args);
            assert!(ok, "xdotool {args:?} failed");
        }
    }

    /// Closes the app's window as its title bar's close button does: the window manager's
    /// `WM_DELETE_WINDOW` request (there is no window manager here to send it, so the test
    /// sends it itself, through Xlib from Python's ctypes).
    pub async fn close_window(&self) {
        let window = self.x_window("hubkey").await;
        let status = Command::new("python3")
            .args(["-c", CLOSE_WINDOW, &window])
            .env("DISPLAY", self.display())
            .status()
            .expect("python3");
        assert!(status.success(), "sending WM_DELETE_WINDOW failed");
    }

    /// Points the WebDriver session at the app's window made again after a close, waiting up
    /// to 20 s for it. When the app restarted itself without its window meanwhile (Linux,
    /// `src-tauri/src/resident.rs`), the session lost its browser: a new one is attached to
    /// the new image ([`DesktopApp::reattach`]).
    pub async fn switch_to_new_window(&mut self) {
        let pid = self.app_pid();
        if self.attached_to != Some(image_of(pid)) && restarted(pid) {
            self.reattach(pid).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(handles) = self.webdriver.windows().await {
                if let Some(handle) = handles.into_iter().next() {
                    if self.webdriver.switch_to_window(handle).await.is_ok() {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no new window within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The app's process (one, else the test fails).
    pub fn app_pid(&self) -> u32 {
        match crate::tray::app_pids(&self.binary, self.home.path())[..] {
            [pid] => pid,
            ref pids => panic!("one app process expected, found {pids:?}"),
        }
    }

    /// Attaches a new WebDriver session to the image the app's process `pid` runs now: a
    /// WebKitWebDriver of its own connects to the inspector server the launch asked WebKit
    /// for (`WEBKIT_INSPECTOR_SERVER`, inherited by every image), once the new image's window
    /// listens there. The old session is kept, not ended (see [`DesktopApp::retired`]).
    async fn reattach(&mut self, pid: u32) {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let inspector = environ
            .split(|byte| *byte == 0)
            .find_map(|var| var.strip_prefix(b"WEBKIT_INSPECTOR_SERVER="))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .expect("the app was launched with WEBKIT_INSPECTOR_SERVER");
        wait_until(
            Duration::from_secs(20),
            "the new image's inspector server",
            || TcpStream::connect(inspector.as_str()).is_ok(),
        );
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.home.path().join("app.log"))
            .unwrap();
        let port = free_port();
        let driver = ProcessGroup::spawn(
            Command::new("WebKitWebDriver")
                .arg(format!("--port={port}"))
                .arg(format!("--target={inspector}"))
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .expect("WebKitWebDriver (apt-get install webkit2gtk-driver)");
        wait_until(Duration::from_secs(15), "WebKitWebDriver to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("webkitgtk:browserOptions".into(), serde_json::json!({}));
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let mut builder = ClientBuilder::new(connector);
            builder.capabilities(capabilities.clone());
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    println!("no session on the new image yet ({err}); retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(err) => panic!("no WebDriver session on the app's new image: {err}"),
            }
        };
        self.retired
            .push(std::mem::replace(&mut self.webdriver, client));
        self.attached.push(driver);
        self.attached_to = Some(image_of(pid));
    }

    /// Ends the WebDriver session (the app quits), stops the driver and its children, waits
    /// until they are gone, and hands back HOME.
    pub async fn quit(mut self) -> TempDir {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.webdriver.clone().close()).await;
        std::mem::replace(&mut self.home, tempfile::tempdir().unwrap())
    }
}

/// Which image process `pid` runs: where its binary is mapped, which address space layout
/// randomisation picks anew at each `execve`.
pub fn image_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .and_then(|maps| maps.split('-').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether process `pid` runs an image the app started itself (`--resident`).
pub fn restarted(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|byte| *byte == 0)
            .any(|arg| arg == b"--resident")
    })
}

/// Where screenshots go: `HUBKEY_SCREENSHOTS`, else `target/<profile>/screenshots` next to
/// the test executable. Printed with each one.
pub fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("HUBKEY_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap();
    println!("screenshots: {}", dir.display());
    dir
}

/// The D-Bus name tauri-plugin-single-instance holds while hubkey runs (its identifier and
/// `.SingleInstance`). A hubkey that finds it taken passes its arguments to the owner and
/// exits: the "second launch focuses the running app" of `src-tauri/src/lib.rs`.
pub const SINGLE_INSTANCE_NAME: &str = "dev.hubkey.desktop.SingleInstance";

/// An app being started under tauri-driver, watched while its WebDriver session starts.
struct Launch<'a> {
    /// tauri-driver's process group: WebKitWebDriver and the app are in it.
    group: u32,
    binary: PathBuf,
    home: &'a Path,
    keyring: &'a KeyringSession,
}

impl Launch<'_> {
    /// Resolves once the app has started and exited again. WebKitWebDriver does not notice
    /// a browser that exits before it connects: the session request would never be answered.
    async fn app_exited(&self) {
        let mut started = false;
        loop {
            let running = group_members(self.group).iter().any(|process| {
                process.exe.as_deref() == Some(&self.binary) && !process.has_exited()
            });
            if running {
                started = true;
            } else if started {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What a failed start leaves to look at: the processes of the driver's group, who
    /// owns the single-instance name, and the end of what the driver, WebKitWebDriver and
    /// the app printed.
    fn diagnosis(&self) -> String {
        let owner = self.keyring.name_owner_pid(SINGLE_INSTANCE_NAME);
        let log = std::fs::read_to_string(self.home.join("app.log")).unwrap_or_default();
        let start = (log.len().saturating_sub(4000)..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!(
            "processes of tauri-driver's group:\n{}{SINGLE_INSTANCE_NAME} owned by: {owner:?}\n\
             app.log (end):\n{}",
            describe(&group_members(self.group)),
            &log[start..]
        )
    }
}

/// Opens a WebDriver session through tauri-driver. tauri-driver listens before the
/// WebKitWebDriver behind it does, so a refused or cut-off first request is retried. Fails
/// at once, with what the app printed, when the app exits before the session starts.
async fn new_session(
    port: u16,
    capabilities: serde_json::Map<String, serde_json::Value>,
    launch: &Launch<'_>,
) -> Client {
    // Generous: on a loaded machine WebKit alone can take tens of seconds to start.
    let deadline = Instant::now() + Duration::from_secs(90);
    let url = format!("http://127.0.0.1:{port}");
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(capabilities.clone());
        let session = builder.connect(&url);
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(Duration::from_secs(60), session) => attempt,
            () = launch.app_exited() => panic!(
                "the app exited before its WebDriver session started\n{}",
                launch.diagnosis()
            ),
        };
        match attempt {
            Ok(Ok(client)) => return client,
            Ok(Err(fantoccini::error::NewSessionError::FailedC(err)))
                if Instant::now() < deadline =>
            {
                println!("WebDriver not ready yet ({err}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(Err(err)) => panic!(
                "no WebDriver session on the app: {err}\n{}",
                launch.diagnosis()
            ),
            Err(_) => panic!(
                "the WebDriver session did not start within 60 s\n{}",
                launch.diagnosis()
            ),
        }
    }
}

fn tauri_driver() -> PathBuf {
    if let Some(path) = std::env::var_os("TAURI_DRIVER") {
        return PathBuf::from(path);
    }
    let home_bin = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/tauri-driver"))
        .filter(|path| path.exists());
    home_bin.unwrap_or_else(|| PathBuf::from("tauri-driver"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `WM_DELETE_WINDOW` to the X window whose id is the first argument, on `$DISPLAY`.
const CLOSE_WINDOW: &str = r#"
import ctypes, sys
x = ctypes.cdll.LoadLibrary("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XInternAtom.restype = ctypes.c_ulong
x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
x.XFlush.argtypes = [ctypes.c_void_p]
x.XCloseDisplay.argtypes = [ctypes.c_void_p]

class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5)]

class XEvent(ctypes.Union):
    _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

display = x.XOpenDisplay(None)
if not display:
    sys.exit("cannot open the display")
window = int(sys.argv[1])
event = XEvent()
event.xclient.type = 33  # ClientMessage
event.xclient.window = window
event.xclient.message_type = x.XInternAtom(display, b"WM_PROTOCOLS", 0)
event.xclient.format = 32
event.xclient.data[0] = x.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
event.xclient.data[1] = 0  # CurrentTime
if not x.XSendEvent(display, window, 0, 0, ctypes.byref(event)):
    sys.exit("XSendEvent failed")
x.XFlush(display)
x.XCloseDisplay(display)
"#;
