//! The main window comes and goes; the app stays. The app lives in the tray all day to
//! deliver its notifications, so closing the window destroys it with its webview (the WebKit
//! web process and everything the page held go with it), leaving the core, the watcher and
//! the tray; on Linux the process then restarts itself without WebKit (`resident.rs`). The
//! launch and every way back (the tray, a notification, a second launch) build the window
//! from tauri.conf.json with [`open`] (Tauri does not create it by itself); its new page
//! restores the session from the core as a launch does, and hears what the app asked of the
//! UI meanwhile (`ui_event.rs`).

use std::time::Duration;

use tauri::{AppHandle, Manager, WebviewWindow, WebviewWindowBuilder};

use crate::ui_event::{self, UiEvent, UiQueue};

/// The main window's label (tauri.conf.json).
pub const MAIN: &str = "main";

/// How long after the window is gone the freed memory is given back to the system: the
/// webview's teardown goes on for a moment after the window is destroyed.
pub const GIVE_BACK_AFTER: Duration = Duration::from_secs(3);

/// How long a restart that found the app busy waits before it tries again.
#[cfg(target_os = "linux")]
const RETRY_RESTART: Duration = Duration::from_secs(5);

/// Shows the main window (unminimised and focused), making it again if it was closed.
pub fn open(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
        return;
    }
    app.state::<UiQueue>().stop_listening();
    match build(app) {
        Ok(window) => {
            crate::window_place::restore(app);
            let _ = window.set_focus();
        }
        // Nothing a person could act on from the tray; the next click tries again.
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("hubkey: cannot open the window: {err}");
            }
        }
    }
}

/// Shows the main window and asks its page for `event` (kept until a new page listens).
pub fn open_with(app: &AppHandle, event: UiEvent) {
    open(app);
    ui_event::emit(app, event);
}

/// The main window as tauri.conf.json describes it.
fn build(app: &AppHandle) -> tauri::Result<WebviewWindow> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|window| window.label == MAIN)
        .ok_or(tauri::Error::WindowNotFound)?
        .clone();
    WebviewWindowBuilder::from_config(app, &config)?.build()
}

/// The window was destroyed: nobody listens, and a moment later the memory its webview freed
/// and the library pages it ran go back to the system (`memory.rs`).
pub fn closed(app: &AppHandle) {
    app.state::<UiQueue>().stop_listening();
    crate::security::window_closed(app);
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(GIVE_BACK_AFTER).await;
        give_back_memory(&app);
        #[cfg(target_os = "linux")]
        restart_while_closed(&app).await;
    });
}

/// Gives the memory freed meanwhile back to the system and, with no window open (one opened
/// again would read its pages back), the library pages the app ran (`memory.rs`).
pub fn give_back_memory(app: &AppHandle) {
    crate::memory::give_back_freed();
    if app.get_webview_window(MAIN).is_none() {
        crate::memory::page_out_libraries();
    }
}

/// Linux: starts the process again without a webview (`resident.rs`) as soon as the app is at
/// rest, for as long as the window stays closed; returns when a window is open again or the
/// restart failed.
#[cfg(target_os = "linux")]
async fn restart_while_closed(app: &AppHandle) {
    while app.get_webview_window(MAIN).is_none() {
        match crate::resident::restart(app) {
            crate::resident::NotNow::Busy => tokio::time::sleep(RETRY_RESTART).await,
            crate::resident::NotNow::Failed => return,
        }
    }
}
