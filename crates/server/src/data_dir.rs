//! The data directory's layout, in one place: where it is by default, which files and
//! folders it holds, and that it is created readable by its owner only.
//!
//! ```text
//! DATA_DIR/            mode 0700
//!   server.key         the master key (sessions, sealed TOTP secrets), mode 0600
//!   hubkeyd.db         the SQLite database, unless --database names another
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
