//! The background watcher: while signed in, polls the events feed through
//! [`hubkey_desktop::poll_once`] and tells the person through [`notify_event`]. The cursor is
//! saved (per server and user) before anything is shown, so a restart repeats nothing.

use std::sync::Mutex;
use std::time::Duration;

use hubkey_desktop::{next_delay, poll_once, Account, Desktop, DesktopError, NotificationEvent};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Emitter, Manager};

use crate::{settings, tray};

/// The running watcher task, if any.
#[derive(Default)]
pub struct Watcher(Mutex<Option<JoinHandle<()>>>);

/// Starts watching `account` (stopping any previous watcher).
pub fn start(app: &AppHandle, account: &Account) {
    tray::set_account(app, Some(&account.username));
    let task = tauri::async_runtime::spawn(run(
        app.clone(),
        account.server_url.clone(),
        account.username.clone(),
    ));
    let previous = app
        .state::<Watcher>()
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(task);
    if let Some(previous) = previous {
        previous.abort();
    }
}

/// Stops the watcher (on sign-out).
pub fn stop(app: &AppHandle) {
    let task = app
        .state::<Watcher>()
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(task) = task {
        task.abort();
    }
}

async fn run(app: AppHandle, server_url: String, username: String) {
    let mut failures = 0u32;
    loop {
        let cursor = settings::watch_cursor(&app, &server_url, &username).unwrap_or_default();
        // The bearer lives 15 minutes; `with_session` renews it with the keyring's refresh
        // token when the server refuses it.
        let polled = app
            .state::<Desktop>()
            .with_session(&server_url, |client, _| {
                let cursor = &cursor;
                async move { poll_once(&client, cursor, chrono::Utc::now()).await }
            })
            .await;
        match polled {
            Ok(outcome) => {
                failures = 0;
                if settings::set_watch_cursor(&app, &server_url, &username, &outcome.cursor).is_ok()
                {
                    for event in outcome.notifications {
                        notify_event(&app, &event);
                    }
                }
                if outcome.changed {
                    let _ = app.emit(tray::UI_EVENT, tray::UiEvent::TokensChanged);
                }
            }
            Err(DesktopError::SessionEnded) => {
                session_ended(&app);
                return;
            }
            Err(_) => failures = failures.saturating_add(1),
        }
        let interval =
            settings::watch_interval_secs(&app).unwrap_or(settings::DEFAULT_WATCH_INTERVAL_SECS);
        tokio::time::sleep(next_delay(Duration::from_secs(interval), failures)).await;
    }
}

/// The server ended the session (the local traces are gone): the UI goes back to sign-in.
fn session_ended(app: &AppHandle) {
    tray::set_account(app, None);
    let _ = app.emit(tray::UI_EVENT, tray::UiEvent::SignedOut);
}

/// Tells the person about `event`: a native notification (unless turned off) and, for
/// pruned tokens, the tray's attention icon.
pub fn notify_event(app: &AppHandle, event: &NotificationEvent) {
    if matches!(event, NotificationEvent::AutoTokensPruned { .. }) {
        tray::set_attention(app, true);
    }
    if settings::notifications_enabled(app).unwrap_or(true) {
        show_notification(app, event.title(), event.body());
    }
}

/// A notification whose click opens the Security screen. On Linux it is sent straight to the
/// desktop's notification server (org.freedesktop.Notifications) with a default action, on a
/// thread of its own that waits for the click or the close; the notification plugin offers no
/// click there.
#[cfg(target_os = "linux")]
fn show_notification(app: &AppHandle, title: String, body: String) {
    let app = app.clone();
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let shown = notify_rust::Notification::new()
                .appname("hubkey")
                .summary(&title)
                .body(&body)
                .action("default", "Open Security")
                .show();
            // No notification server: nothing to show or to wait for.
            if let Ok(handle) = shown {
                handle.wait_for_action(|action| {
                    if action == "default" {
                        tray::open_security(&app);
                    }
                });
            }
        });
    drop(spawned);
}

#[cfg(not(target_os = "linux"))]
fn show_notification(app: &AppHandle, title: String, body: String) {
    let _ = app.notification().builder().title(title).body(body).show();
}
