//! Access-token scopes, as Docker Hub names them.
//!
//! The scopes form a chain: `repo:public_read` ⊂ `repo:read` ⊂ `repo:write` ⊂ `repo:admin`.
//! A token holding several scopes has the rights of the widest one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a personal access token may do with repositories.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    /// Pull public repositories only.
    #[serde(rename = "repo:public_read")]
    PublicRead,
    /// Pull any repository the account can see.
    #[serde(rename = "repo:read")]
    Read,
    /// Pull and push.
    #[serde(rename = "repo:write")]
    Write,
    /// Pull, push and delete.
    #[serde(rename = "repo:admin")]
    Admin,
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: [Scope; 4] = [Scope::PublicRead, Scope::Read, Scope::Write, Scope::Admin];

    /// The wire name, e.g. `repo:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PublicRead => "repo:public_read",
            Scope::Read => "repo:read",
            Scope::Write => "repo:write",
            Scope::Admin => "repo:admin",
        }
    }

    /// The rights in words, for people: "read, write & delete".
    pub fn describe(self) -> &'static str {
        match self {
            Scope::PublicRead => "public read",
            Scope::Read => "read",
            Scope::Write => "read & write",
            Scope::Admin => "read, write & delete",
        }
    }

    /// True when this scope grants at least the rights of `other`.
    pub fn includes(self, other: Scope) -> bool {
        self >= other
    }

    /// The widest scope of a set, or `None` for an empty set.
    pub fn widest(scopes: &[Scope]) -> Option<Scope> {
        scopes.iter().copied().max()
    }

    /// Parses a comma-separated list as stored by the server (`repo:read,repo:write`).
    /// An empty string is an empty list.
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, ScopeParseError> {
        list.split(',')
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect()
    }

    /// Joins scopes into the comma-separated form [`Scope::parse_list`] reads.
    pub fn join_list(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|scope| scope.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected one of repo:public_read, repo:read, repo:write, repo:admin")]
pub struct ScopeParseError(pub String);

impl FromStr for Scope {
    type Err = ScopeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeParseError(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes_form_a_chain() {
        assert!(Scope::Admin.includes(Scope::Write));
        assert!(Scope::Write.includes(Scope::Read));
        assert!(Scope::Read.includes(Scope::PublicRead));
        assert!(!Scope::Read.includes(Scope::Write));
        assert!(!Scope::PublicRead.includes(Scope::Read));
    }

    #[test]
    fn wire_names_match_docker_hub() {
        let json = serde_json::to_string(&Scope::ALL).unwrap();
        assert_eq!(
            json,
            r#"["repo:public_read","repo:read","repo:write","repo:admin"]"#
        );
    }

    #[test]
    fn unknown_scope_is_an_error_naming_it() {
        let err = "repo:delete".parse::<Scope>().unwrap_err();
        assert!(err.to_string().contains("repo:delete"));
        assert!(Scope::parse_list("repo:read,nope").is_err());
    }

    proptest! {
        #[test]
        fn list_round_trips(scopes in proptest::collection::vec(proptest::sample::select(Scope::ALL.to_vec()), 0..6)) {
            let joined = Scope::join_list(&scopes);
            prop_assert_eq!(Scope::parse_list(&joined).unwrap(), scopes);
        }

        #[test]
        fn parser_never_panics_and_accepts_only_wire_names(s in "\\PC{0,40}") {
            match s.parse::<Scope>() {
                Ok(scope) => prop_assert_eq!(scope.as_str(), s.as_str()),
                Err(_) => prop_assert!(Scope::ALL.iter().all(|scope| scope.as_str() != s)),
            }
        }
    }
}
