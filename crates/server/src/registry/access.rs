//! What a registry token may do: parsing the `scope` parameter of the token-auth spec and
//! deciding the grant.
//!
//! A grant is the intersection of what was asked, what the credential's scopes allow, and
//! what the account may do with the repository: everything in its own namespace (its user
//! name), pull of public repositories elsewhere.

use hubkey_api::Scope;
use serde::Serialize;

/// One resource and the actions asked or granted on it, as in the JWT's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// A `scope` value that does not follow `TYPE:NAME:ACTIONS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: expected TYPE:NAME:ACTIONS, e.g. repository:ann/app:pull,push")]
pub struct ScopeSyntaxError(pub String);

/// Parses one `scope` parameter. Several resources may share one parameter, separated by
/// spaces (the OAuth2 form). The type may carry a class, `repository(plugin)`, which is kept.
pub fn parse_scopes(param: &str) -> Result<Vec<ResourceActions>, ScopeSyntaxError> {
    param.split_whitespace().map(parse_one).collect()
}

fn parse_one(scope: &str) -> Result<ResourceActions, ScopeSyntaxError> {
    let error = || ScopeSyntaxError(scope.chars().take(200).collect());
    let (kind, rest) = scope.split_once(':').ok_or_else(error)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(error)?;
    if kind.is_empty() || name.is_empty() {
        return Err(error());
    }
    let mut actions: Vec<String> = actions
        .split(',')
        .map(str::trim)
        .filter(|action| !action.is_empty())
        .map(str::to_owned)
        .collect();
    actions.sort();
    actions.dedup();
    Ok(ResourceActions {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions,
    })
}

/// Who asks for a registry token.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credentials: public pulls only.
    Anonymous,
    /// A user signed in with a password: the account's full rights.
    Password { username: String },
    /// A user with a personal access token: the account's rights within the token's scopes.
    Token {
        username: String,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// The JWT subject: the user name, or empty for anonymous.
    pub fn subject(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::Password { username } | Principal::Token { username, .. } => username,
        }
    }
}

/// A repository name split into its owner's namespace and the rest (`ann/app` → `ann`).
/// A name without `/` has no owner namespace.
pub fn namespace_of(repository: &str) -> Option<&str> {
    repository.split_once('/').map(|(namespace, _)| namespace)
}

/// The actions `principal` gets on `requested`, given whether the repository is public.
/// Only `repository` resources are granted; other types (`registry:catalog:*`) get nothing,
/// since a catalog would list other accounts' private repositories.
pub fn grant(
    principal: &Principal,
    requested: &ResourceActions,
    is_public: bool,
) -> ResourceActions {
    let allowed = |action: &str| -> bool {
        if requested.kind != "repository" {
            return false;
        }
        let owner = namespace_of(&requested.name);
        let owns = |username: &str| owner == Some(username);
        let pull = action == "pull";
        match principal {
            Principal::Anonymous => pull && is_public,
            Principal::Password { username } => {
                if owns(username) {
                    matches!(action, "pull" | "push" | "delete" | "*")
                } else {
                    pull && is_public
                }
            }
            Principal::Token { username, scopes } => {
                let Some(widest) = Scope::widest(scopes) else {
                    return false;
                };
                if !owns(username) || widest == Scope::PublicRead {
                    return pull && is_public;
                }
                match action {
                    "pull" => true,
                    "push" => widest.includes(Scope::Write),
                    "delete" | "*" => widest.includes(Scope::Admin),
                    _ => false,
                }
            }
        }
    };
    ResourceActions {
        kind: requested.kind.clone(),
        name: requested.name.clone(),
        actions: requested
            .actions
            .iter()
            .filter(|action| allowed(action))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> ResourceActions {
        parse_scopes(s).unwrap().remove(0)
    }

    fn token(scopes: &[Scope]) -> Principal {
        Principal::Token {
            username: "ann".into(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn parses_the_forms_clients_send() {
        assert_eq!(
            scope("repository:ann/app:push,pull"),
            ResourceActions {
                kind: "repository".into(),
                name: "ann/app".into(),
                actions: vec!["pull".into(), "push".into()]
            }
        );
        assert_eq!(scope("registry:catalog:*").actions, vec!["*"]);
        assert_eq!(
            scope("repository(plugin):ann/p:pull").kind,
            "repository(plugin)"
        );
        assert_eq!(
            parse_scopes("repository:a/b:pull repository:a/c:push")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_scopes("repository").is_err());
        assert!(parse_scopes(":a/b:pull").is_err());
        assert!(parse_scopes("repository::pull").is_err());
    }

    #[test]
    fn token_scopes_bound_the_grant() {
        let ask = scope("repository:ann/app:pull,push,delete");
        let granted = |p: &Principal| grant(p, &ask, false).actions;
        assert_eq!(granted(&token(&[Scope::Read])), vec!["pull"]);
        assert_eq!(granted(&token(&[Scope::Write])), vec!["pull", "push"]);
        assert_eq!(
            granted(&token(&[Scope::Admin])),
            vec!["delete", "pull", "push"]
        );
        assert!(granted(&token(&[Scope::PublicRead])).is_empty());
        assert!(granted(&token(&[])).is_empty());
        assert_eq!(
            granted(&Principal::Password {
                username: "ann".into()
            }),
            vec!["delete", "pull", "push"]
        );
    }

    #[test]
    fn other_namespaces_get_public_pulls_only() {
        let ask = scope("repository:bob/app:pull,push");
        assert!(grant(&token(&[Scope::Admin]), &ask, false)
            .actions
            .is_empty());
        assert_eq!(
            grant(&token(&[Scope::Admin]), &ask, true).actions,
            vec!["pull"]
        );
        assert_eq!(
            grant(&token(&[Scope::PublicRead]), &ask, true).actions,
            vec!["pull"]
        );
        assert_eq!(
            grant(&Principal::Anonymous, &ask, true).actions,
            vec!["pull"]
        );
        assert!(grant(&Principal::Anonymous, &ask, false).actions.is_empty());
        let unowned = scope("repository:app:pull,push");
        assert!(grant(&token(&[Scope::Admin]), &unowned, false)
            .actions
            .is_empty());
    }

    #[test]
    fn catalog_is_never_granted() {
        let ask = scope("registry:catalog:*");
        assert!(grant(
            &Principal::Password {
                username: "ann".into()
            },
            &ask,
            true
        )
        .actions
        .is_empty());
    }
}
