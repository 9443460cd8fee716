//! The `hubkeyd` command line: `serve`, and the admin commands that work on the database
//! directly (they may run while a server uses the same database).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::change_table::{self, Heard};
use crate::data_dir;
use crate::error::SetupError;
use crate::http::client_address::{self, ForwardedHeader, TrustedProxies};
use crate::registry::keys::RegistryKeys;
use crate::store::Store;
use crate::tls::{Tls, TlsFiles};
use crate::{totp, Hub, Instance};

/// What every command answers.
type Result<T, E = SetupError> = std::result::Result<T, E>;

/// hubkeyd: a self-hostable, Docker Hub compatible personal-access-token server.
#[derive(Debug, Parser)]
#[command(name = "hubkeyd", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server keeps its state.
#[derive(Debug, Args)]
pub struct Global {
    /// Folder for the database (by default) and server.key.
    #[arg(long, env = "HUBKEYD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL; default sqlite://DATA_DIR/hubkeyd.db.
    #[arg(long, env = "HUBKEYD_DATABASE_URL", global = true)]
    pub database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API.
    Serve(ServeArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Set which repositories are public (pullable by anyone) or private (the default).
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Write a CNCF distribution registry configuration that uses hubkeyd for token auth.
    RegistryConfig(RegistryConfigArgs),
    /// Rotate the key that signs registry tokens: stage, deploy the bundle, promote, retire.
    #[command(subcommand)]
    RegistryKey(RegistryKeyCommand),
    /// Copy this server's database (--database, or the data directory's SQLite file) into
    /// another, empty one: accounts, sessions, tokens, events, usage and repository
    /// visibility (not the throttle's state). Stop the servers first; then point them at the
    /// new database. The copy is of one moment, and lands whole or not at all.
    CopyStore(CopyStoreArgs),
}

#[derive(Debug, Args)]
pub struct CopyStoreArgs {
    /// The database to copy into (created tables, no accounts), e.g.
    /// postgres://USER@HOST/DATABASE.
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Make NAMESPACE/NAME pullable by anyone.
    Public { repository: String },
    /// Make NAMESPACE/NAME pullable by its owner only.
    Private { repository: String },
    /// List repositories with a recorded visibility.
    List,
}

#[derive(Debug, Args)]
pub struct RegistryConfigArgs {
    /// The URL the registry and its clients reach hubkeyd at (the token realm is URL/token).
    #[arg(long)]
    pub hub_url: String,
    /// The address the registry listens on.
    #[arg(long)]
    pub registry_listen: String,
    /// Folder for config.yml, the certificate bundle and the registry's storage.
    #[arg(long)]
    pub out: PathBuf,
    /// hubkeyd's TLS certificate, when it serves https: the realm must then be https.
    #[arg(long, value_name = "PEM", env = "HUBKEYD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum RegistryKeyCommand {
    /// Show the key ids of the signing and staged keys.
    Show,
    /// Create the next signing key; its certificate joins the bundle.
    Stage,
    /// Sign with the staged key from now on (restart hubkeyd); the old certificate stays.
    Promote,
    /// Drop the old certificate from the bundle.
    Retire,
    /// Print the certificate bundle a registry should trust.
    Bundle,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, env = "HUBKEYD_LISTEN", default_value = "127.0.0.1:5080")]
    pub listen: SocketAddr,
    /// The URL clients use to reach this server, for absolute links in answers.
    #[arg(long, env = "HUBKEYD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The registry (host:port) that uses this server for token auth, announced at
    /// /v2/hubkey/info so the desktop app knows where to point the docker CLI.
    #[arg(long, env = "HUBKEYD_REGISTRY_HOST")]
    pub registry_host: Option<String>,
    /// A reverse proxy (CIDR or address) whose forwarded header names the client; repeat
    /// for several. Without one, forwarded headers are ignored and the TCP peer is the
    /// client. The client is the right-most address in the header that is not itself a
    /// trusted proxy.
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        env = "HUBKEYD_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = client_address::parse_network
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header the trusted proxies set (only that one is read: a proxy passes the other
    /// through from the client untouched).
    #[arg(
        long,
        value_enum,
        env = "HUBKEYD_FORWARDED_HEADER",
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: ForwardedHeader,
    /// Serve https with this certificate chain (PEM, the server's certificate first);
    /// SIGHUP reloads it and the key without closing the listener.
    #[arg(
        long,
        value_name = "PEM",
        env = "HUBKEYD_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        value_name = "PEM",
        env = "HUBKEYD_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Serve GET /metrics (Prometheus) on this address, a listener of its own without
    /// credentials or TLS; keep it private (loopback or an internal network). Not served at
    /// all without it, and never on the API's address.
    #[arg(long, value_name = "ADDR", env = "HUBKEYD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// GitHub's secret-scanning key set (its `{"public_keys": [...]}` format) in a file:
    /// turns on POST /v2/secret-scanning/github, which deactivates tokens GitHub finds in
    /// public. Off without this or --secret-scanning-keys-url.
    #[arg(
        long,
        env = "HUBKEYD_SECRET_SCANNING_KEYS",
        conflicts_with = "secret_scanning_keys_url"
    )]
    pub secret_scanning_keys: Option<std::path::PathBuf>,
    /// The URL of GitHub's secret-scanning key set, fetched at start, again every hour, and
    /// when a report names a key it lacks (at most once a minute).
    #[arg(long, env = "HUBKEYD_SECRET_SCANNING_KEYS_URL")]
    pub secret_scanning_keys_url: Option<String>,
    /// Record every accepted token use (address, agent, what it did) in the per-token
    /// access log: on (default) or off.
    #[arg(long, env = "HUBKEYD_ACCESS_LOG", default_value = "on", value_parser = ["on", "off"])]
    pub access_log: String,
    /// Days the access log keeps (older lines are deleted by the periodic sweep).
    #[arg(long, env = "HUBKEYD_ACCESS_LOG_DAYS", default_value_t = crate::access_log::DEFAULT_RETENTION_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub access_log_days: u32,
    /// MiB the token cache may hold (token lookups by digest, weighed by their size: about
    /// 600 bytes a token); with it, hubkeyd's memory stays bounded whatever the number of
    /// distinct tokens in use.
    #[arg(long, env = "HUBKEYD_TOKEN_CACHE_MIB", default_value_t = crate::hub::TOKEN_CACHE_BYTES / (1024 * 1024),
        value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub token_cache_mib: u64,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        name: String,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Turn on TOTP two-factor authentication (or give it a new secret) and print the
    /// secret; every session of the account ends.
    Totp { name: String },
    /// List users.
    List,
    /// Disable an account: no sign-in, its tokens and sessions refused, its sessions ended.
    Disable { name: String },
    /// Enable a disabled account again (its ended sessions stay ended).
    Enable { name: String },
    /// Set a new password, read from standard input; every session of the account ends.
    ResetPassword {
        name: String,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// End every session of an account (its access tokens stay).
    RevokeSessions { name: String },
}

impl Global {
    fn data_dir(&self) -> Result<PathBuf> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => data_dir::default_dir(),
        }
    }

    fn database_url(&self, dir: &std::path::Path) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => data_dir::default_database_url(dir),
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let dir = cli.global.data_dir()?;
    let Instance { hub, registry_keys } = crate::open(&dir, &cli.global.database_url(&dir)).await?;
    let outcome = match cli.command {
        Command::Serve(args) => serve(hub.clone(), args).await,
        Command::User(command) => user(&hub, command).await,
        Command::Repo(command) => repo(&hub, command).await,
        Command::RegistryConfig(args) => {
            crate::registry::check_realm_scheme(&args.hub_url, args.tls_cert.is_some())
                .and_then(|()| {
                    crate::registry::write_registry_config(
                        &args.out,
                        &args.hub_url,
                        &args.registry_listen,
                        &registry_keys.bundle()?,
                    )
                })
                .and_then(|()| say(&format!("wrote {}", args.out.join("config.yml").display())))
        }
        Command::RegistryKey(command) => registry_key(&registry_keys, command),
        Command::CopyStore(args) => copy_store(&hub, &args).await,
    };
    // On SQLite, a change a running server may have cached (an account disabled or enabled,
    // a repository's visibility) is refused there on the next request once this returns.
    tell_heard(change_table::await_servers(hub.store(), &crate::clock::Clock::system()).await);
    hub.store().close().await;
    outcome
}

/// Tells the operator whether the running servers confirmed this command's change: a plain
/// warning when one did not (the change stands: it committed).
fn tell_heard(heard: crate::Result<Heard>) {
    let age = crate::hub::TOKEN_CACHE_AGE.as_secs();
    let warning = match heard {
        Ok(Heard::NothingToTell) => return,
        Ok(Heard::NoServer) => {
            tracing::info!("no server is running on this database: nothing to wait for");
            return;
        }
        Ok(Heard::Confirmed { servers, waited }) => {
            tracing::info!(
                servers,
                waited_ms = waited.as_millis(),
                "the running server dropped what this change made stale"
            );
            return;
        }
        Ok(Heard::Unconfirmed {
            servers,
            behind,
            waited,
        }) => format!(
            "{behind} of the {servers} running servers did not confirm within {} ms that \
             they dropped what this change made stale (stopped or stalled?); each does when \
             it next reads the change table, and trusts no cached answer longer than {age} s",
            waited.as_millis()
        ),
        Err(err) => format!(
            "could not read whether the running servers saw this change ({err}); they trust \
             no cached answer longer than {age} s"
        ),
    };
    let _ = writeln!(std::io::stderr(), "hubkeyd: warning: {warning}");
}

async fn copy_store(hub: &Hub, args: &CopyStoreArgs) -> Result<()> {
    let target = Store::open(&args.to).await?;
    let copied = hub.store().copy_into(&target).await;
    target.close().await;
    for (table, rows) in copied? {
        say(&format!("{table}\t{rows} rows"))?;
    }
    say("copied; point hubkeyd at the new database (--database or HUBKEYD_DATABASE_URL)")
}

fn say(line: &str) -> Result<()> {
    writeln!(std::io::stdout(), "{line}").map_err(|err| SetupError::io("stdout", err))
}

async fn repo(hub: &Hub, command: RepoCommand) -> Result<()> {
    let split = |repository: &str| -> Result<(String, String)> {
        repository
            .split_once('/')
            .map(|(namespace, name)| (namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| SetupError::Usage("repository: write it as NAMESPACE/NAME".into()))
    };
    match command {
        RepoCommand::Public { repository } => {
            let (namespace, name) = split(&repository)?;
            hub.set_visibility(&namespace, &name, false, Utc::now())
                .await?;
            say(&format!("{repository} is public"))
        }
        RepoCommand::Private { repository } => {
            let (namespace, name) = split(&repository)?;
            hub.set_visibility(&namespace, &name, true, Utc::now())
                .await?;
            say(&format!("{repository} is private"))
        }
        RepoCommand::List => {
            for (namespace, name, is_public) in hub.store().list_repositories().await? {
                let visibility = if is_public { "public" } else { "private" };
                say(&format!("{namespace}/{name}\t{visibility}"))?;
            }
            Ok(())
        }
    }
}

fn registry_key(keys: &RegistryKeys, command: RegistryKeyCommand) -> Result<()> {
    match command {
        RegistryKeyCommand::Show => {
            for (slot, kid) in keys.describe()? {
                say(&format!("{slot}\t{kid}"))?;
            }
            Ok(())
        }
        RegistryKeyCommand::Stage => keys.stage().and_then(|()| {
            say("staged a new key: deploy the new bundle to the registry, then promote")
        }),
        RegistryKeyCommand::Promote => keys.promote().and_then(|()| {
            say("promoted: restart hubkeyd; retire the old certificate once its tokens expired")
        }),
        RegistryKeyCommand::Retire => keys
            .retire()
            .and_then(|()| say("retired the previous certificate")),
        RegistryKeyCommand::Bundle => {
            let bundle = keys.bundle()?;
            write!(std::io::stdout(), "{bundle}").map_err(|err| SetupError::io("stdout", err))
        }
    }
}

async fn serve(hub: Hub, args: ServeArgs) -> Result<()> {
    let hub = hub.with_token_cache_bytes(args.token_cache_mib * 1024 * 1024);
    // Before the port is taken: a certificate that does not load stops the start.
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::open(TlsFiles { cert, key })?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let source = match (args.secret_scanning_keys, args.secret_scanning_keys_url) {
        (Some(path), _) => Some(crate::secret_scanning::KeySource::File(path)),
        (None, Some(url)) => Some(crate::secret_scanning::KeySource::Url(url)),
        (None, None) => None,
    };
    let partner_keys = match source {
        Some(source) => Some(crate::secret_scanning::PartnerKeys::open(source).await?),
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|err| SetupError::io(format!("cannot listen on {}", args.listen), err))?;
    let addr = listener
        .local_addr()
        .map_err(|err| SetupError::io("listener address", err))?;
    tracing::info!(%addr, "hubkeyd listening");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {scheme}://{addr}")
        .and_then(|()| stdout.flush())
        .map_err(|err| SetupError::io("stdout", err))?;
    let metrics = match args.metrics_addr {
        Some(metrics_addr) => Some(serve_metrics(hub.clone(), metrics_addr, &mut stdout).await?),
        None => None,
    };
    let site = crate::Site {
        public_url: args.public_url,
        registry_host: args.registry_host,
    };
    let hub = hub.with_access_log(args.access_log == "on", args.access_log_days);
    let mut state = crate::AppState::new(hub, site)
        .with_trusted_proxies(TrustedProxies::new(
            args.trusted_proxies,
            args.forwarded_header,
        ))
        .with_https(tls.is_some());
    if let Some(keys) = partner_keys {
        state = state.with_secret_scanning(keys);
    }
    let served = crate::run_app_with(state, listener, tls, shutdown_signal()).await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served?;
    tracing::info!("hubkeyd stopped");
    Ok(())
}

/// Binds `addr` for `GET /metrics`, says where on stdout (after the `listening on` line) and
/// serves it until the task is aborted.
async fn serve_metrics(
    hub: Hub,
    addr: SocketAddr,
    stdout: &mut std::io::Stdout,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| SetupError::io(format!("cannot listen on {addr} (--metrics-addr)"), err))?;
    let bound = listener
        .local_addr()
        .map_err(|err| SetupError::io("metrics listener address", err))?;
    tracing::info!(addr = %bound, "metrics at /metrics");
    writeln!(stdout, "metrics on http://{bound}/metrics")
        .and_then(|()| stdout.flush())
        .map_err(|err| SetupError::io("stdout", err))?;
    let app = crate::http::metrics::router(hub);
    Ok(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the metrics listener stopped");
        }
    }))
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

async fn user(hub: &Hub, command: UserCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let write_err = |err: std::io::Error| SetupError::io("stdout", err);
    match command {
        UserCommand::Add { name, .. } => {
            let password = read_password()?;
            hub.add_user(&name, password, Utc::now()).await?;
            writeln!(out, "created user {name}").map_err(write_err)?;
        }
        UserCommand::Totp { name } => {
            let secret = Zeroizing::new(hub.enable_totp(&name, Utc::now()).await?);
            writeln!(out, "{}", totp::otpauth_uri(&name, secret.as_slice())).map_err(write_err)?;
            writeln!(out, "secret: {}", totp::secret_base32(secret.as_slice()))
                .map_err(write_err)?;
        }
        UserCommand::List => {
            for user in hub.store().list_users().await? {
                let twofa = if user.totp_enabled { "on" } else { "off" };
                let disabled = if user.disabled { "\tdisabled" } else { "" };
                writeln!(
                    out,
                    "{}\t2fa={twofa}\ttokens={}{disabled}",
                    user.username, user.tokens
                )
                .map_err(write_err)?;
            }
        }
        UserCommand::Disable { name } => {
            let ended = hub.set_user_disabled(&name, true, Utc::now()).await?;
            writeln!(out, "disabled {name}; ended {ended} sessions").map_err(write_err)?;
        }
        UserCommand::Enable { name } => {
            hub.set_user_disabled(&name, false, Utc::now()).await?;
            writeln!(out, "enabled {name}").map_err(write_err)?;
        }
        UserCommand::ResetPassword { name, .. } => {
            let password = read_password()?;
            let ended = hub.reset_password(&name, password, Utc::now()).await?;
            writeln!(out, "reset the password of {name}; ended {ended} sessions")
                .map_err(write_err)?;
        }
        UserCommand::RevokeSessions { name } => {
            let ended = hub.revoke_user_sessions(&name, Utc::now()).await?;
            writeln!(out, "ended {ended} sessions of {name}").map_err(write_err)?;
        }
    }
    Ok(())
}

/// One line from standard input, without its line ending.
fn read_password() -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|err| SetupError::io("reading the password from stdin", err))?;
    let trimmed = line.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(SetupError::Usage(
            "password: no password on standard input".into(),
        ));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}
