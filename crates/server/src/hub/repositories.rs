//! Repositories: their visibility, read on every registry token request (cached) and set by
//! the owner or the admin command.

use chrono::{DateTime, Utc};
use hubkey_api::Repository;

use super::{require_password_session, Hub};
use crate::error::{Error, Result};
use crate::hub::accounts::check_username;
use crate::invalidation::Stale;
use crate::session::Caller;
use crate::store::Store;

/// How long a cached repository visibility is trusted without looking again. Changes through
/// the API and `hubkeyd repo` take effect at once (as the tokens' changes do, see
/// [`crate::hub::TOKEN_CACHE_AGE`]); this bounds the rest.
pub const REPOSITORY_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(5);

impl Hub {
    pub(super) async fn is_public(&self, namespace: &str, name: &str) -> Result<bool> {
        let key = format!("{namespace}/{name}");
        let public = self
            .repositories
            .get_or_load(&key, || async {
                self.store.repository_is_public(namespace, name).await
            })
            .await?;
        Ok(public.unwrap_or(false))
    }

    /// `GET /v2/repositories/{namespace}/{name}`: visible to its owner, and to everyone when
    /// public.
    pub async fn repository(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
    ) -> Result<Repository> {
        check_repository_name(name)?;
        let is_public = self.is_public(namespace, name).await?;
        if !is_public && caller.username != namespace {
            return Err(Error::NotFound("Repository not found".into()));
        }
        Ok(Repository {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            is_private: !is_public,
        })
    }

    /// `PATCH /v2/repositories/{namespace}/{name}`: the owner sets the visibility.
    pub async fn set_repository_visibility(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        is_private: bool,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        require_password_session(caller)?;
        if caller.username != namespace {
            return Err(Error::Forbidden(
                "You can change repositories in your own namespace only".into(),
            ));
        }
        self.set_visibility(namespace, name, is_private, now).await
    }

    /// Sets a repository's visibility without an owner check: the admin command.
    pub async fn set_visibility(
        &self,
        namespace: &str,
        name: &str,
        is_private: bool,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        check_username(namespace)
            .map_err(|_| Error::invalid("namespace", "not a valid namespace"))?;
        check_repository_name(name)?;
        let mut tx = self.store.begin().await?;
        Store::set_repository_visibility(&mut tx, namespace, name, !is_private, now).await?;
        self.commit(tx, &[Stale::Repository(format!("{namespace}/{name}"))])
            .await?;
        Ok(Repository {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            is_private,
        })
    }
}

/// Repository names below the namespace: path components of lowercase letters and digits,
/// with single `.`, `_` or `-` between them, joined by `/`.
pub fn check_repository_name(name: &str) -> Result<()> {
    if name.len() <= 200 && crate::registry::access::is_repository_path(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "use lowercase letters, digits and single '.', '_' or '-', in '/'-separated parts",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_distribution_grammar() {
        for good in [
            "app",
            "a/b",
            "my-app",
            "my--app",
            "my_app",
            "my__app",
            "v1.2",
            "a0/b-c/d.e",
        ] {
            assert!(check_repository_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "App", "a..b", "a._b", "a___b", "-a", "a-", "a//b", "a/", ".a", "a b", "é",
        ] {
            assert!(check_repository_name(bad).is_err(), "{bad}");
        }
        assert!(check_repository_name(&"a".repeat(201)).is_err());
    }
}
