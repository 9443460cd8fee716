//! The Debian packages, installed on this machine as a person installs them (`dpkg -i`),
//! used, and removed (`dpkg -r`, `dpkg --purge`). `scripts/package --debug` builds them into
//! `<target>/packages` (scripts/test does, before the tests). They change the machine, so
//! they run one at a time, never beside the GUI tests (.config/nextest.toml).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_e2e::Hubkeyd;

const PASSWORD: &str = "correct horse battery";

/// The package `name` built by `scripts/package --debug`.
fn built_package(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target_root = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_owned(),
    };
    let dir = target_root.join("packages");
    let found = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|file| file.starts_with(&format!("{name}_")) && file.ends_with(".deb"))
        });
    found.unwrap_or_else(|| {
        panic!(
            "no {name}_*.deb in {}: build it with scripts/package --debug (scripts/test does)",
            dir.display()
        )
    })
}

/// Runs `program args` as root, panicking with its output unless it succeeds.
fn must(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The files dpkg lists for `package`.
fn package_files(package: &str) -> Vec<String> {
    must("dpkg-query", &["-L", package])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether dpkg knows `package` as installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Removes `package` when a failed earlier run left it installed.
fn start_clean(package: &str) {
    if installed(package) {
        must("dpkg", &["--purge", package]);
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service's process group (runuser and hubkeyd), stopped with SIGTERM when dropped, also
/// when the test fails.
struct ServiceGroup(std::process::Child);

impl Drop for ServiceGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
        // hubkeyd exits on SIGTERM after its last flush; wait until the group is gone.
        for _ in 0..100 {
            let alive = Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if !alive {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

/// The unit's `KEY=value` lines for `key`.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(&format!("{key}=")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubkeyd_package_runs_as_its_own_user_and_removes_cleanly() {
    start_clean("hubkeyd");
    let deb = built_package("hubkeyd");
    must("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(installed("hubkeyd"));

    // Its own system user, a private data directory, the settings the unit reads.
    let user = must("getent", &["passwd", "hubkeyd"]);
    let fields: Vec<&str> = user.trim().split(':').collect();
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system user: {user}"
    );
    assert!(
        fields[6].ends_with("nologin") || fields[6].ends_with("false"),
        "{user}"
    );
    let data = std::fs::metadata("/var/lib/hubkeyd").unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(data.permissions().mode() & 0o777, 0o700);
    assert_eq!(data.uid(), fields[2].parse::<u32>().unwrap());
    let unit = std::fs::read_to_string("/lib/systemd/system/hubkeyd.service").unwrap();
    assert_eq!(unit_values(&unit, "User"), ["hubkeyd"]);
    assert_eq!(
        unit_values(&unit, "EnvironmentFile"),
        ["/etc/hubkeyd/hubkeyd.env"]
    );
    let exec_start = unit_values(&unit, "ExecStart");
    assert_eq!(exec_start, ["/usr/bin/hubkeyd serve"]);
    let env_file = std::fs::read_to_string("/etc/hubkeyd/hubkeyd.env").unwrap();
    assert!(
        env_file.contains("HUBKEYD_DATA_DIR=/var/lib/hubkeyd"),
        "{env_file}"
    );
    let settings = std::fs::metadata("/etc/hubkeyd/hubkeyd.env").unwrap();
    assert_eq!(settings.permissions().mode() & 0o777, 0o640);

    // The unit's command line, run as the unit runs it: as hubkeyd, with the settings file
    // (its port moved to a free one, as an operator edits it), and the unit's umask.
    let port = free_port();
    let env_file = env_file.replace(
        "HUBKEYD_LISTEN=127.0.0.1:5080",
        &format!("HUBKEYD_LISTEN=127.0.0.1:{port}"),
    );
    std::fs::write("/etc/hubkeyd/hubkeyd.env", &env_file).unwrap();
    let settings: Vec<(String, String)> = env_file
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains('='))
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap();
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let as_service = |args: &[&str]| {
        let mut command = Command::new("runuser");
        command
            .args([
                "-u",
                "hubkeyd",
                "--",
                "sh",
                "-c",
                "umask 077 && exec \"$@\"",
                "sh",
            ])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    };
    let mut add_user = as_service(&["/usr/bin/hubkeyd", "user", "add", "ann", "--password-stdin"]);
    add_user.stdin(std::process::Stdio::piped());
    let mut child = add_user.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(PASSWORD.as_bytes()).unwrap();
    }
    assert!(
        child.wait().unwrap().success(),
        "hubkeyd user add as the service user"
    );
    let command_line: Vec<&str> = exec_start[0].split_whitespace().collect();
    // Its own process group, so the service and runuser stop together (as systemd's cgroup).
    let service = as_service(&command_line).process_group(0).spawn().unwrap();
    let service = ServiceGroup(service);
    let url = format!("http://127.0.0.1:{port}");
    let client = hubkey_client::HubClient::new(&url).unwrap();
    let mut signed_in = None;
    for _ in 0..100 {
        if let Ok(outcome) = client.login("ann", PASSWORD).await {
            signed_in = Some(outcome);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        signed_in.is_some(),
        "no sign-in through the packaged hubkeyd at {url}"
    );
    // What it writes is its own and private.
    let db = std::fs::metadata("/var/lib/hubkeyd/hubkeyd.db").unwrap();
    assert_eq!(db.uid(), fields[2].parse::<u32>().unwrap());
    assert_eq!(
        db.permissions().mode() & 0o077,
        0,
        "the database is private"
    );
    drop(service);

    // dpkg -r: the program and the unit go; the accounts (and the edited settings) stay.
    let files = package_files("hubkeyd");
    must("dpkg", &["-r", "hubkeyd"]);
    assert!(!installed("hubkeyd"));
    for file in files.iter().filter(|file| !file.starts_with("/etc/")) {
        let path = Path::new(file);
        assert!(!path.is_file(), "{file} is left behind after dpkg -r");
    }
    assert!(
        Path::new("/var/lib/hubkeyd/hubkeyd.db").exists(),
        "the data stays"
    );
    assert!(
        Path::new("/etc/hubkeyd/hubkeyd.env").exists(),
        "edited settings stay until purge"
    );
    must("dpkg", &["--purge", "hubkeyd"]);
    assert!(
        !Path::new("/etc/hubkeyd").exists(),
        "purge removes the settings"
    );
    assert!(
        Path::new("/var/lib/hubkeyd/hubkeyd.db").exists(),
        "purge keeps the accounts"
    );
    // This machine's state as before the test: the data of this test run goes too.
    std::fs::remove_dir_all("/var/lib/hubkeyd").unwrap();
    must("deluser", &["--system", "hubkeyd"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_package_puts_the_helper_on_path_starts_to_sign_in_and_removes_cleanly() {
    start_clean("hubkey");
    let deb = built_package("hubkey");
    must("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(installed("hubkey"));
    let files = package_files("hubkey");
    for expected in [
        "/usr/bin/hubkey",
        "/usr/bin/docker-credential-hubkey",
        "/usr/bin/hubkey-cli",
        "/usr/share/applications/hubkey.desktop",
    ] {
        assert!(
            files.iter().any(|file| file == expected),
            "{expected} not in {files:?}"
        );
        assert!(Path::new(expected).is_file(), "{expected} missing");
    }
    let icons: Vec<&String> = files
        .iter()
        .filter(|file| file.starts_with("/usr/share/icons/hicolor/") && file.ends_with(".png"))
        .collect();
    assert!(!icons.is_empty(), "no icons in {files:?}");
    let entry = std::fs::read_to_string("/usr/share/applications/hubkey.desktop").unwrap();
    assert!(entry.contains("Exec=hubkey"), "{entry}");
    assert!(entry.contains("Icon=hubkey"), "{entry}");

    // The installed app signs in and hands the docker CLI its token; the installed helper,
    // found on PATH as docker finds it, lists it.
    let keyring = KeyringSession::start();
    keyring.install_env();
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some("127.0.0.1:5998".into()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "127.0.0.1:0", site).await;
    hub.add_user("ann", PASSWORD).await;
    let app = DesktopApp::start_binary(
        &keyring,
        &hub.url,
        tempfile::tempdir().unwrap(),
        Path::new("/usr/bin/hubkey"),
    )
    .await;
    let home_page = app.sign_in_page().sign_in("ann", PASSWORD).await;
    assert!(home_page.signed_in_as().await.contains("ann"));
    let mut listed = String::new();
    for _ in 0..50 {
        let output = Command::new("docker-credential-hubkey")
            .arg("list")
            .env("PATH", "/usr/bin:/bin")
            .envs(keyring.env())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        listed = String::from_utf8_lossy(&output.stdout).into_owned();
        if listed.contains("127.0.0.1:5998") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed.contains("127.0.0.1:5998"), "{listed}");
    // The headless companion runs from PATH without a display.
    let cli = Command::new("hubkey-cli")
        .arg("--version")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let home = app.quit().await;

    must("dpkg", &["-r", "hubkey"]);
    assert!(!installed("hubkey"));
    for file in &files {
        assert!(
            !Path::new(file).is_file(),
            "{file} is left behind after dpkg -r"
        );
    }
    // The person's own data (the app's settings in their home) is theirs to keep.
    assert!(home.path().exists());
}

/// NSIS cannot run here: at least the Windows installer's hooks are where the bundle config
/// says (resolved from src-tauri, as the bundler does), define the two macros Tauri's
/// template inserts, add and remove the user PATH entry through PowerShell on the registry
/// value (no 1024-character NSIS string holds the PATH), and name no path but $INSTDIR.
#[test]
fn the_windows_installer_hooks_put_the_install_folder_on_the_user_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("packaging/app/tauri.bundle.json")).unwrap(),
    )
    .unwrap();
    let hooks = config["bundle"]["windows"]["nsis"]["installerHooks"]
        .as_str()
        .expect("bundle.windows.nsis.installerHooks");
    let text = std::fs::read_to_string(root.join("src-tauri").join(hooks)).unwrap();
    for needed in [
        "!macro NSIS_HOOK_POSTINSTALL",
        "!insertmacro HUBKEY_USER_PATH add",
        "!macro NSIS_HOOK_PREUNINSTALL",
        "!insertmacro HUBKEY_USER_PATH remove",
        "\"HUBKEY_PATH_DIR\", t \"$INSTDIR\"",
        "DoNotExpandEnvironmentNames",
        "RegistryValueKind]::ExpandString",
        "WM_SETTINGCHANGE",
    ] {
        assert!(text.contains(needed), "{hooks} lacks {needed}");
    }
    let code: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with(';'))
        .collect();
    for forbidden in ["ReadRegStr", "WriteRegExpandStr", "StrCpy", "EnVar::"] {
        assert!(
            code.iter().all(|line| !line.contains(forbidden)),
            "{hooks} uses {forbidden}"
        );
    }
}
