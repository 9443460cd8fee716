//! The session's one lifecycle in the shell: signed in (the tray names the account, the
//! watcher polls) and signed out (the watcher stops, the tray says "Not signed in", the UI is
//! told unless it asked). Every way in and out goes through here: the sign-in commands and
//! restore, the Account screen's Sign out, the tray's Sign out, and the server ending the
//! session under the watcher.

use std::sync::{Mutex, PoisonError};

use hubkey_desktop::{Account, Desktop, DesktopError, ErrorBody, NotificationEvent, SignOutReport};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager};

use crate::error::CommandError;
use crate::ui_event::{self, UiEvent};
use crate::{settings, tray, watcher};

/// The running watcher task of the signed-in account, if any.
#[derive(Default)]
pub struct Lifecycle(Mutex<Option<JoinHandle<()>>>);

impl Lifecycle {
    /// Whether the watcher of a signed-in account runs: the app is signed in, whether or not
    /// a window shows it.
    pub fn watching(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|task| !task.inner().is_finished())
    }

    /// Makes `task` the watcher, stopping the one before, if any.
    fn replace(&self, task: Option<JoinHandle<()>>) {
        let previous = std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            task,
        );
        if let Some(previous) = previous {
            previous.abort();
        }
    }
}

/// Who ended the session, which decides whether the UI must be told.
#[derive(Debug, Clone, PartialEq)]
pub enum SignedOutBy {
    /// The UI's own Sign out: it shows the outcome itself.
    Ui,
    /// The tray's Sign out.
    Tray,
    /// The server, with why (the watcher found the session ended; the core erased its
    /// traces).
    Server(DesktopError),
}

/// `account` is signed in: the tray names it and the watcher polls its feed (replacing any
/// watcher before). When the server ends the session, the app is signed out.
pub fn signed_in(app: &AppHandle, account: &Account) {
    tray::set_account(app, Some(&account.username));
    let (handle, server, username) = (
        app.clone(),
        account.server_url.clone(),
        account.username.clone(),
    );
    let task = tauri::async_runtime::spawn(async move {
        let ended = watcher::run(&handle, &server, &username).await;
        signed_out(&handle, SignedOutBy::Server(ended));
    });
    app.state::<Lifecycle>().replace(Some(task));
}

/// Signs out of the remembered server, whoever asked: the watcher stops first (so no poll
/// races the sign-out), then the core signs out; the app shows "signed out" whatever the
/// server said, since the core cleans up locally in any case.
pub async fn sign_out(app: &AppHandle, by: SignedOutBy) -> Result<SignOutReport, CommandError> {
    let server = settings::server_url(app)?;
    app.state::<Lifecycle>().replace(None);
    let report = app.state::<Desktop>().sign_out(&server).await;
    signed_out(app, by);
    Ok(report?)
}

/// The Account screen's "Sign out everywhere": every session of the account ends on the
/// server, then this app signs out as [`sign_out`] does.
pub async fn sign_out_everywhere(app: &AppHandle) -> Result<SignOutReport, CommandError> {
    let server = settings::server_url(app)?;
    app.state::<Lifecycle>().replace(None);
    let report = app.state::<Desktop>().sign_out_everywhere(&server).await;
    signed_out(app, SignedOutBy::Ui);
    Ok(report?)
}

/// The tray's Sign out item.
pub fn sign_out_from_tray(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let _ = sign_out(&app, SignedOutBy::Tray).await;
    });
}

/// The app's state once signed out. A session the server revoked for a reused refresh
/// token is told twice: a notification now, and the sign-in screen's notice.
fn signed_out(app: &AppHandle, by: SignedOutBy) {
    tray::set_account(app, None);
    match by {
        SignedOutBy::Ui => {}
        SignedOutBy::Tray => ui_event::emit(app, UiEvent::SignedOut { notice: None }),
        SignedOutBy::Server(ended) => {
            if ended == DesktopError::SessionRevoked {
                watcher::notify_event(app, &NotificationEvent::SessionRevoked);
            }
            let notice = ErrorBody::from(&ended);
            ui_event::emit(
                app,
                UiEvent::SignedOut {
                    notice: Some(notice),
                },
            );
        }
    }
}
