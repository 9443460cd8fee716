//! The keys that sign registry tokens (ES256 over P-256), their self-signed certificates, and
//! their rotation.
//!
//! They live in `DATA_DIR/registry/`: `signing.key`/`signing.crt` sign tokens;
//! `next.key`/`next.crt` are staged for a rotation; `previous.crt` is a retired signing
//! certificate kept until the tokens it signed have expired. The certificate bundle a
//! registry trusts (`rootcertbundle`) holds all three certificates, so a rotation is:
//! `stage`, deploy the bundle, `promote`, wait out the token lifetime, `retire`.
//!
//! Crash safety: every file is replaced whole (written to a temporary file, synced, renamed,
//! the folder synced), a certificate is written before its key, and `promote` copies before
//! it removes. The signer takes whichever of the three certificates belongs to `signing.key`.
//! So after a crash at any point, the key hubkeyd signs with has its certificate in the
//! bundle deployed after `stage`, and running the interrupted command again finishes it.

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
        // A signing key is only ever replaced whole, never removed: none means none was made
        // yet (or its first creation stopped after the certificate).
        if !keys.key_path(Slot::Signing).exists() {
            let mut steps = Steps::default();
            keys.generate(Slot::Signing, &mut steps)?;
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
        let cert_der = self.certificate_of(&pair)?.ok_or_else(|| {
            SetupError::Key(
                "the registry signing key has no certificate in the bundle: the registry would \
                 not trust its tokens; restore the data directory's registry/ folder"
                    .into(),
            )
        })?;
        Ok(Signer {
            key,
            rng,
            kid: libtrust_kid(&pair.public_key_der()),
            x5c: data_encoding::BASE64.encode(&cert_der),
        })
    }

    /// The PEM bundle of every certificate a registry should trust now (each once).
    pub fn bundle(&self) -> Result<String, SetupError> {
        let mut bundle = String::new();
        for (_, pem) in self.certificates()? {
            if !bundle.contains(&pem) {
                bundle.push_str(&pem);
            }
        }
        Ok(bundle)
    }

    /// The certificates present, by slot, as PEM.
    fn certificates(&self) -> Result<Vec<(Slot, String)>, SetupError> {
        let mut out = Vec::new();
        for slot in [Slot::Signing, Slot::Next, Slot::Previous] {
            if let Some(pem) = read_optional(&self.cert_path(slot))? {
                out.push((slot, pem));
            }
        }
        Ok(out)
    }

    /// The certificate (DER) of `pair` among the three slots, if any.
    fn certificate_of(&self, pair: &KeyPair) -> Result<Option<Vec<u8>>, SetupError> {
        Ok(self.slot_of(pair)?.map(|(_, der)| der))
    }

    /// The first slot whose certificate certifies `pair`'s public key, with the DER.
    fn slot_of(&self, pair: &KeyPair) -> Result<Option<(Slot, Vec<u8>)>, SetupError> {
        for (slot, pem) in self.certificates()? {
            let der = pem_to_der(&pem)?;
            if certifies(&der, pair) {
                return Ok(Some((slot, der)));
            }
        }
        Ok(None)
    }

    fn key_pair(&self, slot: Slot) -> Result<Option<KeyPair>, SetupError> {
        let path = self.key_path(slot);
        read_optional(&path)?
            .map(|pem| {
                KeyPair::from_pem(&pem)
                    .map_err(|err| SetupError::Key(format!("{}: {err}", path.display())))
            })
            .transpose()
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

    /// Rotation step 1: creates the next key, whose certificate joins the bundle. Written
    /// certificate first: a crash in between leaves a certificate without a key, which a second
    /// `stage` replaces.
    pub fn stage(&self) -> Result<(), SetupError> {
        let mut steps = Steps::default();
        if let Some(next) = self.key_pair(Slot::Next)? {
            if self.slot_of(&next)?.is_some() {
                return Err(SetupError::Usage(
                    "a next key is already staged; promote it first".into(),
                ));
            }
        }
        self.generate(Slot::Next, &mut steps)
    }

    /// Rotation step 2: the next key signs from now on; the old certificate stays in the
    /// bundle as `previous` until retired. Restart hubkeyd afterwards.
    ///
    /// Each step replaces or removes one file durably, in an order that keeps the signing
    /// key's certificate in the bundle at every moment: the old certificate is copied to
    /// `previous`, the next certificate to `signing`, then the next key to `signing`, and only
    /// then are the `next` files removed. Run again after a crash, it finishes the rotation.
    pub fn promote(&self) -> Result<(), SetupError> {
        let mut steps = Steps::default();
        let signing = self
            .key_pair(Slot::Signing)?
            .ok_or_else(|| SetupError::Key("the registry signing key is missing".into()))?;
        let Some(next) = self.key_pair(Slot::Next)? else {
            // Interrupted after the next key was removed: only its certificate is left.
            let leftover = read_optional(&self.cert_path(Slot::Next))?;
            if let Some(pem) = leftover {
                if certifies(&pem_to_der(&pem)?, &signing) {
                    return remove_durably(&self.cert_path(Slot::Next), &mut steps);
                }
            }
            return Err(SetupError::Usage(
                "no key is staged: run `registry-key stage` first".into(),
            ));
        };
        let next_pem = read(&self.cert_path(Slot::Next))?;
        if !certifies(&pem_to_der(&next_pem)?, &next) {
            return Err(SetupError::Usage(
                "the staged key has no certificate: run `registry-key stage` again".into(),
            ));
        }
        if signing.public_key_der() != next.public_key_der() {
            let (_, old_der) = self.slot_of(&signing)?.ok_or_else(|| {
                SetupError::Key("the registry signing key has no certificate".into())
            })?;
            let old_pem = der_to_pem(&old_der);
            match read_optional(&self.cert_path(Slot::Previous))? {
                Some(previous) if pem_to_der(&previous)? == old_der => {}
                Some(_) => {
                    return Err(SetupError::Usage(
                        "retire the previous certificate first".into(),
                    ))
                }
                None => {
                    write_durably(&self.cert_path(Slot::Previous), &old_pem, false, &mut steps)?;
                }
            }
            write_durably(&self.cert_path(Slot::Signing), &next_pem, false, &mut steps)?;
            write_durably(
                &self.key_path(Slot::Signing),
                &read(&self.key_path(Slot::Next))?,
                true,
                &mut steps,
            )?;
        }
        remove_durably(&self.key_path(Slot::Next), &mut steps)?;
        remove_durably(&self.cert_path(Slot::Next), &mut steps)
    }

    /// Rotation step 3: drops the previous certificate from the bundle. Refused while the
    /// signing key's certificate is nowhere else (a promote that was interrupted: run it
    /// again first).
    pub fn retire(&self) -> Result<(), SetupError> {
        let mut steps = Steps::default();
        let path = self.cert_path(Slot::Previous);
        if !path.exists() {
            return Err(SetupError::Usage(
                "there is no previous certificate to retire".into(),
            ));
        }
        let signing = self
            .key_pair(Slot::Signing)?
            .ok_or_else(|| SetupError::Key("the registry signing key is missing".into()))?;
        let elsewhere = self
            .certificates()?
            .into_iter()
            .filter(|(slot, _)| *slot != Slot::Previous)
            .map(|(_, pem)| pem_to_der(&pem))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|der| certifies(der, &signing));
        if !elsewhere {
            return Err(SetupError::Usage(
                "a promote was interrupted: run `registry-key promote` again before retiring"
                    .into(),
            ));
        }
        remove_durably(&path, &mut steps)
    }

    fn key_path(&self, slot: Slot) -> PathBuf {
        self.dir.join(format!("{}.key", slot.stem()))
    }

    fn cert_path(&self, slot: Slot) -> PathBuf {
        self.dir.join(format!("{}.crt", slot.stem()))
    }

    fn generate(&self, slot: Slot, steps: &mut Steps) -> Result<(), SetupError> {
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
        // The certificate first: a key is never without its certificate.
        write_durably(&self.cert_path(slot), &cert.pem(), false, steps)?;
        write_durably(&self.key_path(slot), &pair.serialize_pem(), true, steps)
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

fn read_optional(path: &Path) -> Result<Option<String>, SetupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(SetupError::io(path.display(), err)),
    }
}

fn der_to_pem(der: &[u8]) -> String {
    let encoded = data_encoding::BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Whether the certificate `der` is `pair`'s: a certificate holds its subject's public key
/// verbatim (ours are self-signed, so no other key is in it).
fn certifies(der: &[u8], pair: &KeyPair) -> bool {
    let public = pair.public_key_raw();
    !public.is_empty() && der.windows(public.len()).any(|window| window == public)
}

/// The steps of one rotation command, counted so a test can stop the process after any of
/// them: with `HUBKEYD_TEST_CRASH_AFTER_STEP=N` (debug builds only), the process aborts right
/// after its Nth durable file change, as a crash or a power cut would stop it.
#[derive(Debug, Default)]
struct Steps {
    done: u32,
}

impl Steps {
    fn done(&mut self) {
        self.done += 1;
        #[cfg(debug_assertions)]
        if std::env::var("HUBKEYD_TEST_CRASH_AFTER_STEP")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            == Some(self.done)
        {
            std::process::abort();
        }
    }
}

/// Replaces `path` with `text` whole: a temporary file beside it, synced, renamed over it,
/// and the folder synced, so after a crash the file holds the old text or the new, never a
/// part. `private` files are created 0600.
fn write_durably(
    path: &Path,
    text: &str,
    private: bool,
    steps: &mut Steps,
) -> Result<(), SetupError> {
    use std::io::Write;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    options
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .map_err(|err| SetupError::io(temporary.display(), err))?;
    std::fs::rename(&temporary, path).map_err(|err| {
        SetupError::io(format!("{} → {}", temporary.display(), path.display()), err)
    })?;
    sync_parent(path)?;
    steps.done();
    Ok(())
}

/// Replaces `path` with `text` whole and durably (see the rotation's steps), for other files a
/// registry reads, such as its certificate bundle.
pub fn replace_file(path: &Path, text: &str) -> Result<(), SetupError> {
    write_durably(path, text, false, &mut Steps::default())
}

/// Removes `path` (already gone is fine) and syncs its folder.
fn remove_durably(path: &Path, steps: &mut Steps) -> Result<(), SetupError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(SetupError::io(path.display(), err)),
    }
    sync_parent(path)?;
    steps.done();
    Ok(())
}

/// Makes a rename or removal in `path`'s folder durable.
fn sync_parent(path: &Path) -> Result<(), SetupError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|err| SetupError::io(dir.display(), err))?;
    Ok(())
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
