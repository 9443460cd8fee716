//! The background watcher: while signed in, polls the events feed through
//! [`hubkey_desktop::poll_once`] and tells the person through [`notify_event`]. The cursor is
//! saved (per server and user) before anything is shown, so a restart repeats nothing.
//! Starting and stopping it is the session lifecycle's (`lifecycle.rs`): [`run`] only
//! returns when the server ended the session.

use std::time::Duration;

#[cfg(target_os = "linux")]
use hubkey_desktop::escape_markup;
use hubkey_desktop::{
    next_delay, poll_once, AlertContext, Desktop, DesktopError, NotificationEvent, ServerUrl,
};
use tauri::{AppHandle, Manager};

use crate::ui_event::{self, UiEvent};
use crate::{settings, tray};

/// Polls the events feed of `username` on `server` until the server ends the session (its
/// local traces are then gone), and answers how it ended ([`DesktopError::SessionEnded`] or
/// [`DesktopError::SessionRevoked`]); other failures back off and try again.
pub async fn run(app: &AppHandle, server: &ServerUrl, username: &str) -> DesktopError {
    let mut failures = 0u32;
    loop {
        let cursor = settings::watch_cursor(app, server, username).unwrap_or_default();
        #[cfg(feature = "test-clock")]
        crate::test_clock::sync(app);
        let desktop = app.state::<Desktop>();
        // From the poll to the notifications it leads to: not restarted in between.
        let busy = desktop.busy();
        let now = desktop.now();
        let context = AlertContext {
            settings: settings::alert_settings(app).unwrap_or_default(),
            this_device: desktop.user_agent(),
        };
        // The bearer lives 15 minutes; `with_session` renews it with the keyring's refresh
        // token when the server refuses it.
        let polled = desktop
            .with_session(server, |client, _| {
                let (cursor, context) = (&cursor, &context);
                async move { poll_once(&client, cursor, now, context).await }
            })
            .await;
        match polled {
            Ok(outcome) => {
                failures = 0;
                if settings::set_watch_cursor(app, server, username, &outcome.cursor).is_ok() {
                    for event in outcome.notifications {
                        notify_event(app, &event);
                    }
                }
                if outcome.changed {
                    ui_event::emit(app, UiEvent::TokensChanged);
                }
            }
            Err(ended @ (DesktopError::SessionEnded | DesktopError::SessionRevoked)) => {
                return ended
            }
            Err(_) => failures = failures.saturating_add(1),
        }
        drop(busy);
        let interval =
            settings::watch_interval_secs(app).unwrap_or(settings::DEFAULT_WATCH_INTERVAL_SECS);
        tokio::time::sleep(next_delay(Duration::from_secs(interval), failures)).await;
    }
}

/// Tells the person about `event`: a native notification (unless turned off) and, for
/// pruned tokens and alerts, the tray's attention icon. A notification about one token
/// opens that token.
pub fn notify_event(app: &AppHandle, event: &NotificationEvent) {
    if matches!(
        event,
        NotificationEvent::AutoTokensPruned { .. } | NotificationEvent::Alert { .. }
    ) {
        tray::set_attention(app, true);
    }
    if settings::notifications_enabled(app).unwrap_or(true) {
        show_notification(app, event.title(), event.body(), event.token());
    }
}

/// A notification whose click opens the Security screen (on `token`, when it is about one). On Linux it is sent straight to the
/// desktop's notification server (org.freedesktop.Notifications) with a default action, on a
/// thread of its own that waits for the click or the close; the notification plugin offers no
/// click there. The body may be rendered as markup there, and carries server data (token
/// labels): it is escaped ([`escape_markup`]).
#[cfg(target_os = "linux")]
fn show_notification(app: &AppHandle, title: String, body: String, token: Option<uuid::Uuid>) {
    let app = app.clone();
    // Until its click or close: a click would go to the old image after a restart.
    let waiting = app.state::<Desktop>().busy();
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let _waiting = waiting;
            let shown = notify_rust::Notification::new()
                .appname("hubkey")
                .summary(&title)
                .body(&escape_markup(&body))
                .action(
                    "default",
                    if token.is_some() {
                        "Open token"
                    } else {
                        "Open Security"
                    },
                )
                .show();
            // No notification server: nothing to show or to wait for.
            if let Ok(handle) = shown {
                handle.wait_for_action(|action| on_notification_action(&app, action, token));
            }
        });
    drop(spawned);
}

/// Windows and macOS: tauri-plugin-notification, whose desktop side (2.6 and later) reports a
/// click on the notification as the action `tap` to the handler [`listen_for_clicks`]
/// registers: a toast's activation on Windows (while it is on screen, not from the Action
/// Center), the notification centre's response on macOS, each waited for on a thread of its
/// own.
///
/// The plugin reports no per-notification data with the click: the last token an alert was
/// about is remembered ([`LastToken`]) and opened.
#[cfg(not(target_os = "linux"))]
fn show_notification(app: &AppHandle, title: String, body: String, token: Option<uuid::Uuid>) {
    use tauri_plugin_notification::NotificationExt;
    if let Some(last) = app.try_state::<LastToken>() {
        *last
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }
    let _ = app.notification().builder().title(title).body(body).show();
}

/// The token the last notification was about (Windows, macOS).
#[cfg(not(target_os = "linux"))]
#[derive(Default)]
pub struct LastToken(std::sync::Mutex<Option<uuid::Uuid>>);

/// Routes clicks on the notifications to [`on_notification_action`]; registered at start-up,
/// before any notification (the plugin reports clicks only on notifications shown after).
#[cfg(not(target_os = "linux"))]
pub fn listen_for_clicks(app: &AppHandle) {
    use tauri_plugin_notification::NotificationExt;
    app.manage(LastToken::default());
    let handle = app.clone();
    let _ = app.notification().on_action(move |performed| {
        let token = handle.try_state::<LastToken>().and_then(|last| {
            *last
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        on_notification_action(&handle, performed.action_id(), token);
    });
}

/// On Linux every notification waits for its own click (see [`show_notification`]).
#[cfg(target_os = "linux")]
pub fn listen_for_clicks(_app: &AppHandle) {}

/// Whether the action an OS reported for one of our notifications is a click on it: the
/// Desktop Notifications Specification's `default` (Linux) or the notification plugin's `tap`
/// (Windows, macOS). Buttons and closing are not.
pub fn is_click(action: &str) -> bool {
    matches!(action, "default" | "tap")
}

/// The one route of a notification click on every OS: the window, on the Security screen,
/// with `token` selected when the notification was about one.
pub fn on_notification_action(app: &AppHandle, action: &str, token: Option<uuid::Uuid>) {
    if is_click(action) {
        match token {
            Some(uuid) => tray::open_token(app, uuid),
            None => tray::open_security(app),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_click;

    #[test]
    fn a_click_is_recognised_as_each_os_reports_it() {
        assert!(is_click("default"), "Linux, org.freedesktop.Notifications");
        assert!(
            is_click("tap"),
            "Windows and macOS, tauri-plugin-notification"
        );
        assert!(!is_click("__closed"));
        assert!(!is_click("snooze"));
        assert!(!is_click(""));
    }
}
