//! The longest value of each part of the keyring's session entry, checked where the value
//! enters the app, so that the largest entry the app can write fits
//! [`hubkey_keyring::MAX_SECRET_BYTES`] (Windows Credential Manager's 2 560 bytes of UTF-16)
//! on every OS: a sign-in never gets as far as a keyring that refuses it.
//!
//! Each check answers a clear error for a person (the typed address or user name) or about
//! the server (what it sent); none repeats a secret.

use crate::error::DesktopError;

/// A server address, as normalised.
pub const MAX_SERVER_URL_CHARS: usize = 256;
/// A user name as typed at sign-in (the hubs we know allow 30).
pub const MAX_USERNAME_CHARS: usize = 64;
/// A refresh token as the server sends it (hubkeyd's are 43 characters).
pub const MAX_REFRESH_TOKEN_CHARS: usize = 256;
/// The registry host the server names (a DNS name is at most 253 characters, plus a port).
pub const MAX_REGISTRY_CHARS: usize = 260;
/// A docker credential helper's name, the `NAME` of `docker-credential-NAME`.
pub const MAX_HELPER_NAME_CHARS: usize = 64;

/// Whether `text` is visible ASCII without `"` and `\` (what JSON writes as is, one UTF-16
/// unit per character).
fn plain_ascii(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A user name the session entry can hold: at most [`MAX_USERNAME_CHARS`] characters, no
/// control characters.
pub fn check_username(username: &str) -> Result<(), DesktopError> {
    if username.chars().count() > MAX_USERNAME_CHARS || username.chars().any(char::is_control) {
        return Err(DesktopError::InvalidInput {
            message: format!(
                "A user name is at most {MAX_USERNAME_CHARS} characters, without control characters."
            ),
        });
    }
    Ok(())
}

/// A refresh token the session entry can hold: at most [`MAX_REFRESH_TOKEN_CHARS`] visible
/// ASCII characters. The token itself is never in the error.
pub fn check_refresh_token(server: &str, token: Option<&str>) -> Result<(), DesktopError> {
    match token {
        Some(token) if token.len() > MAX_REFRESH_TOKEN_CHARS || !plain_ascii(token) => {
            Err(DesktopError::ServerError {
                status: None,
                message: format!(
                    "{server} sent a refresh token hubkey cannot keep: it may be at most \
                     {MAX_REFRESH_TOKEN_CHARS} plain ASCII characters."
                ),
            })
        }
        _ => Ok(()),
    }
}

/// A registry host the session entry and the docker config can hold: at most
/// [`MAX_REGISTRY_CHARS`] visible ASCII characters; why not, for the hand-off's reason.
pub fn check_registry(registry: &str) -> Result<(), String> {
    if registry.len() > MAX_REGISTRY_CHARS || !plain_ascii(registry) {
        return Err(format!(
            "the registry it names is not a host name of at most {MAX_REGISTRY_CHARS} plain ASCII characters"
        ));
    }
    Ok(())
}

/// A credential helper name as docker turns it into a program name
/// (`docker-credential-NAME`): 1 to [`MAX_HELPER_NAME_CHARS`] ASCII letters, digits, `.`, `_`
/// or `-`, as every helper docker knows is named (`desktop`, `osxkeychain`, `wincred`,
/// `ecr-login`, `gcloud`…).
pub fn check_helper_name(name: &str) -> Result<(), DesktopError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_HELPER_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(DesktopError::InvalidInput {
            message: format!(
                "hubkey can only replace a credential helper named with 1 to \
                 {MAX_HELPER_NAME_CHARS} letters, digits, '.', '_' or '-'."
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hand_off::DockerEntry;
    use crate::secrets::StoredSession;
    use crate::server_url::ServerUrl;
    use hubkey_keyring::{stored_size, MAX_SECRET_BYTES};

    /// The largest session entry the checks let through: every part at its cap, in the
    /// characters that cost the most once written as JSON and UTF-16.
    #[test]
    fn the_largest_session_entry_fits_credential_manager() {
        // The longest address that parses, at the cap.
        let base = "https://hub.example.com/";
        let url = format!("{base}{}", "a".repeat(MAX_SERVER_URL_CHARS - base.len()));
        let server = ServerUrl::parse(&url).unwrap();
        assert_eq!(server.as_str().len(), MAX_SERVER_URL_CHARS);
        assert!(ServerUrl::parse(&format!("{url}a")).is_err());
        // A user name of quotes and backslashes (two JSON characters each) or of characters
        // outside the BMP (two UTF-16 units each): both cost 4 bytes a character.
        let quotes = "\"\\".repeat(MAX_USERNAME_CHARS / 2);
        let astral = "😀".repeat(MAX_USERNAME_CHARS);
        for username in [&quotes, &astral] {
            check_username(username).unwrap();
        }
        check_username(&"a".repeat(MAX_USERNAME_CHARS + 1)).unwrap_err();
        check_username("ann\u{0}").unwrap_err();
        let token = "t".repeat(MAX_REFRESH_TOKEN_CHARS);
        check_refresh_token("s", Some(&token)).unwrap();
        check_refresh_token("s", Some(&format!("{token}t"))).unwrap_err();
        check_refresh_token("s", Some("a\"b")).unwrap_err();
        let registry = "r".repeat(MAX_REGISTRY_CHARS);
        check_registry(&registry).unwrap();
        check_registry(&format!("{registry}r")).unwrap_err();
        check_registry("r\u{e9}").unwrap_err();
        let helper = "h".repeat(MAX_HELPER_NAME_CHARS);
        check_helper_name(&helper).unwrap();
        check_helper_name(&format!("{helper}h")).unwrap_err();
        check_helper_name("../x").unwrap_err();
        check_helper_name("").unwrap_err();

        for username in [quotes, astral] {
            let entry = StoredSession {
                server_url: server.to_string(),
                username,
                refresh_token: Some(token.clone()),
                auto_token_uuid: Some(uuid::Uuid::nil()),
                registry: Some(registry.clone()),
                docker_entry: DockerEntry::Written {
                    previous: Some(helper.clone()),
                },
            };
            let json = serde_json::to_string(&entry).unwrap();
            let bytes = stored_size(&json);
            assert!(bytes <= MAX_SECRET_BYTES, "{bytes} bytes: {json}");
            println!("largest session entry: {bytes} of {MAX_SECRET_BYTES} bytes");
        }
    }
}
