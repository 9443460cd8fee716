//! The signature check of GitHub's secret-scanning partner program: every report GitHub
//! posts to `POST /v2/secret-scanning/github` is signed (ECDSA P-256 with SHA-256 over the
//! raw body, DER, base64 in `Github-Public-Key-Signature`) with the key named by
//! `Github-Public-Key-Identifier`, one of a key set GitHub publishes as
//! `{"public_keys":[{"key_identifier","key" (PEM),"is_current"}]}`.
//!
//! [`PartnerKeys`] holds that key set, read from a file (`--secret-scanning-keys`) or fetched
//! from a URL (`--secret-scanning-keys-url`). The set is read again after [`KEYS_TTL`], and
//! early when a report names a key it does not hold (GitHub rotating its keys), but at most
//! once per [`REFRESH_AT_MOST_EVERY`], so unsigned junk naming made-up keys cannot make the
//! server fetch on every request. A report whose key is unknown after that is refused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

use crate::error::SetupError;

/// How long a key set is used before it is read again.
pub const KEYS_TTL: Duration = Duration::from_secs(3600);
/// The soonest a key set is read again because a report named a key it does not hold.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// How long fetching the key set from its URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest key set read (GitHub's holds a handful of keys, about 1 KiB).
const MAX_KEY_SET_BYTES: usize = 256 * 1024;
/// The longest key identifier or signature header looked at.
const MAX_HEADER: usize = 512;

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file in GitHub's format.
    File(PathBuf),
    /// A URL serving GitHub's format (GitHub's own `meta/public_keys/secret_scanning`).
    Url(String),
}

/// Why a report's signature was not accepted. The caller answers each with the same 401;
/// the reason is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Github-Public-Key-Identifier or Github-Public-Key-Signature header")]
    Missing,
    #[error("the key identifier names no key of the key set")]
    UnknownKey,
    #[error("the signature is not base64 DER ECDSA")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the key set could not be read: {0}")]
    KeySet(String),
}

/// GitHub's key set format.
#[derive(Debug, Deserialize)]
struct KeySetDocument {
    public_keys: Vec<KeyDocument>,
}

#[derive(Debug, Deserialize)]
struct KeyDocument {
    key_identifier: String,
    key: String,
    // `is_current` says which key GitHub signs with now; older keys still verify reports
    // signed before a rotation, so every listed key is accepted.
}

/// The parsed keys, by identifier.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Parses GitHub's format; a key that is not a P-256 PEM public key fails the whole set
    /// (an operator's typo should be seen at start, not as refused reports).
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let document: KeySetDocument =
            serde_json::from_slice(json).map_err(|err| format!("not GitHub's key set: {err}"))?;
        let mut keys = HashMap::new();
        for entry in document.public_keys {
            let key = VerifyingKey::from_public_key_pem(entry.key.trim()).map_err(|err| {
                format!(
                    "key {:?} is not a P-256 public key in PEM: {err}",
                    entry.key_identifier
                )
            })?;
            keys.insert(entry.key_identifier, key);
        }
        if keys.is_empty() {
            return Err("the key set holds no key".into());
        }
        Ok(KeySet { keys })
    }

    /// Checks `signature_b64` (base64 DER) over `body` with the key `key_id`.
    pub fn verify(
        &self,
        key_id: &str,
        signature_b64: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let key = self.keys.get(key_id).ok_or(SignatureError::UnknownKey)?;
        let der = data_encoding::BASE64
            .decode(signature_b64.trim().as_bytes())
            .map_err(|_| SignatureError::Malformed)?;
        let signature = Signature::from_der(&der).map_err(|_| SignatureError::Malformed)?;
        key.verify(body, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }

    fn holds(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }
}

/// The key set of one source, cached.
#[derive(Debug)]
pub struct PartnerKeys {
    source: KeySource,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    keys: Option<KeySet>,
    /// When the set was last read (successfully or not).
    read_at: Option<Instant>,
}

impl PartnerKeys {
    /// Reads the key set once, so a bad file or an unreachable URL is reported at start.
    pub async fn open(source: KeySource) -> Result<Self, SetupError> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|err| SetupError::Usage(format!("secret-scanning keys: {err}")))?;
        let keys = PartnerKeys {
            source,
            http,
            cached: tokio::sync::Mutex::default(),
        };
        let set = keys
            .read()
            .await
            .map_err(|err| SetupError::Usage(format!("secret-scanning keys: {err}")))?;
        *keys.cached.lock().await = Cached {
            keys: Some(set),
            read_at: Some(Instant::now()),
        };
        Ok(keys)
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Checks a report: `key_id` and `signature` are the headers as sent, `body` the raw
    /// bytes. `now` is a monotonic instant (the cache's clock).
    pub async fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: Instant,
    ) -> Result<(), SignatureError> {
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return Err(SignatureError::Missing);
        };
        if key_id.len() > MAX_HEADER || signature.len() > MAX_HEADER {
            return Err(SignatureError::Malformed);
        }
        let keys = self.keys_for(key_id, now).await?;
        keys.verify(key_id, signature, body)
    }

    /// The key set to check `key_id` with: the cached one, read again when it is older than
    /// [`KEYS_TTL`], or when it lacks `key_id` and was read more than
    /// [`REFRESH_AT_MOST_EVERY`] ago. A failed read keeps the old set.
    async fn keys_for(&self, key_id: &str, now: Instant) -> Result<KeySet, SignatureError> {
        let mut cached = self.cached.lock().await;
        let age = cached
            .read_at
            .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
        let holds = cached.keys.as_ref().is_some_and(|keys| keys.holds(key_id));
        let stale = age >= KEYS_TTL || (!holds && age >= REFRESH_AT_MOST_EVERY);
        if stale {
            cached.read_at = Some(now);
            match self.read().await {
                Ok(set) => cached.keys = Some(set),
                Err(err) => {
                    tracing::warn!(error = %err, "reading the secret-scanning key set failed; keeping the old one");
                }
            }
        }
        cached
            .keys
            .clone()
            .ok_or_else(|| SignatureError::KeySet("never read".into()))
    }

    async fn read(&self) -> Result<KeySet, String> {
        let bytes = match &self.source {
            KeySource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|err| format!("reading {}: {err}", path.display()))?,
            KeySource::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .send()
                    .await
                    .map_err(|err| format!("fetching the key set: {err}"))?;
                if !response.status().is_success() {
                    return Err(format!("fetching the key set: HTTP {}", response.status()));
                }
                if response
                    .content_length()
                    .is_some_and(|length| length > MAX_KEY_SET_BYTES as u64)
                {
                    return Err("the key set is too large".into());
                }
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|err| format!("fetching the key set: {err}"))?;
                bytes.to_vec()
            }
        };
        if bytes.len() > MAX_KEY_SET_BYTES {
            return Err("the key set is too large".into());
        }
        KeySet::parse(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's published example: a key of its key set, a body and its signature.
    const GITHUB_KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";
    const GITHUB_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq\nkCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==\n-----END PUBLIC KEY-----";
    const GITHUB_BODY: &[u8] = br#"[{"token":"some_token","type":"some_type","url":"some_url"}]"#;
    const GITHUB_SIGNATURE: &str = "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc=";

    fn github_set() -> KeySet {
        let json = serde_json::json!({"public_keys": [
            {"key_identifier": GITHUB_KEY_ID, "key": GITHUB_KEY, "is_current": true}
        ]});
        KeySet::parse(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn githubs_published_example_verifies() {
        github_set()
            .verify(GITHUB_KEY_ID, GITHUB_SIGNATURE, GITHUB_BODY)
            .unwrap();
    }

    #[test]
    fn a_changed_body_signature_or_key_is_refused() {
        let set = github_set();
        let mut body = GITHUB_BODY.to_vec();
        body[12] ^= 1;
        assert_eq!(
            set.verify(GITHUB_KEY_ID, GITHUB_SIGNATURE, &body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            set.verify("another", GITHUB_SIGNATURE, GITHUB_BODY),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            set.verify(GITHUB_KEY_ID, "not base64!", GITHUB_BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            set.verify(GITHUB_KEY_ID, "AAAA", GITHUB_BODY),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_key_set_with_a_bad_key_is_refused_whole() {
        let json = serde_json::json!({"public_keys": [
            {"key_identifier": "a", "key": GITHUB_KEY, "is_current": true},
            {"key_identifier": "b", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "is_current": false}
        ]});
        assert!(KeySet::parse(json.to_string().as_bytes()).is_err());
        assert!(KeySet::parse(br#"{"public_keys": []}"#).is_err());
        assert!(KeySet::parse(b"[]").is_err());
    }

    #[tokio::test]
    async fn an_unknown_key_reads_the_set_again_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let write = |id: &str| {
            let json = serde_json::json!({"public_keys": [
                {"key_identifier": id, "key": GITHUB_KEY, "is_current": true}
            ]});
            std::fs::write(&path, json.to_string()).unwrap();
        };
        write("old");
        let keys = PartnerKeys::open(KeySource::File(path.clone()))
            .await
            .unwrap();
        let start = Instant::now();
        let check = |id: &'static str, at: Instant| {
            let keys = &keys;
            async move {
                keys.verify(Some(id), Some(GITHUB_SIGNATURE), GITHUB_BODY, at)
                    .await
            }
        };
        check("old", start).await.unwrap();
        write(GITHUB_KEY_ID);
        // Read at open, less than a minute ago: the new key is not looked for yet.
        assert_eq!(
            check(GITHUB_KEY_ID, start + Duration::from_secs(30)).await,
            Err(SignatureError::UnknownKey)
        );
        check(GITHUB_KEY_ID, start + Duration::from_secs(61))
            .await
            .unwrap();
        // The old key left the set: refused, and no new read for a minute.
        write("old");
        assert_eq!(
            check("old", start + Duration::from_secs(62)).await,
            Err(SignatureError::UnknownKey)
        );
        check(GITHUB_KEY_ID, start + Duration::from_secs(90))
            .await
            .unwrap();
    }
}
