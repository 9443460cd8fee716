//! The Security screen's commands. Each one translates: arguments in, one core call on the
//! remembered server, result or `{code, message}` out.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use chrono::{DateTime, Utc};
use hubkey_desktop::{
    AccessPage, CreatedToken, Desktop, DesktopError, EventFilter, EventPage, ExportFormat,
    Rotation, ServerUrl, TokenChunk, TokenDetail, TokenRow, TokenScope,
};
use serde::Serialize;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{AppHandle, Manager, State};
use tauri_plugin_dialog::DialogExt;
use ts_rs::TS;

use crate::error::CommandError;
use crate::{ascii_json, memory, settings};

type Result<T> = std::result::Result<T, CommandError>;

fn server_url(app: &AppHandle) -> Result<ServerUrl> {
    Ok(settings::server_url(app)?)
}

fn token_id(uuid: &str) -> Result<uuid::Uuid> {
    uuid.parse().map_err(|_| {
        CommandError::Desktop(DesktopError::InvalidInput {
            message: format!("{uuid} is not a token id."),
        })
    })
}

/// Every token of the account, sent over `chunks` as JSON `TokenChunk`s: first the list the
/// core kept from its last listing, if any (`Desktop::kept_tokens_in_chunks`: chunks with
/// `kept_at`), which the screen paints at once, then the server's (see
/// `Desktop::list_tokens_in_chunks`), which replaces it; answers how many rows the server's
/// listing sent, which the UI checks. In chunks, and in ASCII (`ascii_json`), so the webview
/// never holds the whole list as one string, let alone at two bytes per character;
/// afterwards the memory the pages and rows took is given back (with 10 000 tokens it would
/// otherwise stay resident).
#[tauri::command]
pub async fn list_tokens(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    chunks: Channel<InvokeResponseBody>,
) -> Result<usize> {
    let server = server_url(&app)?;
    // A chunk that cannot be sent (the window closed) leaves the UI's count check to notice;
    // rows always serialise (strings, numbers and dates).
    let send = |chunk: &TokenChunk| {
        if let Ok(json) = ascii_json::to_string(chunk) {
            let _ = chunks.send(InvokeResponseBody::Json(json));
        }
    };
    desktop.kept_tokens_in_chunks(&server, send);
    let listed = desktop.list_tokens_in_chunks(&server, send).await;
    memory::give_back_freed();
    Ok(listed?)
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

/// Turns a token's new-address alerts on or off (on the server: every device follows).
#[tauri::command]
pub async fn set_new_address_alerts(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    uuid: String,
    on: bool,
) -> Result<TokenRow> {
    let uuid = token_id(&uuid)?;
    Ok(desktop
        .set_new_address_alerts(&server_url(&app)?, uuid, on)
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
    overlap_seconds: u32,
) -> Result<Rotation> {
    let uuid = token_id(&uuid)?;
    Ok(desktop
        .rotate_token(&server_url(&app)?, uuid, overlap_seconds)
        .await?)
}

/// The show-once value the person has not confirmed copying yet (the window closed before
/// Done), to show again; `None` when there is none. Kept in the core's memory only.
#[tauri::command]
pub fn unconfirmed_token(
    app: AppHandle,
    desktop: State<'_, Desktop>,
) -> Result<Option<CreatedToken>> {
    Ok(desktop.unconfirmed_token(&server_url(&app)?))
}

/// The person copied (or dismissed) the value of `uuid`: the core forgets it.
#[tauri::command]
pub fn confirm_token_copied(desktop: State<'_, Desktop>, uuid: String) -> Result<()> {
    desktop.confirm_copied(token_id(&uuid)?);
    Ok(())
}

/// The window closed: if a shown value was not confirmed copied, the next window opens on the
/// Security screen, which shows it again.
pub fn window_closed(app: &AppHandle) {
    if app.state::<Desktop>().has_unconfirmed_token() {
        crate::ui_event::emit(app, crate::ui_event::UiEvent::OpenSecurity);
    }
}

/// A page of the account's events, newest first (`before`: the last cursor of the previous
/// page).
#[tauri::command]
pub async fn token_events(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    filter: EventFilter,
    before: Option<String>,
    limit: usize,
) -> Result<EventPage> {
    Ok(desktop
        .token_events(&server_url(&app)?, &filter, before.as_deref(), limit)
        .await?)
}

/// A token's detail: every field, its uses per day and its access log's first page.
#[tauri::command]
pub async fn token_detail(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    uuid: String,
    limit: usize,
) -> Result<TokenDetail> {
    let uuid = token_id(&uuid)?;
    let detail = desktop.token_detail(&server_url(&app)?, uuid, limit).await;
    memory::give_back_freed();
    Ok(detail?)
}

/// The next page of the open detail's access log.
#[tauri::command]
pub fn token_access_page(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    uuid: String,
    offset: usize,
    limit: usize,
) -> Result<AccessPage> {
    let uuid = token_id(&uuid)?;
    Ok(desktop.token_access_page(&server_url(&app)?, uuid, offset, limit)?)
}

/// The detail of `uuid` closed: its access log is forgotten.
#[tauri::command]
pub fn close_token_detail(app: AppHandle, desktop: State<'_, Desktop>, uuid: String) -> Result<()> {
    let uuid = token_id(&uuid)?;
    desktop.close_token_detail(&server_url(&app)?, uuid);
    Ok(())
}

/// Where an export went.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct ExportReport {
    /// The file written.
    pub path: String,
    /// How many tokens it lists.
    #[ts(type = "number")]
    pub token_count: usize,
}

/// Exports every token of the account as `format` to a file the person picks in a save
/// dialog; `None` when they cancel. The list is read from the server first, so a server that
/// cannot be reached is said before any dialog opens.
#[tauri::command]
pub async fn export_tokens(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    format: ExportFormat,
) -> Result<Option<ExportReport>> {
    let report = export_to_chosen_file(&app, &desktop, format).await;
    // The whole list and the file's content were in memory; give them back, as after a list.
    memory::give_back_freed();
    report
}

async fn export_to_chosen_file(
    app: &AppHandle,
    desktop: &Desktop,
    format: ExportFormat,
) -> Result<Option<ExportReport>> {
    let export = desktop.export_tokens(&server_url(app)?, format).await?;
    let (chosen, picked) = tokio::sync::oneshot::channel();
    let extension = format.extension();
    app.dialog()
        .file()
        .set_title("Export tokens")
        .set_file_name(&export.suggested_name)
        .add_filter(extension.to_uppercase(), &[extension])
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
    hubkey_desktop::export::write_file(&path, &export.content)?;
    Ok(Some(ExportReport {
        path: path.display().to_string(),
        token_count: export.token_count,
    }))
}
