//! "Sign in with your browser": the sign-in screen's commands over the core's RFC 8628 device
//! grant (`Desktop::start_browser_sign_in` / `poll_browser_sign_in`). Starting opens the
//! system browser at the verification page with the code filled in (tauri-plugin-opener,
//! from Rust: the webview has no plugin permission) and spawns the one poll task, which
//! waits the server's interval between polls and tells the UI how it ended through the
//! `hubkey://ui` event. An approval continues exactly as a password sign-in (the core
//! provisions; the lifecycle starts the watcher here).
//!
//! Invariants: at most one poll task runs (starting again or Cancel aborts it, and the core
//! forgets the grant); the device code never leaves the core.

// Tauri hands commands their arguments deserialised, by value.
#![allow(clippy::needless_pass_by_value)]

use std::sync::Mutex;
use std::time::Duration;

use hubkey_desktop::{
    Account, BrowserSignIn, BrowserSignInStep, Desktop, DesktopError, ErrorBody, ServerUrl,
    Unencrypted,
};
use serde::{Deserialize, Serialize};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager, State};
use ts_rs::TS;

use crate::error::CommandError;
use crate::lifecycle;
use crate::ui_event::{self, UiEvent};

type Result<T> = std::result::Result<T, CommandError>;

/// How a browser sign-in ended, as the `browser_sign_in` UI event tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "end", rename_all = "snake_case")]
#[ts(export)]
pub enum BrowserSignInEnd {
    /// Approved: signed in and provisioned as a password sign-in is.
    SignedIn {
        /// The account now signed in.
        account: Account,
    },
    /// The person pressed Deny on the page.
    Denied,
    /// The code expired before anyone approved it.
    Expired,
    /// The server refused or failed; the sign-in is over.
    Failed {
        /// Why.
        error: ErrorBody,
    },
}

/// The one poll task, when a browser sign-in is waiting.
#[derive(Default)]
pub struct Polling(Mutex<Option<JoinHandle<()>>>);

impl Polling {
    fn replace(&self, task: Option<JoinHandle<()>>) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = std::mem::replace(&mut *slot, task) {
            old.abort();
        }
    }
}

/// The OS as the verification page shows it to the person approving ("Debian GNU/Linux 13").
fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("PRETTY_NAME=")
                    .map(|value| value.trim_matches('"').to_owned())
            })
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

/// Opens `url` in the system browser. In test builds (`ipc-audit`), `HUBKEY_OPEN_URL_FILE`
/// names a file the URL is written to instead, for the GUI test's own browser to open.
fn open_in_browser(app: &AppHandle, url: &str) -> std::io::Result<()> {
    #[cfg(feature = "ipc-audit")]
    if let Some(file) = std::env::var_os("HUBKEY_OPEN_URL_FILE") {
        return std::fs::write(file, url);
    }
    use tauri_plugin_opener::OpenerExt;
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(std::io::Error::other)
}

/// Starts a browser sign-in to `server_url`: answers the code to show (and the page), opens
/// the browser there and starts polling. A sign-in already waiting is cancelled first.
#[tauri::command]
pub async fn start_browser_sign_in(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    polling: State<'_, Polling>,
    server_url: String,
    send_unencrypted: bool,
) -> Result<BrowserSignIn> {
    polling.replace(None);
    let server = ServerUrl::parse(&server_url)?;
    let unencrypted = if send_unencrypted {
        Unencrypted::Allow
    } else {
        Unencrypted::Refuse
    };
    let started = desktop
        .start_browser_sign_in(&server, &os_name(), unencrypted)
        .await?;
    let handle = app.clone();
    let first_wait = started.interval;
    polling.replace(Some(tauri::async_runtime::spawn(async move {
        let end = poll_until_over(&handle, first_wait).await;
        if let BrowserSignInEnd::SignedIn { account } = &end {
            lifecycle::signed_in(&handle, account);
        }
        ui_event::emit(&handle, UiEvent::BrowserSignIn { end });
    })));
    // The browser opens once polling is under way. If it cannot, the sign-in goes on: the
    // screen shows the page's address with the code, for the person to open themselves.
    let _ = open_in_browser(&app, &started.verification_uri_complete);
    Ok(started)
}

/// Polls at the server's interval until the sign-in is approved, denied, expired or fails.
/// An unreachable server is tried again at the next interval (a network blip must not end
/// a sign-in the person is approving); the core's expiry ends it in time.
async fn poll_until_over(app: &AppHandle, first_wait: u64) -> BrowserSignInEnd {
    let mut wait = first_wait;
    loop {
        tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
        let desktop = app.state::<Desktop>();
        match desktop.poll_browser_sign_in().await {
            Ok(
                BrowserSignInStep::Pending { interval } | BrowserSignInStep::SlowDown { interval },
            ) => {
                wait = interval;
            }
            Ok(BrowserSignInStep::SignedIn(account)) => {
                return BrowserSignInEnd::SignedIn { account }
            }
            Ok(BrowserSignInStep::Denied) => return BrowserSignInEnd::Denied,
            Ok(BrowserSignInStep::Expired) => return BrowserSignInEnd::Expired,
            Err(DesktopError::Unreachable { .. }) => {}
            Err(err) => {
                return BrowserSignInEnd::Failed {
                    error: ErrorBody::from(&err),
                }
            }
        }
    }
}

/// Stops waiting for the browser sign-in (Cancel): the poll task ends and the core forgets
/// the grant, so an approval given later signs nothing in here.
#[tauri::command]
pub fn cancel_browser_sign_in(desktop: State<'_, Desktop>, polling: State<'_, Polling>) {
    polling.replace(None);
    desktop.cancel_browser_sign_in();
}
