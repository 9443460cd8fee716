//! Runs the real `hubkeyd` binary for one test: a temporary data directory, the admin CLI on
//! it, and `serve` on an ephemeral port, driven through `hubkey-client`.
//!
//! Everything a test starts is stopped when its handle drops: the server child is killed by
//! its PID and reaped, then the directory is removed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use hubkey_api::{CreateAccessTokenRequest, LoginResponse, Scope, TokenEvent};
use hubkey_client::{ClientError, HubClient, LoginOutcome};
use hubkeyd::clock::ManualClock;
use sha1::Sha1;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::pg::{test_store, PgCluster, TestStore};

/// A password that passes the server's policy; tests that need one account use it.
pub const PASSWORD: &str = "tangerine-harbour-51";
/// How long `serve` may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `serve` may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The name of the server's log file in the data directory (its stderr).
const LOG_FILE: &str = "hubkeyd.stderr.log";
/// The log file of a second instance on the same data directory ([`DataDir::share`]).
const SECOND_LOG_FILE: &str = "hubkeyd-2.stderr.log";

/// A temporary data directory and the admin commands that work on it, with the database
/// the suite's store gives it (see [`crate::pg`]): the directory's own SQLite file, or a
/// fresh PostgreSQL database of its own, dropped with it.
pub struct DataDir {
    /// Shared by every [`DataDir::share`] of it: removed with the last.
    dir: Arc<TempDir>,
    postgres: Option<Arc<PgDatabase>>,
    /// The file the server's stderr goes to, in the directory.
    log_file: &'static str,
}

/// A PostgreSQL database a [`DataDir`] runs on.
struct PgDatabase {
    url: String,
    /// Its name in the run's shared cluster, which drops it with the directory; `None` for a
    /// database of a test's private cluster ([`DataDir::on_postgres`]).
    shared: Option<String>,
}

impl DataDir {
    /// A fresh, empty data directory (and database).
    pub fn new() -> Self {
        let postgres = match test_store() {
            TestStore::Sqlite => None,
            TestStore::Postgres => {
                let (name, url) = PgCluster::shared().create_database();
                Some(Arc::new(PgDatabase {
                    url,
                    shared: Some(name),
                }))
            }
        };
        DataDir::with_database(postgres)
    }

    fn with_database(postgres: Option<Arc<PgDatabase>>) -> Self {
        DataDir {
            dir: Arc::new(tempfile::tempdir().expect("create a temporary data directory")),
            postgres,
            log_file: LOG_FILE,
        }
    }

    /// The same directory and database for a second server process (another instance of
    /// the same deployment: the same `server.key`, the same database), logging to a file of
    /// its own. Both are removed when the last of them is dropped.
    pub fn share(&self) -> Self {
        DataDir {
            dir: self.dir.clone(),
            postgres: self.postgres.clone(),
            log_file: SECOND_LOG_FILE,
        }
    }

    /// A fresh data directory on the PostgreSQL database at `url` (of a test's own cluster).
    pub fn on_postgres(url: String) -> Self {
        DataDir::with_database(Some(Arc::new(PgDatabase { url, shared: None })))
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default SQLite database of this data directory (on PostgreSQL, a file that is
    /// never made).
    pub fn db_path(&self) -> PathBuf {
        self.path().join("hubkeyd.db")
    }

    /// The URL of the database hubkeyd runs on in this directory.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url.clone(),
            None => hubkeyd::data_dir::default_database_url(self.path()),
        }
    }

    /// The URL of this directory's PostgreSQL database, on the PostgreSQL store.
    pub fn postgres_database(&self) -> Option<&str> {
        self.postgres.as_ref().map(|db| db.url.as_str())
    }

    /// Every value stored in the database, as bytes to search: the SQLite files, or a
    /// `pg_dump --data-only` of the PostgreSQL database. Empty when nothing is stored yet.
    pub fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
        match &self.postgres {
            Some(db) => vec![(format!("pg_dump of {}", db.url), PgCluster::dump(&db.url))],
            None => ["", "-wal", "-shm"]
                .iter()
                .map(|suffix| PathBuf::from(format!("{}{suffix}", self.db_path().display())))
                .filter(|path| path.exists())
                .map(|path| {
                    let bytes = std::fs::read(&path).expect("read a database file");
                    (path.display().to_string(), bytes)
                })
                .collect(),
        }
    }

    /// How many rows `table` holds, read through sqlx on either store.
    pub async fn count_rows(&self, table: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url())
            .await
            .expect("open the database");
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .expect("count rows");
        sqlx::Connection::close(conn).await.ok();
        count
    }

    /// Runs `hubkeyd --data-dir DIR ARGS…` to completion, with `stdin` as its input.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubkeyd"));
        command
            .arg("--data-dir")
            .arg(self.path())
            .args(args)
            // In the data directory, so that nothing a command writes by mistake to its
            // working directory lands in the source tree.
            .current_dir(self.path())
            .env_remove("HUBKEYD_DATABASE_URL")
            .env_remove("HUBKEYD_DATA_DIR")
            .envs(self.database_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn hubkeyd");
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(stdin) = stdin {
            input
                .write_all(stdin.as_bytes())
                .await
                .expect("write hubkeyd's stdin");
        }
        drop(input);
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("hubkeyd admin command finishes within 30 s")
            .expect("wait for hubkeyd")
    }

    /// `user add NAME --password-stdin`, which must succeed.
    pub async fn add_user(&self, name: &str, password: &str) {
        let output = self.try_add_user(name, password).await;
        assert_success(&output, "user add");
    }

    /// `user add NAME --password-stdin`, whatever the outcome.
    pub async fn try_add_user(&self, name: &str, password: &str) -> Output {
        self.run(
            &["user", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .await
    }

    /// `user totp NAME`, which must succeed; returns the base32 secret it printed.
    pub async fn enable_totp(&self, name: &str) -> String {
        let output = self.run(&["user", "totp", name], None).await;
        assert_success(&output, "user totp");
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("secret: "))
            .unwrap_or_else(|| panic!("`user totp` printed no `secret:` line: {stdout}"))
            .trim()
            .to_owned()
    }
}

impl DataDir {
    /// `HUBKEYD_DATABASE_URL` for hubkeyd processes on the PostgreSQL store (an explicit
    /// `--database` still wins); nothing on SQLite, where the directory's default is the
    /// database.
    pub fn database_env(&self) -> Option<(&'static str, String)> {
        self.postgres
            .as_ref()
            .map(|_| ("HUBKEYD_DATABASE_URL", self.database_url()))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.shared {
            PgCluster::shared().drop_database(name);
        }
    }
}

/// Panics with the command's stderr unless it exited 0.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "`hubkeyd {what}` failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running `hubkeyd serve` on 127.0.0.1 with its own data directory.
pub struct TestServer {
    /// The server's root, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    child: Child,
    data: DataDir,
    /// Arguments after `serve --listen 127.0.0.1:0` (kept for restarts).
    args: Vec<String>,
    /// What the server printed on stdout after its `listening on` line.
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts `hubkeyd --data-dir TMP serve --listen 127.0.0.1:0` with `HUBKEYD_LOG=debug`,
    /// stderr in a file, and waits for its `listening on` line.
    pub async fn start() -> Self {
        Self::start_in(DataDir::new()).await
    }

    /// Like [`TestServer::start`], on an existing data directory (accounts added before).
    pub async fn start_in(data: DataDir) -> Self {
        Self::start_with(data, &[]).await
    }

    /// Kills the server with SIGKILL (no chance to flush or finish anything) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory and database, after
    /// [`TestServer::kill`] or [`TestServer::stop`]; [`TestServer::url`] changes (new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.child = spawn_serve(&self.data, &self.args);
        self.url = self.wait_until_listening().await;
    }

    /// Waits for the child's `listening on` line; returns the URL it names.
    async fn wait_until_listening(&mut self) -> String {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let (ready, listening) = mpsc::channel();
        let later = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        self.stdout = later.clone();
        // Reads the first line, then keeps reading stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = ready.send(first);
            }
            for line in lines.map_while(Result::ok) {
                later.lock().expect("stdout lines").push(line);
            }
        });
        let first = tokio::task::spawn_blocking(move || listening.recv_timeout(STARTUP_TIMEOUT))
            .await
            .expect("join the stdout reader");
        let first = first.unwrap_or_else(|err| {
            panic!(
                "hubkeyd printed no line ({err}); its log:\n{}",
                self.log_text()
            )
        });
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {first:?}"));
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .or_else(|| url.strip_prefix("https://127.0.0.1:"));
        assert!(
            port.is_some_and(|port| port.parse::<u16>().is_ok()),
            "unexpected address in {first:?}"
        );
        url.to_owned()
    }

    /// A client of this server without a session.
    pub fn client(&self) -> HubClient {
        client_of(&self.url)
    }

    /// The server's resident memory (`VmRSS` of `/proc/PID/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// A client that connects from `127.0.0.<last>`, so the server sees another address.
    pub fn client_from(&self, last: u8) -> HubClient {
        client_from(&self.url, last)
    }

    /// A client that connects from `address` (any 127.x.y.z is loopback), for attacks from
    /// more than 255 addresses.
    pub fn client_at(&self, address: Ipv4Addr) -> HubClient {
        client_at(&self.url, address)
    }

    /// The data directory, for admin commands while the server runs.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// Adds an account through the CLI while the server runs.
    pub async fn add_user(&self, name: &str, password: &str) {
        self.data.add_user(name, password).await;
    }

    /// Enables TOTP for an account through the CLI; returns the base32 secret.
    pub async fn enable_totp(&self, name: &str) -> String {
        self.data.enable_totp(name).await
    }

    /// Signs in with a password (the account must not have 2FA) and returns a client that
    /// carries the session.
    pub async fn sign_in(&self, name: &str, password: &str) -> HubClient {
        signed_in(self.client(), name, password).await
    }

    /// Adds an account and signs it in.
    pub async fn user(&self, name: &str) -> HubClient {
        self.add_user(name, PASSWORD).await;
        self.sign_in(name, PASSWORD).await
    }

    /// Everything the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.data.path().join(self.data.log_file)).unwrap_or_default()
    }

    /// The server's SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data.db_path()
    }

    /// Sends SIGTERM and waits for the server to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll hubkeyd") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hubkeyd did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A raw request, for what the typed client cannot send (malformed bodies, odd paths).
    /// Returns the status and the body as JSON (`Null` when it is not JSON).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        raw(&self.url, method, path, bearer, body).await
    }

    /// A raw request with any header bytes and body bytes (invalid UTF-8 included).
    pub async fn raw_bytes(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &[u8])],
        body: Option<Vec<u8>>,
    ) -> RawAnswer {
        raw_bytes(&self.url, method, path, headers, body).await
    }
}

/// A raw request, for what the typed client cannot send (malformed bodies, odd paths).
/// Returns the status and the body as JSON (`Null` when it is not JSON).
async fn raw(
    url: &str,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut headers = Vec::new();
    let authorization = bearer.map(|bearer| format!("Bearer {bearer}"));
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_bytes()));
    }
    if body.is_some() {
        headers.push(("content-type", b"application/json".as_slice()));
    }
    let answer = raw_bytes(
        url,
        method,
        path,
        &headers,
        body.map(|b| b.as_bytes().to_vec()),
    )
    .await;
    (answer.status, answer.body)
}

/// A raw request with any header bytes and body bytes (invalid UTF-8 included).
async fn raw_bytes(
    url: &str,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &[u8])],
    body: Option<Vec<u8>>,
) -> RawAnswer {
    let mut request = reqwest::Client::new().request(method, format!("{url}{path}"));
    for (name, value) in headers {
        let value =
            reqwest::header::HeaderValue::from_bytes(value).expect("header bytes reqwest can send");
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("send the raw request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("read the raw answer");
    RawAnswer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        headers,
    }
}

/// What [`TestServer::raw_bytes`] got back.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

/// `hubkeyd --data-dir DIR serve --listen 127.0.0.1:0`, stderr appended to the log file.
fn spawn_serve(data: &DataDir, args: &[String]) -> Child {
    let log = File::options()
        .create(true)
        .append(true)
        .open(data.path().join(data.log_file))
        .expect("open the log file");
    Command::new(env!("CARGO_BIN_EXE_hubkeyd"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("HUBKEYD_LOG", "debug")
        .env_remove("HUBKEYD_DATABASE_URL")
        .env_remove("HUBKEYD_DATA_DIR")
        .envs(data.database_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn hubkeyd serve")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // The data directory goes with the server: a failed test shows the server's
            // side of it (an internal error's cause is logged, never answered).
            println!("---- hubkeyd's log ----\n{}", log_tail(&self.log_text()));
        }
    }
}

/// The last 100 lines of a server log, without sqlx's statement lines.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| !line.contains("DEBUG sqlx::query"))
        .collect();
    lines[lines.len().saturating_sub(100)..].join("\n")
}

/// hubkeyd served inside the test process on 127.0.0.1:0, on a clock the test turns: for tests
/// whose meaning is "time passes" (expiry, TOTP steps, ordering by last use), which would
/// otherwise sleep. Built as `hubkeyd serve` builds itself (`open`, then `run_app`), with the
/// one difference that [`hubkeyd::AppState::with_clock`] sets a [`ManualClock`]; the binary
/// has no way to do that. The admin CLI still runs as a real process on the same data
/// directory. Stopped when dropped.
pub struct ClockedServer {
    /// The server's root, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The server's clock.
    pub clock: ManualClock,
    /// The server's service, shared with the running server (for its test hooks).
    pub hub: hubkeyd::Hub,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), hubkeyd::SetupError>>,
    data: DataDir,
}

impl ClockedServer {
    /// Starts the server with its clock 10 s into a 30-second TOTP step (a little before the
    /// real time), so codes computed at [`ClockedServer::unix_now`] stay valid until the test
    /// turns the clock.
    pub async fn start() -> Self {
        let data = DataDir::new();
        let real = chrono::Utc::now().timestamp();
        let start = chrono::DateTime::from_timestamp(real - real.rem_euclid(30) + 10, 0)
            .expect("a representable time");
        let clock = ManualClock::new(start);
        let (url, hub, shutdown, task) = serve_clocked(&data, &clock).await;
        ClockedServer {
            url,
            clock,
            hub,
            shutdown: Some(shutdown),
            task,
            data,
        }
    }

    /// Stops the server (gracefully) and serves the same data directory again on the same
    /// clock, as a restart of the process would; [`ClockedServer::url`] changes.
    pub async fn restart(&mut self) {
        self.stop_and_close().await;
        let (url, hub, shutdown, task) = serve_clocked(&self.data, &self.clock).await;
        self.url = url;
        self.hub = hub;
        self.shutdown = Some(shutdown);
        self.task = task;
    }

    /// Stops the server and closes its database (SQLite folds the write-ahead log into the
    /// file), so the file's size is the data's; [`ClockedServer::restart`] serves it again.
    pub async fn stop_and_close(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
            let _ = (&mut self.task).await;
            self.hub.store().close().await;
        }
    }

    /// The served hub, for what only the process can see (the throttle's memory).
    pub fn hub(&self) -> &hubkeyd::Hub {
        &self.hub
    }

    /// A client that connects from `address` (see [`TestServer::client_at`]).
    pub fn client_at(&self, address: Ipv4Addr) -> HubClient {
        client_at(&self.url, address)
    }

    /// A raw request (see [`TestServer::raw`]).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        raw(&self.url, method, path, bearer, body).await
    }

    /// Turns the server's clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    /// The server's time, in seconds since the Unix epoch (for TOTP codes).
    pub fn unix_now(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp()).expect("a time after 1970")
    }

    /// A client of this server without a session.
    pub fn client(&self) -> HubClient {
        client_of(&self.url)
    }

    /// The data directory the server runs on.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// Adds an account through the CLI while the server runs.
    pub async fn add_user(&self, name: &str, password: &str) {
        self.data.add_user(name, password).await;
    }

    /// Enables TOTP for an account through the CLI; returns the base32 secret.
    pub async fn enable_totp(&self, name: &str) -> String {
        self.data.enable_totp(name).await
    }

    /// Adds an account and signs it in.
    pub async fn user(&self, name: &str) -> HubClient {
        self.add_user(name, PASSWORD).await;
        signed_in(self.client(), name, PASSWORD).await
    }
}

impl Drop for ClockedServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

/// Serves `data` on `clock` as `hubkeyd serve` does: the URL, the hub, the shutdown switch and
/// the serving task.
async fn serve_clocked(
    data: &DataDir,
    clock: &ManualClock,
) -> (
    String,
    hubkeyd::Hub,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), hubkeyd::SetupError>>,
) {
    let url = data.database_url();
    let instance = hubkeyd::open(data.path(), &url)
        .await
        .expect("open the data directory");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("listener address");
    let hub = instance.hub.clone();
    let state = hubkeyd::AppState::new(instance.hub, hubkeyd::Site::default())
        .with_clock(clock.clone().into())
        // The sweep runs on the turned clock; tests wait for it, not for 10 minutes.
        .with_sweep_interval(Duration::from_millis(50));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hubkeyd::run_app(state, listener, async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), hub, shutdown, task)
}

fn client_of(url: &str) -> HubClient {
    HubClient::new(url).expect("client for the test server")
}

fn client_from(url: &str, last: u8) -> HubClient {
    client_at(url, Ipv4Addr::new(127, 0, 0, last))
}

fn client_at(url: &str, address: Ipv4Addr) -> HubClient {
    HubClient::builder(url)
        .local_address(IpAddr::V4(address))
        .build()
        .expect("client for the test server")
}

/// `client` carrying the session of a password sign-in (the account must not have 2FA).
async fn signed_in(client: HubClient, name: &str, password: &str) -> HubClient {
    let session = password_session(&client, name, password).await;
    client.with_token(session.token)
}

/// Signs in with a password through `client`, expecting a session (no second factor).
pub async fn password_session(client: &HubClient, name: &str, password: &str) -> LoginResponse {
    match client.login(name, password).await {
        Ok(LoginOutcome::Session(session)) => session,
        other => panic!("password sign-in of {name} failed: {other:?}"),
    }
}

/// The HTTP status of a failed call; panics when the call succeeded.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => err
            .status()
            .unwrap_or_else(|| panic!("expected an HTTP error, got {err:?}")),
    }
}

/// The caller's whole events feed, from the start, following `cursor` while `has_more`.
pub async fn all_events(client: &HubClient) -> Vec<TokenEvent> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let page = client
            .events(after.as_deref())
            .await
            .expect("read the events feed");
        events.extend(page.events);
        if !page.has_more {
            return events;
        }
        after = Some(page.cursor);
    }
    panic!("the events feed did not end after 1000 pages");
}

/// A manual token request with `repo:read` and no expiry.
pub fn manual(label: &str) -> CreateAccessTokenRequest {
    CreateAccessTokenRequest {
        token_label: label.to_owned(),
        scopes: vec![Scope::Read],
        expires_at: None,
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The RFC 6238 code (HMAC-SHA1, 30-second steps, 6 digits) of `secret_base32` at `unix_time`.
pub fn totp_code(secret_base32: &str, unix_time: u64) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .expect("the TOTP secret is unpadded base32");
    let mut mac = Hmac::<Sha1>::new_from_slice(&secret).expect("HMAC takes any key length");
    mac.update(&(unix_time / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

#[test]
fn totp_code_matches_rfc6238_vectors() {
    // RFC 6238 appendix B, SHA-1, secret "12345678901234567890"; the 8-digit codes' last six.
    let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
    for (time, code) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
    ] {
        assert_eq!(totp_code(&secret, time), code, "t={time}");
    }
}

impl DataDir {
    /// A fresh data directory on its own SQLite file, whatever the suite's store.
    pub fn on_sqlite() -> Self {
        DataDir::with_database(None)
    }

    /// From now on hubkeyd runs here on a new, empty database of the run's shared PostgreSQL
    /// cluster (dropped with the directory); returns its URL.
    pub fn move_to_new_postgres_database(&mut self) -> String {
        let (name, url) = PgCluster::shared().create_database();
        self.postgres = Some(Arc::new(PgDatabase {
            url: url.clone(),
            shared: Some(name),
        }));
        url
    }
}

impl TestServer {
    /// Like [`TestServer::start_in`], with `args` after `serve --listen 127.0.0.1:0` (e.g.
    /// `--trusted-proxy 127.0.0.1/32`); restarts keep them.
    pub async fn start_with(data: DataDir, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let child = spawn_serve(&data, &args);
        let mut server = TestServer {
            url: String::new(),
            child,
            data,
            args,
            stdout: std::sync::Arc::default(),
        };
        server.url = server.wait_until_listening().await;
        server
    }
}

impl TestServer {
    /// A second `hubkeyd serve` of the same deployment: the same data directory (so the same
    /// `server.key`) and database, the same arguments, its own port and log file. On
    /// PostgreSQL this is how an operator runs several instances behind a load balancer.
    pub async fn another_instance(&self) -> TestServer {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        TestServer::start_with(self.data.share(), &args).await
    }

    /// The data directory, to change its database between [`TestServer::stop`] and
    /// [`TestServer::restart`].
    pub fn data_mut(&mut self) -> &mut DataDir {
        &mut self.data
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl TestServer {
    /// The lines the server printed on stdout after its `listening on` line, so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lines").clone()
    }
}

/// Median, 99th percentile and worst of `figures`, in milliseconds (sorts them).
pub fn percentiles_ms(figures: &mut [Duration]) -> (f64, f64, f64) {
    figures.sort();
    let at = |percent: usize| {
        let index = ((figures.len() - 1) * percent + 50) / 100;
        figures[index].as_secs_f64() * 1000.0
    };
    (at(50), at(99), at(100))
}

/// Part `index` of the JWT `jwt` (0 the header, 1 the claims), decoded as JSON.
pub fn jwt_part(jwt: &str, index: usize) -> serde_json::Value {
    let part = jwt.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(part.as_bytes())
            .expect("a base64url JWT part"),
    )
    .expect("a JSON JWT part")
}

/// A process stopped with SIGSTOP until dropped (SIGCONT), so a failing test resumes it too.
pub struct Stopped(u32);

impl Stopped {
    pub fn new(pid: u32) -> Self {
        let sent = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -STOP {pid}");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}
