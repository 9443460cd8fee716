//! A real PostgreSQL for the api tests: Debian's `postgresql` package, `initdb` and `pg_ctl`
//! in a temporary directory on a free loopback port. Nothing global: no system service, no
//! port or directory fixed in advance.
//!
//! Which store the suite runs on is `HUBKEY_TEST_STORE` (`sqlite`, the default, or
//! `postgres`); `scripts/test` runs the suite once with each. On `postgres`, every
//! [`crate::harness::DataDir`] gets a database of its own (`CREATE DATABASE`) in one cluster
//! per run of the test binary: nextest runs each test in a process of its own, so the first
//! process to need the cluster starts it under a file lock, and the others of the run (same
//! parent, the nextest runner) find it ready. A watchdog started with the cluster stops it
//! (`pg_ctl -m immediate`) and removes its directory once that parent has exited, whether
//! the tests passed, failed or were interrupted. Tests that restart PostgreSQL itself take a
//! private cluster ([`PgCluster::private`]), stopped and removed when dropped.
//!
//! `initdb` refuses to run as root: as root, the cluster's commands run as the `postgres`
//! user (`runuser`), which the package creates.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser every test database belongs to (trust authentication on loopback).
const SUPERUSER: &str = "hubkey";

/// Which database the suite runs hubkeyd on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    Sqlite,
    Postgres,
}

/// The store this run of the suite uses: `HUBKEY_TEST_STORE`, `sqlite` when unset.
pub fn test_store() -> TestStore {
    static STORE: OnceLock<TestStore> = OnceLock::new();
    *STORE.get_or_init(|| match std::env::var("HUBKEY_TEST_STORE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => TestStore::Sqlite,
        Ok("postgres") => TestStore::Postgres,
        Ok(other) => panic!("HUBKEY_TEST_STORE={other:?}: expected sqlite or postgres"),
    })
}

/// True (after a note on stderr) when this run is not on SQLite: for the few tests about
/// SQLite itself (its file's mode, its integrity checks), named `sqlite_only_…`, which the
/// PostgreSQL run of `scripts/test` filters out.
pub fn skip_unless_sqlite(test: &str) -> bool {
    let skip = test_store() != TestStore::Sqlite;
    if skip {
        println!("{test}: about SQLite itself, skipped on {:?}", test_store());
    }
    skip
}

/// True (after a note on stderr) when this run is not on PostgreSQL: for the tests about
/// PostgreSQL itself (its restarts, its advisory lock), named `postgres_only_…`, which the
/// SQLite run of `scripts/test` filters out.
pub fn skip_unless_postgres(test: &str) -> bool {
    let skip = test_store() != TestStore::Postgres;
    if skip {
        println!(
            "{test}: about PostgreSQL itself, skipped on {:?}",
            test_store()
        );
    }
    skip
}

/// The directory of PostgreSQL's server programs: `HUBKEY_PG_BIN`, else the newest
/// `/usr/lib/postgresql/N/bin` (Debian's layout, not on PATH).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUBKEY_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "HUBKEY_TEST_STORE=postgres needs PostgreSQL's server programs: \
             apt-get install postgresql (or set HUBKEY_PG_BIN)"
        )
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// `program` from the PostgreSQL bin directory, as the `postgres` user when we are root.
fn pg_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    };
    // Out of the test's process group (nextest kills that group at the end of a test) and
    // off its output pipes (nextest waits for them to close).
    use std::os::unix::process::CommandExt;
    command
        .process_group(0)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port nothing listens on now (the kernel's choice), for the cluster to take.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A PostgreSQL cluster: its directory (data, socket, log) and port.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    /// Stopped and removed on drop (a private cluster); the shared one has its watchdog.
    owned: bool,
}

impl PgCluster {
    /// The run's shared cluster, started by the first test process that needs it.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(Self::join_or_start_shared)
    }

    fn join_or_start_shared() -> PgCluster {
        // Under nextest every test is a process of its own, all children of the runner: they
        // share the runner's cluster. Under `cargo test` the test process is the run.
        let owner = if std::env::var_os("NEXTEST_RUN_ID").is_some() {
            std::os::unix::process::parent_id()
        } else {
            std::process::id()
        };
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| {
                exe.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "api".into());
        let dir = std::env::temp_dir().join(format!("hubkey-pg-{binary}-{owner}"));
        let lock_path = dir.with_extension("lock");
        let lock = File::create(&lock_path).expect("create the cluster's lock file");
        lock.lock().expect("lock the cluster's lock file");
        let ready = dir.join("port");
        let cluster = match std::fs::read_to_string(&ready) {
            Ok(port) => PgCluster {
                dir,
                port: port.trim().parse().expect("the cluster's port file"),
                owned: false,
            },
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
                let cluster = Self::start_in(dir, false);
                cluster.watch(owner, &lock_path);
                std::fs::write(&ready, cluster.port.to_string()).expect("write the port file");
                cluster
            }
        };
        drop(lock);
        cluster
    }

    /// A cluster of the caller's own, for tests that stop and start PostgreSQL: stopped and
    /// its directory removed when dropped.
    pub fn private() -> PgCluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubkey-pg-private-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = Self::start_in(dir, true);
        // Should the test process die before its drop runs, the watchdog still cleans up.
        cluster.watch(std::process::id(), &cluster.dir.with_extension("lock"));
        cluster
    }

    fn start_in(dir: PathBuf, owned: bool) -> PgCluster {
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        if is_root() {
            run(
                {
                    let mut chown = Command::new("chown");
                    chown.arg("postgres:").arg(&dir);
                    chown
                },
                "chown the cluster's directory to postgres",
            );
        }
        let mut initdb = pg_command("initdb");
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"]);
        run(initdb, "initdb");
        let mut cluster = PgCluster {
            dir,
            port: 0,
            owned,
        };
        // The port is free when chosen; should another process take it first, try another.
        for attempt in 0.. {
            cluster.port = free_port();
            match cluster.try_start() {
                Ok(()) => break,
                Err(err) if attempt < 4 => println!("PostgreSQL did not start ({err}); again"),
                Err(err) => panic!("PostgreSQL did not start: {err}"),
            }
        }
        cluster
    }

    /// `pg_ctl start` on the cluster's port, waiting until it accepts connections.
    fn try_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c shared_buffers=32MB",
            self.port,
            self.dir.display()
        );
        // fsync=off: the tests kill hubkeyd and stop PostgreSQL, never the machine, so what
        // PostgreSQL wrote reaches the files anyway; commits still wait for their WAL write
        // (synchronous_commit stays on), so an immediate shutdown keeps every commit.
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .arg("start");
        let output = start.output().map_err(|err| err.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}; log: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                self.log_tail()
            ))
        }
    }

    /// Starts a process that waits for `owner` to exit, then stops the cluster and removes its
    /// directory and `lock`.
    fn watch(&self, owner: u32, lock: &Path) {
        let stop = format!(
            "{}'{}' -D '{}' -m immediate stop",
            if is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            bin_dir().join("pg_ctl").display(),
            self.dir.join("data").display(),
        );
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 0.5; done; \
             {stop} >/dev/null 2>&1; rm -rf '{}' '{}'",
            self.dir.display(),
            lock.display()
        );
        // In the background of a shell that exits at once: the watchdog outlives this process
        // (that is its point) and is nobody's child to reap.
        use std::os::unix::process::CommandExt;
        let started = Command::new("sh")
            .args(["-c", &format!("( {script} ) &")])
            .process_group(0)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the cluster's watchdog");
        assert!(started.success(), "the watchdog's shell failed: {started}");
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `postgres://hubkey@127.0.0.1:PORT/NAME`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL command through `psql` on the `postgres` database.
    pub fn psql(&self, sql: &str) {
        let mut psql = Command::new(bin_dir().join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url("postgres"))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        run(psql, &format!("psql -c {sql:?}"));
    }

    /// A new, empty database; returns its URL.
    pub fn create_database(&self) -> (String, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hk_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(&format!("CREATE DATABASE {name}"));
        let url = self.url(&name);
        (name, url)
    }

    /// Drops a database made by [`PgCluster::create_database`], ending its connections.
    pub fn drop_database(&self, name: &str) {
        self.psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }

    /// `pg_dump --data-only` of the database at `url`: every stored value, as text.
    pub fn dump(url: &str) -> Vec<u8> {
        let output = Command::new(bin_dir().join("pg_dump"))
            .args(["--data-only", "-d", url])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_dump");
        assert!(
            output.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// `pg_ctl stop -m MODE` (`fast`: connections are ended and a checkpoint written;
    /// `immediate`: the server quits at once, and replays its WAL at the next start).
    pub fn stop(&self, mode: &str) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", mode, "stop"]);
        run(stop, &format!("pg_ctl stop -m {mode}"));
    }

    /// Starts a stopped cluster again on its port.
    pub fn start(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.try_start() {
                Ok(()) => return,
                Err(err) if Instant::now() < deadline => {
                    println!("PostgreSQL did not start again ({err}); retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => panic!("PostgreSQL did not start again: {err}"),
            }
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.owned {
            let mut stop = pg_command("pg_ctl");
            stop.arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "stop"]);
            let _ = stop.output();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
