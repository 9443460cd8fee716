//! The app's own settings file: a JSON object of named values (the server, the polling
//! interval, the watcher's cursors…), never a secret.
//!
//! Invariants: a change is written atomically ([`crate::atomic`]), so a full disk, a
//! read-only directory or a crash leaves the previous file whole and the error says so;
//! changes in one process never lose each other (read-modify-write under one lock); a file
//! that is missing or does not parse reads as empty (defaults), and the next change writes
//! a good one.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};

/// Serialises read-modify-write of every settings file of this process.
static WRITES: Mutex<()> = Mutex::new(());

/// A change of the settings could not be saved; the file holds the settings as before.
#[derive(Debug, thiserror::Error)]
#[error("Cannot save the settings to {}: could not {action} {} ({source}). The previous settings were kept; free some disk space or fix the folder's permissions, then try again.", file.display(), path.display())]
pub struct SettingsError {
    /// The settings file.
    pub file: PathBuf,
    /// The step that failed.
    pub action: &'static str,
    /// The file or directory it failed on.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// One settings file, e.g. `settings.json` in the app's data directory. The JSON is the
/// object that tauri-plugin-store writes, so files written by earlier versions read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    /// The settings at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `key`; `None` when unset, or when the file is missing or unreadable.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.read().remove(key)
    }

    /// Sets `key` to `value` and saves the file atomically.
    pub fn set(&self, key: &str, value: Value) -> Result<(), SettingsError> {
        let _writing = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        let mut settings = self.read();
        if settings.get(key) == Some(&value) {
            return Ok(());
        }
        settings.insert(key.to_owned(), value);
        let mut bytes = serde_json::to_vec_pretty(&settings).map_err(|err| SettingsError {
            file: self.path.clone(),
            action: "encode",
            path: self.path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, err),
        })?;
        bytes.push(b'\n');
        crate::atomic::replace_file(&self.path, &bytes).map_err(|err| SettingsError {
            file: self.path.clone(),
            action: err.action,
            path: err.path,
            source: err.source,
        })
    }

    fn read(&self) -> Map<String, Value> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_read_back_and_other_keys_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = SettingsFile::new(dir.path().join("app").join("settings.json"));
        assert_eq!(file.get("server_url"), None);
        file.set("server_url", "http://127.0.0.1:5080".into())
            .unwrap();
        file.set("watch_interval_secs", 60.into()).unwrap();
        assert_eq!(
            file.get("server_url"),
            Some(Value::from("http://127.0.0.1:5080"))
        );
        assert_eq!(file.get("watch_interval_secs"), Some(Value::from(60)));
        let names: Vec<String> = std::fs::read_dir(dir.path().join("app"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["settings.json"], "no temporary file is left");
    }

    #[test]
    fn an_unreadable_file_reads_as_defaults_and_is_replaced_by_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, b"{\"server_url\": \"http://h:1\"").unwrap();
        let file = SettingsFile::new(&path);
        assert_eq!(file.get("server_url"), None);
        file.set("notifications", false.into()).unwrap();
        assert_eq!(file.get("notifications"), Some(Value::from(false)));
    }

    #[test]
    fn a_file_written_by_tauri_plugin_store_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(
            &path,
            br#"{
  "server_url": "http://127.0.0.1:5080",
  "tray_attention": true
}"#,
        )
        .unwrap();
        let file = SettingsFile::new(&path);
        assert_eq!(file.get("tray_attention"), Some(Value::from(true)));
    }
}
