//! What the app remembers between runs (`settings.json` in the app's data dir): the server
//! to sign in to, the polling interval, notifications on or off, which alert kinds are on
//! and the tray's attention state; `watcher.json` keeps the events-feed cursors (per server and user). Never a secret:
//! those live in the keyring. Starting at login is kept where the OS reads it (the
//! [`LoginItem`] of `hubkey_desktop::start_at_login`), so what the switch shows is what the OS
//! will do, also after the person changed it with the OS's own tools.
//!
//! The files are [`SettingsFile`]s, written atomically on every change: tauri-plugin-store
//! (used before) rewrote them in place, also 100 ms after each change and at exit, so a full
//! disk emptied them and the app forgot its server and cursors.

use hubkey_desktop::{
    AlertKind, AlertSettings, DesktopError, LoginItem, LoginState, Os, ServerUrl, SettingsFile,
};
use serde_json::Value;
use tauri::{AppHandle, Manager, Runtime};

/// Why a setting could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The platform gives the app no data folder.
    #[error("cannot find the app's data folder: {0}")]
    NoDataFolder(#[source] tauri::Error),
    /// The file could not be written; it holds the settings as before.
    #[error(transparent)]
    Save(#[from] hubkey_desktop::SettingsError),
    /// A value could not be turned into JSON.
    #[error("{0}")]
    Encode(#[from] serde_json::Error),
    /// The polling interval asked for is outside [`WATCH_INTERVAL_RANGE`].
    #[error("the polling interval must be between {} and {} seconds", WATCH_INTERVAL_RANGE.start(), WATCH_INTERVAL_RANGE.end())]
    IntervalOutOfRange,
    /// Starting at login could not be read or switched.
    #[error(transparent)]
    StartAtLogin(#[from] hubkey_desktop::StartAtLoginError),
    /// The app cannot tell where its own program is (to start it at login).
    #[error("cannot find hubkey's own program to start it at login: {0}")]
    NoAppPath(#[source] std::io::Error),
    /// The remembered (or default) server address does not parse.
    #[error(transparent)]
    Server(DesktopError),
}

/// The settings file `name` in the app's data dir.
fn file<R: Runtime>(app: &AppHandle<R>, name: &str) -> Result<SettingsFile, SettingsError> {
    let dir = app
        .path()
        .app_data_dir()
        .map_err(SettingsError::NoDataFolder)?;
    Ok(SettingsFile::new(dir.join(name)))
}

/// Sets `key` in `name` and saves it.
fn set<R: Runtime>(
    app: &AppHandle<R>,
    name: &str,
    key: &str,
    value: Value,
) -> Result<(), SettingsError> {
    Ok(file(app, name)?.set(key, value)?)
}

const FILE: &str = "settings.json";
const SERVER_URL: &str = "server_url";

/// The server signed in to when none was chosen: `HUBKEY_SERVER_URL`, else the local hubkeyd.
pub fn default_server_url() -> String {
    std::env::var("HUBKEY_SERVER_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:5080".to_owned())
}

/// The remembered server, or the default, as written (the Settings screen shows it even
/// when it does not parse, so the person can see what to fix).
pub fn server_text<R: Runtime>(app: &AppHandle<R>) -> Result<String, SettingsError> {
    Ok(file(app, FILE)?
        .get(SERVER_URL)
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(default_server_url))
}

/// The remembered server, or the default, parsed once here for the command that asked.
pub fn server_url<R: Runtime>(app: &AppHandle<R>) -> Result<ServerUrl, SettingsError> {
    ServerUrl::parse(&server_text(app)?).map_err(SettingsError::Server)
}

/// Remembers `server` as the server.
pub fn set_server_url<R: Runtime>(
    app: &AppHandle<R>,
    server: &ServerUrl,
) -> Result<(), SettingsError> {
    set(app, FILE, SERVER_URL, server.as_str().into())
}

const WATCH_INTERVAL_SECS: &str = "watch_interval_secs";
const NOTIFICATIONS: &str = "notifications";
const TRAY_ATTENTION: &str = "tray_attention";
/// The watcher's cursors live apart from the settings: they change on every poll.
const WATCH_FILE: &str = "watcher.json";

/// The polling interval when none was chosen.
pub const DEFAULT_WATCH_INTERVAL_SECS: u64 = 60;
/// The shortest and longest intervals the Settings screen accepts.
pub const WATCH_INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 10..=3600;

/// Seconds between polls of the events feed: `HUBKEY_WATCH_INTERVAL_SECS` (for tests) wins,
/// then the chosen interval, then the default.
pub fn watch_interval_secs<R: Runtime>(app: &AppHandle<R>) -> Result<u64, SettingsError> {
    if let Some(secs) = std::env::var("HUBKEY_WATCH_INTERVAL_SECS")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
    {
        return Ok(secs);
    }
    Ok(file(app, FILE)?
        .get(WATCH_INTERVAL_SECS)
        .and_then(|value| value.as_u64())
        .unwrap_or(DEFAULT_WATCH_INTERVAL_SECS))
}

/// Remembers the polling interval, one of [`WATCH_INTERVAL_RANGE`].
pub fn set_watch_interval_secs<R: Runtime>(
    app: &AppHandle<R>,
    secs: u64,
) -> Result<(), SettingsError> {
    if !WATCH_INTERVAL_RANGE.contains(&secs) {
        return Err(SettingsError::IntervalOutOfRange);
    }
    set(app, FILE, WATCH_INTERVAL_SECS, secs.into())
}

/// Whether native notifications are shown (on unless turned off).
pub fn notifications_enabled<R: Runtime>(app: &AppHandle<R>) -> Result<bool, SettingsError> {
    Ok(file(app, FILE)?
        .get(NOTIFICATIONS)
        .and_then(|value| value.as_bool())
        .unwrap_or(true))
}

/// Turns native notifications on or off.
pub fn set_notifications_enabled<R: Runtime>(
    app: &AppHandle<R>,
    on: bool,
) -> Result<(), SettingsError> {
    set(app, FILE, NOTIFICATIONS, on.into())
}

const ALERTS: &str = "alerts";

/// Which alert kinds are on (each on unless turned off; a file that does not read back
/// leaves them all on).
pub fn alert_settings<R: Runtime>(app: &AppHandle<R>) -> Result<AlertSettings, SettingsError> {
    Ok(file(app, FILE)?
        .get(ALERTS)
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default())
}

/// Turns one alert kind on or off.
pub fn set_alert_enabled<R: Runtime>(
    app: &AppHandle<R>,
    kind: AlertKind,
    on: bool,
) -> Result<(), SettingsError> {
    let alerts = alert_settings(app)?.with(kind, on);
    set(app, FILE, ALERTS, serde_json::to_value(alerts)?)
}

/// Whether the tray shows its attention icon (pruned tokens not yet looked at); kept so a
/// restart does not forget it.
pub fn tray_attention<R: Runtime>(app: &AppHandle<R>) -> Result<bool, SettingsError> {
    Ok(file(app, FILE)?
        .get(TRAY_ATTENTION)
        .and_then(|value| value.as_bool())
        .unwrap_or(false))
}

/// Remembers whether the tray asks for attention.
pub fn set_tray_attention<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<(), SettingsError> {
    set(app, FILE, TRAY_ATTENTION, on.into())
}

/// The store key of the watcher's cursor for `username` on `server_url`.
fn watch_key(server_url: &ServerUrl, username: &str) -> String {
    format!("cursor:{username}@{server_url}")
}

/// The watcher's cursor for this server and user; the default (start at the feed's end)
/// when there is none or it does not read back.
pub fn watch_cursor<R: Runtime>(
    app: &AppHandle<R>,
    server_url: &ServerUrl,
    username: &str,
) -> Result<hubkey_desktop::WatchCursor, SettingsError> {
    Ok(file(app, WATCH_FILE)?
        .get(&watch_key(server_url, username))
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default())
}

/// Persists the watcher's cursor, written to disk before its notifications are shown.
pub fn set_watch_cursor<R: Runtime>(
    app: &AppHandle<R>,
    server_url: &ServerUrl,
    username: &str,
    cursor: &hubkey_desktop::WatchCursor,
) -> Result<(), SettingsError> {
    let value = serde_json::to_value(cursor)?;
    set(app, WATCH_FILE, &watch_key(server_url, username), value)
}

/// The start-at-login entry for the program this app runs from: the AppImage when it runs
/// from one (the mounted program inside moves at every run), else the executable.
fn login_item<R: Runtime>(app: &AppHandle<R>) -> Result<LoginItem, SettingsError> {
    #[cfg(target_os = "linux")]
    let appimage = app.env().appimage.map(std::path::PathBuf::from);
    #[cfg(not(target_os = "linux"))]
    let appimage: Option<std::path::PathBuf> = None;
    let exe = match appimage {
        Some(appimage) => appimage,
        None => std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(SettingsError::NoAppPath)?,
    };
    let home = app.path().home_dir().ok();
    let xdg_config_home = std::env::var_os("XDG_CONFIG_HOME").map(std::path::PathBuf::from);
    Ok(LoginItem::new(
        Os::current(),
        &exe,
        home.as_deref(),
        xdg_config_home.as_deref(),
    )?)
}

/// Whether the app starts at login (an entry that names an older path of the app counts:
/// [`refresh_start_at_login`] repoints it).
pub fn start_at_login<R: Runtime>(app: &AppHandle<R>) -> Result<bool, SettingsError> {
    Ok(login_item(app)?.state()? != LoginState::Off)
}

/// Makes the app start at login, or stops it.
pub fn set_start_at_login<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<(), SettingsError> {
    let item = login_item(app)?;
    if on {
        item.enable()?;
    } else {
        item.disable()?;
    }
    Ok(())
}

/// At launch: an entry that starts the app from where it used to be (moved, updated, another
/// AppImage) is pointed at this program; an absent or turned-off one is left alone.
pub fn refresh_start_at_login<R: Runtime>(app: &AppHandle<R>) -> Result<(), SettingsError> {
    login_item(app)?.refresh()?;
    Ok(())
}
