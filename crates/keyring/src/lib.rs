//! Secrets in the OS keyring, behind [`SecretStore`].
//!
//! [`OsKeyring`] is the real store (the freedesktop Secret Service on Linux: GNOME Keyring,
//! KeePassXC, KWallet); [`MemoryStore`] stands in for it in unit tests. Secrets travel as
//! [`Sensitive`], which never prints and is wiped when dropped. A missing entry is `Ok(None)`
//! and deleting a missing entry succeeds, so callers only handle real failures, each with a
//! stable [`SecretError::code`].
//!
//! [`docker`] keeps the docker credentials that the desktop app writes and
//! `docker-credential-hubkey` serves to the docker CLI.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use zeroize::Zeroizing;

pub mod docker;
mod os;

// keyring 3 without a backend feature compiles with an in-memory mock: the session and the
// docker credential would vanish with the process and the credential helper would find
// nothing. crates/keyring/Cargo.toml names a backend for each of these targets only.
#[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
compile_error!(
    "hubkey-keyring has no keyring backend for this target: name one for it in \
     crates/keyring/Cargo.toml (Linux: Secret Service, Windows: Credential Manager, \
     macOS: Keychain)"
);

pub use os::OsKeyring;

/// The keyring service name under which every hubkey entry is stored.
pub const SERVICE: &str = "hubkey";

/// The largest secret an entry may hold, in bytes of UTF-16: Windows Credential Manager keeps
/// at most 2 560 bytes per credential (`CRED_MAX_CREDENTIAL_BLOB_SIZE`) and keyring writes
/// text there as UTF-16, so 1 280 ASCII characters. Every store refuses larger secrets on
/// every OS, so what works on Linux works on Windows.
pub const MAX_SECRET_BYTES: usize = 2560;

/// The size `secret` takes in the Windows Credential Manager, in bytes.
pub fn stored_size(secret: &str) -> usize {
    secret.encode_utf16().count() * 2
}

/// Refuses a secret for `account` larger than [`MAX_SECRET_BYTES`].
fn check_size(account: &str, secret: &str) -> Result<(), SecretError> {
    let bytes = stored_size(secret);
    if bytes > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            account: account.to_owned(),
            bytes,
        });
    }
    Ok(())
}

/// A secret string: `Debug` prints `<redacted>`, it cannot be serialised, and its memory is
/// zeroed when dropped. Read it with [`Sensitive::expose`] at the one place that needs it.
#[derive(Clone)]
pub struct Sensitive(Zeroizing<String>);

impl Sensitive {
    /// Takes ownership of `secret`; the string is wiped when this value drops.
    pub fn new(secret: String) -> Self {
        Sensitive(Zeroizing::new(secret))
    }

    /// The secret itself. Do not log it, format it into messages or keep copies.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why the keyring could not do what was asked. Messages are written for the user and never
/// contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No Secret Service, no session bus, or the keyring is locked: `reason` says what is
    /// missing, for a user.
    #[error("the keyring is not available: {reason}")]
    Unavailable {
        /// What is missing, e.g. "no Secret Service is running (…)".
        reason: String,
    },
    /// The keyring did not answer within the timeout.
    #[error("the keyring did not answer in time")]
    TimedOut,
    /// An entry holds something we did not write.
    #[error("a keyring entry was not written by hubkey: {0}")]
    Corrupt(String),
    /// A secret larger than [`MAX_SECRET_BYTES`]: Windows Credential Manager could not keep
    /// it, so no store takes it.
    #[error(
        "the keyring entry {account} would take {bytes} bytes, more than the {} a keyring \
         entry may hold",
        MAX_SECRET_BYTES
    )]
    TooLarge {
        /// The entry's account name (never a secret).
        account: String,
        /// The size the secret would take, in bytes of UTF-16.
        bytes: usize,
    },
    /// Any other failure of the keyring.
    #[error("keyring error: {0}")]
    Other(String),
}

impl SecretError {
    /// A stable code for the kind of failure, for UIs and scripts: `keyring_unavailable`,
    /// `keyring_timeout`, `keyring_corrupt`, `keyring_too_large` or `keyring_error`.
    pub fn code(&self) -> &'static str {
        match self {
            SecretError::Unavailable { .. } => "keyring_unavailable",
            SecretError::TimedOut => "keyring_timeout",
            SecretError::Corrupt(_) => "keyring_corrupt",
            SecretError::TooLarge { .. } => "keyring_too_large",
            SecretError::Other(_) => "keyring_error",
        }
    }
}

/// A place for secrets, addressed by account name under one service.
///
/// Invariants every implementation keeps: reading a missing entry is `Ok(None)`; deleting a
/// missing entry is `Ok(())`; `set` replaces an existing entry.
pub trait SecretStore: Send + Sync {
    /// The secret stored for `account`, or `None` when there is none.
    fn get(&self, account: &str) -> Result<Option<Sensitive>, SecretError>;
    /// Stores `secret` for `account`, replacing what was there. A secret larger than
    /// [`MAX_SECRET_BYTES`] is refused with [`SecretError::TooLarge`], on every OS.
    fn set(&self, account: &str, secret: &str) -> Result<(), SecretError>;
    /// Removes the entry of `account`; succeeds when there is none.
    fn delete(&self, account: &str) -> Result<(), SecretError>;
    /// Which store this is, for the Settings screen, e.g. "Secret Service (GNOME Keyring)".
    fn describe(&self) -> String;
}

/// Secrets in this process's memory only, for tests. Nothing survives the value.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<String, Sensitive>>,
}

impl MemoryStore {
    fn entries(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Sensitive>>, SecretError> {
        self.entries
            .lock()
            .map_err(|_| SecretError::Other("the in-memory store was poisoned by a panic".into()))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accounts: Vec<String> = self
            .entries
            .lock()
            .map(|entries| entries.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("MemoryStore")
            .field("accounts", &accounts)
            .finish()
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, account: &str) -> Result<Option<Sensitive>, SecretError> {
        Ok(self.entries()?.get(account).cloned())
    }

    fn set(&self, account: &str, secret: &str) -> Result<(), SecretError> {
        check_size(account, secret)?;
        self.entries()?
            .insert(account.to_owned(), Sensitive::new(secret.to_owned()));
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<(), SecretError> {
        self.entries()?.remove(account);
        Ok(())
    }

    fn describe(&self) -> String {
        "in memory".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn sensitive_debug_is_redacted() {
        let secret = Sensitive::new("dckr_pat_very_secret".into());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(<redacted>)");
        assert_eq!(secret.expose(), "dckr_pat_very_secret");
    }

    #[test]
    fn memory_store_missing_entry_is_none_and_delete_of_missing_succeeds() {
        let store = MemoryStore::default();
        assert!(store.get("nobody").unwrap().is_none());
        store.delete("nobody").unwrap();
        store.set("ann", "one").unwrap();
        store.set("ann", "two").unwrap();
        assert_eq!(store.get("ann").unwrap().unwrap().expose(), "two");
        assert!(!format!("{store:?}").contains("two"));
        store.delete("ann").unwrap();
        assert!(store.get("ann").unwrap().is_none());
        assert_eq!(store.describe(), "in memory");
    }

    #[test]
    fn secrets_are_measured_as_credential_manager_keeps_them() {
        let store = MemoryStore::default();
        // 1 280 ASCII characters are 2 560 bytes of UTF-16: the largest that fits.
        store.set("ann", &"a".repeat(1280)).unwrap();
        let err = store.set("ann", &"a".repeat(1281)).unwrap_err();
        assert!(
            matches!(err, SecretError::TooLarge { bytes: 2562, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("ann") && err.to_string().contains("2560"));
        // A character outside the BMP takes two UTF-16 units.
        assert_eq!(stored_size("\u{1F511}"), 4);
        assert_eq!(stored_size("é"), 2);
        // The refused secret left the old one in place.
        assert_eq!(store.get("ann").unwrap().unwrap().expose().len(), 1280);
    }

    #[test]
    fn error_codes_are_stable() {
        let unavailable = SecretError::Unavailable {
            reason: "no Secret Service".into(),
        };
        assert_eq!(unavailable.code(), "keyring_unavailable");
        assert_eq!(SecretError::TimedOut.code(), "keyring_timeout");
        assert_eq!(SecretError::Corrupt("x".into()).code(), "keyring_corrupt");
        assert_eq!(SecretError::Other("x".into()).code(), "keyring_error");
        let too_large = SecretError::TooLarge {
            account: "session:x".into(),
            bytes: 2562,
        };
        assert_eq!(too_large.code(), "keyring_too_large");
        assert_eq!(
            unavailable.to_string(),
            "the keyring is not available: no Secret Service"
        );
    }
}
