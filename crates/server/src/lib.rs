//! hubkeyd: the hubkey server. It keeps accounts, sessions and personal access tokens, speaks
//! Docker Hub's PAT API, applies the auto-token pruning rule, and feeds token events to the
//! desktop app.
//!
//! Layout: [`http`] is the edge (routes, extractors, error bodies, OpenAPI); [`service`] is
//! the plain core every handler calls; [`store`] holds every SQL statement; [`registry`] is
//! the registry token service; [`usage`] caches token lookups and coalesces their use;
//! [`cli`] is the `hubkeyd` command line.

pub mod cli;
pub mod error;
pub mod http;
pub mod keys;
pub mod password;
pub mod registry;
pub mod service;
pub mod session;
pub mod store;
pub mod throttle;
pub mod totp;
pub mod usage;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::net::TcpListener;

pub use error::{Error, Result};
pub use service::Hub;

use keys::ServerKeys;
use password::PasswordHasher;
use registry::keys::RegistryKeys;
use registry::TokenIssuer;
use store::Store;

/// An opened data directory: the service over its database, and the registry signing keys.
pub struct Instance {
    pub hub: Hub,
    pub registry_keys: RegistryKeys,
}

/// Opens `data_dir` (created owner-only) with its keys, and the database at `database_url`
/// (migrated).
pub async fn open(data_dir: &Path, database_url: &str) -> Result<Instance> {
    cli::create_private_dir(data_dir)?;
    let keys = ServerKeys::load_or_create(data_dir)?;
    let registry_keys = RegistryKeys::open(data_dir)?;
    let store = Store::open(database_url).await?;
    let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
    let issuer = TokenIssuer::new(registry_keys.signer()?)?;
    let throttle = throttle::Throttle::load(&store, chrono::Utc::now()).await?;
    let hub = Hub::new(
        store,
        keys,
        PasswordHasher::new(parallelism)?,
        issuer,
        throttle,
    );
    Ok(Instance { hub, registry_keys })
}

/// Serves `hub` on `listener` until `shutdown` completes: writes token uses every
/// [`usage::FLUSH_INTERVAL`] while serving, and once more at the end, so a clean stop loses none.
pub async fn run_server(
    hub: Hub,
    listener: TcpListener,
    site: Site,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let flusher = tokio::spawn(hub.usage().clone().flush_forever(hub.store().clone()));
    let served = serve(listener, AppState::new(hub.clone(), site), shutdown).await;
    flusher.abort();
    hub.usage().flush(hub.store()).await?;
    served.map_err(|err| Error::Internal(format!("server: {err}")))
}

/// How this server is reached, for links and the discovery document.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The URL clients reach this server at; else taken from each request's `Host`.
    pub public_url: Option<String>,
    /// The registry (`host:port`) that uses this server as its token server.
    pub registry_host: Option<String>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    public_url: Option<Arc<str>>,
    pub registry_host: Option<Arc<str>>,
}

impl AppState {
    pub fn new(hub: Hub, site: Site) -> Self {
        AppState {
            hub,
            public_url: site
                .public_url
                .map(|url| Arc::from(url.trim_end_matches('/'))),
            registry_host: site.registry_host.map(Arc::from),
        }
    }

    /// The base of absolute links in answers.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| host.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// 256 random bits from the OS CSPRNG, URL-safe base64: refresh tokens, 2FA challenges.
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}
