//! The server key: 32 random bytes in `server.key` in the data directory (mode 0600),
//! created on first start. Everything secret the server derives comes from it: the HMAC key
//! of session JWTs and the key that seals TOTP secrets in the database, so that a stolen
//! database file alone reveals neither. Instances sharing a database share this file.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::data_dir;
use crate::error::{Error, Result, SetupError};

const NONCE_LEN: usize = 12;

/// Keys derived from the server key, one per purpose.
#[derive(Clone)]
pub struct ServerKeys {
    session_jwt: Zeroizing<[u8; 32]>,
    seal: Zeroizing<[u8; 32]>,
    page: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(<redacted>)")
    }
}

impl ServerKeys {
    /// Reads `DIR/server.key`, creating it (mode 0600) when absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SetupError> {
        let path = data_dir::server_key(data_dir);
        let master = match std::fs::read_to_string(&path) {
            Ok(text) => decode_master(&path, &text)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => create_master(&path)?,
            Err(err) => return Err(SetupError::io(path.display(), err)),
        };
        Ok(Self::derive(&master))
    }

    /// Keys derived from a given master key, for tests.
    pub fn derive(master: &[u8; 32]) -> Self {
        ServerKeys {
            session_jwt: derive(master, b"hubkeyd session jwt v1"),
            seal: derive(master, b"hubkeyd seal v1"),
            page: derive(master, b"hubkeyd device page v1"),
        }
    }

    /// The HMAC key of session JWTs.
    pub fn session_jwt(&self) -> &[u8] {
        self.session_jwt.as_slice()
    }

    /// HMAC-SHA256 of `parts` (each length-prefixed) under the device verification page's
    /// key: its cookie's signature and its forms' CSRF tokens.
    pub fn page_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.page.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plain` for storage: hex of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Result<String> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.seal.as_slice()));
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| Error::Internal("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(data_encoding::HEXLOWER.encode(&out))
    }

    /// Reverses [`ServerKeys::seal`]; fails when the data was sealed with another key.
    pub fn unseal(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
        let bytes = data_encoding::HEXLOWER
            .decode(sealed.as_bytes())
            .map_err(|_| Error::Internal("sealed value is not hex".into()))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::Internal("sealed value is too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.seal.as_slice()));
        cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::Internal("cannot unseal a stored secret: was server.key replaced?".into())
            })
    }
}

fn derive(master: &[u8; 32], purpose: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC-SHA256 keyed by the master key as a PRF (HKDF-Expand with one block).
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(purpose);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

fn decode_master(path: &Path, text: &str) -> Result<[u8; 32], SetupError> {
    let bytes = Zeroizing::new(
        data_encoding::HEXLOWER
            .decode(text.trim().as_bytes())
            .map_err(|_| SetupError::Key(format!("{} is not a hex key", path.display())))?,
    );
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| SetupError::Key(format!("{} must hold 32 bytes", path.display())))
}

fn create_master(path: &Path) -> Result<[u8; 32], SetupError> {
    let mut master = [0u8; 32];
    OsRng.fill_bytes(&mut master);
    let text = Zeroizing::new(data_encoding::HEXLOWER.encode(&master));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|err| SetupError::io(path.display(), err))?;
            Ok(master)
        }
        // Another process created it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let text =
                std::fs::read_to_string(path).map_err(|err| SetupError::io(path.display(), err))?;
            decode_master(path, &text)
        }
        Err(err) => Err(SetupError::io(path.display(), err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let keys = ServerKeys::derive(&[7; 32]);
        let sealed = keys.seal(b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            keys.unseal(&sealed).unwrap().as_slice(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(ServerKeys::derive(&[8; 32]).unseal(&sealed).is_err());
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerKeys::load_or_create(dir.path()).unwrap();
        let second = ServerKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(first.session_jwt(), second.session_jwt());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data_dir::server_key(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
