//! `hubkey-cli` in a terminal without a display: the real binary runs in a pseudo-terminal
//! (util-linux `script`, which gives the child a pty and copies what it draws to a pipe the
//! test reads, and what the test writes to the pty: no extra crate, and Ctrl-C arrives as a
//! real SIGINT from the terminal's line discipline), with no DISPLAY or WAYLAND_DISPLAY,
//! against an in-process hubkeyd and a private D-Bus session with GNOME Keyring. The person
//! approves the code on hubkeyd's `/device` page (a plain HTTP client posting its forms).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hubkey_e2e::cargo_build::cargo_build;
use hubkey_e2e::device_form::{Decision, DeviceForm};
use hubkey_e2e::keyring::{credential_helper, KeyringSession};
use hubkey_keyring::{docker, SERVICE};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::desktop_core::{hub, PASSWORD, REGISTRY};

/// The `hubkey-cli` binary of this build (built once per process: a test cannot use
/// another package's `CARGO_BIN_EXE_*`); `HUBKEY_CLI` overrides it.
fn cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        if let Some(path) = std::env::var_os("HUBKEY_CLI") {
            return PathBuf::from(path);
        }
        cargo_build("hubkey-cli", "hubkey-cli", None)
    })
    .clone()
}

/// A user's home on a server reached over SSH: HOME (docker's config.json), XDG config, and
/// the keyring session's variables when there is one; nothing else (no DISPLAY).
struct Home {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl Home {
    fn new(keyring: Option<&KeyringSession>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("HOME".to_owned(), dir.path().display().to_string()),
            (
                "XDG_CONFIG_HOME".to_owned(),
                dir.path().join(".config").display().to_string(),
            ),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("TERM".to_owned(), "xterm-256color".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ];
        if let Some(keyring) = keyring {
            env.extend(keyring.env());
        }
        Self { dir, env }
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join(".docker").join("config.json")
    }

    /// `hubkey-cli args…` in a pty.
    fn in_terminal(&self, args: &[&str]) -> Terminal {
        let command_line = std::iter::once(cli().display().to_string())
            .chain(args.iter().map(|arg| (*arg).to_owned()))
            .map(|word| format!("'{word}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new("script")
            .args([
                "--quiet",
                "--flush",
                "--return",
                "--command",
                &command_line,
                "/dev/null",
            ])
            .env_clear()
            .envs(self.env.iter().cloned())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let screen = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let copy = Arc::clone(&screen);
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                copy.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Terminal { child, screen }
    }

    /// `hubkey-cli args…` without a terminal: exit code, stdout, stderr.
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(cli())
            .args(args)
            .env_clear()
            .envs(self.env.iter().cloned())
            .output()
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

struct Terminal {
    child: Child,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits (up to 60 s) until the screen shows `text`.
    async fn wait_for(&self, text: &str) -> String {
        for _ in 0..600 {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the terminal never showed {text:?}:\n{}", self.screen());
    }

    /// The user code the terminal shows (the line after "enter the code:").
    async fn user_code(&self) -> String {
        let screen = self.wait_for("Waiting for approval").await;
        let after = screen.split("and enter the code:").nth(1).unwrap();
        after.split_whitespace().next().unwrap().to_owned()
    }

    async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("hubkey-cli did not finish")
            .unwrap();
        status.code().unwrap_or(-1)
    }

    async fn type_keys(&mut self, keys: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(keys).await.unwrap();
        stdin.flush().await.unwrap();
    }
}

fn save_artefact(name: &str, text: &str) -> PathBuf {
    let path = hubkey_e2e::desktop::screenshot_dir().join(name);
    std::fs::write(&path, text).unwrap();
    println!("terminal output: {}", path.display());
    path
}

/// The docker credential entry of `REGISTRY` in the keyring, as `secret-tool` reads it.
fn docker_credential(keyring: &KeyringSession) -> Option<String> {
    keyring.secret_tool_lookup(SERVICE, &docker::account(REGISTRY))
}

#[tokio::test]
async fn login_in_a_terminal_without_a_display_then_status_and_logout() {
    let hub = hub().await;
    let keyring = KeyringSession::start();
    let home = Home::new(Some(&keyring));

    let mut login = home.in_terminal(&["login", "--server", &hub.url]);
    let code = login.user_code().await;
    assert_eq!(code.len(), 9, "{code}");
    let screen = login.screen();
    assert!(screen.contains(&format!("{}/device", hub.url)), "{screen}");
    assert!(
        screen.contains(&format!("{}/device?user_code={code}", hub.url)),
        "{screen}"
    );
    assert!(
        screen.contains('█') || screen.contains('▀'),
        "a QR code: {screen}"
    );

    DeviceForm::new(&hub.url)
        .decide(&code, "ann", PASSWORD, Decision::Approve)
        .await;
    let screen = login.wait_for("Signed in to").await;
    assert_eq!(login.exit_code().await, 0, "{}", login.screen());
    assert!(screen.contains("as ann."), "{screen}");
    assert!(
        screen.contains("docker CLI now uses your token"),
        "{screen}"
    );
    save_artefact("cli-login.txt", &login.screen());

    // The keyring holds the auto token as the docker credential, and the helper serves it.
    let stored = docker_credential(&keyring).expect("the docker credential");
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let mut helper = Command::new(credential_helper())
        .arg("get")
        .env_clear()
        .envs(home.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    helper
        .stdin
        .take()
        .unwrap()
        .write_all(REGISTRY.as_bytes())
        .await
        .unwrap();
    let served = helper.wait_with_output().await.unwrap();
    assert!(served.status.success());
    let served: serde_json::Value = serde_json::from_slice(&served.stdout).unwrap();
    assert_eq!(served["Secret"], stored["Secret"]);
    assert_eq!(served["Username"], "ann");
    let config = std::fs::read_to_string(home.docker_config()).unwrap();
    assert!(config.contains("\"hubkey\""), "{config}");

    // status: who, which server (remembered from login), which token, when last used.
    let (code, out, err) = home.run(&["status"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Signed in to {} as ann.", hub.url)),
        "{out}"
    );
    let secret = stored["Secret"].as_str().unwrap();
    let last_four = &secret[secret.len() - 4..];
    assert!(out.contains("Token: ") && out.contains(last_four), "{out}");
    assert!(!out.contains(secret), "status never prints the token");
    assert!(out.contains("never used"), "{out}");
    // Once docker has used it, status says when.
    hub.client().auth_token("ann", secret).await.unwrap();
    let (code, out, err) = home.run(&["status"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("last used"), "{out}");
    save_artefact("cli-status.txt", &out);

    // logout removes it all.
    let (code, out, err) = home.run(&["logout"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Signed out"), "{out}");
    assert!(docker_credential(&keyring).is_none());
    let (code, _, err) = home.run(&["status"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("Not signed in"), "{err}");
}

#[tokio::test]
async fn ctrl_c_cancels_a_waiting_login() {
    let hub = hub().await;
    let keyring = KeyringSession::start();
    let home = Home::new(Some(&keyring));
    let mut login = home.in_terminal(&["login", "--server", &hub.url]);
    let code = login.user_code().await;
    login.type_keys(b"\x03").await;
    assert_eq!(login.exit_code().await, 130, "{}", login.screen());
    assert!(login.screen().contains("Cancelled"), "{}", login.screen());
    // An approval after the cancel signs nothing in.
    DeviceForm::new(&hub.url)
        .decide(&code, "ann", PASSWORD, Decision::Approve)
        .await;
    assert!(docker_credential(&keyring).is_none());
    assert!(!home.docker_config().exists());
}

#[tokio::test]
async fn without_a_keyring_login_says_so_and_fails() {
    let hub = hub().await;
    // A session bus with no Secret Service on it.
    let bus_only = KeyringSession::without_secret_service();
    let home = Home::new(Some(&bus_only));
    let mut login = home.in_terminal(&["login", "--server", &hub.url]);
    assert_eq!(login.exit_code().await, 3, "{}", login.screen());
    let screen = login.screen();
    assert!(screen.contains("No keyring is available"), "{screen}");
    assert!(
        !screen.contains("enter the code"),
        "no code before the keyring: {screen}"
    );

    // No session bus at all (SSH without a login session).
    let home = Home::new(None);
    let (code, out, err) = home.run(&["login", "--server", &hub.url]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("No keyring is available"), "{err}");
    let (code, _, err) = home.run(&["status", "--server", &hub.url]).await;
    assert_eq!(code, 3, "{err}");
}
