//! The commands the UI invokes. Each one translates: arguments in, one core call, result or
//! `{code, message}` out.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use hubkey_desktop::{Account, Desktop, DesktopError, SignInStep, SignOutReport};
use serde::Serialize;
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt;
use ts_rs::TS;

use crate::settings;

/// What the Settings screen shows.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct AppSettings {
    /// The server the app signs in to.
    pub server_url: String,
    /// Where secrets are kept, e.g. "Secret Service (GNOME Keyring)".
    pub secret_store: String,
    /// The docker CLI's config.json the app points at its credential helper.
    pub docker_config_path: String,
    /// Seconds between polls of the events feed.
    #[ts(type = "number")]
    pub watch_interval_secs: u64,
    /// Whether native notifications are shown.
    pub notifications: bool,
    /// Whether the app starts when the person logs in.
    pub start_at_login: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Desktop(#[from] DesktopError),
    /// The app's own settings file could not be read or written.
    #[error("The app's settings could not be saved: {0}")]
    Settings(String),
}

/// What a failed command rejects with in the UI: a stable code to branch on and a message
/// for a person (plus the wait, for `throttled`).
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub retry_after: Option<u64>,
}

impl From<&CommandError> for ErrorBody {
    fn from(error: &CommandError) -> Self {
        let (code, retry_after) = match error {
            CommandError::Desktop(DesktopError::Throttled { retry_after }) => {
                ("throttled", retry_after.map(|wait| wait.as_secs()))
            }
            CommandError::Desktop(desktop) => (desktop.code(), None),
            CommandError::Settings(_) => ("settings_unavailable", None),
        };
        ErrorBody {
            code: code.to_owned(),
            message: error.to_string(),
            retry_after,
        }
    }
}

impl Serialize for CommandError {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        ErrorBody::from(self).serialize(serializer)
    }
}

type Result<T> = std::result::Result<T, CommandError>;

fn current_settings(app: &AppHandle, desktop: &Desktop) -> Result<AppSettings> {
    Ok(AppSettings {
        server_url: settings::server_url(app).map_err(CommandError::Settings)?,
        secret_store: desktop.store_description(),
        docker_config_path: desktop.docker_config_path().display().to_string(),
        watch_interval_secs: settings::watch_interval_secs(app).map_err(CommandError::Settings)?,
        notifications: settings::notifications_enabled(app).map_err(CommandError::Settings)?,
        start_at_login: app.autolaunch().is_enabled().unwrap_or(false),
    })
}

#[tauri::command]
pub fn settings(app: AppHandle, desktop: State<'_, Desktop>) -> Result<AppSettings> {
    current_settings(&app, &desktop)
}

#[tauri::command]
pub fn set_server(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    server_url: String,
) -> Result<AppSettings> {
    let canonical = hubkey_desktop::canonical_server_url(&server_url)?;
    settings::set_server_url(&app, &canonical).map_err(CommandError::Settings)?;
    current_settings(&app, &desktop)
}

#[tauri::command]
pub async fn restore(app: AppHandle, desktop: State<'_, Desktop>) -> Result<Option<Account>> {
    let server_url = settings::server_url(&app).map_err(CommandError::Settings)?;
    let account = desktop.restore(&server_url).await?;
    if let Some(account) = &account {
        crate::watcher::start(&app, account);
    }
    Ok(account)
}

#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    server_url: String,
    username: String,
    password: String,
) -> Result<SignInStep> {
    let step = desktop.sign_in(&server_url, &username, &password).await?;
    if let SignInStep::SignedIn(account) = &step {
        crate::watcher::start(&app, account);
    }
    Ok(step)
}

#[tauri::command]
pub async fn submit_code(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    code: String,
) -> Result<Account> {
    let account = desktop.submit_code(&code).await?;
    crate::watcher::start(&app, &account);
    Ok(account)
}

#[tauri::command]
pub async fn sign_out(app: AppHandle, desktop: State<'_, Desktop>) -> Result<SignOutReport> {
    let server_url = settings::server_url(&app).map_err(CommandError::Settings)?;
    crate::watcher::stop(&app);
    crate::tray::set_account(&app, None);
    Ok(desktop.sign_out(&server_url).await?)
}

/// Sets the seconds between polls of the events feed (10 to 3600).
#[tauri::command]
pub fn set_watch_interval(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    secs: u64,
) -> Result<AppSettings> {
    if !settings::WATCH_INTERVAL_RANGE.contains(&secs) {
        return Err(CommandError::Settings(format!(
            "the polling interval must be between {} and {} seconds",
            settings::WATCH_INTERVAL_RANGE.start(),
            settings::WATCH_INTERVAL_RANGE.end()
        )));
    }
    settings::set_watch_interval_secs(&app, secs).map_err(CommandError::Settings)?;
    current_settings(&app, &desktop)
}

/// Turns native notifications on or off.
#[tauri::command]
pub fn set_notifications(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    on: bool,
) -> Result<AppSettings> {
    settings::set_notifications_enabled(&app, on).map_err(CommandError::Settings)?;
    current_settings(&app, &desktop)
}

/// Starts the app at login, or stops doing so (tauri-plugin-autostart).
#[tauri::command]
pub fn set_start_at_login(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    on: bool,
) -> Result<AppSettings> {
    let autostart = app.autolaunch();
    let outcome = if on {
        autostart.enable()
    } else {
        autostart.disable()
    };
    outcome.map_err(|err| CommandError::Settings(err.to_string()))?;
    current_settings(&app, &desktop)
}

/// The Security screen was opened: the tray's attention icon goes back to normal.
#[tauri::command]
pub fn mark_seen(app: AppHandle) {
    crate::tray::set_attention(&app, false);
}
