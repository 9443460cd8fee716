//! `docker-credential-hubkey`: the docker credential-helper protocol over the hubkey entries
//! of the keyring ([`hubkey_keyring::docker`]).
//!
//! The protocol, as the docker CLI speaks it:
//!
//! | action    | stdin                                   | stdout                                  |
//! |-----------|-----------------------------------------|-----------------------------------------|
//! | `store`   | `{"ServerURL","Username","Secret"}`     | nothing                                 |
//! | `get`     | the server URL                          | `{"ServerURL","Username","Secret"}`     |
//! | `erase`   | the server URL                          | nothing                                 |
//! | `list`    | nothing                                 | `{"<server URL>": "<username>", ...}`   |
//! | `version` | nothing                                 | a version line                          |
//!
//! Errors go to stdout with exit code 1; a missing entry is exactly
//! `credentials not found in native keychain`, which the docker CLI recognises.
//!
//! [`run`] is a pure function of (action, input, output, store), so the whole protocol is
//! tested against [`hubkey_keyring::MemoryStore`]; the binary only wires it to stdin, stdout
//! and [`hubkey_keyring::OsKeyring`]. It needs no running desktop app: the desktop app and
//! this helper meet in the keyring.

use std::io::{Read, Write};

use hubkey_keyring::{docker, SecretError, SecretStore};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The exact message the docker CLI takes to mean "no credentials for this registry".
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// Input larger than this is refused; real requests are a few hundred bytes.
const MAX_INPUT: u64 = 1024 * 1024;

/// Why an action failed. `Display` is the line printed to stdout for the docker CLI.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// No credentials are stored for the requested registry.
    #[error("{}", NOT_FOUND)]
    NotFound,
    /// The input had no server URL.
    #[error("no credentials server URL")]
    MissingServerUrl,
    /// The `store` input had no username.
    #[error("no credentials username")]
    MissingUsername,
    /// The `store` input was not the protocol's JSON. Says where, never what (it holds a
    /// secret).
    #[error("the credentials are not valid JSON {{\"ServerURL\",\"Username\",\"Secret\"}}: {0}")]
    BadInput(String),
    /// The action is not one of store, get, erase, list, version.
    #[error("Unknown credential action `{0}`")]
    UnknownAction(String),
    /// The keyring failed; the message says what the user can do.
    #[error("{0}")]
    Keyring(#[from] SecretError),
    /// Reading the input or writing the answer failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What `store` reads.
#[derive(Deserialize)]
struct CredentialsIn {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: Zeroizing<String>,
}

/// Performs `action` with the protocol's `input`, writing the answer to `output` and
/// reading or changing `store`. On error nothing has been written to `output`; the caller
/// prints the error there (see [`serve`]).
pub fn run(
    action: &str,
    input: &mut dyn Read,
    output: &mut dyn Write,
    store: &dyn SecretStore,
) -> Result<(), HelperError> {
    match action {
        "store" => {
            let text = read_input(input)?;
            // serde's messages can quote the input, which holds the secret: keep only where.
            let credentials: CredentialsIn = serde_json::from_str(&text).map_err(|err| {
                HelperError::BadInput(format!("line {} column {}", err.line(), err.column()))
            })?;
            let server_url = credentials.server_url.trim();
            if server_url.is_empty() {
                return Err(HelperError::MissingServerUrl);
            }
            if credentials.username.is_empty() {
                return Err(HelperError::MissingUsername);
            }
            docker::store(
                store,
                server_url,
                &credentials.username,
                &credentials.secret,
            )?;
            Ok(())
        }
        "get" => {
            let server_url = read_server_url(input)?;
            let credential = docker::get(store, &server_url)?.ok_or(HelperError::NotFound)?;
            // As docker-credential-helpers does, answer with the URL that was asked for.
            let answer = docker::ProtocolCredentials {
                server_url: &server_url,
                username: &credential.username,
                secret: credential.secret.expose(),
            };
            let json = Zeroizing::new(serde_json::to_vec(&answer).map_err(std::io::Error::from)?);
            output.write_all(&json)?;
            output.flush()?;
            Ok(())
        }
        "erase" => {
            let server_url = read_server_url(input)?;
            docker::erase(store, &server_url)?;
            Ok(())
        }
        "list" => {
            let registries = docker::list(store)?;
            serde_json::to_writer(&mut *output, &registries).map_err(std::io::Error::from)?;
            output.flush()?;
            Ok(())
        }
        "version" => {
            writeln!(
                output,
                "docker-credential-hubkey (hubkey) {}",
                env!("CARGO_PKG_VERSION")
            )?;
            Ok(())
        }
        other => Err(HelperError::UnknownAction(other.to_owned())),
    }
}

/// Runs `action` like [`run`] and, on error, prints the error line to `output` as the
/// protocol wants. Returns the process exit code: 0 on success, 1 on error.
pub fn serve(
    action: &str,
    input: &mut dyn Read,
    output: &mut dyn Write,
    store: &dyn SecretStore,
) -> u8 {
    match run(action, input, output, store) {
        Ok(()) => 0,
        Err(err) => {
            // If stdout itself is gone there is nobody left to tell.
            let _ = writeln!(output, "{err}");
            let _ = output.flush();
            1
        }
    }
}

/// The usage line printed when no action is given.
pub fn usage(program: &str) -> String {
    format!("Usage: {program} <store|get|erase|list|version>")
}

fn read_input(input: &mut dyn Read) -> Result<Zeroizing<String>, HelperError> {
    let mut text = Zeroizing::new(String::new());
    input.take(MAX_INPUT).read_to_string(&mut text)?;
    Ok(text)
}

fn read_server_url(input: &mut dyn Read) -> Result<String, HelperError> {
    let text = read_input(input)?;
    let server_url = text.trim();
    if server_url.is_empty() {
        return Err(HelperError::MissingServerUrl);
    }
    Ok(server_url.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use hubkey_keyring::{MemoryStore, Sensitive};

    use super::*;

    /// Runs `action` with `input` as the binary would: (exit code, stdout).
    fn call(store: &dyn SecretStore, action: &str, input: &str) -> (u8, String) {
        let mut output = Vec::new();
        let code = serve(action, &mut input.as_bytes(), &mut output, store);
        (code, String::from_utf8(output).unwrap())
    }

    const ANN: &str = r#"{"ServerURL":"127.0.0.1:5000","Username":"ann","Secret":"dckr_pat_ann"}"#;

    #[test]
    fn store_then_get_prints_the_credentials() {
        let store = MemoryStore::default();
        assert_eq!(call(&store, "store", ANN), (0, String::new()));
        let (code, out) = call(&store, "get", "127.0.0.1:5000\n");
        assert_eq!(code, 0, "{out}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"ServerURL": "127.0.0.1:5000", "Username": "ann", "Secret": "dckr_pat_ann"})
        );
    }

    #[test]
    fn get_answers_for_every_spelling_of_the_registry() {
        let store = MemoryStore::default();
        call(&store, "store", ANN);
        for url in ["http://127.0.0.1:5000", "https://127.0.0.1:5000/"] {
            let (code, out) = call(&store, "get", url);
            assert_eq!(code, 0, "{out}");
            let got: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(got["ServerURL"], url);
            assert_eq!(got["Secret"], "dckr_pat_ann");
        }
    }

    #[test]
    fn get_of_a_missing_entry_is_the_exact_not_found_message() {
        let store = MemoryStore::default();
        assert_eq!(
            call(&store, "get", "127.0.0.1:5000"),
            (1, "credentials not found in native keychain\n".to_owned())
        );
    }

    #[test]
    fn erase_removes_and_erasing_again_succeeds() {
        let store = MemoryStore::default();
        call(&store, "store", ANN);
        assert_eq!(call(&store, "erase", "127.0.0.1:5000"), (0, String::new()));
        assert_eq!(call(&store, "get", "127.0.0.1:5000").0, 1);
        // docker logout erases HOST, http://HOST and https://HOST in turn.
        assert_eq!(
            call(&store, "erase", "https://127.0.0.1:5000"),
            (0, String::new())
        );
    }

    #[test]
    fn list_prints_urls_and_usernames_only() {
        let store = MemoryStore::default();
        assert_eq!(call(&store, "list", ""), (0, "{}".to_owned()));
        call(&store, "store", ANN);
        call(
            &store,
            "store",
            r#"{"ServerURL":"https://index.docker.io/v1/","Username":"bob","Secret":"s3"}"#,
        );
        let (code, out) = call(&store, "list", "");
        assert_eq!(code, 0);
        let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            listed,
            serde_json::json!({"127.0.0.1:5000": "ann", "https://index.docker.io/v1/": "bob"})
        );
        assert!(!out.contains("dckr_pat_ann"));
    }

    #[test]
    fn version_prints_one_line() {
        let (code, out) = call(&MemoryStore::default(), "version", "");
        assert_eq!(code, 0);
        assert!(
            out.starts_with("docker-credential-hubkey (hubkey) "),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn bad_json_is_refused_without_echoing_the_secret() {
        let store = MemoryStore::default();
        let (code, out) = call(
            &store,
            "store",
            r#"{"ServerURL":"127.0.0.1:5000","Username":"ann","Secret":12345678}"#,
        );
        assert_eq!(code, 1);
        assert!(out.contains("not valid JSON"), "{out}");
        assert!(!out.contains("12345678"), "{out}");
        let (code, out) = call(&store, "store", "dckr_pat_plain_text");
        assert_eq!(code, 1);
        assert!(!out.contains("dckr_pat"), "{out}");
        assert_eq!(call(&store, "list", ""), (0, "{}".to_owned()));
    }

    #[test]
    fn empty_input_is_refused() {
        let store = MemoryStore::default();
        assert_eq!(
            call(&store, "get", " \n"),
            (1, "no credentials server URL\n".to_owned())
        );
        assert_eq!(
            call(&store, "erase", ""),
            (1, "no credentials server URL\n".to_owned())
        );
        assert_eq!(call(&store, "store", "").0, 1);
        assert_eq!(
            call(&store, "store", r#"{"ServerURL":"h","Secret":"s"}"#),
            (1, "no credentials username\n".to_owned())
        );
        assert_eq!(
            call(&store, "store", r#"{"Username":"ann","Secret":"s"}"#),
            (1, "no credentials server URL\n".to_owned())
        );
    }

    #[test]
    fn unknown_action_is_an_error() {
        assert_eq!(
            call(&MemoryStore::default(), "steal", ""),
            (1, "Unknown credential action `steal`\n".to_owned())
        );
    }

    #[test]
    fn an_identity_token_login_is_stored_as_is() {
        // docker stores OAuth identity tokens with the username "<token>".
        let store = MemoryStore::default();
        let input = r#"{"ServerURL":"registry.example","Username":"<token>","Secret":"id-token"}"#;
        assert_eq!(call(&store, "store", input).0, 0);
        let (_, out) = call(&store, "get", "registry.example");
        assert!(out.contains(r#""Username":"<token>""#), "{out}");
    }

    /// A store whose keyring is gone, as on a machine without a Secret Service.
    struct NoKeyring;

    impl SecretStore for NoKeyring {
        fn get(&self, _: &str) -> Result<Option<Sensitive>, SecretError> {
            Err(unavailable())
        }
        fn set(&self, _: &str, _: &str) -> Result<(), SecretError> {
            Err(unavailable())
        }
        fn delete(&self, _: &str) -> Result<(), SecretError> {
            Err(unavailable())
        }
        fn describe(&self) -> String {
            "nothing".into()
        }
    }

    fn unavailable() -> SecretError {
        SecretError::Unavailable {
            reason: "no Secret Service is running".into(),
        }
    }

    #[test]
    fn keyring_failures_are_printed_for_the_user() {
        for (action, input) in [("get", "h"), ("store", ANN), ("erase", "h"), ("list", "")] {
            let (code, out) = call(&NoKeyring, action, input);
            assert_eq!(code, 1, "{action}");
            assert_eq!(
                out, "the keyring is not available: no Secret Service is running\n",
                "{action}"
            );
        }
    }
}
