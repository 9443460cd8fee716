//! Repository visibility: which repositories anyone may pull.

use chrono::{DateTime, Utc};

use super::{millis, Store};
use crate::error::Result;

impl Store {
    /// Whether `namespace/name` is public, or `None` when nothing is recorded for it (then it
    /// is private).
    pub async fn repository_is_public(&self, namespace: &str, name: &str) -> Result<Option<bool>> {
        Ok(sqlx::query_scalar(
            "SELECT is_public FROM repositories WHERE namespace = $1 AND name = $2",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sets the visibility of `namespace/name`.
    pub async fn set_repository_visibility(
        &self,
        namespace: &str,
        name: &str,
        is_public: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO repositories (namespace, name, is_public, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, name) DO UPDATE SET is_public = excluded.is_public, updated_at = excluded.updated_at",
        )
        .bind(namespace)
        .bind(name)
        .bind(is_public)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every repository with a recorded visibility: (namespace, name, is_public).
    pub async fn list_repositories(&self) -> Result<Vec<(String, String, bool)>> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, is_public FROM repositories ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
