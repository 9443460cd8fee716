//! Docker registry credentials in the keyring, shared by the desktop app (which stores the
//! auto token after sign-in) and `docker-credential-hubkey` (which serves them to the docker
//! CLI, and stores what a plain `docker login` hands it).
//!
//! Each registry has one entry, account [`account`]`(server_url)`, holding the JSON
//! `{"ServerURL","Username","Secret"}` that the credential-helper protocol speaks. The
//! keyring cannot enumerate entries, so [`INDEX_ACCOUNT`] keeps a non-secret index (server
//! URLs and usernames) for [`list`]; [`store`] and [`erase`] keep it up to date. A keyring
//! entry holds at most [`MAX_SECRET_BYTES`] (Windows Credential Manager's limit), so the index
//! is kept in pages: `docker-index`, then `docker-index:2`, `docker-index:3`…, each a whole
//! `{"registries": {...}}` document. Two processes changing the index at the same instant
//! can lose one update of the index (never of a credential); the next `store` of that
//! registry repairs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{stored_size, SecretError, SecretStore, Sensitive, MAX_SECRET_BYTES};

/// The keyring account of the index of docker credentials (URLs and usernames, no secrets):
/// its first page.
pub const INDEX_ACCOUNT: &str = "docker-index";

/// The most index pages read or written: at least this many registries, as one registry's
/// index entry always fits in a page (typically ten or more do).
const MAX_INDEX_PAGES: usize = 32;

/// The keyring account of index page `page` (1-based).
fn index_account(page: usize) -> String {
    if page == 1 {
        INDEX_ACCOUNT.to_owned()
    } else {
        format!("{INDEX_ACCOUNT}:{page}")
    }
}

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
    if server_url
        .chars()
        .chain(username.chars())
        .any(char::is_control)
    {
        return Err(SecretError::Other(
            "the registry server URL or username contains control characters".to_owned(),
        ));
    }
    let account = account(server_url);
    let indexed = Indexed {
        server_url: server_url.to_owned(),
        username: username.to_owned(),
    };
    // Checked before the credential is written, so a registry is never stored unlisted.
    let alone = page_json(std::iter::once((&account, &indexed)))?;
    if stored_size(&alone) > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            account: INDEX_ACCOUNT.to_owned(),
            bytes: stored_size(&alone),
        });
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
    store.set(&account, &json)?;
    update_index(store, |index| {
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
    let index = read_index(store)?
        .map(|(index, _)| index)
        .unwrap_or_default();
    Ok(index
        .registries
        .into_values()
        .map(|indexed| (indexed.server_url, indexed.username))
        .collect())
}

/// The index from all its pages, and how many pages there are; `None` when there is none.
fn read_index(store: &dyn SecretStore) -> Result<Option<(Index, usize)>, SecretError> {
    let mut index: Option<Index> = None;
    let mut pages = 0;
    for page in 1..=MAX_INDEX_PAGES {
        let account = index_account(page);
        let Some(stored) = store.get(&account)? else {
            break;
        };
        let part: Index = serde_json::from_str(stored.expose()).map_err(|err| {
            SecretError::Corrupt(format!("the entry {account} is not a hubkey index ({err})"))
        })?;
        index
            .get_or_insert_with(Index::default)
            .registries
            .extend(part.registries);
        pages = page;
    }
    Ok(index.map(|index| (index, pages)))
}

/// Applies `change` to the index and writes it back if `change` says it changed anything.
/// An unreadable index is replaced: it holds no secrets, and refusing to store or erase
/// credentials because of it would help nobody.
fn update_index(
    store: &dyn SecretStore,
    change: impl FnOnce(&mut Index) -> bool,
) -> Result<(), SecretError> {
    let (mut index, old_pages) = match read_index(store) {
        Ok(Some(found)) => found,
        Ok(None) => (Index::default(), 0),
        Err(SecretError::Corrupt(_)) => (Index::default(), MAX_INDEX_PAGES),
        Err(err) => return Err(err),
    };
    if !change(&mut index) {
        return Ok(());
    }
    let pages = paginate(&index)?;
    for (number, page) in pages.iter().enumerate() {
        store.set(&index_account(number + 1), page)?;
    }
    // Pages the index no longer needs; the first missing one ends a read anyway.
    for number in pages.len() + 1..=old_pages {
        store.delete(&index_account(number))?;
    }
    Ok(())
}

/// The index as pages of at most [`MAX_SECRET_BYTES`] each (none for an empty index).
fn paginate(index: &Index) -> Result<Vec<String>, SecretError> {
    let mut pages = Vec::new();
    let mut current: Vec<(&String, &Indexed)> = Vec::new();
    for entry in &index.registries {
        current.push(entry);
        if stored_size(&page_json(current.iter().copied())?) > MAX_SECRET_BYTES {
            // `store` checked that every entry fits in a page on its own.
            current.pop();
            if current.is_empty() {
                return Err(SecretError::TooLarge {
                    account: INDEX_ACCOUNT.to_owned(),
                    bytes: stored_size(&page_json(std::iter::once(entry))?),
                });
            }
            pages.push(page_json(current.drain(..))?);
            current.push(entry);
        }
    }
    if !current.is_empty() {
        pages.push(page_json(current.into_iter())?);
    }
    if pages.len() > MAX_INDEX_PAGES {
        return Err(SecretError::Other(format!(
            "the docker credential index would need more than {MAX_INDEX_PAGES} keyring entries: \
             erase the credentials of registries no longer used (docker logout)"
        )));
    }
    Ok(pages)
}

/// One index page holding `entries`.
fn page_json<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Indexed)>,
) -> Result<String, SecretError> {
    let page = Index {
        registries: entries
            .map(|(account, indexed)| (account.clone(), indexed.clone()))
            .collect(),
    };
    serde_json::to_string(&page)
        .map_err(|err| SecretError::Other(format!("cannot encode the index: {err}")))
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

    /// Every keyring entry the store holds, by account, for checking sizes.
    fn entries(keyring: &MemoryStore) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        for page in 1..=MAX_INDEX_PAGES + 1 {
            if let Some(text) = keyring.get(&index_account(page)).unwrap() {
                found.push((index_account(page), stored_size(text.expose())));
            }
        }
        found
    }

    #[test]
    fn an_index_of_many_registries_is_paged_to_fit_credential_manager() {
        let keyring = MemoryStore::default();
        let registry =
            |i: usize| format!("https://registry-{i:03}.{}.example:5000", "x".repeat(60));
        for i in 0..120 {
            store(&keyring, &registry(i), &format!("user{i}"), "hkpat_secret").unwrap();
        }
        let pages = entries(&keyring);
        assert!(pages.len() > 1, "120 registries need more than one page");
        for (account, size) in &pages {
            assert!(*size <= MAX_SECRET_BYTES, "{account} takes {size} bytes");
        }
        let listed = list(&keyring).unwrap();
        assert_eq!(listed.len(), 120);
        assert_eq!(listed[&registry(119)], "user119");

        // Erasing shrinks the index and removes the pages it no longer needs.
        for i in 0..115 {
            erase(&keyring, &registry(i)).unwrap();
        }
        assert_eq!(entries(&keyring).len(), 1);
        assert_eq!(list(&keyring).unwrap().len(), 5);
        for i in 115..120 {
            erase(&keyring, &registry(i)).unwrap();
        }
        assert!(entries(&keyring).is_empty());
    }

    #[test]
    fn what_cannot_fit_a_keyring_entry_is_refused_and_nothing_is_stored() {
        let keyring = MemoryStore::default();
        // A secret of 1 300 characters: its entry would pass Credential Manager's 2 560 bytes.
        let err = store(&keyring, "127.0.0.1:5000", "ann", &"s".repeat(1300)).unwrap_err();
        assert_eq!(err.code(), "keyring_too_large");
        assert!(!err.to_string().contains("sss"), "{err}");
        assert!(get(&keyring, "127.0.0.1:5000").unwrap().is_none());
        assert!(list(&keyring).unwrap().is_empty());

        // A server URL whose index entry alone would not fit in a page.
        let long = format!("{}.example", "r".repeat(900));
        let err = store(&keyring, &long, "ann", "pat").unwrap_err();
        assert_eq!(err.code(), "keyring_too_large");
        assert!(get(&keyring, &long).unwrap().is_none());
        assert!(list(&keyring).unwrap().is_empty());

        let err = store(&keyring, "127.0.0.1:5000", "ann\u{0}", "pat").unwrap_err();
        assert!(err.to_string().contains("control characters"), "{err}");
    }

    #[test]
    fn an_index_written_before_paging_is_read() {
        let keyring = MemoryStore::default();
        keyring
            .set(
                INDEX_ACCOUNT,
                r#"{"registries":{"docker:127.0.0.1:5000":{"ServerURL":"127.0.0.1:5000","Username":"ann"}}}"#,
            )
            .unwrap();
        assert_eq!(
            list(&keyring).unwrap(),
            BTreeMap::from([("127.0.0.1:5000".to_owned(), "ann".to_owned())])
        );
    }
}
