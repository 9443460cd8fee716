//! The one event the app sends the webview unasked (`hubkey://ui`), and its one sender: the
//! tray, the watcher and the session's lifecycle all tell the UI through [`emit`].

use hubkey_desktop::ErrorBody;
use serde::Serialize;
use tauri::{AppHandle, Emitter};
use ts_rs::TS;

/// The event the UI listens to for what the app asks of it.
pub const UI_EVENT: &str = "hubkey://ui";

/// What the app asks the UI to do, sent as the [`UI_EVENT`] event.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum UiEvent {
    /// Show the Security screen.
    OpenSecurity,
    /// Show the Security screen with this token selected (a notification's action about it).
    OpenToken {
        /// The token's id.
        #[ts(type = "string")]
        uuid: uuid::Uuid,
    },
    /// The session ended outside the UI (the tray, or the server): show the sign-in screen,
    /// with `notice` when the server ended it (why, for a person).
    SignedOut {
        /// Why the server ended the session; `null` for the tray's Sign out.
        notice: Option<ErrorBody>,
    },
    /// The events feed says the account's tokens changed: a list on screen is out of date.
    TokensChanged,
    /// The browser sign-in the sign-in screen waits for ended.
    BrowserSignIn {
        /// How.
        end: crate::browser_sign_in::BrowserSignInEnd,
    },
}

/// Sends `event` to the webview; a window that is gone has nothing to update.
pub fn emit(app: &AppHandle, event: UiEvent) {
    let _ = app.emit(UI_EVENT, event);
}
