//! Repository visibility: which repositories anyone may pull.

use chrono::{DateTime, Utc};

use super::{millis, DbConnection, Flag, Store};
use crate::error::Result;

impl Store {
    /// Whether `namespace/name` is public, or `None` when nothing is recorded for it (then it
    /// is private).
    pub async fn repository_is_public(&self, namespace: &str, name: &str) -> Result<Option<bool>> {
        let public: Option<Flag> = sqlx::query_scalar(
            "SELECT CAST(is_public AS INTEGER) FROM repositories WHERE namespace = $1 AND name = $2",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(public.map(bool::from))
    }

    /// Sets the visibility of `namespace/name`.
    pub async fn set_repository_visibility(
        conn: &mut DbConnection,
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
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Every repository with a recorded visibility: (namespace, name, is_public).
    pub async fn list_repositories(&self) -> Result<Vec<(String, String, bool)>> {
        let rows: Vec<(String, String, Flag)> = sqlx::query_as(
            "SELECT namespace, name, CAST(is_public AS INTEGER) FROM repositories \
             ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(namespace, name, public)| (namespace, name, public.into()))
            .collect())
    }
}
