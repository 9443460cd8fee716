//! Replacing a small file so that a reader (or a crash, or a full disk) sees either the old
//! content or the new one, never a mix or an empty file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A step of [`replace_file`] that failed; the file at the target is as it was.
#[derive(Debug)]
pub(crate) struct WriteError {
    /// What was being done ("create a temporary file in", "write", "replace", ...).
    pub(crate) action: &'static str,
    /// The file or directory involved.
    pub(crate) path: PathBuf,
    /// The operating system's error.
    pub(crate) source: io::Error,
}

/// Replaces `target` with `bytes`: a temporary file in the same directory (created with
/// the directory when missing), written, given the target's permission bits (0600 for a new
/// file), flushed to disk, then renamed over the target, and the directory flushed.
pub(crate) fn replace_file(target: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let fail = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError {
            action,
            path,
            source,
        }
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(fail("create", &dir))?;
    let existing_permissions = match fs::metadata(target) {
        Ok(meta) => Some(meta.permissions()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(fail("inspect", target)(source)),
    };
    // tempfile creates the file with mode 0600: the mode of a new file. It removes the
    // temporary file when any step below fails.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            target
                .file_name()
                .map(|name| name.to_string_lossy())
                .unwrap_or_default()
        ))
        .tempfile_in(&dir)
        .map_err(fail("create a temporary file in", &dir))?;
    temp.write_all(bytes).map_err(fail("write", temp.path()))?;
    if let Some(permissions) = existing_permissions {
        temp.as_file()
            .set_permissions(permissions)
            .map_err(fail("set the mode of", target))?;
    }
    temp.as_file().sync_all().map_err(fail("flush", target))?;
    temp.persist(target)
        .map_err(|err| fail("replace", target)(err.error))?;
    // The rename is durable once the directory is flushed; failing that is not an error for
    // the user (the data itself is on disk).
    if let Ok(dir) = fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
