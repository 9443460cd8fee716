//! The address of a hub, checked and normalised once where it enters the core (the sign-in
//! form, the remembered setting), so the core keys sessions, keyring entries and cursors by
//! one spelling and never parses a string again.

use std::fmt;

use hubkey_client::ClientError;
use serde::{Serialize, Serializer};

use crate::error::DesktopError;

/// The address of Docker Hub, which has no discovery document.
pub const DOCKER_HUB: &str = "https://hub.docker.com";

/// A hub's address: an `http`/`https` URL with a host, without credentials, query or
/// fragment, kept without a trailing `/` (so `http://h:1` and `http://h:1/` are one server).
/// Serialises as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Checks and normalises `text` by the client's own rules
    /// ([`hubkey_client::parse_base_url`]), so an address accepted here builds a client at
    /// the same place; a refusal is [`DesktopError::InvalidInput`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, DesktopError> {
        let text = text.trim();
        let url = hubkey_client::parse_base_url(text).map_err(|err| {
            // An address with `@` may carry a password: the refusal does not repeat it
            // (errors reach the UI and logs).
            let shown = if text.contains('@') {
                "The address".to_owned()
            } else {
                format!("“{text}”")
            };
            let detail = match err {
                ClientError::Url(detail) => detail,
                other => other.to_string(),
            };
            DesktopError::InvalidInput {
                message: format!("{shown} is not a usable server address: {detail}"),
            }
        })?;
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The address as the core keys it, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is Docker Hub, which has no discovery document.
    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServerUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ServerUrl {
    type Err = DesktopError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for ServerUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_keyed_without_a_trailing_slash() {
        assert_eq!(
            ServerUrl::parse(" http://127.0.0.1:5080/ ")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5080"
        );
        assert_eq!(
            ServerUrl::parse("https://hub.example/prefix/")
                .unwrap()
                .as_str(),
            "https://hub.example/prefix"
        );
        assert!(ServerUrl::parse("https://hub.docker.com/")
            .unwrap()
            .is_docker_hub());
    }

    #[test]
    fn a_refused_address_never_repeats_its_password() {
        for text in [
            "https://ann:s3cret@hub.example",
            "ftp://ann:s3cret@hub.example",
            "http://ann:s3cret@",
        ] {
            let err = ServerUrl::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("s3cret"), "{message}");
            assert!(message.contains("not a usable server address"), "{message}");
        }
    }

    #[test]
    fn what_is_accepted_builds_a_client_at_the_same_address() {
        for good in ["http://127.0.0.1:5080", "https://hub.example/prefix/"] {
            let server = ServerUrl::parse(good).unwrap();
            let client = hubkey_client::HubClient::new(server.as_str()).unwrap();
            assert_eq!(client.base_url().trim_end_matches('/'), server.as_str());
        }
    }
}
