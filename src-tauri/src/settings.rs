//! What the app remembers between runs (tauri-plugin-store, `settings.json` in the app's
//! config dir): the server to sign in to. Never a secret: those live in the keyring.

use tauri::{AppHandle, Runtime};
use tauri_plugin_store::StoreExt;

const FILE: &str = "settings.json";
const SERVER_URL: &str = "server_url";

/// The server signed in to when none was chosen: `HUBKEY_SERVER_URL`, else the local hubkeyd.
pub fn default_server_url() -> String {
    std::env::var("HUBKEY_SERVER_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:5080".to_owned())
}

/// The remembered server, or the default.
pub fn server_url<R: Runtime>(app: &AppHandle<R>) -> Result<String, String> {
    let store = app.store(FILE).map_err(|err| err.to_string())?;
    Ok(store
        .get(SERVER_URL)
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(default_server_url))
}

/// Remembers `url` as the server.
pub fn set_server_url<R: Runtime>(app: &AppHandle<R>, url: &str) -> Result<(), String> {
    let store = app.store(FILE).map_err(|err| err.to_string())?;
    store.set(SERVER_URL, url);
    store.save().map_err(|err| err.to_string())
}
