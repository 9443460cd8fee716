//! The hubkey desktop app: a thin Tauri shell. Every command translates to a call of
//! [`hubkey_desktop::Desktop`] (the core, testable without a window) and back; the webview
//! never sees a secret, only accounts, settings and `{code, message}` errors.

mod ascii_json;
mod browser_sign_in;
mod commands;
mod error;
#[cfg(feature = "ipc-audit")]
mod ipc_audit;
mod lifecycle;
mod memory;
mod navigation;
#[cfg(target_os = "linux")]
mod resident;
mod security;
mod settings;
#[cfg(feature = "test-clock")]
mod test_clock;
mod tray;
mod ui_event;
mod watcher;
mod window;
mod window_place;

use std::sync::Arc;

use hubkey_desktop::Desktop;
use tauri::Manager;

pub use commands::AppSettings;
pub use error::CommandError;
pub use hubkey_desktop::ErrorBody;

// The IPC audit copies show-once values into the page: it exists for the GUI tests' debug
// build and must never reach a shipped (release) binary.
#[cfg(all(feature = "ipc-audit", not(debug_assertions)))]
compile_error!(
    "the `ipc-audit` feature is for test builds only: it must not be enabled in a release build"
);
// The test clock lets the environment set the app's time: test builds only, likewise.
#[cfg(all(feature = "test-clock", not(debug_assertions)))]
compile_error!(
    "the `test-clock` feature is for test builds only: it must not be enabled in a release build"
);

/// Runs the app until Quit. Closing the window destroys it and its webview; the app stays in
/// the tray (`window.rs`).
pub fn run() {
    // Linux: what the previous image of this process handed over (`resident.rs`).
    #[cfg(target_os = "linux")]
    let carried = resident::carried_in();
    #[cfg(target_os = "linux")]
    let resident = resident::started_resident();
    #[cfg(not(target_os = "linux"))]
    let resident = false;
    let builder = tauri::Builder::default()
        // First: a second launch only focuses the running instance.
        .plugin(tauri_plugin_single_instance::init(|app, _, _| {
            window::open(app);
        }))
        // The window shows only the app's own pages.
        .plugin(navigation::guard());
    #[cfg(feature = "ipc-audit")]
    let builder = builder.plugin(ipc_audit::init());
    let outcome = builder
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .on_window_event(|window, event| match event {
            tauri::WindowEvent::Destroyed if window.label() == window::MAIN => {
                window::closed(window.app_handle());
            }
            tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_) => {
                if let Some(window) = window.app_handle().get_webview_window(window.label()) {
                    window_place::changed(&window);
                }
            }
            _ => {}
        })
        .setup(move |app| {
            let docker_config = hubkey_desktop::docker_config::config_path_from_env()
                .ok_or("cannot find the docker config: set HOME or DOCKER_CONFIG")?;
            let store = Arc::new(hubkey_keyring::OsKeyring::new());
            let desktop = Desktop::new(store, docker_config, device_name());
            #[cfg(feature = "test-clock")]
            let desktop = match test_clock::TestClock::from_env() {
                Some(test_clock) => {
                    let desktop = desktop.with_clock(test_clock.clock());
                    app.manage(test_clock);
                    desktop
                }
                None => desktop,
            };
            app.manage(desktop);
            app.manage(lifecycle::Lifecycle::default());
            app.manage(browser_sign_in::Polling::default());
            app.manage(ui_event::UiQueue::default());
            app.manage(window_place::Changes::default());
            tray::build(app.handle(), lifecycle::sign_out_from_tray)?;
            watcher::listen_for_clicks(app.handle());
            // The window, unless this is the resident image (`resident.rs`), which starts in
            // the tray on the session carried over or, without one, the keyring's.
            #[cfg(target_os = "linux")]
            if resident {
                resident::take_over(app.handle(), carried);
            }
            if !resident {
                window::open(app.handle());
            }
            // Not fatal: the Settings screen shows the switch and any error again.
            let _ = settings::refresh_start_at_login(app.handle());
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            ui_event::take_ui_events,
            commands::settings,
            commands::set_server,
            commands::restore,
            commands::sign_in,
            commands::submit_code,
            commands::replace_docker_helper,
            commands::sign_out,
            commands::sign_out_everywhere,
            commands::change_password,
            commands::set_watch_interval,
            commands::set_notifications,
            commands::set_alert_enabled,
            commands::set_start_at_login,
            commands::mark_seen,
            browser_sign_in::start_browser_sign_in,
            browser_sign_in::cancel_browser_sign_in,
            commands::two_factor_state,
            commands::start_two_factor,
            commands::confirm_two_factor,
            commands::disable_two_factor,
            commands::new_recovery_codes,
            commands::save_recovery_codes,
            security::list_tokens,
            security::set_token_active,
            security::set_new_address_alerts,
            security::delete_token,
            security::create_token,
            security::rotate_token,
            security::token_events,
            security::token_detail,
            security::token_access_page,
            security::close_token_detail,
            security::unconfirmed_token,
            security::confirm_token_copied,
            security::export_tokens,
        ])
        .build(tauri::generate_context!())
        .map(|app| {
            app.run(|_, event| {
                // The last window closing asks to exit without a code; Quit asks with one.
                if let tauri::RunEvent::ExitRequested {
                    code: None, api, ..
                } = event
                {
                    api.prevent_exit();
                }
            });
        });
    if let Err(err) = outcome {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("hubkey: {err}");
        }
        std::process::exit(1);
    }
}

/// The name this device's auto tokens carry: the host name.
fn device_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "this computer".to_owned())
}
