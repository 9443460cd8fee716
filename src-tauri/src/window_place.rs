//! The window comes back where the person left it: its size and position are saved (in
//! `window.json`, half a second after the last move or resize) and restored at start,
//! brought onto a monitor that is connected now by `hubkey_desktop::WindowPlace::onto`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hubkey_desktop::{Screen, SettingsFile, WindowPlace};
use tauri::{AppHandle, Manager, PhysicalPosition, PhysicalSize, Runtime, WebviewWindow};

const FILE: &str = "window.json";
const KEY: &str = "place";
/// The smallest window (as `tauri.conf.json` says).
const MIN: (u32, u32) = (480, 420);
/// How long the window must stay still before its place is saved.
const SETTLE: Duration = Duration::from_millis(500);

/// Counts moves and resizes, so only the last of a burst saves.
#[derive(Debug, Default, Clone)]
pub struct Changes(Arc<AtomicU64>);

fn file<R: Runtime>(app: &AppHandle<R>) -> Option<SettingsFile> {
    let dir = app.path().app_data_dir().ok()?;
    Some(SettingsFile::new(dir.join(FILE)))
}

/// Puts the main window where it was at the last run, if it was saved and a monitor can
/// show it.
pub fn restore<R: Runtime>(app: &AppHandle<R>) {
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    let Some(saved) = file(app)
        .and_then(|file| file.get(KEY))
        .and_then(|value| serde_json::from_value::<WindowPlace>(value).ok())
    else {
        return;
    };
    let screens: Vec<Screen> = window
        .available_monitors()
        .unwrap_or_default()
        .iter()
        .map(|monitor| {
            let area = monitor.work_area();
            Screen {
                x: area.position.x,
                y: area.position.y,
                width: area.size.width,
                height: area.size.height,
            }
        })
        .collect();
    if let Some(place) = saved.onto(&screens, MIN) {
        let _ = window.set_size(PhysicalSize::new(place.width, place.height));
        let _ = window.set_position(PhysicalPosition::new(place.x, place.y));
    }
}

/// The window moved or was resized: its place is saved once it has been still for
/// [`SETTLE`]. A minimised or maximised window keeps the place saved before.
pub fn changed<R: Runtime>(window: &WebviewWindow<R>) {
    let changes = window.state::<Changes>().inner().clone();
    let this = changes.0.fetch_add(1, Ordering::AcqRel) + 1;
    let window = window.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        if changes.0.load(Ordering::Acquire) != this {
            return;
        }
        save(&window);
    });
}

fn save<R: Runtime>(window: &WebviewWindow<R>) {
    if window.is_minimized().unwrap_or(true) || window.is_maximized().unwrap_or(true) {
        return;
    }
    let (Ok(position), Ok(size)) = (window.outer_position(), window.inner_size()) else {
        return;
    };
    let place = WindowPlace {
        x: position.x,
        y: position.y,
        width: size.width,
        height: size.height,
    };
    if let (Some(file), Ok(value)) = (file(window.app_handle()), serde_json::to_value(place)) {
        // Not saved (a full disk): the window opens at its default place next time.
        let _ = file.set(KEY, value);
    }
}
