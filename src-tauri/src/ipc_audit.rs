//! An audit of what the webview receives, for the secrets scan of the GUI tests: with
//! `HUBKEY_IPC_AUDIT=1` in the environment, a script in the main frame records every IPC
//! answer and every event the webview is handed (command name, when known, and the payload
//! as JSON text) in the page-global array `window.__HUBKEY_IPC_AUDIT__`, which a WebDriver
//! client reads. Without the variable the plugin adds nothing.
//!
//! Compiled only with the `ipc-audit` feature (off by default, refused in release builds; see
//! `lib.rs`): the GUI tests' binary is built with it, a shipped app has no trace of it.
//!
//! It observes what the page already holds and sends nothing anywhere. Tauri defines its IPC
//! internals as read-only properties, so the script hooks the two places every answer goes
//! through: `fetch` to the `ipc:` protocol (to learn which callback belongs to which
//! command) and the lookup in `__TAURI_INTERNALS__.callbacks`, through which both invoke
//! answers and events are delivered.

use tauri::plugin::{Builder, TauriPlugin};
use tauri::Runtime;

/// The environment variable that turns the audit on.
pub const ENV: &str = "HUBKEY_IPC_AUDIT";

const SCRIPT: &str = r#"
(function () {
  const log = [];
  Object.defineProperty(window, '__HUBKEY_IPC_AUDIT__', { value: log });
  const internals = window.__TAURI_INTERNALS__;
  const callbacks = internals && internals.callbacks;
  if (!callbacks) {
    log.push({ cmd: null, id: null, data: 'audit error: no __TAURI_INTERNALS__.callbacks' });
    return;
  }
  const commands = new Map();
  const text = (data) => {
    if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
    try { return JSON.stringify(data); } catch (e) { return String(data); }
  };
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    try {
      const url = String((input && input.url) || input);
      const match = url.match(/^(?:ipc:\/\/localhost|http:\/\/ipc\.localhost)\/(.*)$/);
      if (match) {
        const headers = new Headers((init && init.headers) || {});
        for (const name of ['Tauri-Callback', 'Tauri-Error']) {
          const id = Number(headers.get(name));
          if (id) commands.set(id, decodeURIComponent(match[1]));
        }
      }
    } catch (e) {}
    return fetch0.apply(this, arguments);
  };
  Object.defineProperty(callbacks, 'get', {
    value: function (id) {
      const callback = Map.prototype.get.call(callbacks, id);
      if (!callback) return callback;
      return function (data) {
        log.push({ cmd: commands.get(id) || null, id: id, data: text(data) });
        return callback(data);
      };
    }
  });
})();
"#;

/// The audit plugin: its script when `HUBKEY_IPC_AUDIT=1`, else nothing.
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    let builder = Builder::new("hubkey-ipc-audit");
    if std::env::var(ENV).as_deref() == Ok("1") {
        builder.js_init_script(SCRIPT.to_owned()).build()
    } else {
        builder.build()
    }
}
