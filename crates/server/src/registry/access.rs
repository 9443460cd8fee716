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

/// The most resources one token request may name. docker, skopeo and podman ask for one or
/// two (a pull, or a push and the source of a cross-repository mount); buildkit pushes ask
/// for one more per mounted source, a handful in practice. 64 is far above that, and keeps
/// the work of one anonymous request (a grammar check and at most one indexed lookup per
/// resource) small.
pub const MAX_SCOPES: usize = 64;
/// The longest repository name distribution accepts (`NameTotalLengthMax`), host included.
pub const MAX_NAME: usize = 255;
/// The longest resource type, e.g. `repository(plugin)`.
const MAX_TYPE: usize = 64;
/// The longest action list, e.g. `pull,push,delete`.
const MAX_ACTIONS: usize = 64;

/// A `scope` value that does not follow the token-scope grammar, or too many of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "invalid scope {0:?}: expected TYPE:NAME:ACTIONS with a repository name of lowercase \
         letters and digits in '/'-separated parts (at most 255 characters), \
         e.g. repository:ann/app:pull,push"
    )]
    Syntax(String),
    #[error("too many scopes: at most {MAX_SCOPES} resources per token request")]
    TooMany,
}

/// Parses every `scope` parameter of one request. Several resources may share one
/// parameter, separated by spaces (the OAuth2 form). The type may carry a class,
/// `repository(plugin)`, which is kept. Everything is checked against the distribution
/// token-scope grammar before anything is looked up, and a request naming more than
/// [`MAX_SCOPES`] resources is refused whole.
pub fn parse_scopes<S: AsRef<str>>(params: &[S]) -> Result<Vec<ResourceActions>, ScopeError> {
    if params.len() > MAX_SCOPES {
        return Err(ScopeError::TooMany);
    }
    let mut resources = Vec::new();
    for param in params {
        for scope in param.as_ref().split_whitespace() {
            if resources.len() == MAX_SCOPES {
                return Err(ScopeError::TooMany);
            }
            resources.push(parse_one(scope)?);
        }
    }
    Ok(resources)
}

fn parse_one(scope: &str) -> Result<ResourceActions, ScopeError> {
    let error = || ScopeError::Syntax(scope.chars().take(80).collect());
    if scope.len() > MAX_TYPE + MAX_NAME + MAX_ACTIONS + 2 {
        return Err(error());
    }
    let (kind, rest) = scope.split_once(':').ok_or_else(error)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(error)?;
    if !is_resource_type(kind)
        || !is_resource_name(name)
        || actions.len() > MAX_ACTIONS
        || !actions.split(',').all(is_action)
    {
        return Err(error());
    }
    let mut actions: Vec<String> = actions
        .split(',')
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

/// `resourcetypevalue [ '(' resourcetypevalue ')' ]`, values `[a-z0-9]+`.
fn is_resource_type(kind: &str) -> bool {
    let value = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if kind.len() > MAX_TYPE {
        return false;
    }
    match kind.split_once('(') {
        None => value(kind),
        Some((base, class)) => value(base) && class.strip_suffix(')').is_some_and(value),
    }
}

/// `[a-z]*`, or `*` (all actions, as `registry:catalog:*` asks).
fn is_action(action: &str) -> bool {
    action == "*" || action.bytes().all(|b| b.is_ascii_lowercase())
}

/// `[ hostname '/' ] component [ '/' component ]*`, at most [`MAX_NAME`] characters.
fn is_resource_name(name: &str) -> bool {
    if name.len() > MAX_NAME {
        return false;
    }
    is_repository_path(name)
        || name
            .split_once('/')
            .is_some_and(|(host, path)| is_hostname(host) && is_repository_path(path))
}

/// `hostcomponent ['.' hostcomponent]* [':' port-number]`, where a host component is
/// letters, digits and inner `-`.
fn is_hostname(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let component = |part: &str| {
        !part.is_empty()
            && !part.starts_with('-')
            && !part.ends_with('-')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name.split('.').all(component)
        && port.is_none_or(|port| {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        })
}

/// distribution's repository path grammar: components of `[a-z0-9]+` runs joined by `.`,
/// `_`, `__` or any run of `-`, the components joined by `/`. No length limit here.
pub fn is_repository_path(path: &str) -> bool {
    let separator_ok =
        |run: &str| matches!(run, "." | "_" | "__") || run.bytes().all(|b| b == b'-');
    let component_ok = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && part
                .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                .filter(|run| !run.is_empty())
                .all(separator_ok)
    };
    path.split('/').all(component_ok)
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

/// Whether [`grant`] of `requested` to `principal` depends on the repository being public: not
/// for the namespace's owner with more than public-read rights, who gets the same either way.
/// The hub looks visibility up only when it does (a private repository has no cached answer:
/// misses are never cached, so the owner's pulls and pushes would each cost a query).
pub fn depends_on_visibility(principal: &Principal, requested: &ResourceActions) -> bool {
    if requested.kind != "repository" {
        return false;
    }
    let owner = namespace_of(&requested.name);
    match principal {
        Principal::Anonymous => true,
        Principal::Password { username } => owner != Some(username.as_str()),
        Principal::Token { username, scopes } => {
            owner != Some(username.as_str())
                || Scope::widest(scopes).is_none_or(|widest| widest == Scope::PublicRead)
        }
    }
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
        parse_scopes(&[s]).unwrap().remove(0)
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
            parse_scopes(&["repository:a/b:pull repository:a/c:push"])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            scope("repository:localhost:5000/ann/app:pull").name,
            "localhost:5000/ann/app"
        );
        assert_eq!(scope("repository:ann.b/app:pull").name, "ann.b/app");
        assert_eq!(scope("repository:ann/app:").actions, Vec::<String>::new());
        for bad in [
            "repository",
            ":a/b:pull",
            "repository::pull",
            "repository:ann/App:pull",
            "repository:ann/app:pull;rm",
            "repository:ann//app:pull",
            "repository:ann/app/:pull",
            "repository:ann/a..b:pull",
            "repository:ann/app:PULL",
            "repository:ann/app:pu*",
            "Repository:ann/app:pull",
            "repository(:ann/app:pull",
            "repository(x:ann/app:pull",
            "repository:-host:5000/app:pull",
            "repository:host:99999999/app:pull",
            "repository:ann/é:pull",
        ] {
            assert!(parse_scopes(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_bounded_at_255_characters() {
        let longest = format!("ann/{}", "a".repeat(MAX_NAME - 4));
        assert!(parse_scopes(&[format!("repository:{longest}:pull")]).is_ok());
        let too_long = format!("ann/{}", "a".repeat(MAX_NAME - 3));
        assert!(parse_scopes(&[format!("repository:{too_long}:pull")]).is_err());
        assert!(parse_scopes(&[format!("repository:ann/app:{}", "pull,".repeat(20))]).is_err());
    }

    #[test]
    fn requests_are_capped_at_max_scopes_resources() {
        let one = "repository:ann/app:pull";
        assert_eq!(
            parse_scopes(&vec![one; MAX_SCOPES]).unwrap().len(),
            MAX_SCOPES
        );
        assert_eq!(
            parse_scopes(&vec![one; MAX_SCOPES + 1]),
            Err(ScopeError::TooMany)
        );
        let packed = vec![one; MAX_SCOPES + 1].join(" ");
        assert_eq!(parse_scopes(&[packed]), Err(ScopeError::TooMany));
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
    fn visibility_is_looked_up_only_when_it_changes_the_grant() {
        let principals = [
            Principal::Anonymous,
            Principal::Password {
                username: "ann".into(),
            },
            token(&[]),
            token(&[Scope::PublicRead]),
            token(&[Scope::Read]),
            token(&[Scope::Write]),
            token(&[Scope::Admin]),
        ];
        let mut skipped = 0;
        for principal in &principals {
            for ask in [
                "repository:ann/app:pull,push,delete,*",
                "repository:bob/app:pull,push",
                "repository:app:pull",
                "registry:catalog:*",
            ] {
                let ask = scope(ask);
                if !depends_on_visibility(principal, &ask) {
                    skipped += 1;
                    assert_eq!(
                        grant(principal, &ask, true),
                        grant(principal, &ask, false),
                        "{principal:?} {ask:?}"
                    );
                }
            }
        }
        assert!(
            skipped >= 8,
            "the owner's and the catalog's lookups are skipped"
        );
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
