//! Persistence: every SQL statement hubkeyd runs lives here.
//!
//! The SQL is kept portable (numbered `$n` parameters, BIGINT millisecond times, no
//! SQLite-only syntax outside migrations) so that a PostgreSQL store is a second
//! implementation of the same statements, not a redesign. SQLite runs in WAL mode with
//! `synchronous=FULL`: a write acknowledged to a client survives a crash.
//!
//! One file per feature, each adding to `impl Store`: `accounts`, `sessions` (with 2FA
//! challenges and the spent refresh tokens of reuse detection), `account_events`, `device` (RFC 8628 grants), `sweep`
//! (deleting ended sessions and expired challenges), `tokens` (with their events and the
//! pruning rule), `usage`, `repositories`, `throttle` and `changes` (SQLite's change table).
//! This module opens the database (its file owner-only) and keeps the one invariant every token change shares: the
//! account's token lock ([`AccountTokens`]).

mod access;
mod account_events;
mod accounts;
mod batch_run;
mod changes;
mod copy;
mod device;
mod instances;
mod pool_use;
mod repositories;
mod sessions;
mod sqlite_flushes;
mod sweep;
mod throttle;
mod token_reads;
mod tokens;
mod two_factor;
mod usage;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyTypeInfo, AnyTypeInfoKind, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::background::Threads;
use crate::error::{Error, Result, SetupError};

pub use access::{
    ACCESS_LINES_PER_STATEMENT, ACCESS_LINES_PER_TRANSACTION, ADDRESS_PROBES_PER_STATEMENT,
};
pub use accounts::{UserRow, UserSummary};
pub use batch_run::BatchRun;
pub use changes::{ChangeRow, Listeners};
pub use copy::Copied;
pub use device::{DeviceClaim, DeviceGrantRow, DevicePollRow, NewDeviceGrant};
pub use pool_use::PoolUse;
pub use sessions::{EventOrigin, NewSession, Refresh, RevokeReason, SessionRow};
pub use sweep::Swept;
pub use throttle::SubjectsLock;
pub use tokens::{
    decode_cursor, encode_cursor, EventDetail, NewToken, TokenCheck, TokenOwner, TokenRow,
    TokenSpec, AUTO_TOKENS_KEPT,
};
pub use usage::{DayCounts, PendingUse, USES_PER_STATEMENT};

/// The database driver every statement runs on: sqlx's `Any`, which passes each statement to
/// the SQLite or the PostgreSQL driver, chosen by the URL at start. Store code names the
/// connection and transaction through these aliases, never a driver's own types, so that the
/// statements stay one set for both backends (the SQL rules that keeps working are in
/// ARCHITECTURE.md, "The store").
pub type Db = sqlx::Any;
/// A connection (or an open transaction, through `&mut *tx`) of [`Db`].
pub type DbConnection = <Db as sqlx::Database>::Connection;
/// An open transaction of [`Db`].
pub type DbTransaction = sqlx::Transaction<'static, Db>;

/// The database, opened and migrated.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where the change table is polled: on SQLite a pool of read-only connections of its own
    /// ([`Store::open_sqlite_reads`]), so that a poll never waits for a connection behind the
    /// usage and access-log flushes' write transactions; on PostgreSQL the one pool (readers
    /// do not queue behind writers there).
    reads: AnyPool,
    /// On SQLite, where the token check reads on a token cache miss: plain connections used on
    /// the calling thread ([`token_reads`]). On PostgreSQL the check reads through `pool`.
    token_reads: Option<Arc<token_reads::TokenReads>>,
    /// On SQLite, where the usage and access-log flushes write: a connection of their own with
    /// `synchronous=NORMAL` ([`sqlite_flushes`]). On PostgreSQL they write through `pool`,
    /// each flush transaction turning `synchronous_commit` off for itself
    /// ([`Store::begin_flush`]). Token changes, sessions and every event go through `pool`,
    /// whose commits wait for the disk.
    sqlite_flushes: Option<Arc<sqlite_flushes::SqliteFlushes>>,
    /// The flushes' thread, below the token checks' priority: their SQLite writes, and on
    /// either store the sorting and bookkeeping of a batch ([`Store::in_background`]).
    background: Threads,
    backend: Backend,
    /// Where the change listener connects (PostgreSQL only).
    listen_target: Option<crate::invalidation::ListenTarget>,
    /// The newest row of the change table this process wrote (SQLite; 0: none), shared by
    /// clones: what an admin command waits for running servers to have forgotten.
    recorded: Arc<AtomicI64>,
}

impl Backend {
    /// The backend `conn` talks to.
    fn of(conn: &DbConnection) -> Backend {
        if conn.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// `rows` tuples of `columns` parameters for a batched statement's `VALUES`, bound in
    /// order: `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on SQLite. SQLite looks a
    /// numbered parameter's name up by scanning the statement's list of names, so binding
    /// the thousand parameters of a flush's upsert took time growing with their square
    /// (sqlx names each one); anonymous parameters are bound by position alone. A statement
    /// built with them takes no other parameter.
    fn placeholders(self, rows: usize, columns: usize) -> String {
        let mut out = String::with_capacity(rows * columns * 6);
        for row in 0..rows {
            if row > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for column in 0..columns {
                if column > 0 {
                    out.push_str(", ");
                }
                match self {
                    Backend::Postgres => {
                        out.push('$');
                        out.push_str(&(row * columns + column + 1).to_string());
                    }
                    Backend::Sqlite => out.push('?'),
                }
            }
            out.push(')');
        }
        out
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (the default), `sqlite://PATH`.
    Sqlite,
    /// A PostgreSQL server, `postgres://…` or `postgresql://…`.
    Postgres,
}

/// A boolean result, read the same from both backends: PostgreSQL answers a BOOLEAN, SQLite an
/// integer (sqlx's `Any` cannot read an SQLite BOOLEAN column at all, sqlx#2778, so store SQL
/// selects booleans as `CAST(expr AS INTEGER)`). Row structs read a `bool` field through it with
/// `#[sqlx(try_from = "Flag")]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

impl sqlx::Type<Db> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as sqlx::Type<Db>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        ty.kind().is_integer() || matches!(ty.kind(), AnyTypeInfoKind::Bool)
    }
}

impl<'r> sqlx::Decode<'r, Db> for Flag {
    fn decode(value: AnyValueRef<'r>) -> std::result::Result<Self, BoxDynError> {
        match <bool as sqlx::Decode<Db>>::decode(value.clone()) {
            Ok(flag) => Ok(Flag(flag)),
            Err(_) => Ok(Flag(<i64 as sqlx::Decode<Db>>::decode(value)? != 0)),
        }
    }
}

/// Milliseconds since the Unix epoch: how times are stored.
pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A feed page from `rows`, read with `LIMIT limit + 1`: the first `limit` rows, and whether
/// more follow.
fn feed_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    (rows, has_more)
}

/// The PRAGMAs every SQLite connection runs first: WAL with `synchronous=FULL` (a write
/// acknowledged to a client survives a crash), foreign keys enforced, 15 s of waiting for the
/// write lock, and 16 MiB of page cache per connection (SQLite's default is 2 MiB: the flush of
/// token uses touches rows spread over the whole table).
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 15000",
    "PRAGMA cache_size = -16384",
];

/// Read-only connections for the change table's polls ([`Store::open_sqlite_reads`]), one
/// every 100 ms per server, and the rare reads that must not queue behind a flush. Opened as
/// needed (none while idle).
const SQLITE_READERS: u32 = 2;

/// The PRAGMAs of the usage and access-log flushes' connection ([`sqlite_flushes`]): those of
/// every connection, but `synchronous=NORMAL`, so a flush's commit does not wait for the WAL
/// to reach the disk (WAL mode keeps the database whole either way, and a later commit of a
/// `FULL` connection or a checkpoint syncs the WAL up to its end). A crash of hubkeyd loses
/// nothing committed; a power loss can lose the flushes committed since the WAL was last
/// synced, never an acknowledged token change (those commit through `FULL` connections).
///
/// Its foreign keys stand in for a probe that the token exists: SQLite checks the parent only
/// when an upsert inserts a row, never when it updates one (the token column is not changed),
/// and a row that exists belongs to a token that exists (deleting a token deletes its rows in
/// the same transaction). So a token's usual flush, which adds to its rows, reads nothing of
/// `access_tokens`; a token deleted since its use fails its insert, and the flush drops its
/// rows ([`sqlite_flushes::Upsert`]).
///
/// It alone maps the database file into memory: a page it reads (the rows it updates, the
/// indexes it descends) is a load from the kernel's page cache instead of a `pread` and a copy
/// into its own cache: the flushes' CPU a token 5.3-6.0 µs against 6.5-8.0 (`scripts/bench
/// flushes`, alternated with the build before). SQLite unmaps a connection's view whenever it
/// begins a read after another connection's commit, so the map pays off only for the connection
/// that does the committing: the token check's readers see a flush's commit several times a
/// second, and mapped, their lookups took 11.9 µs instead of 7.4 with a commit every 200
/// lookups (the page faults came back after each commit). The cost of a map: a disk's read
/// error under a mapped page ends hubkeyd (`SIGBUS`) where a `pread` would fail the flush; that
/// loses what any crash loses (the uses of the last 2 s), and the database stays whole (WAL).
const SQLITE_FLUSH_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 15000",
    "PRAGMA cache_size = -16384",
    // All of a database up to 2 GiB: SQLite's own upper limit on Linux (`SQLITE_MAX_MMAP_SIZE`,
    // 0x7fff0000). The pages it touches count in hubkeyd's `RssFile`: they are the kernel's
    // cache of the file, which holds them mapped or not and gives them back when memory is short.
    "PRAGMA mmap_size = 2147418112",
];

/// The PRAGMAs of a read-only connection (the change table's polls, the token check's
/// lookups): `query_only`, and a page cache of 1 MiB (enough for the inner pages of the digest
/// index of a million tokens; the leaf and row pages of a random token come from the kernel's
/// cache).
const SQLITE_READ_PRAGMAS: &[&str] = &[
    "PRAGMA query_only = ON",
    "PRAGMA busy_timeout = 15000",
    "PRAGMA cache_size = -1024",
];

/// A plain SQLite connection (rusqlite, the same SQLite library sqlx links) to the store's
/// file, migrated already, after running `pragmas`: for the token check's lookups and the
/// flushes' writes, which bypass sqlx on the hot path. No URI parsing: the path is a file
/// name, whatever characters it holds.
fn open_plain_sqlite(path: &Path, pragmas: &[&str]) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    for pragma in pragmas {
        // Some PRAGMAs answer with a row (`journal_mode`), others with none.
        let mut statement = conn.prepare(pragma)?;
        let mut rows = statement.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(conn)
}

/// The time `millis` (Unix milliseconds, as stored) stands for.
pub fn time_of(millis: i64) -> DateTime<Utc> {
    time(millis)
}

fn time(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite://PATH`,
    /// or `postgres://…`/`postgresql://…` (the database must exist).
    /// Migrating takes a PostgreSQL advisory lock (sqlx's migrator), so instances starting
    /// together on one empty database migrate it once, one after another.
    pub async fn open(url: &str) -> Result<Self, SetupError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Self::check_url(url)?;
        if backend == Backend::Sqlite {
            Self::create_sqlite_file(url)?;
        }
        // Migrations run on a connection of their own, closed before the pool opens (the pool
        // only ever sees a migrated database). On PostgreSQL it is also the first connection,
        // whose error says why a database does not answer (the pool would retry until its
        // timeout and then say only that it timed out); the driver's messages name the host
        // and the user at most, never the password, and the URL is not repeated.
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .map_err(|err| {
                SetupError::Database(format!("opening the {backend} database: {err}"))
            })?;
        let migrated = match backend {
            Backend::Sqlite => {
                for pragma in SQLITE_PRAGMAS {
                    conn.execute(*pragma)
                        .await
                        .map_err(|err| SetupError::Database(format!("opening: {err}")))?;
                }
                sqlx::migrate!("./migrations/sqlite").run(&mut conn).await
            }
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&mut conn).await,
        };
        migrated.map_err(|err| SetupError::Database(format!("migration failed: {err}")))?;
        let _ = sqlx::Connection::close(conn).await;
        // One thread: the flushes run one transaction at a time anyway.
        let background = Threads::start("flushes", 1, 64)?;
        let (pool, reads, sqlite_flushes, token_reads) = match backend {
            Backend::Sqlite => {
                let file = Self::sqlite_file(url)?;
                let opening =
                    |err: rusqlite::Error| SetupError::Database(format!("opening: {err}"));
                (
                    Self::open_sqlite(url, 8, SQLITE_PRAGMAS).await?,
                    Self::open_sqlite_reads(url).await?,
                    Some(Arc::new(sqlite_flushes::SqliteFlushes::open(
                        &file,
                        background.clone(),
                    )?)),
                    Some(Arc::new(
                        token_reads::TokenReads::open(&file).map_err(opening)?,
                    )),
                )
            }
            Backend::Postgres => {
                let pool = Self::open_postgres(url).await?;
                (pool.clone(), pool, None, None)
            }
        };
        let listen_target = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                Some(crate::invalidation::ListenTarget::new(url).map_err(|err| {
                    SetupError::Database(format!("the PostgreSQL database URL: {err}"))
                })?)
            }
        };
        Ok(Store {
            pool,
            reads,
            token_reads,
            sqlite_flushes,
            background,
            backend,
            listen_target,
            recorded: Arc::default(),
        })
    }

    /// The file a `sqlite://` URL names.
    fn sqlite_file(url: &str) -> Result<PathBuf, SetupError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| SetupError::Usage(format!("the SQLite database URL: {err}")))?;
        Ok(options.get_filename().to_owned())
    }

    /// Creates the SQLite file (and its folder) owner-only before the driver sees it.
    fn create_sqlite_file(url: &str) -> Result<(), SetupError> {
        let file = &Self::sqlite_file(url)?;
        // `sqlite::memory:` reaches here as a `file:` URI naming no file. Through `Any` every
        // connection would open a database of its own: refused.
        let in_memory =
            file == Path::new(":memory:") || file.to_string_lossy().starts_with("file:");
        if in_memory {
            return Err(SetupError::Usage(
                "an in-memory SQLite database cannot be served: write sqlite://PATH".into(),
            ));
        }
        {
            if let Some(parent) = file.parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|err| {
                        SetupError::io(format!("creating {}", parent.display()), err)
                    })?;
                }
            }
            // Before SQLite creates it with its default mode (0644 less the umask). It exists
            // from here on, so the driver opens it without being told to create it.
            crate::data_dir::create_private_file(file)?;
        }
        Ok(())
    }

    /// The pool's connect options for `url`. sqlx's statement logging is off: its slow-statement
    /// warning prints the whole (reformatted) SQL, which for a batched upsert of token uses is
    /// a 1 500-placeholder statement; the usage flush logs its own slow writes by count.
    fn connect_options(url: &str) -> Result<AnyConnectOptions, SetupError> {
        Ok(AnyConnectOptions::from_str(url)
            .map_err(|err| SetupError::Usage(format!("the database URL: {err}")))?
            .disable_statement_logging())
    }

    /// A pool of up to `connections` read-write connections, each starting with `pragmas`.
    async fn open_sqlite(
        url: &str,
        connections: u32,
        pragmas: &'static [&'static str],
    ) -> Result<AnyPool, SetupError> {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(30))
            // No ping before each use (sqlx's default): a SQLite connection is a file and a
            // thread of this process, it cannot be hung up on, and the ping was a second round
            // trip to that thread for every statement.
            .test_before_acquire(false)
            // `Any` opens SQLite from the URL alone, so each connection sets its PRAGMAs here.
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    for pragma in pragmas {
                        conn.execute(*pragma).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(Self::connect_options(url)?)
            .await
            .map_err(|err| SetupError::Database(format!("opening: {err}")))
    }

    /// The SQLite pool the token check reads through: read-only connections (`query_only`),
    /// WAL readers that never wait for the writer nor for a connection a flush holds, each
    /// with a small page cache ([`SQLITE_READ_PRAGMAS`]).
    async fn open_sqlite_reads(url: &str) -> Result<AnyPool, SetupError> {
        AnyPoolOptions::new()
            .max_connections(SQLITE_READERS)
            .acquire_timeout(Duration::from_secs(30))
            // As the writers' pool: no ping, which doubled the round trips of a lookup.
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in SQLITE_READ_PRAGMAS {
                        conn.execute(*pragma).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(Self::connect_options(url)?)
            .await
            .map_err(|err| SetupError::Database(format!("opening: {err}")))
    }

    /// The read-only pool (see [`Store::reads`]).
    fn read_pool(&self) -> &AnyPool {
        &self.reads
    }

    /// Starts a transaction of the usage or access-log flush on PostgreSQL (SQLite's go
    /// through [`Store::sqlite_flushes`]): with `synchronous_commit` off for this transaction
    /// alone (its commit does not wait for the WAL flush; a crash of the PostgreSQL server can
    /// lose the last few hundred milliseconds of such commits, never another transaction's).
    /// Only counts of uses are written this way: never a token change, a session or an event.
    async fn begin_flush(&self) -> Result<DbTransaction> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    async fn open_postgres(url: &str) -> Result<AnyPool, SetupError> {
        AnyPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            // How long a request waits for a connection while PostgreSQL is away (a restart
            // takes a second or two): after that it fails, well within REQUEST_TIMEOUT.
            .acquire_timeout(Duration::from_secs(10))
            // A connection is pinged before use (sqlx's default, kept explicit): one the server
            // closed (a PostgreSQL restart) is dropped and replaced, so hubkeyd reconnects by
            // itself and only requests already in flight see the loss.
            .test_before_acquire(true)
            .idle_timeout(Duration::from_secs(300))
            .max_lifetime(Duration::from_secs(1800))
            .connect_with(Self::connect_options(url)?)
            .await
            .map_err(|err| SetupError::Database(format!("opening the PostgreSQL database: {err}")))
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the change listener of [`crate::invalidation`] connects: `None` on SQLite.
    pub fn listen_target(&self) -> Option<&crate::invalidation::ListenTarget> {
        self.listen_target.as_ref()
    }

    /// Announces `stale` to the other instances inside `tx` ([`crate::invalidation::announce`],
    /// ended by the marker of `id` when the commit waits for their confirmations) and
    /// commits: they hear it exactly when it commits. [`crate::Hub::commit`] also forgets it
    /// locally and waits for the confirmations. On SQLite it writes `stale` into the change
    /// table inside `tx` instead, which running servers poll ([`crate::change_table`]).
    pub async fn commit(
        &self,
        mut tx: DbTransaction,
        stale: &[crate::invalidation::Stale],
        id: Option<crate::invalidation::AnnouncementId>,
    ) -> Result<()> {
        crate::invalidation::announce(self.backend, &mut tx, stale, id).await?;
        let change = Self::record_change(self.backend, &mut tx, stale).await?;
        tx.commit().await?;
        if let Some(change) = change {
            self.note_recorded(change);
        }
        Ok(())
    }

    /// Refuses a database URL this store cannot serve, before anything is opened or created.
    /// SQLite's driver reads whatever it is given as a file name: `postgres://hk@db/hubkey` would
    /// silently become a SQLite file named `postgres:/hk@db/hubkey` in the working directory, and
    /// two servers meant to share a database would share that file by accident. The message
    /// names only the scheme: a database URL may carry a password.
    pub fn check_url(url: &str) -> Result<Backend, SetupError> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|scheme| {
                scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            });
        match scheme {
            Some(scheme) if scheme.eq_ignore_ascii_case("sqlite") => Ok(Backend::Sqlite),
            Some(scheme)
                if scheme.eq_ignore_ascii_case("postgres")
                    || scheme.eq_ignore_ascii_case("postgresql") =>
            {
                Ok(Backend::Postgres)
            }
            Some(scheme) => Err(SetupError::Usage(format!(
                "the database URL's scheme {scheme:?} is not one hubkeyd can serve: write \
                 sqlite://PATH for a SQLite file or postgres://USER@HOST/DATABASE for PostgreSQL"
            ))),
            None => Err(SetupError::Usage(
                "the database URL has no scheme: write sqlite://PATH for a SQLite file or \
                 postgres://USER@HOST/DATABASE for PostgreSQL"
                    .into(),
            )),
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs `work` on the flushes' thread, below the token checks' priority: for a flush's
    /// CPU work on its batch (sorting, hashing, freeing), which on the runtime's threads held
    /// up the requests queued behind it.
    pub async fn in_background<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.background.run(work).await
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<DbTransaction> {
        Ok(self.pool.begin().await?)
    }

    /// Takes the account's token lock inside `tx` and returns the guard every token change
    /// needs. Its [`AccountTokens::stamp`] is the time to stamp the transaction's changes
    /// with: `now`, or just after the account's previous stamp if the clock read earlier.
    /// Every transaction that changes an account's tokens starts here, so they run one at a
    /// time per account (a row lock on PostgreSQL, the write lock on SQLite) and their times
    /// follow commit order. Taking it first also means an SQLite transaction never has to
    /// upgrade a read lock, which could fail under contention.
    pub async fn lock_account_tokens<'tx>(
        tx: &'tx mut DbConnection,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountTokens<'tx>> {
        let stamp: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET token_clock = \
                 CASE WHEN token_clock + 1 > $2 THEN token_clock + 1 ELSE $2 END \
             WHERE id = $1 RETURNING token_clock",
        )
        .bind(user_id)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let stamp = stamp
            .map(time)
            .ok_or_else(|| Error::Unauthorized("the account no longer exists".into()))?;
        Ok(AccountTokens {
            conn: tx,
            user_id: user_id.to_owned(),
            stamp,
        })
    }
}

/// The account's token lock, held inside one transaction: the proof every store function
/// that changes tokens asks for, so that no change can skip the lock. Only
/// [`Store::lock_account_tokens`] makes one; it borrows the transaction, which can commit once
/// the guard is no longer used. The changes it allows are confined to its account.
///
/// A token change takes the lock first:
///
/// ```no_run
/// # use hubkeyd::store::{NewToken, Store};
/// async fn insert(store: &Store, user_id: &str, new: &NewToken<'_>) -> hubkeyd::Result<()> {
///     let mut tx = store.begin().await?;
///     let mut tokens = Store::lock_account_tokens(&mut tx, user_id, chrono::Utc::now()).await?;
///     Store::insert_token(&mut tokens, new).await?;
///     Ok(tx.commit().await?)
/// }
/// ```
///
/// and without it does not compile:
///
/// ```compile_fail
/// # use hubkeyd::store::{NewToken, Store};
/// async fn insert_unlocked(store: &Store, new: &NewToken<'_>) -> hubkeyd::Result<()> {
///     let mut tx = store.begin().await?;
///     Store::insert_token(&mut tx, new).await?; // expected `&mut AccountTokens`
///     Ok(tx.commit().await?)
/// }
/// ```
#[derive(Debug)]
pub struct AccountTokens<'tx> {
    conn: &'tx mut DbConnection,
    user_id: String,
    stamp: DateTime<Utc>,
}

impl AccountTokens<'_> {
    /// The account whose tokens are locked.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The time this transaction's changes are stamped with (after every earlier stamp of
    /// the account).
    pub fn stamp(&self) -> DateTime<Utc> {
        self.stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_by_columns_or_stay_anonymous() {
        assert_eq!(Backend::Postgres.placeholders(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(Backend::Postgres.placeholders(1, 3), "($1, $2, $3)");
        assert_eq!(Backend::Sqlite.placeholders(2, 2), "(?, ?), (?, ?)");
    }

    /// The build flags of `.cargo/config.toml` reach the bundled SQLite: no global lock around
    /// every connection's page cache, no memory statistics taking another on every
    /// allocation.
    #[test]
    fn the_bundled_sqlite_has_no_global_page_cache_or_allocation_lock() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    /// SQLite's setting `name` as a connection of `pool` reports it (`PRAGMA name`).
    async fn pragma(pool: &AnyPool, name: &str) -> i64 {
        sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// A new SQLite store in a temporary directory (removed when dropped).
    async fn new_sqlite_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hubkeyd.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn only_the_flushes_connection_commits_without_waiting_for_the_disk() {
        let (_dir, store) = new_sqlite_store().await;
        let flushes = store.sqlite_flushes.as_ref().unwrap();
        assert_eq!(flushes.pragma("synchronous").await, 1, "flushes: NORMAL");
        // Token changes, sessions and events commit through the pool `begin` hands out.
        assert_eq!(pragma(&store.pool, "synchronous").await, 2, "changes: FULL");
        let mut tx = store.begin().await.unwrap();
        let in_change: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(in_change, 2, "a change's transaction: FULL");
        drop(tx);
        let in_flush = flushes
            .write(|tx| tx.query_row("PRAGMA synchronous", [], |row| row.get::<_, i64>(0)))
            .await
            .unwrap();
        assert_eq!(in_flush, 1, "a flush's transaction: NORMAL");
        store.close().await;
    }

    #[tokio::test]
    async fn only_the_flushes_connection_maps_the_file() {
        let (_dir, store) = new_sqlite_store().await;
        let flushes = store.sqlite_flushes.as_ref().unwrap();
        assert_eq!(
            flushes.pragma("mmap_size").await,
            0x7fff_0000,
            "flushes: up to 2 GiB"
        );
        // The others see the flushes' commits, and would map the file anew after each.
        assert_eq!(pragma(&store.pool, "mmap_size").await, 0, "changes");
        let token_reads = store.token_reads.as_ref().unwrap();
        assert_eq!(token_reads.pragma("mmap_size"), 0, "the token check");
        store.close().await;
    }

    /// An account, ann, with three tokens (t1 newest), for a database an older release left.
    const ANN_AND_HER_TOKENS: &str =
        "INSERT INTO users (id, username, password_hash, created_at) VALUES ('u', 'ann', '-', 0);
         INSERT INTO access_tokens (uuid, user_id, digest, hint, label, scopes, origin,
             client_id, creator_ip, creator_ua, created_at, is_active)
         VALUES ('t1', 'u', 'd1', 'h', 'ci', 'repo:read', 'manual', 'c', 'ip', 'ua', 3, TRUE),
                ('t2', 'u', 'd2', 'h', 'laptop', 'repo:read', 'manual', 'c', 'ip', 'ua', 2, TRUE),
                ('t3', 'u', 'd3', 'h', 'desk', 'repo:read', 'manual', 'c', 'ip', 'ua', 1, TRUE);";

    /// A store opened (so migrated to the latest) on a SQLite database at `dir/hubkeyd.db`
    /// that a release whose last migration came before `first_missing` (a migration's
    /// number, "0015") left holding ann, her tokens and `rows` (SQL of that release's schema).
    async fn opened_after_release_before(dir: &Path, first_missing: &str, rows: &str) -> Store {
        let url = format!("sqlite://{}", dir.join("hubkeyd.db").display());
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let before = dir.join(format!("migrations-before-{first_missing}"));
        std::fs::create_dir(&before).unwrap();
        for entry in std::fs::read_dir(&all).unwrap() {
            let name = entry.unwrap().file_name();
            if name.to_string_lossy().as_ref() < first_missing {
                std::fs::copy(all.join(&name), before.join(&name)).unwrap();
            }
        }
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(true);
        let mut old = options.connect().await.unwrap();
        let migrator = sqlx::migrate::Migrator::new(before.as_path())
            .await
            .unwrap();
        migrator.run(&mut old).await.unwrap();
        old.execute(format!("{ANN_AND_HER_TOKENS}{rows}").as_str())
            .await
            .unwrap();
        drop(old);
        Store::open(&url).await.unwrap()
    }

    /// A database the release before 0015 left keeps every use and access line when 0015
    /// rebuilds the usage tables without rowid and re-keys the log (and 0016 moves the latest
    /// uses onto the usage rows); afterwards uses and lines still merge into the kept rows and
    /// still go with their token.
    #[tokio::test]
    async fn compacting_the_usage_tables_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = opened_after_release_before(
            dir.path(),
            "0015",
            "INSERT INTO token_last_used VALUES ('t1', 50), ('t2', 70);
             INSERT INTO token_usage VALUES ('t1', 1, 3), ('t1', 2, 4), ('t2', 2, 1);
             INSERT INTO token_access (token_uuid, day, address, user_agent, action, first_at,
                 last_at, uses)
             VALUES ('t1', 2, '10.0.0.1', 'docker', 'pull', 10, 50, 2),
                    ('t2', 2, '10.0.0.2', 'skopeo', 'push', 60, 70, 1);",
        )
        .await;
        let rows = |sql: &'static str| {
            let pool = store.pool.clone();
            async move {
                sqlx::query_as::<_, (String, i64, i64)>(sql)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        let last_used = "SELECT token_uuid, day, last_used FROM token_usage \
                         WHERE last_used IS NOT NULL ORDER BY 1";
        let per_day = "SELECT token_uuid, day, uses FROM token_usage ORDER BY 1, 2";
        let access = "SELECT token_uuid || ' ' || address, first_at * 1000 + last_at, uses \
                      FROM token_access ORDER BY 1";
        assert_eq!(
            rows(last_used).await,
            [("t1".into(), 2, 50), ("t2".into(), 2, 70)]
        );
        assert_eq!(
            rows(per_day).await,
            [
                ("t1".into(), 1, 3),
                ("t1".into(), 2, 4),
                ("t2".into(), 2, 1)
            ]
        );
        assert_eq!(
            rows(access).await,
            [
                ("t1 10.0.0.1".into(), 10_050, 2),
                ("t2 10.0.0.2".into(), 60_070, 1)
            ]
        );
        let schema: Vec<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'token_usage'")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(schema.len(), 1);
        assert!(
            schema.iter().all(|sql| sql.ends_with("WITHOUT ROWID")),
            "{schema:?}"
        );

        let later = usage::PendingUse {
            last_used: 80,
            days: DayCounts::from_iter([(2, 5)]),
        };
        store
            .record_uses(BatchRun::whole(vec![("t1".into(), later.clone())]))
            .await
            .unwrap();
        let line = crate::access_log::AccessLine {
            token_uuid: "t1".into(),
            day: 2,
            address: "10.0.0.1".into(),
            user_agent: "docker".into(),
            action: "pull".into(),
            first_at: 5,
            last_at: 90,
            uses: 3,
        };
        store
            .record_access(BatchRun::whole(vec![line.clone()]))
            .await
            .unwrap();
        assert_eq!(rows(last_used).await[0], ("t1".into(), 2, 80));
        assert_eq!(rows(per_day).await[1], ("t1".into(), 2, 9), "counts add");
        assert_eq!(
            rows(access).await[0],
            ("t1 10.0.0.1".into(), 5_090, 5),
            "one line, merged"
        );

        sqlx::query("DELETE FROM access_tokens WHERE uuid = 't1'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(rows(last_used).await, [("t2".into(), 2, 70)]);
        assert_eq!(rows(per_day).await, [("t2".into(), 2, 1)]);
        assert_eq!(rows(access).await, [("t2 10.0.0.2".into(), 60_070, 1)]);

        // Uses and lines of a token deleted since they were noted are dropped (the flushes'
        // connection's inserts fail their foreign key and are skipped): nothing dangles.
        store
            .record_uses(BatchRun::whole(vec![
                ("t1".into(), later.clone()),
                ("t2".into(), later.clone()),
            ]))
            .await
            .unwrap();
        let other_day = crate::access_log::AccessLine {
            day: 3,
            ..line.clone()
        };
        let t2_line = crate::access_log::AccessLine {
            token_uuid: "t2".into(),
            address: "10.0.0.2".into(),
            user_agent: "skopeo".into(),
            action: "push".into(),
            ..line.clone()
        };
        store
            .record_access(BatchRun::whole(vec![line.clone(), other_day, t2_line]))
            .await
            .unwrap();
        assert_eq!(rows(last_used).await, [("t2".into(), 2, 80)]);
        assert_eq!(rows(per_day).await, [("t2".into(), 2, 6)]);
        assert_eq!(
            rows(access).await,
            [("t2 10.0.0.2".into(), 5_090, 4)],
            "the deleted token's lines dropped, the next token's merged"
        );
        let dangling = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert!(dangling.is_empty());
        store.close().await;
    }

    /// 0016 moves each token's latest use onto its latest day of usage, and keeps a latest
    /// use with no counted day as a row of its own; afterwards the token list reads the latest
    /// use from there, a batch spanning midnight moves it to the later day, and an older use
    /// written late (another instance's) never moves it back.
    #[tokio::test]
    async fn latest_uses_move_onto_the_latest_day_of_usage() {
        const DAY: i64 = 86_400_000;
        let dir = tempfile::tempdir().unwrap();
        let store = opened_after_release_before(
            dir.path(),
            "0016",
            "INSERT INTO token_last_used VALUES ('t1', 172800050), ('t2', 172800009);
             INSERT INTO token_usage VALUES ('t1', 1, 3), ('t1', 2, 4), ('t3', 1, 1);",
        )
        .await;
        let usage = || {
            let pool = store.pool.clone();
            async move {
                sqlx::query_as::<_, (String, i64, i64, Option<i64>)>(
                    "SELECT token_uuid, day, uses, last_used FROM token_usage ORDER BY 1, 2",
                )
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        let latest = || async {
            let mut listed: Vec<(String, Option<i64>)> = store
                .list_tokens("u", 0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|token| (token.uuid, token.last_used))
                .collect();
            listed.sort();
            listed
        };
        assert_eq!(
            usage().await,
            [
                ("t1".into(), 1, 3, None),
                ("t1".into(), 2, 4, Some(2 * DAY + 50)),
                ("t2".into(), 2, 0, Some(2 * DAY + 9)),
                ("t3".into(), 1, 1, None),
            ],
            "the latest day carries the latest use; a latest use without a day is kept"
        );
        assert_eq!(
            latest().await,
            [
                ("t1".into(), Some(2 * DAY + 50)),
                ("t2".into(), Some(2 * DAY + 9)),
                ("t3".into(), None),
            ]
        );

        let spanning_midnight = usage::PendingUse {
            last_used: 3 * DAY + 7,
            days: DayCounts::from_iter([(2, 1), (3, 2)]),
        };
        let older_elsewhere = usage::PendingUse {
            last_used: 2 * DAY + 20,
            days: DayCounts::from_iter([(2, 5)]),
        };
        store
            .record_uses(BatchRun::whole(vec![
                ("t1".into(), spanning_midnight.clone()),
                ("t3".into(), spanning_midnight),
            ]))
            .await
            .unwrap();
        store
            .record_uses(BatchRun::whole(vec![("t1".into(), older_elsewhere)]))
            .await
            .unwrap();
        assert_eq!(
            usage().await,
            [
                ("t1".into(), 1, 3, None),
                ("t1".into(), 2, 10, Some(2 * DAY + 50)),
                ("t1".into(), 3, 2, Some(3 * DAY + 7)),
                ("t2".into(), 2, 0, Some(2 * DAY + 9)),
                ("t3".into(), 1, 1, None),
                ("t3".into(), 2, 1, None),
                ("t3".into(), 3, 2, Some(3 * DAY + 7)),
            ]
        );
        assert_eq!(
            latest().await,
            [
                ("t1".into(), Some(3 * DAY + 7)),
                ("t2".into(), Some(2 * DAY + 9)),
                ("t3".into(), Some(3 * DAY + 7)),
            ]
        );
        store.close().await;
    }

    #[test]
    fn sqlite_and_postgres_urls_are_served_and_refusals_do_not_repeat_the_url() {
        for (good, backend) in [
            ("sqlite://data/hubkeyd.db", Backend::Sqlite),
            ("sqlite::memory:", Backend::Sqlite),
            ("SQLite:/tmp/x.db", Backend::Sqlite),
            (
                "postgres://hk:s3cret@127.0.0.1:5432/hubkey",
                Backend::Postgres,
            ),
            ("postgresql://hk:s3cret@db/hubkey", Backend::Postgres),
            (
                "PostgreSQL://hk@db/hubkey?sslmode=require",
                Backend::Postgres,
            ),
        ] {
            assert_eq!(Store::check_url(good).ok(), Some(backend), "{good}");
        }
        for (bad, says) in [
            ("mysql://root:s3cret@db/hubkey", "\"mysql\""),
            ("/var/lib/hubkeyd/s3cret.db", "no scheme"),
            ("s3cret.db", "no scheme"),
        ] {
            let message = Store::check_url(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad}: {message}");
            assert!(message.contains("postgres://"), "{bad}: {message}");
            if !says.contains("s3cret") {
                assert!(!message.contains("s3cret"), "{bad}: {message}");
            }
        }
    }
}
