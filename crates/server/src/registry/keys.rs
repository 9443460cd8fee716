//! The keys that sign registry tokens (ES256 over P-256), their self-signed certificates, and
//! their rotation.
//!
//! They live in `DATA_DIR/registry/`: `signing.key`/`signing.crt` sign tokens;
//! `next.key`/`next.crt` are staged for a rotation; `previous.crt` is a retired signing
//! certificate kept until the tokens it signed have expired. The certificate bundle a
//! registry trusts (`rootcertbundle`) holds all three certificates, so a rotation is:
//! `stage`, deploy the bundle, `promote`, wait out the token lifetime, `retire`.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};

use crate::data_dir;
use crate::error::{Error, Result, SetupError};

/// The key that signs registry tokens now, ready to sign.
pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The libtrust key id of the public key.
    pub kid: String,
    /// The certificate, DER, standard base64: the JWT header's `x5c`.
    pub x5c: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// An ES256 signature of `message`: the raw 64-byte r ‖ s form JWS uses.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.key
            .sign(&self.rng, message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| Error::Internal("ES256 signing failed".into()))
    }
}

/// The signing key files of a data directory.
#[derive(Debug, Clone)]
pub struct RegistryKeys {
    dir: PathBuf,
}

/// Which slot of the rotation a key is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Signing,
    Next,
    Previous,
}

impl Slot {
    fn stem(self) -> &'static str {
        match self {
            Slot::Signing => "signing",
            Slot::Next => "next",
            Slot::Previous => "previous",
        }
    }
}

impl RegistryKeys {
    /// The key files under `DATA_DIR/registry/`, creating the signing key on first use.
    pub fn open(data_dir: &Path) -> Result<Self, SetupError> {
        let keys = RegistryKeys {
            dir: data_dir::registry_keys(data_dir),
        };
        data_dir::create_private_dir(&keys.dir)?;
        if !keys.cert_path(Slot::Signing).exists() {
            keys.generate(Slot::Signing)?;
        }
        Ok(keys)
    }

    /// The signer of the current signing key.
    pub fn signer(&self) -> Result<Signer, SetupError> {
        let pem = read(&self.key_path(Slot::Signing))?;
        let pair = KeyPair::from_pem(&pem)
            .map_err(|err| SetupError::Key(format!("registry signing key: {err}")))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pair.serialize_der(),
            &rng,
        )
        .map_err(|err| SetupError::Key(format!("registry signing key: {err}")))?;
        let cert_der = pem_to_der(&read(&self.cert_path(Slot::Signing))?)?;
        Ok(Signer {
            key,
            rng,
            kid: libtrust_kid(&pair.public_key_der()),
            x5c: data_encoding::BASE64.encode(&cert_der),
        })
    }

    /// The PEM bundle of every certificate a registry should trust now.
    pub fn bundle(&self) -> Result<String, SetupError> {
        let mut bundle = String::new();
        for slot in [Slot::Signing, Slot::Next, Slot::Previous] {
            let path = self.cert_path(slot);
            if path.exists() {
                bundle.push_str(&read(&path)?);
            }
        }
        Ok(bundle)
    }

    /// The key ids in the bundle, with their slot names, for `hubkeyd registry-key show`.
    pub fn describe(&self) -> Result<Vec<(&'static str, String)>, SetupError> {
        let mut out = Vec::new();
        for slot in [Slot::Signing, Slot::Next] {
            let path = self.key_path(slot);
            if path.exists() {
                let pair = KeyPair::from_pem(&read(&path)?)
                    .map_err(|err| SetupError::Key(format!("{}: {err}", path.display())))?;
                out.push((slot.stem(), libtrust_kid(&pair.public_key_der())));
            }
        }
        if self.cert_path(Slot::Previous).exists() {
            out.push((Slot::Previous.stem(), "(certificate only)".to_owned()));
        }
        Ok(out)
    }

    /// Rotation step 1: creates the next key, whose certificate joins the bundle.
    pub fn stage(&self) -> Result<(), SetupError> {
        if self.key_path(Slot::Next).exists() {
            return Err(SetupError::Usage(
                "a next key is already staged; promote it first".into(),
            ));
        }
        self.generate(Slot::Next)
    }

    /// Rotation step 2: the next key signs from now on; the old certificate stays in the
    /// bundle as `previous` until retired. Restart hubkeyd afterwards.
    pub fn promote(&self) -> Result<(), SetupError> {
        if !self.key_path(Slot::Next).exists() {
            return Err(SetupError::Usage(
                "no key is staged: run `registry-key stage` first".into(),
            ));
        }
        if self.cert_path(Slot::Previous).exists() {
            return Err(SetupError::Usage(
                "retire the previous certificate first".into(),
            ));
        }
        rename(
            &self.cert_path(Slot::Signing),
            &self.cert_path(Slot::Previous),
        )?;
        std::fs::remove_file(self.key_path(Slot::Signing))
            .map_err(|err| SetupError::io("removing the old signing key", err))?;
        rename(&self.key_path(Slot::Next), &self.key_path(Slot::Signing))?;
        rename(&self.cert_path(Slot::Next), &self.cert_path(Slot::Signing))
    }

    /// Rotation step 3: drops the previous certificate from the bundle.
    pub fn retire(&self) -> Result<(), SetupError> {
        let path = self.cert_path(Slot::Previous);
        if !path.exists() {
            return Err(SetupError::Usage(
                "there is no previous certificate to retire".into(),
            ));
        }
        std::fs::remove_file(&path).map_err(|err| SetupError::io(path.display(), err))
    }

    fn key_path(&self, slot: Slot) -> PathBuf {
        self.dir.join(format!("{}.key", slot.stem()))
    }

    fn cert_path(&self, slot: Slot) -> PathBuf {
        self.dir.join(format!("{}.crt", slot.stem()))
    }

    fn generate(&self, slot: Slot) -> Result<(), SetupError> {
        let internal =
            |err: rcgen::Error| SetupError::Key(format!("generating a registry key: {err}"));
        let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(internal)?;
        let mut params = CertificateParams::new(vec!["hubkeyd".to_owned()]).map_err(internal)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "hubkeyd registry token signer");
        params.distinguished_name = name;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&pair).map_err(internal)?;
        write_private(&self.key_path(slot), &pair.serialize_pem())?;
        std::fs::write(self.cert_path(slot), cert.pem())
            .map_err(|err| SetupError::io("writing the registry certificate", err))
    }
}

/// The libtrust key id of a public key: SHA-256 of its DER SubjectPublicKeyInfo, the first
/// 30 bytes in base32 without padding, as 12 groups of 4 joined by ':'.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, SetupError> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    data_encoding::BASE64
        .decode(body.trim().as_bytes())
        .map_err(|err| SetupError::Key(format!("registry certificate is not PEM: {err}")))
}

fn read(path: &Path) -> Result<String, SetupError> {
    std::fs::read_to_string(path).map_err(|err| SetupError::io(path.display(), err))
}

fn rename(from: &Path, to: &Path) -> Result<(), SetupError> {
    std::fs::rename(from, to)
        .map_err(|err| SetupError::io(format!("{} → {}", from.display(), to.display()), err))
}

fn write_private(path: &Path, text: &str) -> Result<(), SetupError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .map_err(|err| SetupError::io(path.display(), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_has_twelve_groups_of_four() {
        let kid = libtrust_kid(b"any key");
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g.len() == 4));
    }

    #[test]
    fn rotation_moves_keys_through_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let keys = RegistryKeys::open(dir.path()).unwrap();
        let first = keys.signer().unwrap().kid;
        assert_eq!(
            keys.bundle().unwrap().matches("BEGIN CERTIFICATE").count(),
            1
        );
        keys.stage().unwrap();
        assert_eq!(
            keys.bundle().unwrap().matches("BEGIN CERTIFICATE").count(),
            2
        );
        assert_eq!(
            keys.signer().unwrap().kid,
            first,
            "staging does not change the signer"
        );
        keys.promote().unwrap();
        let second = keys.signer().unwrap().kid;
        assert_ne!(second, first);
        assert_eq!(
            keys.bundle().unwrap().matches("BEGIN CERTIFICATE").count(),
            2
        );
        keys.retire().unwrap();
        assert_eq!(
            keys.bundle().unwrap().matches("BEGIN CERTIFICATE").count(),
            1
        );
        assert!(keys.retire().is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("registry/signing.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn signatures_are_raw_64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let signer = RegistryKeys::open(dir.path()).unwrap().signer().unwrap();
        assert_eq!(signer.sign(b"header.claims").unwrap().len(), 64);
    }
}
