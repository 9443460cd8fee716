//! Starting the app when the person logs in, the way each OS expects it: an XDG autostart
//! `.desktop` file on Linux (`$XDG_CONFIG_HOME/autostart`, else `~/.config/autostart`), a
//! LaunchAgent in `~/Library/LaunchAgents` on macOS, a value under the current user's
//! `Run` registry key on Windows.
//!
//! What is written is a pure function of the OS, the app's path and the home folders
//! ([`LoginItem::new`]), unit-tested for every OS here. Our own code rather than
//! tauri-plugin-autostart (auto-launch underneath): that one writes `~/.config/autostart`
//! whatever `XDG_CONFIG_HOME` says, puts the path into `Exec=` and the `Run` value unquoted
//! (a path with a space starts something else), and on macOS pulls a Swift build
//! (smappservice-rs) into the app.
//!
//! Invariants: the entry names the app's path quoted as its format requires, or it is not
//! written (a path with a control character is refused); a Linux entry the person turned off
//! with their desktop's tool (`Hidden=true`, `X-GNOME-Autostart-enabled=false`) or a Windows
//! one turned off in the Task Manager reads as off and is never turned back on but by the
//! person's switch.

use std::path::{Path, PathBuf};

use crate::platform::Os;

/// The name of the entry: the `.desktop` file's and the `Run` value's.
pub const LOGIN_ITEM_NAME: &str = "hubkey";
/// The LaunchAgent's label (the app's bundle identifier).
pub const LAUNCH_AGENT_LABEL: &str = "dev.hubkey.desktop";
/// The registry key of the programs Windows starts at the current user's logon.
pub const WINDOWS_RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
/// Where the Task Manager records a `Run` entry the person disabled there.
pub const WINDOWS_STARTUP_APPROVED_KEY: &str =
    r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run";

/// Why starting at login could not be read or switched.
#[derive(Debug, thiserror::Error)]
pub enum StartAtLoginError {
    /// No home folder to put the entry in.
    #[error("Cannot find your home folder to register hubkey to start at login: set HOME.")]
    NoHome,
    /// The app's path cannot be written into a login entry.
    #[error("hubkey's location ({}) contains a control character, which a start-at-login entry cannot hold: move the app to a plain folder.", .0.display())]
    UnusablePath(PathBuf),
    /// The entry's file could not be read, written or removed.
    #[error("Cannot {action} {} ({source}).", path.display())]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The Windows registry refused a change.
    #[error("Cannot change the Windows start-up entry ({0}).")]
    Registry(String),
}

/// Whether the app starts at login, as the OS has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginState {
    /// No entry, or one the person turned off with the OS's own tool.
    Off,
    /// An entry that starts this app, at this path.
    On,
    /// An entry of ours that starts the app from another path (it was moved or updated):
    /// [`LoginItem::enable`] points it here again.
    Elsewhere,
}

/// The start-at-login entry of the app at one path, on one OS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginItem {
    /// A file the OS reads at login: a `.desktop` file (Linux) or a LaunchAgent (macOS).
    File {
        /// Where it lives.
        path: PathBuf,
        /// What it holds.
        content: String,
        /// The line that names the app's path (what [`LoginState::On`] looks for).
        launch_line: String,
    },
    /// A value of [`WINDOWS_RUN_KEY`] under the current user.
    RunValue {
        /// The value's name.
        name: &'static str,
        /// Its data: the quoted path of the app.
        command: String,
    },
}

impl LoginItem {
    /// The entry that starts `app` (an absolute path) at login on `os`. `home` is the home
    /// folder (macOS, and Linux without `XDG_CONFIG_HOME`); `xdg_config_home` is
    /// `$XDG_CONFIG_HOME`, used on Linux when it is absolute (the XDG rule).
    pub fn new(
        os: Os,
        app: &Path,
        home: Option<&Path>,
        xdg_config_home: Option<&Path>,
    ) -> Result<Self, StartAtLoginError> {
        let text = app.to_string_lossy();
        if text.chars().any(char::is_control) {
            return Err(StartAtLoginError::UnusablePath(app.to_path_buf()));
        }
        match os {
            Os::Linux => {
                let config = match xdg_config_home.filter(|dir| dir.is_absolute()) {
                    Some(dir) => dir.to_path_buf(),
                    None => home.ok_or(StartAtLoginError::NoHome)?.join(".config"),
                };
                let launch_line = format!("Exec={}", desktop_exec_argument(&text));
                Ok(LoginItem::File {
                    path: config
                        .join("autostart")
                        .join(format!("{LOGIN_ITEM_NAME}.desktop")),
                    content: desktop_entry(&launch_line),
                    launch_line,
                })
            }
            Os::MacOs => {
                let launch_line = format!("<string>{}</string>", xml_escape(&text));
                Ok(LoginItem::File {
                    path: home
                        .ok_or(StartAtLoginError::NoHome)?
                        .join("Library/LaunchAgents")
                        .join(format!("{LAUNCH_AGENT_LABEL}.plist")),
                    content: launch_agent(&launch_line),
                    launch_line,
                })
            }
            Os::Windows => {
                // Windows paths cannot hold a double quote; the quotes keep a path with a
                // space from being read as a shorter program and its arguments.
                if text.contains('"') {
                    return Err(StartAtLoginError::UnusablePath(app.to_path_buf()));
                }
                Ok(LoginItem::RunValue {
                    name: LOGIN_ITEM_NAME,
                    command: format!("\"{text}\""),
                })
            }
        }
    }

    /// Whether the app starts at login, as the OS has it.
    pub fn state(&self) -> Result<LoginState, StartAtLoginError> {
        match self {
            LoginItem::File {
                path, launch_line, ..
            } => {
                let content = match std::fs::read_to_string(path) {
                    Ok(content) => content,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(LoginState::Off)
                    }
                    Err(source) => {
                        return Err(StartAtLoginError::File {
                            action: "read",
                            path: path.clone(),
                            source,
                        })
                    }
                };
                Ok(file_state(&content, launch_line))
            }
            LoginItem::RunValue { name, command } => windows::state(name, command),
        }
    }

    /// Makes the app start at login from this path (also when the entry was turned off with
    /// the OS's tool: the person asked here).
    pub fn enable(&self) -> Result<(), StartAtLoginError> {
        match self {
            LoginItem::File { path, content, .. } => {
                crate::atomic::replace_file(path, content.as_bytes()).map_err(|err| {
                    StartAtLoginError::File {
                        action: err.action,
                        path: err.path,
                        source: err.source,
                    }
                })
            }
            LoginItem::RunValue { name, command } => windows::enable(name, command),
        }
    }

    /// Removes the entry; no entry is not an error.
    pub fn disable(&self) -> Result<(), StartAtLoginError> {
        match self {
            LoginItem::File { path, .. } => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StartAtLoginError::File {
                    action: "remove",
                    path: path.clone(),
                    source,
                }),
            },
            LoginItem::RunValue { name, .. } => windows::disable(name),
        }
    }

    /// Points an entry of ours that names another path at this one (the app was moved or
    /// updated); leaves an absent or turned-off entry alone. Answers the state after.
    pub fn refresh(&self) -> Result<LoginState, StartAtLoginError> {
        match self.state()? {
            LoginState::Elsewhere => {
                self.enable()?;
                Ok(LoginState::On)
            }
            state => Ok(state),
        }
    }
}

/// The state a login file's `content` gives: off when a desktop's tool turned it off, on when
/// it names this app (`launch_line`), else elsewhere.
fn file_state(content: &str, launch_line: &str) -> LoginState {
    let mut lines = content.lines().map(str::trim);
    let turned_off = content.lines().map(str::trim).any(|line| {
        line.eq_ignore_ascii_case("Hidden=true")
            || line.eq_ignore_ascii_case("X-GNOME-Autostart-enabled=false")
    });
    if turned_off {
        LoginState::Off
    } else if lines.any(|line| line == launch_line) {
        LoginState::On
    } else {
        LoginState::Elsewhere
    }
}

/// `path` as one argument of a desktop entry's `Exec` key, escaped at both levels the
/// Desktop Entry Specification defines: quoted (with `"`, `` ` ``, `$` and `\` escaped) when
/// it holds a reserved character, then every backslash doubled (the string-value rule,
/// applied before the quoting rule when read), and `%` written `%%` (not a field code).
fn desktop_exec_argument(path: &str) -> String {
    const RESERVED: &str = " \t\"'\\><~|&;$*?#()`";
    let quoted = if path.chars().any(|c| RESERVED.contains(c)) {
        let mut quoted = String::from("\"");
        for c in path.chars() {
            if matches!(c, '"' | '`' | '$' | '\\') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    } else {
        path.to_owned()
    };
    quoted.replace('\\', "\\\\").replace('%', "%%")
}

/// The autostart `.desktop` file around its `Exec=` line.
fn desktop_entry(exec_line: &str) -> String {
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=hubkey\n\
         Comment=Keeps the docker CLI signed in to your registry account\n\
         {exec_line}\n\
         Icon=hubkey\n\
         Terminal=false\n\
         StartupNotify=false\n\
         Hidden=false\n\
         X-GNOME-Autostart-enabled=true\n"
    )
}

/// The LaunchAgent property list around its program's `<string>` element.
fn launch_agent(program: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>\n\
         \t<string>{LAUNCH_AGENT_LABEL}</string>\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>\n\
         \t\t{program}\n\
         \t</array>\n\
         \t<key>RunAtLoad</key>\n\
         \t<true/>\n\
         \t<key>LimitLoadToSessionType</key>\n\
         \t<string>Aqua</string>\n\
         </dict>\n\
         </plist>\n"
    )
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Whether the Task Manager lets a `Run` entry start, given its `StartupApproved` value: none
/// means allowed; the first byte's lowest bit set (`03`, `07`) means the person disabled it.
pub fn task_manager_allows(startup_approved: Option<&[u8]>) -> bool {
    startup_approved
        .and_then(|bytes| bytes.first())
        .is_none_or(|first| first & 1 == 0)
}

#[cfg(windows)]
mod windows {
    use windows_registry::CURRENT_USER;

    use super::{
        task_manager_allows, LoginState, StartAtLoginError, WINDOWS_RUN_KEY,
        WINDOWS_STARTUP_APPROVED_KEY,
    };

    const NOT_FOUND: windows_result::HRESULT = windows_result::HRESULT::from_win32(2);

    fn failed(err: &windows_result::Error) -> StartAtLoginError {
        StartAtLoginError::Registry(err.message())
    }

    pub(super) fn state(name: &str, command: &str) -> Result<LoginState, StartAtLoginError> {
        let value = match CURRENT_USER
            .open(WINDOWS_RUN_KEY)
            .and_then(|key| key.get_string(name))
        {
            Ok(value) => value,
            Err(err) if err.code() == NOT_FOUND => return Ok(LoginState::Off),
            Err(err) => return Err(failed(&err)),
        };
        let approved = CURRENT_USER
            .open(WINDOWS_STARTUP_APPROVED_KEY)
            .and_then(|key| key.get_value(name))
            .ok();
        if !task_manager_allows(approved.as_deref()) {
            Ok(LoginState::Off)
        } else if value == command {
            Ok(LoginState::On)
        } else {
            Ok(LoginState::Elsewhere)
        }
    }

    pub(super) fn enable(name: &str, command: &str) -> Result<(), StartAtLoginError> {
        CURRENT_USER
            .create(WINDOWS_RUN_KEY)
            .and_then(|key| key.set_string(name, command))
            .map_err(|err| failed(&err))?;
        // The person turned it on here: a Task Manager "disabled" mark would keep it off.
        match CURRENT_USER
            .options()
            .write()
            .open(WINDOWS_STARTUP_APPROVED_KEY)
            .and_then(|key| key.remove_value(name))
        {
            Err(err) if err.code() != NOT_FOUND => Err(failed(&err)),
            _ => Ok(()),
        }
    }

    pub(super) fn disable(name: &str) -> Result<(), StartAtLoginError> {
        match CURRENT_USER
            .options()
            .write()
            .open(WINDOWS_RUN_KEY)
            .and_then(|key| key.remove_value(name))
        {
            Err(err) if err.code() != NOT_FOUND => Err(failed(&err)),
            _ => Ok(()),
        }
    }
}

/// Elsewhere a `Run` value is never made ([`LoginItem::new`] gives one for Windows only, and
/// the app asks for its own OS).
#[cfg(not(windows))]
mod windows {
    use super::{LoginState, StartAtLoginError};

    fn unsupported() -> StartAtLoginError {
        StartAtLoginError::Registry("there is no registry on this system".into())
    }

    pub(super) fn state(_: &str, _: &str) -> Result<LoginState, StartAtLoginError> {
        Err(unsupported())
    }

    pub(super) fn enable(_: &str, _: &str) -> Result<(), StartAtLoginError> {
        Err(unsupported())
    }

    pub(super) fn disable(_: &str) -> Result<(), StartAtLoginError> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(app: &str, home: Option<&str>, xdg: Option<&str>) -> LoginItem {
        LoginItem::new(
            Os::Linux,
            Path::new(app),
            home.map(Path::new),
            xdg.map(Path::new),
        )
        .unwrap()
    }

    fn file(item: &LoginItem) -> (&Path, &str, &str) {
        match item {
            LoginItem::File {
                path,
                content,
                launch_line,
            } => (path, content, launch_line),
            LoginItem::RunValue { .. } => panic!("not a file: {item:?}"),
        }
    }

    // Unix paths: `/cfg` is not absolute on Windows (no drive), so the XDG rule would skip it.
    #[cfg(unix)]
    #[test]
    fn linux_entry_goes_to_xdg_config_home_when_absolute_else_home() {
        let item = linux("/usr/bin/hubkey", Some("/home/ann"), Some("/cfg"));
        assert_eq!(file(&item).0, Path::new("/cfg/autostart/hubkey.desktop"));
        let item = linux("/usr/bin/hubkey", Some("/home/ann"), None);
        assert_eq!(
            file(&item).0,
            Path::new("/home/ann/.config/autostart/hubkey.desktop")
        );
        // A relative XDG_CONFIG_HOME is invalid and ignored (the XDG rule).
        let item = linux("/usr/bin/hubkey", Some("/home/ann"), Some("cfg"));
        assert_eq!(
            file(&item).0,
            Path::new("/home/ann/.config/autostart/hubkey.desktop")
        );
        assert!(matches!(
            LoginItem::new(Os::Linux, Path::new("/usr/bin/hubkey"), None, None),
            Err(StartAtLoginError::NoHome)
        ));
    }

    #[test]
    fn linux_entry_is_an_enabled_application_that_runs_the_app() {
        let item = linux("/usr/bin/hubkey", Some("/home/ann"), None);
        let (_, content, launch_line) = file(&item);
        assert_eq!(launch_line, "Exec=/usr/bin/hubkey");
        let lines: Vec<&str> = content.lines().collect();
        assert_eq!(lines[0], "[Desktop Entry]");
        for line in [
            "Type=Application",
            "Exec=/usr/bin/hubkey",
            "Hidden=false",
            "X-GNOME-Autostart-enabled=true",
            "Terminal=false",
        ] {
            assert!(lines.contains(&line), "{line} missing from {content}");
        }
        assert_eq!(file_state(content, launch_line), LoginState::On);
    }

    #[test]
    fn exec_quotes_and_escapes_as_the_desktop_entry_spec_says() {
        assert_eq!(desktop_exec_argument("/opt/hubkey"), "/opt/hubkey");
        assert_eq!(
            desktop_exec_argument("/home/ann/My Apps/hubkey.AppImage"),
            "\"/home/ann/My Apps/hubkey.AppImage\""
        );
        // `$` and `"` get one backslash (quoting), which the string rule then doubles; a
        // backslash gets one (quoting), and both are doubled: four.
        assert_eq!(desktop_exec_argument("/a$b"), "\"/a\\\\$b\"");
        assert_eq!(desktop_exec_argument("/a\"b"), "\"/a\\\\\"b\"");
        assert_eq!(desktop_exec_argument("/a\\b"), "\"/a\\\\\\\\b\"");
        assert_eq!(desktop_exec_argument("/100%/hubkey"), "/100%%/hubkey");
    }

    #[test]
    fn a_path_with_a_control_character_is_refused_on_every_os() {
        for os in [Os::Linux, Os::MacOs, Os::Windows] {
            assert!(matches!(
                LoginItem::new(os, Path::new("/tmp/a\nb"), Some(Path::new("/h")), None),
                Err(StartAtLoginError::UnusablePath(_))
            ));
        }
    }

    #[test]
    fn a_desktop_entry_turned_off_by_the_desktop_reads_as_off() {
        let item = linux("/usr/bin/hubkey", Some("/home/ann"), None);
        let (_, content, launch_line) = file(&item);
        let hidden = content.replace("Hidden=false", "Hidden=true");
        assert_eq!(file_state(&hidden, launch_line), LoginState::Off);
        let gnome = content.replace(
            "X-GNOME-Autostart-enabled=true",
            "X-GNOME-Autostart-enabled=false",
        );
        assert_eq!(file_state(&gnome, launch_line), LoginState::Off);
        let moved = content.replace("Exec=/usr/bin/hubkey", "Exec=/opt/old/hubkey");
        assert_eq!(file_state(&moved, launch_line), LoginState::Elsewhere);
    }

    #[test]
    fn macos_launch_agent_runs_the_app_at_load_in_the_gui_session() {
        let item = LoginItem::new(
            Os::MacOs,
            Path::new("/Applications/hub & key.app/Contents/MacOS/hubkey"),
            Some(Path::new("/Users/ann")),
            Some(Path::new("/ignored")),
        )
        .unwrap();
        let (path, content, launch_line) = file(&item);
        assert_eq!(
            path,
            Path::new("/Users/ann/Library/LaunchAgents/dev.hubkey.desktop.plist")
        );
        assert_eq!(
            launch_line,
            "<string>/Applications/hub &amp; key.app/Contents/MacOS/hubkey</string>"
        );
        assert!(content.contains("<string>dev.hubkey.desktop</string>"));
        assert!(content.contains("<key>RunAtLoad</key>\n\t<true/>"));
        assert!(content.contains(&format!("\t\t{launch_line}\n")));
        assert_eq!(file_state(content, launch_line), LoginState::On);
    }

    #[test]
    fn windows_run_value_quotes_the_path() {
        let item = LoginItem::new(
            Os::Windows,
            Path::new(r"C:\Users\Ann Lee\AppData\Local\hubkey\hubkey.exe"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            item,
            LoginItem::RunValue {
                name: "hubkey",
                command: r#""C:\Users\Ann Lee\AppData\Local\hubkey\hubkey.exe""#.into(),
            }
        );
        assert!(matches!(
            LoginItem::new(Os::Windows, Path::new(r#"C:\a"b.exe"#), None, None),
            Err(StartAtLoginError::UnusablePath(_))
        ));
    }

    #[test]
    fn the_task_manager_mark_decides_whether_a_run_entry_starts() {
        assert!(task_manager_allows(None));
        assert!(task_manager_allows(Some(&[
            2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ])));
        assert!(task_manager_allows(Some(&[6, 0, 0, 0])));
        assert!(!task_manager_allows(Some(&[3, 0, 0, 0, 1, 2, 3, 4])));
        assert!(!task_manager_allows(Some(&[7])));
        assert!(task_manager_allows(Some(&[])));
    }

    /// The real registry (the Windows CI job; Wine's registry by hand), under a value name of
    /// its own so a developer's own start-at-login entry is left alone.
    #[cfg(windows)]
    #[test]
    fn enable_refresh_and_disable_the_run_value() {
        let item = |path: &str| LoginItem::RunValue {
            name: "hubkey-unit-test",
            command: format!("\"{path}\""),
        };
        let here = item(r"C:\Program Files\hubkey\hubkey.exe");
        here.disable().unwrap();
        assert_eq!(here.state().unwrap(), LoginState::Off);
        here.enable().unwrap();
        assert_eq!(here.state().unwrap(), LoginState::On);
        let moved = item(r"C:\Users\ann\AppData\Local\hubkey\hubkey.exe");
        assert_eq!(moved.state().unwrap(), LoginState::Elsewhere);
        assert_eq!(moved.refresh().unwrap(), LoginState::On);
        // The Task Manager's "disabled" mark: off, and refresh leaves it so.
        windows_registry::CURRENT_USER
            .create(WINDOWS_STARTUP_APPROVED_KEY)
            .unwrap()
            .set_bytes(
                "hubkey-unit-test",
                windows_registry::Type::Bytes,
                &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            )
            .unwrap();
        assert_eq!(moved.refresh().unwrap(), LoginState::Off);
        // The switch turns it on again, mark and all.
        moved.enable().unwrap();
        assert_eq!(moved.state().unwrap(), LoginState::On);
        moved.disable().unwrap();
        assert_eq!(moved.state().unwrap(), LoginState::Off);
        moved.disable().unwrap();
    }

    #[test]
    fn enable_refresh_and_disable_a_file_entry() {
        let dir = tempfile::tempdir().unwrap();
        let item = linux("/usr/bin/hubkey", None, dir.path().to_str());
        assert_eq!(item.state().unwrap(), LoginState::Off);
        item.enable().unwrap();
        assert_eq!(item.state().unwrap(), LoginState::On);
        // The app moved: the entry is ours but names the old path, and refresh repoints it.
        let moved = linux("/opt/hubkey/hubkey", None, dir.path().to_str());
        assert_eq!(moved.state().unwrap(), LoginState::Elsewhere);
        assert_eq!(moved.refresh().unwrap(), LoginState::On);
        assert_eq!(item.state().unwrap(), LoginState::Elsewhere);
        // Turned off by the desktop: refresh leaves it so.
        let (path, content, _) = file(&moved);
        std::fs::write(path, content.replace("Hidden=false", "Hidden=true")).unwrap();
        assert_eq!(moved.refresh().unwrap(), LoginState::Off);
        assert!(std::fs::read_to_string(path)
            .unwrap()
            .contains("Hidden=true"));
        moved.disable().unwrap();
        assert!(!path.exists());
        moved.disable().unwrap();
    }
}
