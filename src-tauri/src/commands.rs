//! The commands the UI invokes. Each one translates: arguments in, one core call, result or
//! `{code, message}` out.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use hubkey_desktop::{Account, Desktop, DesktopError, SignInStep, SignOutReport};
use serde::Serialize;
use tauri::{AppHandle, State};
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
    Ok(desktop.restore(&server_url).await?)
}

#[tauri::command]
pub async fn sign_in(
    desktop: State<'_, Desktop>,
    server_url: String,
    username: String,
    password: String,
) -> Result<SignInStep> {
    Ok(desktop.sign_in(&server_url, &username, &password).await?)
}

#[tauri::command]
pub async fn submit_code(desktop: State<'_, Desktop>, code: String) -> Result<Account> {
    Ok(desktop.submit_code(&code).await?)
}

#[tauri::command]
pub async fn sign_out(app: AppHandle, desktop: State<'_, Desktop>) -> Result<SignOutReport> {
    let server_url = settings::server_url(&app).map_err(CommandError::Settings)?;
    Ok(desktop.sign_out(&server_url).await?)
}
