//! The one event the app sends the webview unasked (`hubkey://ui`), and its one sender: the
//! tray, the watcher and the session's lifecycle all tell the UI through [`emit`].
//!
//! The window comes and goes (`window.rs`), so a page may not be there to hear an event: the
//! window is closed, or its new page is still loading. What matters to the page that will
//! appear is kept in [`UiQueue`] until that page asks for it ([`take_ui_events`]).

use std::sync::{Mutex, PoisonError};

use hubkey_desktop::ErrorBody;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager};
use ts_rs::TS;

use crate::error::CommandError;

/// The event the UI listens to for what the app asks of it.
pub const UI_EVENT: &str = "hubkey://ui";

/// How many events are kept for a page that does not listen yet; older ones are dropped (a
/// screen asked for long ago has been superseded by the ones after it).
const KEPT_EVENTS: usize = 8;

/// What the app asks the UI to do, sent as the [`UI_EVENT`] event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum UiEvent {
    /// Show the Security screen.
    OpenSecurity,
    /// Show one token's detail (the UI's route `security/token/<uuid>`), with its row selected in the Security list behind it (a notification's action about it).
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

impl UiEvent {
    /// Whether a page that has yet to load needs to hear this. It fetches the session and
    /// the token list itself, so only what changes which screen it shows, or what it tells
    /// the person, is worth keeping for it.
    fn matters_to_a_new_page(&self) -> bool {
        !matches!(self, UiEvent::TokensChanged)
    }
}

/// Sends `event` to the webview's page, or keeps it for the next page if none listens.
pub fn emit(app: &AppHandle, event: UiEvent) {
    app.state::<UiQueue>().send(event, |event| {
        app.get_webview_window(crate::window::MAIN).is_some() && app.emit(UI_EVENT, event).is_ok()
    });
}

/// Whether a page listens, and what the next one has yet to be told.
#[derive(Default)]
pub struct UiQueue(Mutex<QueueState>);

#[derive(Default)]
struct QueueState {
    /// The window's page has asked for its events ([`take_ui_events`]) since the window was
    /// made, so it listens.
    listening: bool,
    kept: Vec<UiEvent>,
}

impl UiQueue {
    /// Hands `event` to `deliver` (which answers whether a page got it) when a page listens;
    /// otherwise, or if it did not get it, keeps it for the next page. Delivered under the
    /// queue's lock, so a page that starts listening never hears a later event before an
    /// earlier kept one.
    pub fn send(&self, event: UiEvent, deliver: impl FnOnce(&UiEvent) -> bool) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.listening && deliver(&event) {
            return;
        }
        if !event.matters_to_a_new_page() {
            return;
        }
        state.kept.push(event);
        let excess = state.kept.len().saturating_sub(KEPT_EVENTS);
        state.kept.drain(..excess);
    }

    /// A page listens from now on: what it was not told, oldest first.
    fn start_listening(&self) -> Vec<UiEvent> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.listening = true;
        std::mem::take(&mut state.kept)
    }

    /// The events kept for the next page (to carry them over a restart, `resident.rs`).
    #[cfg(target_os = "linux")]
    pub fn kept(&self) -> Vec<UiEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kept
            .clone()
    }

    /// The window is gone or being made again: nobody listens until its new page asks.
    pub fn stop_listening(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .listening = false;
    }
}

/// The page listens from now on (it registered its listener first): answers what it was not
/// told while it was not there.
#[tauri::command]
#[allow(clippy::needless_pass_by_value)] // Tauri hands commands their state by value.
pub fn take_ui_events(queue: tauri::State<'_, UiQueue>) -> Result<Vec<UiEvent>, CommandError> {
    Ok(queue.start_listening())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_out() -> UiEvent {
        UiEvent::SignedOut { notice: None }
    }

    #[test]
    fn events_wait_for_a_page_that_listens_then_go_straight_to_it() {
        let queue = UiQueue::default();
        let mut heard = Vec::new();
        // No page yet (the window is closed, or its page is loading).
        queue.send(UiEvent::OpenSecurity, |_| unreachable!("nobody listens"));
        queue.send(UiEvent::TokensChanged, |_| unreachable!("nobody listens"));
        queue.send(signed_out(), |_| unreachable!("nobody listens"));
        // The new page asks: what changes its screen, in order; not the list change, which
        // it loads fresh anyway.
        assert_eq!(
            queue.start_listening(),
            [UiEvent::OpenSecurity, signed_out()]
        );
        assert_eq!(queue.start_listening(), []);
        queue.send(UiEvent::TokensChanged, |event| {
            heard.push(event.clone());
            true
        });
        assert_eq!(heard, [UiEvent::TokensChanged]);
        // The window closes: nothing is delivered until the next page asks.
        queue.stop_listening();
        queue.send(UiEvent::OpenSecurity, |_| unreachable!("nobody listens"));
        assert_eq!(queue.start_listening(), [UiEvent::OpenSecurity]);
    }

    #[test]
    fn an_event_a_gone_window_did_not_take_is_kept() {
        let queue = UiQueue::default();
        let _ = queue.start_listening();
        queue.send(UiEvent::OpenSecurity, |_| false);
        queue.stop_listening();
        assert_eq!(queue.start_listening(), [UiEvent::OpenSecurity]);
    }

    #[test]
    fn only_the_latest_events_are_kept() {
        let queue = UiQueue::default();
        for _ in 0..KEPT_EVENTS {
            queue.send(UiEvent::OpenSecurity, |_| false);
        }
        queue.send(signed_out(), |_| false);
        let kept = queue.start_listening();
        assert_eq!(kept.len(), KEPT_EVENTS);
        assert_eq!(kept.last(), Some(&signed_out()));
    }
}
