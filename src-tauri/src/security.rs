//! The Security screen's commands. Each one translates: arguments in, one core call on the
//! remembered server, result or `{code, message}` out.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use chrono::{DateTime, Utc};
use hubkey_desktop::{CreatedToken, Desktop, DesktopError, TokenRow, TokenScope};
use tauri::{AppHandle, State};

use crate::commands::CommandError;
use crate::settings;

type Result<T> = std::result::Result<T, CommandError>;

fn server_url(app: &AppHandle) -> Result<String> {
    settings::server_url(app).map_err(CommandError::Settings)
}

fn token_id(uuid: &str) -> Result<uuid::Uuid> {
    uuid.parse().map_err(|_| {
        CommandError::Desktop(DesktopError::InvalidInput {
            message: format!("{uuid} is not a token id."),
        })
    })
}

#[tauri::command]
pub async fn list_tokens(app: AppHandle, desktop: State<'_, Desktop>) -> Result<Vec<TokenRow>> {
    Ok(desktop.list_tokens(&server_url(&app)?).await?)
}

#[tauri::command]
pub async fn set_token_active(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    uuid: String,
    active: bool,
) -> Result<TokenRow> {
    let uuid = token_id(&uuid)?;
    Ok(desktop
        .set_token_active(&server_url(&app)?, uuid, active)
        .await?)
}

#[tauri::command]
pub async fn delete_token(app: AppHandle, desktop: State<'_, Desktop>, uuid: String) -> Result<()> {
    let uuid = token_id(&uuid)?;
    Ok(desktop.delete_token(&server_url(&app)?, uuid).await?)
}

#[tauri::command]
pub async fn create_token(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    label: String,
    scope: TokenScope,
    expires_at: Option<DateTime<Utc>>,
) -> Result<CreatedToken> {
    Ok(desktop
        .create_token(&server_url(&app)?, &label, scope, expires_at)
        .await?)
}

#[tauri::command]
pub async fn rotate_token(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    uuid: String,
) -> Result<CreatedToken> {
    let uuid = token_id(&uuid)?;
    Ok(desktop.rotate_token(&server_url(&app)?, uuid).await?)
}
