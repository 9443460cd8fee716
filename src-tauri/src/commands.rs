//! The commands the UI invokes. Each one translates: arguments in, one core call, result or
//! `{code, message}` out. A sign-in starts here (`sign_in`, `submit_code`, or `restore` at
//! launch) and, once signed in, hands the account to the lifecycle, which starts the poll.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use hubkey_desktop::{
    Account, AlertKind, AlertSettings, Desktop, DesktopError, HandOff, PasswordChanged, ServerUrl,
    SignInStep, SignOutReport, TotpSetup, TwoFactorState, Unencrypted,
};
use serde::Serialize;
use tauri::{AppHandle, Manager, State};
use tauri_plugin_dialog::DialogExt;
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
    /// Which alert kinds are on.
    pub alerts: AlertSettings,
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
        alerts: settings::alert_settings(app)?,
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
    // A window made again while the app stayed signed in, in the tray: the core's live
    // session is the one to show, with no refresh or keyring round trip before the page
    // can paint, and the watcher goes on as it was.
    if app.state::<lifecycle::Lifecycle>().watching() {
        if let Some(account) = desktop.resume(&server).await? {
            return Ok(Some(account));
        }
    }
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

/// Turns one kind of alert on or off.
#[tauri::command]
pub fn set_alert_enabled(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    kind: AlertKind,
    on: bool,
) -> Result<AppSettings> {
    settings::set_alert_enabled(&app, kind, on)?;
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

/// Whether two-factor sign-in is on, and recovery codes left.
#[tauri::command]
pub async fn two_factor_state(
    app: AppHandle,
    desktop: State<'_, Desktop>,
) -> Result<TwoFactorState> {
    let server = settings::server_url(&app)?;
    Ok(desktop.two_factor_state(&server).await?)
}

/// Starts turning two-factor sign-in on, given the password: the secret and its QR code,
/// shown once.
#[tauri::command]
pub async fn start_two_factor(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    password: String,
) -> Result<TotpSetup> {
    let server = settings::server_url(&app)?;
    Ok(desktop.start_two_factor(&server, &password).await?)
}

/// Confirms with the authenticator's first code; answers the recovery codes, shown once.
/// Every other session of the account ends.
#[tauri::command]
pub async fn confirm_two_factor(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    code: String,
) -> Result<Vec<String>> {
    let server = settings::server_url(&app)?;
    Ok(desktop.confirm_two_factor(&server, &code).await?)
}

/// Turns two-factor sign-in off with the password and a code; every other session ends.
#[tauri::command]
pub async fn disable_two_factor(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    password: String,
    code: String,
) -> Result<TwoFactorState> {
    let server = settings::server_url(&app)?;
    desktop
        .disable_two_factor(&server, &password, &code)
        .await?;
    Ok(desktop.two_factor_state(&server).await?)
}

/// New recovery codes given a code; answers them, shown once. Every other session ends.
#[tauri::command]
pub async fn new_recovery_codes(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    code: String,
) -> Result<Vec<String>> {
    let server = settings::server_url(&app)?;
    Ok(desktop.new_recovery_codes(&server, &code).await?)
}

/// Writes the recovery codes just shown, one a line, where a save dialog says (from Rust: the
/// webview has no dialog permission); answers the path, or `None` when cancelled.
#[tauri::command]
pub async fn save_recovery_codes(app: AppHandle, codes: Vec<String>) -> Result<Option<String>> {
    if codes.is_empty() || codes.len() > 64 || codes.iter().any(|code| code.len() > 64) {
        return Err(CommandError::Desktop(DesktopError::InvalidInput {
            message: "There are no recovery codes to save.".into(),
        }));
    }
    let server = settings::server_text(&app)?;
    let content = format!(
        "hubkey recovery codes for {server}\nEach one signs in once in place of an authenticator code.\n\n{}\n",
        codes.join("\n")
    );
    let (chosen, picked) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title("Save recovery codes")
        .set_file_name("hubkey-recovery-codes.txt")
        .add_filter("Text", &["txt"])
        .save_file(move |path| {
            let _ = chosen.send(path);
        });
    let Some(path) = picked.await.ok().flatten() else {
        return Ok(None);
    };
    let path = path.into_path().map_err(|err| {
        CommandError::Desktop(DesktopError::InvalidInput {
            message: format!("The chosen place cannot be written to: {err}"),
        })
    })?;
    hubkey_desktop::export::write_file(&path, &content)?;
    Ok(Some(path.display().to_string()))
}
