//! A real keyring for tests: a private D-Bus session bus with an unlocked GNOME Keyring on it,
//! everything under temp dirs so nothing touches the user's keyrings. Also locates the
//! `docker-credential-hubkey` binary.
//!
//! Child processes get the session through [`KeyringSession::env`]. Code in the test process
//! itself (e.g. `hubkey_keyring::OsKeyring`) reads the bus address from the process
//! environment, so [`KeyringSession::install_env`] sets it there; a test that does so must
//! be alone in its process, which is how nextest (and CI) runs tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The password of the test keyring's login collection.
const PASSWORD: &str = "hubkey-test-keyring";

/// The object path of the collection GNOME Keyring creates and unlocks with `--unlock`.
const LOGIN_COLLECTION: &str = "/org/freedesktop/secrets/collection/login";

/// How long the bus and the keyring daemon may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private session bus, with GNOME Keyring serving `org.freedesktop.secrets` on it unless
/// made by [`KeyringSession::without_secret_service`]. Dropping it stops both daemons by PID
/// (also when a test fails) and removes the temp dirs.
pub struct KeyringSession {
    bus_address: String,
    bus: Child,
    keyring_pid: Option<u32>,
    /// gnome-keyring-daemon was launched (it may be running even if its PID is unknown).
    launched: bool,
    data_home: PathBuf,
    runtime_dir: PathBuf,
    dir: TempDir,
}

impl KeyringSession {
    /// Starts a bus and an unlocked GNOME Keyring on it; returns once the Secret Service
    /// answers on the bus.
    pub fn start() -> Self {
        let mut session = Self::without_secret_service();
        session.start_gnome_keyring();
        session
    }

    /// Starts only the bus: a session where asking for the Secret Service fails the way it
    /// does on a machine without a keyring ("…was not provided by any .service files").
    pub fn without_secret_service() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_home = dir.path().join("data");
        let runtime_dir = dir.path().join("runtime");
        let services = dir.path().join("services");
        for path in [
            &data_home,
            &runtime_dir,
            &services,
            &dir.path().join("home"),
        ] {
            std::fs::create_dir_all(path).unwrap();
        }
        set_private(&runtime_dir);
        // An empty servicedir: nothing on this bus is started on demand, so the Secret
        // Service is there only if this fixture starts it.
        let config = dir.path().join("session.conf");
        std::fs::write(
            &config,
            format!(
                r#"<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                services.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("dbus-daemon.log")).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address=1", "--nofork"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run dbus-daemon: {err} (install the Debian package dbus-daemon)")
            });
        let stdout = bus.stdout.take().unwrap();
        let (line, read) = mpsc::channel();
        std::thread::spawn(move || {
            let mut address = String::new();
            let _ = BufReader::new(stdout).read_line(&mut address);
            let _ = line.send(address);
        });
        let address = read.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let address = address.trim().to_owned();
        if address.is_empty() {
            let _ = bus.kill();
            let _ = bus.wait();
            let log =
                std::fs::read_to_string(dir.path().join("dbus-daemon.log")).unwrap_or_default();
            panic!("dbus-daemon printed no address:\n{log}");
        }
        KeyringSession {
            bus_address: address,
            bus,
            keyring_pid: None,
            launched: false,
            data_home,
            runtime_dir,
            dir,
        }
    }

    /// Runs `gnome-keyring-daemon --unlock --components=secrets --daemonize` with the
    /// password on stdin and waits until `org.freedesktop.secrets` is owned: the daemon
    /// forks before it claims the name, so without the wait about one run in five raced.
    fn start_gnome_keyring(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("gnome-keyring.log")).unwrap();
        self.launched = true;
        // Its stdout goes to a file, not a pipe: the daemon keeps inherited descriptors
        // open, so reading a pipe to its end would wait for the daemon to exit.
        let mut launcher = self
            .command("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets", "--daemonize"])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run gnome-keyring-daemon: {err} (install gnome-keyring)")
            });
        {
            let mut stdin = launcher.stdin.take().unwrap();
            stdin.write_all(PASSWORD.as_bytes()).unwrap();
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = launcher.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = launcher.kill();
                let _ = launcher.wait();
                panic!(
                    "gnome-keyring-daemon --daemonize did not return:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "gnome-keyring-daemon failed:\n{}",
            self.logs()
        );
        loop {
            if let Some(pid) = self.secret_service_pid() {
                self.keyring_pid = Some(pid);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "org.freedesktop.secrets did not appear on the bus within {START_TIMEOUT:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The PID of the process owning `org.freedesktop.secrets` on this bus, if any.
    fn secret_service_pid(&self) -> Option<u32> {
        self.name_owner_pid("org.freedesktop.secrets")
    }

    /// The PID of the process owning the well-known `name` on this bus, if any.
    pub fn name_owner_pid(&self, name: &str) -> Option<u32> {
        let output = self
            .command("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.DBus",
                "--type=method_call",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetConnectionUnixProcessID",
                &format!("string:{name}"),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run dbus-send: {err} (install dbus-bin)"));
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .skip_while(|word| *word != "uint32")
            .nth(1)
            .and_then(|pid| pid.parse().ok())
    }

    /// Waits up to `limit` until nobody owns `name` on this bus. The bus drops a process's
    /// names only once the process has closed its connection, which a killed process does
    /// late (see `desktop::ProcessGroup`). Panics naming the owner when it stays.
    pub fn wait_until_name_is_free(&self, name: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(pid) = self.name_owner_pid(name) {
            let command = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            assert!(
                Instant::now() < deadline,
                "{name} is still owned on the test bus after {limit:?}, by {pid} ({command})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Locks the login collection, as a screen lock or "Lock keyring" does: its items stay
    /// listed but reading or writing them needs an unlock (which, without a prompter on
    /// this bus, nobody can answer).
    pub fn lock(&self) {
        let output = self
            .command("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.secrets",
                "--type=method_call",
                "--print-reply",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                &format!("array:objpath:{LOGIN_COLLECTION}"),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "locking the keyring failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(self.is_locked(), "the login collection did not lock");
    }

    /// Unlocks the login collection with its password, as the login screen does (GNOME
    /// Keyring's unlock-with-password call, through python3-dbus: the session it needs lives
    /// only as long as one connection).
    pub fn unlock(&self) {
        const UNLOCK: &str = r#"
import sys, dbus
bus = dbus.SessionBus()
service = bus.get_object('org.freedesktop.secrets', '/org/freedesktop/secrets')
_, session = service.OpenSession('plain', dbus.String('', variant_level=1),
                                 dbus_interface='org.freedesktop.Secret.Service')
dbus.Interface(service, 'org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface')     .UnlockWithMasterPassword(dbus.ObjectPath(sys.argv[1]), dbus.Struct(
        (session, dbus.ByteArray(b''), dbus.ByteArray(sys.argv[2].encode()), 'text/plain'),
        signature='oayays'))
"#;
        let output = self
            .command("timeout")
            .args([
                "10",
                "/usr/bin/python3",
                "-c",
                UNLOCK,
                LOGIN_COLLECTION,
                PASSWORD,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("/usr/bin/python3 with python3-dbus");
        assert!(
            output.status.success(),
            "unlocking the keyring failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!self.is_locked(), "the login collection is still locked");
    }

    /// Whether the login collection is locked.
    pub fn is_locked(&self) -> bool {
        let output = self
            .command("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.secrets",
                "--type=method_call",
                "--print-reply",
                LOGIN_COLLECTION,
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Collection",
                "string:Locked",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).contains("boolean true")
    }

    /// Stops the Secret Service (the keyring daemon exits, as when it crashes); the bus and
    /// the keyring's files stay.
    pub fn stop_secret_service(&mut self) {
        if let Some(pid) = self.keyring_pid.take() {
            stop_process(pid);
        }
        self.launched = false;
        let deadline = Instant::now() + START_TIMEOUT;
        while self.secret_service_pid().is_some() {
            assert!(Instant::now() < deadline, "the Secret Service did not go");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the Secret Service again over the same files, unlocked.
    pub fn start_secret_service(&mut self) {
        self.start_gnome_keyring();
    }

    /// What a child process needs to use this session's keyring: the bus address and the
    /// XDG directories.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "DBUS_SESSION_BUS_ADDRESS".to_owned(),
                self.bus_address.clone(),
            ),
            (
                "XDG_DATA_HOME".to_owned(),
                self.data_home.display().to_string(),
            ),
            (
                "XDG_RUNTIME_DIR".to_owned(),
                self.runtime_dir.display().to_string(),
            ),
        ]
    }

    /// Points this process at the session (sets [`Self::env`] in its environment), for code
    /// under test that runs in the test process. One such test per process.
    pub fn install_env(&self) {
        for (name, value) in self.env() {
            std::env::set_var(name, value);
        }
    }

    /// The bus address (`unix:path=…`).
    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// The PID of the GNOME Keyring daemon, if this session runs one.
    pub fn keyring_pid(&self) -> Option<u32> {
        self.keyring_pid
    }

    /// `secret-tool lookup service SERVICE username ACCOUNT`: the secret an entry of the
    /// `keyring` crate holds, read from outside the product. keyring 3's Secret Service
    /// backend stores the attributes `service`, `username` (the account), `target`
    /// (`default`) and `application` (`rust-keyring`); a lookup by the first two finds it.
    pub fn secret_tool_lookup(&self, service: &str, account: &str) -> Option<String> {
        let output = self
            .command("secret-tool")
            .args(["lookup", "service", service, "username", account])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run secret-tool: {err} (install libsecret-tools)")
            });
        let secret = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success() && !secret.is_empty()).then_some(secret)
    }

    /// `secret-tool store`: writes an entry from outside the product, as another program
    /// would (without the `target` attribute keyring 3 adds).
    pub fn secret_tool_store(&self, service: &str, account: &str, secret: &str) {
        let mut child = self
            .command("secret-tool")
            .args([
                "store",
                "--label=written by a test",
                "service",
                service,
                "username",
                account,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run secret-tool: {err} (install libsecret-tools)")
            });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "secret-tool store failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A command for a tool inside this session: a clean environment with only PATH, the
    /// session's variables and a temp HOME, so nothing reaches the user's keyrings or
    /// display.
    fn command(&self, program: &str) -> Command {
        let home = self.dir.path().join("home");
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .envs(self.env());
        command
    }

    /// The daemons' logs, for failure messages.
    fn logs(&self) -> String {
        ["dbus-daemon.log", "gnome-keyring.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                format!("--- {name}\n{text}")
            })
            .collect()
    }
}

impl Drop for KeyringSession {
    fn drop(&mut self) {
        let keyring = match self.keyring_pid.take() {
            Some(pid) => Some(pid),
            // Start failed half-way: ask the bus whether the daemon got that far.
            None if self.launched => self.secret_service_pid(),
            None => None,
        };
        if let Some(pid) = keyring {
            stop_process(pid);
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// Sends SIGTERM to `pid` and waits up to 2 s for it to go (so that its data dir is not
/// removed under it).
fn stop_process(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(2);
    while is_running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: "PID (comm) S ...".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Makes `dir` private to its owner (mode 700), as XDG_RUNTIME_DIR must be.
fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// The `docker-credential-hubkey` binary of this build, once per process;
/// `HUBKEY_CREDENTIAL_HELPER` overrides the path.
///
/// hubkey-e2e depends on the helper's library, so building the tests rebuilds that library
/// but not the binary: the binary next to the test executable is built when it is missing
/// or older than the library (nextest runs each test in a process of its own, so a cargo
/// run per test is saved when it is fresh).
pub fn credential_helper() -> PathBuf {
    static HELPER: OnceLock<PathBuf> = OnceLock::new();
    HELPER.get_or_init(locate_credential_helper).clone()
}

fn locate_credential_helper() -> PathBuf {
    if let Some(path) = std::env::var_os("HUBKEY_CREDENTIAL_HELPER") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let binary = deps.parent().unwrap().join("docker-credential-hubkey");
    if binary.exists() && !library_is_newer(deps, &binary) {
        return binary;
    }
    crate::cargo_build::cargo_build("hubkey-credential-helper", "docker-credential-hubkey", None)
}
/// Whether a `libhubkey_credential_helper-*.rlib` in `deps` is newer than `binary`, i.e. the
/// library was rebuilt for the tests but the binary was not.
fn library_is_newer(deps: &Path, binary: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return true;
    };
    std::fs::read_dir(deps)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libhubkey_credential_helper-") && name.ends_with(".rlib")
        })
        .filter_map(|entry| modified(&entry.path()))
        .any(|library| library > built)
}
