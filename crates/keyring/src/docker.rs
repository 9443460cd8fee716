//! Docker registry credentials in the keyring, shared by the desktop app (which stores the
//! auto token after sign-in) and `docker-credential-hubkey` (which serves them to the docker
//! CLI, and stores what a plain `docker login` hands it).
//!
//! Each registry has one entry, account [`account`]`(server_url)`, holding the JSON
//! `{"ServerURL","Username","Secret"}` that the credential-helper protocol speaks. The
//! keyring cannot enumerate entries, so [`INDEX_ACCOUNT`] keeps a non-secret index (server
//! URLs and usernames) for [`list`]; [`store`] and [`erase`] keep it up to date. Two
//! processes changing the index at the same instant can lose one update of the index (never
//! of a credential); the next `store` of that registry repairs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{SecretError, SecretStore, Sensitive};

/// The keyring account of the index of docker credentials (URLs and usernames, no secrets).
pub const INDEX_ACCOUNT: &str = "docker-index";

const ACCOUNT_PREFIX: &str = "docker:";

/// The credentials of one registry, as the docker CLI asks for them.
#[derive(Debug, Clone)]
pub struct DockerCredential {
    /// The registry as it was named when stored, e.g. `127.0.0.1:5000` or
    /// `https://index.docker.io/v1/`.
    pub server_url: String,
    /// The user name to send with the secret.
    pub username: String,
    /// The access token (or password) for the registry.
    pub secret: Sensitive,
}

/// The keyring account of a registry: `docker:` followed by the server URL normalised so that
/// `HOST`, `http://HOST`, `https://HOST` and a trailing `/` name the same entry (the docker
/// CLI uses all of these for one registry, e.g. `docker logout` erases all three). The host
/// is lower-cased; a path (`index.docker.io/v1`) is kept.
pub fn account(server_url: &str) -> String {
    format!("{ACCOUNT_PREFIX}{}", normalise(server_url))
}

fn normalise(server_url: &str) -> String {
    let url = server_url.trim();
    let url = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))
        .unwrap_or(url);
    let url = url.trim_end_matches('/');
    match url.split_once('/') {
        Some((host, path)) => format!("{}/{path}", host.to_ascii_lowercase()),
        None => url.to_ascii_lowercase(),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A credential in the credential-helper protocol's spelling: what an entry holds, and what
/// `docker-credential-hubkey get` prints.
#[derive(Serialize)]
pub struct ProtocolCredentials<'a> {
    #[serde(rename = "ServerURL")]
    pub server_url: &'a str,
    #[serde(rename = "Username")]
    pub username: &'a str,
    #[serde(rename = "Secret")]
    pub secret: &'a str,
}

#[derive(Deserialize)]
struct EntryIn {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: Zeroizing<String>,
}

/// The index entry of one registry.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
struct Indexed {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
}

/// The index: account → registry. Versioned by its shape: `{"registries": {...}}`.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Index {
    registries: BTreeMap<String, Indexed>,
}

/// Stores `username` and `secret` for the registry `server_url`, replacing what was stored
/// for it under any of its spellings, and records it in the index.
pub fn store(
    store: &dyn SecretStore,
    server_url: &str,
    username: &str,
    secret: &str,
) -> Result<(), SecretError> {
    let server_url = server_url.trim();
    if normalise(server_url).is_empty() {
        return Err(SecretError::Other(
            "the registry server URL is empty".to_owned(),
        ));
    }
    let entry = ProtocolCredentials {
        server_url,
        username,
        secret,
    };
    let json = Zeroizing::new(
        serde_json::to_string(&entry)
            .map_err(|err| SecretError::Other(format!("cannot encode the entry: {err}")))?,
    );
    let account = account(server_url);
    store.set(&account, &json)?;
    update_index(store, |index| {
        let indexed = Indexed {
            server_url: server_url.to_owned(),
            username: username.to_owned(),
        };
        index.registries.insert(account.clone(), indexed.clone()) != Some(indexed)
    })
}

/// The credentials stored for `server_url` (under any of its spellings), or `None`.
pub fn get(
    store: &dyn SecretStore,
    server_url: &str,
) -> Result<Option<DockerCredential>, SecretError> {
    let account = account(server_url);
    let Some(stored) = store.get(&account)? else {
        return Ok(None);
    };
    // serde's messages can quote the input; the input holds a secret, so say only where.
    let mut entry: EntryIn = serde_json::from_str(stored.expose()).map_err(|_| {
        SecretError::Corrupt(format!(
            "the entry {account} is not a hubkey docker credential"
        ))
    })?;
    Ok(Some(DockerCredential {
        server_url: entry.server_url,
        username: entry.username,
        secret: Sensitive::new(std::mem::take(&mut *entry.secret)),
    }))
}

/// Removes the credentials of `server_url` and its index entry; succeeds when there are none.
pub fn erase(store: &dyn SecretStore, server_url: &str) -> Result<(), SecretError> {
    let account = account(server_url);
    store.delete(&account)?;
    update_index(store, |index| index.registries.remove(&account).is_some())
}

/// Every stored registry: server URL → username.
pub fn list(store: &dyn SecretStore) -> Result<BTreeMap<String, String>, SecretError> {
    let index = read_index(store)?.unwrap_or_default();
    Ok(index
        .registries
        .into_values()
        .map(|indexed| (indexed.server_url, indexed.username))
        .collect())
}

fn read_index(store: &dyn SecretStore) -> Result<Option<Index>, SecretError> {
    let Some(stored) = store.get(INDEX_ACCOUNT)? else {
        return Ok(None);
    };
    serde_json::from_str(stored.expose())
        .map(Some)
        .map_err(|err| {
            SecretError::Corrupt(format!(
                "the entry {INDEX_ACCOUNT} is not a hubkey index ({err})"
            ))
        })
}

/// Applies `change` to the index and writes it back if `change` says it changed anything.
/// An unreadable index is replaced: it holds no secrets, and refusing to store or erase
/// credentials because of it would help nobody.
fn update_index(
    store: &dyn SecretStore,
    change: impl FnOnce(&mut Index) -> bool,
) -> Result<(), SecretError> {
    let (mut index, exists) = match read_index(store) {
        Ok(Some(index)) => (index, true),
        Ok(None) => (Index::default(), false),
        Err(SecretError::Corrupt(_)) => (Index::default(), true),
        Err(err) => return Err(err),
    };
    if !change(&mut index) {
        return Ok(());
    }
    if index.registries.is_empty() {
        return if exists {
            store.delete(INDEX_ACCOUNT)
        } else {
            Ok(())
        };
    }
    let json = serde_json::to_string(&index)
        .map_err(|err| SecretError::Other(format!("cannot encode the index: {err}")))?;
    store.set(INDEX_ACCOUNT, &json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;
    use crate::MemoryStore;

    #[test]
    fn spellings_of_one_registry_share_an_account() {
        let expected = "docker:127.0.0.1:5000";
        for url in [
            "127.0.0.1:5000",
            "http://127.0.0.1:5000",
            "https://127.0.0.1:5000",
            "https://127.0.0.1:5000/",
            "HTTPS://127.0.0.1:5000//",
            " 127.0.0.1:5000\n",
        ] {
            assert_eq!(account(url), expected, "{url:?}");
        }
        assert_eq!(
            account("https://index.docker.io/v1/"),
            "docker:index.docker.io/v1"
        );
        assert_eq!(
            account("Registry.Example:443"),
            "docker:registry.example:443"
        );
        assert_ne!(account("registry.example"), account("other.example"));
    }

    proptest! {
        #[test]
        fn any_host_has_one_account_whatever_the_scheme(host in "[a-zA-Z0-9.-]{1,30}(:[0-9]{1,5})?") {
            let plain = account(&host);
            prop_assert_eq!(&account(&format!("http://{host}")), &plain);
            prop_assert_eq!(&account(&format!("https://{host}/")), &plain);
            prop_assert_eq!(&account(&format!("{host}/")), &plain);
        }
    }

    #[test]
    fn store_get_list_erase_round_trip() {
        let keyring = MemoryStore::default();
        store(&keyring, "127.0.0.1:5000", "ann", "dckr_pat_one").unwrap();
        store(
            &keyring,
            "https://index.docker.io/v1/",
            "bob",
            "dckr_pat_two",
        )
        .unwrap();

        let ann = get(&keyring, "http://127.0.0.1:5000/").unwrap().unwrap();
        assert_eq!(ann.server_url, "127.0.0.1:5000");
        assert_eq!(ann.username, "ann");
        assert_eq!(ann.secret.expose(), "dckr_pat_one");
        assert!(!format!("{ann:?}").contains("dckr_pat_one"));

        let listed = list(&keyring).unwrap();
        assert_eq!(
            listed,
            BTreeMap::from([
                ("127.0.0.1:5000".to_owned(), "ann".to_owned()),
                ("https://index.docker.io/v1/".to_owned(), "bob".to_owned()),
            ])
        );
        let index = keyring.get(INDEX_ACCOUNT).unwrap().unwrap();
        assert!(
            !index.expose().contains("dckr_pat"),
            "the index holds no secret"
        );

        erase(&keyring, "https://127.0.0.1:5000").unwrap();
        assert!(get(&keyring, "127.0.0.1:5000").unwrap().is_none());
        erase(&keyring, "127.0.0.1:5000").unwrap();
        assert_eq!(list(&keyring).unwrap().len(), 1);
        erase(&keyring, "https://index.docker.io/v1/").unwrap();
        assert!(list(&keyring).unwrap().is_empty());
        assert!(
            keyring.get(INDEX_ACCOUNT).unwrap().is_none(),
            "an empty index is removed"
        );
    }

    #[test]
    fn storing_again_replaces_the_user_and_secret() {
        let keyring = MemoryStore::default();
        store(&keyring, "https://127.0.0.1:5000", "ann", "old").unwrap();
        store(&keyring, "127.0.0.1:5000", "bob", "new").unwrap();
        let got = get(&keyring, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((got.username.as_str(), got.secret.expose()), ("bob", "new"));
        assert_eq!(
            list(&keyring).unwrap(),
            BTreeMap::from([("127.0.0.1:5000".to_owned(), "bob".to_owned())])
        );
    }

    #[test]
    fn foreign_entry_is_corrupt_without_quoting_it() {
        let keyring = MemoryStore::default();
        keyring
            .set(&account("127.0.0.1:5000"), "hunter2-not-json")
            .unwrap();
        let err = get(&keyring, "127.0.0.1:5000").unwrap_err();
        assert_eq!(err.code(), "keyring_corrupt");
        assert!(!err.to_string().contains("hunter2"), "{err}");

        keyring
            .set(&account("127.0.0.1:5000"), r#"{"Secret": "hunter2"}"#)
            .unwrap();
        let err = get(&keyring, "127.0.0.1:5000").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_corrupt_index_fails_list_but_not_store() {
        let keyring = MemoryStore::default();
        keyring.set(INDEX_ACCOUNT, "garbage").unwrap();
        assert_eq!(list(&keyring).unwrap_err().code(), "keyring_corrupt");
        store(&keyring, "127.0.0.1:5000", "ann", "pat").unwrap();
        assert_eq!(list(&keyring).unwrap().len(), 1);
    }

    #[test]
    fn empty_server_url_is_refused() {
        let keyring = MemoryStore::default();
        assert!(store(&keyring, " https:// ", "ann", "pat").is_err());
        assert!(keyring.get(INDEX_ACCOUNT).unwrap().is_none());
    }
}
