//! The other instances on one PostgreSQL database, as `pg_stat_activity` shows their change
//! listeners ([`crate::invalidation`]). PostgreSQL only.

use super::Store;
use crate::error::Result;
use crate::invalidation::LISTENER_NAME;

impl Store {
    /// The backend pids of the change listeners connected to this database, but `own`.
    pub async fn other_listeners(&self, own: i32) -> Result<Vec<i32>> {
        Ok(sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name LIKE $1 AND pid <> $2",
        )
        .bind(format!("{LISTENER_NAME}%"))
        .bind(own)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends the sessions of the change listeners `pids` (`pg_terminate_backend`), checking
    /// that each pid still is one (a pid may be reused); answers how many were ended.
    pub async fn cut_off_listeners(&self, pids: &[i32]) -> Result<u64> {
        let mut ended = 0;
        for pid in pids {
            let done: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid = $1 AND datname = current_database() AND application_name LIKE $2",
            )
            .bind(pid)
            .bind(format!("{LISTENER_NAME}%"))
            .fetch_all(&self.pool)
            .await?;
            ended += done.into_iter().filter(|done| *done).count() as u64;
        }
        Ok(ended)
    }
}
