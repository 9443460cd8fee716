//! A private PostgreSQL for `--store postgres|both` without `--database-url`: Debian's server
//! programs (`apt-get install postgresql`), `initdb` in a temporary directory, `pg_ctl start` on
//! a free loopback port (never a system service), stopped and removed when dropped. Its
//! settings are PostgreSQL's defaults (fsync on) apart from the connection limit, so the
//! figures are those of a durable database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;

const SUPERUSER: &str = "hubkey";

/// A running private cluster.
pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
}

/// The newest `/usr/lib/postgresql/N/bin` (Debian's layout), or `HUBKEY_PG_BIN`.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HUBKEY_PG_BIN") {
        return Ok(PathBuf::from(dir));
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
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "--store postgres without --database-url needs PostgreSQL's server programs: \
         apt-get install postgresql (or set HUBKEY_PG_BIN)"
            .into()
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// `program` of the PostgreSQL bin directory, as the `postgres` user when we are root
/// (`initdb` refuses root).
fn pg_command(program: &str) -> Result<Command> {
    let path = bin_dir()?.join(program);
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    };
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    Ok(command)
}

fn run(mut command: Command, what: &str) -> Result<()> {
    let output = command.output().map_err(|err| format!("{what}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

impl PgCluster {
    /// Starts a fresh cluster.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hubkey-bench-pg")
            .tempdir()?;
        if is_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(dir.path());
            run(chown, "chown the cluster's directory to postgres")?;
        }
        let data = dir.path().join("data");
        let mut initdb = pg_command("initdb")?;
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
            .arg("--no-instructions");
        run(initdb, "initdb")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.path().display()
        );
        let mut start = pg_command("pg_ctl")?;
        start
            .arg("-D")
            .arg(&data)
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(dir.path().join("log"))
            .arg("start");
        run(start, "pg_ctl start")?;
        Ok(PgCluster { dir, port })
    }

    /// A new empty database's URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let mut create = pg_command("createdb")?;
        create
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, name]);
        run(create, "createdb")?;
        Ok(format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    fn data(&self) -> PathBuf {
        Path::new(self.dir.path()).join("data")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Ok(mut stop) = pg_command("pg_ctl") {
            stop.arg("-D").arg(self.data()).args(["-m", "fast", "stop"]);
            let _ = stop.status();
        }
    }
}
