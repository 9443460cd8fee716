//! The data directory's layout, in one place: where it is by default, which files and
//! folders it holds, that it is created readable by its owner only, and that the server
//! refuses one that others can write (they could replace the database or the keys).
//!
//! ```text
//! DATA_DIR/            mode 0700
//!   server.key         the master key (sessions, sealed TOTP secrets), mode 0600
//!   hubkeyd.db         the SQLite database, unless --database names another, mode 0600
//!                      (with its -wal and -shm files, which SQLite gives the same mode)
//!   registry/          the registry token signing keys (see registry::keys), mode 0700
//! ```

use std::path::{Path, PathBuf};

use crate::error::SetupError;

/// The master key file.
pub const SERVER_KEY: &str = "server.key";
/// The default SQLite database file.
pub const DATABASE: &str = "hubkeyd.db";
/// The folder of the registry token signing keys.
pub const REGISTRY_KEYS: &str = "registry";

/// The per-user default: `$XDG_DATA_HOME/hubkeyd` (or the OS's equivalent).
pub fn default_dir() -> Result<PathBuf, SetupError> {
    dirs::data_dir()
        .map(|dir| dir.join("hubkeyd"))
        .ok_or_else(|| SetupError::Usage("no data directory: pass --data-dir".into()))
}

/// The database URL used when none is given: the SQLite file in `data_dir`.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join(DATABASE).display())
}

/// The master key file of `data_dir`.
pub fn server_key(data_dir: &Path) -> PathBuf {
    data_dir.join(SERVER_KEY)
}

/// The registry signing key folder of `data_dir`.
pub fn registry_keys(data_dir: &Path) -> PathBuf {
    data_dir.join(REGISTRY_KEYS)
}

/// Creates `dir` and its parents; `dir` itself gets mode 0700, as every folder of the data
/// directory that holds keys does.
pub fn create_private_dir(dir: &Path) -> Result<(), SetupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|err| SetupError::io(format!("creating {}", dir.display()), err))
}

/// Refuses a data directory that users other than its owner can write: they could swap the
/// database or the keys under the server. The message names the folder and the fix.
pub fn check_not_shared(dir: &Path) -> Result<(), SetupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .map_err(|err| SetupError::io(format!("reading {}", dir.display()), err))?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            return Err(SetupError::Usage(format!(
                "the data directory {} can be written by other users (mode {:o}): they could \
                 replace its database or keys. Run `chmod 700 {}` (or choose another \
                 --data-dir) and start again",
                dir.display(),
                mode & 0o777,
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Creates the file at `path` readable and writable by its owner only (0600, whatever the
/// umask), or takes an existing one down to 0600: the database holds password hashes.
/// SQLite gives its `-wal` and `-shm` files the mode of the database file.
pub fn create_private_file(path: &Path) -> Result<(), SetupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|err| SetupError::io(format!("creating {}", path.display()), err))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode given to open() is narrowed by the umask but never widened; a file made
        // before (by an older hubkeyd, or another tool) may be wider.
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                    |err| SetupError::io(format!("restricting {}", file.display()), err),
                )?;
            }
        }
    }
    Ok(())
}
