//! The commands the UI invokes. Each one translates: arguments in, one core call, result or
//! `{code, message}` out. A sign-in starts here (`sign_in`, `submit_code`, or `restore` at
//! launch) and, once signed in, hands the account to the lifecycle, which starts the poll.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use hubkey_desktop::{
    Account, Desktop, HandOff, PasswordChanged, ServerUrl, SignInStep, SignOutReport, Unencrypted,
};
use serde::Serialize;
use tauri::{AppHandle, State};
use ts_rs::TS;

use crate::error::CommandError;
use crate::lifecycle::{self, SignedOutBy};
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

type Result<T> = std::result::Result<T, CommandError>;

fn current_settings(app: &AppHandle, desktop: &Desktop) -> Result<AppSettings> {
    Ok(AppSettings {
        server_url: settings::server_text(app)?,
        secret_store: desktop.store_description(),
        docker_config_path: desktop.docker_config_path().display().to_string(),
        watch_interval_secs: settings::watch_interval_secs(app)?,
        notifications: settings::notifications_enabled(app)?,
        start_at_login: settings::start_at_login(app)?,
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
    let server = ServerUrl::parse(&server_url)?;
    settings::set_server_url(&app, &server)?;
    current_settings(&app, &desktop)
}

#[tauri::command]
pub async fn restore(app: AppHandle, desktop: State<'_, Desktop>) -> Result<Option<Account>> {
    let server = settings::server_url(&app)?;
    let account = desktop.restore(&server).await?;
    if let Some(account) = &account {
        lifecycle::signed_in(&app, account);
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
    send_unencrypted: bool,
) -> Result<SignInStep> {
    let server = ServerUrl::parse(&server_url)?;
    // The person ticked "Send my password unencrypted" after the warning the refusal shows.
    let unencrypted = if send_unencrypted {
        Unencrypted::Allow
    } else {
        Unencrypted::Refuse
    };
    let step = desktop
        .sign_in_with(&server, &username, &password, unencrypted)
        .await?;
    if let SignInStep::SignedIn(account) = &step {
        lifecycle::signed_in(&app, account);
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
    lifecycle::signed_in(&app, &account);
    Ok(account)
}

/// The person agreed to replace `current`, the docker credential helper the Account screen
/// showed for the registry; answers the hand-off as it now is.
#[tauri::command]
pub async fn replace_docker_helper(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    current: String,
) -> Result<HandOff> {
    let server = settings::server_url(&app)?;
    Ok(desktop.replace_docker_helper(&server, &current).await?)
}

#[tauri::command]
pub async fn sign_out(app: AppHandle) -> Result<SignOutReport> {
    lifecycle::sign_out(&app, SignedOutBy::Ui).await
}

/// Ends every session of the account (this one too), then signs out here.
#[tauri::command]
pub async fn sign_out_everywhere(app: AppHandle) -> Result<SignOutReport> {
    lifecycle::sign_out_everywhere(&app).await
}

/// Changes the account's password; this session stays, every other one ends.
#[tauri::command]
pub async fn change_password(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    current: String,
    new: String,
    repeated: String,
    deactivate_tokens: bool,
) -> Result<PasswordChanged> {
    let server = settings::server_url(&app)?;
    Ok(desktop
        .change_password(&server, &current, &new, &repeated, deactivate_tokens)
        .await?)
}

/// Sets the seconds between polls of the events feed (10 to 3600).
#[tauri::command]
pub fn set_watch_interval(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    secs: u64,
) -> Result<AppSettings> {
    settings::set_watch_interval_secs(&app, secs)?;
    current_settings(&app, &desktop)
}

/// Turns native notifications on or off.
#[tauri::command]
pub fn set_notifications(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    on: bool,
) -> Result<AppSettings> {
    settings::set_notifications_enabled(&app, on)?;
    current_settings(&app, &desktop)
}

/// Starts the app at login, or stops doing so (the OS's own entry, written from Rust).
#[tauri::command]
pub fn set_start_at_login(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    on: bool,
) -> Result<AppSettings> {
    settings::set_start_at_login(&app, on)?;
    current_settings(&app, &desktop)
}

/// The Security screen was opened: the tray's attention icon goes back to normal.
#[tauri::command]
pub fn mark_seen(app: AppHandle) {
    crate::tray::set_attention(&app, false);
}
