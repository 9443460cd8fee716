//! The address of a hub, checked and normalised once where it enters the core (the sign-in
//! form, the remembered setting), so the core keys sessions, keyring entries and cursors by
//! one spelling and never parses a string again.

use std::fmt;
use std::net::IpAddr;

use hubkey_client::ClientError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DesktopError;

/// The address of Docker Hub, which has no discovery document.
pub const DOCKER_HUB: &str = "https://hub.docker.com";

/// A hub's address: an `http`/`https` URL with a host, without credentials, query or
/// fragment, kept without a trailing `/` (so `http://h:1` and `http://h:1/` are one server).
/// Serialises as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl(String);

/// Whether a sign-in may send the password to a server over plain HTTP beyond this computer:
/// only when the person chose so, after a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unencrypted {
    /// Refuse a plain `http://` server that is not on this computer (the default).
    #[default]
    Refuse,
    /// The person chose to send their password and tokens unencrypted to this server.
    Allow,
}

/// Whether `host` (as a URL spells it: a name, an IPv4 address or a bracketed IPv6 address)
/// is this computer: `localhost`, 127.0.0.0/8, `::1`, or an IPv4 loopback address mapped into
/// IPv6. Traffic to it never crosses a network. Other names under `.localhost` are not
/// counted: the client resolves names through the system, which may send them elsewhere.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

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
        let normalised = url.as_str().trim_end_matches('/');
        // The keyring's session entry holds it (crate::entry_bounds).
        if normalised.len() > crate::entry_bounds::MAX_SERVER_URL_CHARS {
            return Err(DesktopError::InvalidInput {
                message: format!(
                    "The address is longer than {} characters.",
                    crate::entry_bounds::MAX_SERVER_URL_CHARS
                ),
            });
        }
        Ok(Self(normalised.to_owned()))
    }

    /// The address as the core keys it, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a password sent here would cross a network in clear: a plain `http://`
    /// address whose host is not this computer ([`is_loopback_host`]).
    pub fn is_unencrypted_remote(&self) -> bool {
        let Some(rest) = self.0.strip_prefix("http://") else {
            return false;
        };
        let authority = rest.split('/').next().unwrap_or_default();
        // The host, without the port (a bracketed IPv6 address keeps its colons).
        let host = match authority.rfind(']') {
            Some(end) => &authority[..=end],
            None => authority.split(':').next().unwrap_or_default(),
        };
        !is_loopback_host(host)
    }

    /// Refuses this server for a sign-in when it [is reached unencrypted over a
    /// network](Self::is_unencrypted_remote) and the person did not choose to allow that.
    pub fn check_transport(&self, unencrypted: Unencrypted) -> Result<(), DesktopError> {
        if self.is_unencrypted_remote() && unencrypted == Unencrypted::Refuse {
            return Err(DesktopError::UnencryptedServer {
                server: self.0.clone(),
            });
        }
        Ok(())
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

/// Read back only through [`ServerUrl::parse`]: what does not parse is refused.
impl<'de> Deserialize<'de> for ServerUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
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
    fn loopback_hosts_are_this_computer_and_nothing_else_is() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.254",
            "[::1]",
            "::1",
            "[0:0:0:0:0:0:0:1]",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "hub.example",
            "localhost.evil.example",
            "evil.localhost",
            "mylocalhost",
            "0.0.0.0",
            "128.0.0.1",
            "10.0.0.1",
            "192.168.1.10",
            "169.254.0.1",
            "[::]",
            "[::2]",
            "[fe80::1]",
            "[::ffff:10.0.0.1]",
            "[::127.0.0.1]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn only_plain_http_beyond_this_computer_is_unencrypted_remote() {
        for local in [
            "http://127.0.0.1:5080",
            "http://localhost:5080/",
            "http://[::1]:5080",
            "http://127.0.0.2",
            "http://[::ffff:127.0.0.1]:80/hub",
            "https://hub.example",
            "https://10.0.0.1:8443",
            "https://hub.docker.com",
        ] {
            let server = ServerUrl::parse(local).unwrap();
            assert!(!server.is_unencrypted_remote(), "{local}");
            assert_eq!(server.check_transport(Unencrypted::Refuse), Ok(()));
        }
        for remote in [
            "http://hub.example",
            "http://hub.example:5080/prefix",
            "http://10.0.0.1:5080",
            "http://[fe80::1]:5080",
            "http://[2001:db8::1]/",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.example",
        ] {
            let server = ServerUrl::parse(remote).unwrap();
            assert!(server.is_unencrypted_remote(), "{remote}");
            let refused = server.check_transport(Unencrypted::Refuse).unwrap_err();
            assert_eq!(refused.code(), crate::ErrorCode::UnencryptedServer);
            let message = refused.to_string();
            assert!(message.contains(server.as_str()), "{message}");
            assert!(message.contains("unencrypted"), "{message}");
            assert_eq!(server.check_transport(Unencrypted::Allow), Ok(()));
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
