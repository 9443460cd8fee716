//! Copying one store into another (`hubkeyd copy-store`): how a SQLite deployment moves to
//! PostgreSQL (or back). Every table with lasting state is copied row for row, ids included;
//! the throttle's state (recent failures, known addresses, wrong second-factor codes in a row)
//! is not: it is rebuilt by use within the hour it covers.
//!
//! The copy knows each table's columns. A source with a column or table it does not know (a
//! migration added after this code) is refused before anything is written, so nothing is
//! dropped silently.

use sqlx::Row;

use super::{Backend, Flag, Store};
use crate::error::{Error, Result};

/// How a column is read and written.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Int,
    Bool,
    Blob,
}

use Kind::{Blob, Bool, Int, Text};

/// The tables copied, parents before children, with every column.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Text),
            ("username", Text),
            ("password_hash", Text),
            ("totp_sealed", Text),
            ("totp_last_step", Int),
            ("token_clock", Int),
            ("created_at", Int),
            ("disabled_at", Int),
            ("totp_pending_sealed", Text),
            ("totp_pending_expires", Int),
            ("revoke_on_reuse", Bool),
        ],
    ),
    (
        "recovery_codes",
        &[("digest", Blob), ("user_id", Text), ("used_at", Int)],
    ),
    (
        "sessions",
        &[
            ("id", Text),
            ("user_id", Text),
            ("source", Text),
            ("refresh_digest", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("previous_refresh_digest", Text),
            ("rotated_at", Int),
            ("grace_used", Bool),
            ("revoked_reason", Text),
            ("token_uuid", Text),
        ],
    ),
    (
        "spent_refresh_tokens",
        &[("digest", Text), ("session_id", Text)],
    ),
    (
        "mfa_challenges",
        &[
            ("digest", Text),
            ("user_id", Text),
            ("expires_at", Int),
            ("attempts", Int),
        ],
    ),
    (
        "access_tokens",
        &[
            ("uuid", Text),
            ("user_id", Text),
            ("digest", Text),
            ("hint", Text),
            ("label", Text),
            ("scopes", Text),
            ("origin", Text),
            ("client_id", Text),
            ("creator_ip", Text),
            ("creator_ua", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("is_active", Bool),
            ("expiry_noted", Bool),
            ("rotated_from", Text),
            ("rotated_to", Text),
            ("overlap_until", Int),
            ("new_address_alerts", Bool),
        ],
    ),
    (
        "token_events",
        &[
            ("id", Int),
            ("user_id", Text),
            ("kind", Text),
            ("token_uuid", Text),
            ("label", Text),
            ("origin", Text),
            ("client_id", Text),
            ("last_used", Int),
            ("at", Int),
            ("url", Text),
            ("source", Text),
            ("address", Text),
            ("user_agent", Text),
            ("related_uuid", Text),
        ],
    ),
    (
        "account_events",
        &[
            ("id", Int),
            ("user_id", Text),
            ("kind", Text),
            ("address", Text),
            ("user_agent", Text),
            ("at", Int),
        ],
    ),
    (
        "token_usage",
        &[
            ("token_uuid", Text),
            ("day", Int),
            ("uses", Int),
            ("last_used", Int),
        ],
    ),
    (
        "token_access",
        &[
            ("id", Int),
            ("token_uuid", Text),
            ("day", Int),
            ("address", Text),
            ("user_agent", Text),
            ("action", Text),
            ("first_at", Int),
            ("last_at", Int),
            ("uses", Int),
        ],
    ),
    (
        "repositories",
        &[
            ("namespace", Text),
            ("name", Text),
            ("is_public", Bool),
            ("updated_at", Int),
        ],
    ),
];

/// Tables deliberately left out: the throttle's state, device codes (ten minutes long: a
/// device waiting through the move asks for a new one), the change table and its listeners
/// (what running servers have forgotten: the copy is made with them stopped, and servers
/// on the new database start with empty caches), and the migrator's own.
const NOT_COPIED: &[&str] = &[
    "cache_changes",
    "cache_listeners",
    "device_grants",
    "login_failures",
    "sign_in_addresses",
    "second_factor_failures",
    "_sqlx_migrations",
];

/// Tables whose `id` a PostgreSQL identity gives: its sequence continues after the copied ids.
const IDENTITY_TABLES: &[&str] = &["token_events", "account_events", "token_access"];

/// A value on its way from one store to the other.
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Blob(Option<Vec<u8>>),
}

/// Rows copied per table, in [`TABLES`] order.
pub type Copied = Vec<(&'static str, u64)>;

impl Store {
    /// The tables of this database, and the columns of `table` (names only).
    async fn columns(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT name FROM pragma_table_info($1)",
            Backend::Postgres => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        Ok(sqlx::query_scalar(sql)
            .bind(table)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&self.pool).await?)
    }

    /// Refuses a source with a table or column the copy does not know.
    async fn check_copyable(&self) -> Result<()> {
        let mut unknown = Vec::new();
        for table in self.tables().await? {
            match TABLES.iter().find(|(name, _)| *name == table) {
                Some((_, columns)) => {
                    for column in self.columns(&table).await? {
                        if !columns.iter().any(|(name, _)| *name == column) {
                            unknown.push(format!("{table}.{column}"));
                        }
                    }
                }
                None if NOT_COPIED.contains(&table.as_str()) => {}
                None => unknown.push(table),
            }
        }
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                "from",
                format!(
                    "the database has what this version cannot copy: {}",
                    unknown.join(", ")
                ),
            ))
        }
    }

    /// Copies every lasting table of `self` into `target`, which must be empty (freshly
    /// migrated): in one transaction on each side, so the copy is of one moment and lands
    /// whole or not at all. Answers the rows copied per table.
    pub async fn copy_into(&self, target: &Store) -> Result<Copied> {
        self.check_copyable().await?;
        let occupied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&target.pool)
            .await?;
        if occupied > 0 {
            return Err(Error::invalid(
                "to",
                "the database already has accounts: copy into an empty one",
            ));
        }
        let mut from = self.begin().await?;
        let mut to = target.begin().await?;
        let mut copied = Vec::new();
        for (table, columns) in TABLES {
            let select = columns
                .iter()
                .map(|(name, kind)| match kind {
                    Bool => format!("CAST({name} AS INTEGER) AS {name}"),
                    Text | Int | Blob => (*name).to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let rows = sqlx::query(&format!("SELECT {select} FROM {table}"))
                .fetch_all(&mut *from)
                .await?;
            let names = columns
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ");
            let params = (1..=columns.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let insert = format!("INSERT INTO {table} ({names}) VALUES ({params})");
            for row in &rows {
                let mut query = sqlx::query(&insert);
                for (index, (_, kind)) in columns.iter().enumerate() {
                    let value = match kind {
                        Text => Value::Text(row.try_get(index)?),
                        Int => Value::Int(row.try_get(index)?),
                        Bool => Value::Bool(row.try_get::<Option<Flag>, _>(index)?.map(bool::from)),
                        Blob => Value::Blob(row.try_get(index)?),
                    };
                    query = match value {
                        Value::Text(text) => query.bind(text),
                        Value::Int(int) => query.bind(int),
                        Value::Bool(flag) => query.bind(flag),
                        Value::Blob(bytes) => query.bind(bytes),
                    };
                }
                query.execute(&mut *to).await?;
            }
            copied.push((*table, u64::try_from(rows.len()).unwrap_or(u64::MAX)));
        }
        if target.backend == Backend::Postgres {
            // Explicit ids do not move an identity's sequence (SQLite's AUTOINCREMENT follows
            // them by itself).
            for table in IDENTITY_TABLES {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(&mut *to)
                .await?;
            }
        }
        to.commit().await?;
        from.commit().await?;
        Ok(copied)
    }
}
