//! hubkeyd: the hubkey server. It keeps accounts, sessions and personal access tokens, speaks
//! Docker Hub's PAT API, applies the auto-token pruning rule, and feeds token events to the
//! desktop app.
//!
//! Layout: [`http`] is the edge (routes, extractors, error bodies, OpenAPI, [`AppState`]);
//! [`hub`] is the plain core every handler calls, split by feature; [`store`] holds every SQL
//! statement, split the same way; [`registry`] is the registry token service; [`cache`]
//! keeps store answers for the hot path and [`usage`] coalesces token uses; [`throttle`]
//! limits failed sign-ins; [`data_dir`] is the data directory's layout; [`cli`] is the
//! `hubkeyd` command line. This file only wires them together.

pub mod access_log;
pub mod background;
pub mod cache;
pub mod change_table;
pub mod cli;
pub use hubkey_api::clock;
pub mod data_dir;
pub mod error;
pub mod http;
pub mod hub;
pub mod invalidation;
pub mod keys;
pub mod metrics;
pub mod password;
pub mod random;
pub mod registry;
pub mod secret_scanning;
pub mod session;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod totp;
pub mod usage;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;

pub use error::{Error, Result, SetupError};
pub use http::{AppState, Site};
pub use hub::Hub;

use keys::ServerKeys;
use password::PasswordHasher;
use registry::keys::RegistryKeys;
use registry::TokenIssuer;
use store::Store;
use throttle::Throttle;
use tls::Tls;

/// An opened data directory: the service over its database, and the registry signing keys.
pub struct Instance {
    pub hub: Hub,
    pub registry_keys: RegistryKeys,
}

/// Opens `data_dir` (created owner-only; refused when others can write it) with its keys, and the database at `database_url`
/// (migrated).
pub async fn open(data_dir: &Path, database_url: &str) -> Result<Instance, SetupError> {
    // Before anything is created: a URL this server cannot serve leaves no trace.
    Store::check_url(database_url)?;
    data_dir::create_private_dir(data_dir)?;
    data_dir::check_not_shared(data_dir)?;
    let keys = ServerKeys::load_or_create(data_dir)?;
    let registry_keys = RegistryKeys::open(data_dir)?;
    let store = Store::open(database_url).await?;
    let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
    let issuer = TokenIssuer::new(registry_keys.signer()?)?;
    // Failures older than the throttle's windows no longer count, whatever clock serves.
    let throttle = Throttle::load(store.clone(), chrono::Utc::now()).await?;
    let hub = Hub::new(
        store,
        keys,
        PasswordHasher::new(parallelism)?,
        issuer,
        throttle,
    );
    Ok(Instance { hub, registry_keys })
}

/// Serves `hub` on `listener` on the system clock until `shutdown` completes; see
/// [`run_app`].
pub async fn run_server(
    hub: Hub,
    listener: TcpListener,
    site: Site,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SetupError> {
    run_app(AppState::new(hub, site), listener, shutdown).await
}

/// Serves `state` on `listener` until `shutdown` completes: writes token uses every
/// [`usage::FLUSH_INTERVAL`] while serving, and once more at the end, so a clean stop loses
/// none; sweeps ended sessions and expired 2FA challenges every
/// [`AppState::sweep_interval`], and forgets old throttling state every
/// [`throttle::SWEEP_EVERY`]; on SQLite, polls the change table ([`change_table`]).
pub async fn run_app(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SetupError> {
    run_app_with(state, listener, None, shutdown).await
}

/// [`run_app`], over TLS when `tls` is given (see [`serve_tls`]).
pub async fn run_app_with(
    state: AppState,
    listener: TcpListener,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SetupError> {
    let hub: Hub = (*state.hub).clone();
    // On SQLite, join the change table's listeners before serving, so that an admin command
    // committing from now on waits until this server has forgotten what it changed. Its
    // heartbeats are on the system clock: other processes read them.
    let poller = change_table::Poller::join(hub.store(), clock::Clock::system())
        .await
        .map_err(|err| SetupError::Database(format!("joining the change table: {err}")))?;
    let flusher = tokio::spawn(hub.usage().clone().flush_forever(hub.store().clone()));
    let sweeper = tokio::spawn(
        hub.clone()
            .sweep_forever(state.clock(), state.sweep_interval()),
    );
    let throttle_sweeper = tokio::spawn(hub.throttle().clone().sweep_forever(state.clock()));
    let revoker = tokio::spawn(hub.clone().revocations_forever(state.clock()));
    let access_flusher = tokio::spawn(hub.access_log().clone().flush_forever(hub.store().clone()));
    // On PostgreSQL, serve once the change channel is subscribed (or the first attempt
    // failed): until then the caches keep nothing.
    let (subscribed, first_attempt) = tokio::sync::oneshot::channel();
    let listener_task = tokio::spawn(invalidation::listen_forever(hub.clone(), subscribed));
    let _ = first_attempt.await;
    let poll_task = poller
        .clone()
        .map(|poller| tokio::spawn(poller.poll_forever(hub.clone())));
    let clock = state.clock();
    let served = match tls {
        None => serve(listener, state, shutdown).await,
        Some(tls) => serve_tls(listener, state, tls, shutdown).await,
    };
    flusher.abort();
    sweeper.abort();
    throttle_sweeper.abort();
    revoker.abort();
    access_flusher.abort();
    listener_task.abort();
    if let Some(task) = poll_task {
        task.abort();
    }
    if let Some(poller) = poller {
        poller.leave(hub.store()).await;
    }
    hub.usage().flush(hub.store()).await?;
    hub.access_log().flush(hub.store()).await?;
    hub.write_revocations(clock.now()).await?;
    served.map_err(|err| SetupError::io("serving", err))
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

/// Serves the API over TLS on `listener` until `shutdown` completes, then finishes the
/// requests in flight (for at most [`http::REQUEST_TIMEOUT`]). SIGHUP reloads the certificate
/// and key meanwhile ([`Tls::reload_on_hangup`]).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: Tls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let reloader = tokio::spawn(tls.clone().reload_on_hangup());
    let handle = axum_server::Handle::<SocketAddr>::new();
    let stopper = {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(http::REQUEST_TIMEOUT));
        })
    };
    let served = match axum_server::from_tcp_rustls(listener.into_std()?, tls.config()) {
        Ok(server) => server.handle(handle).serve(app).await,
        Err(err) => Err(err),
    };
    reloader.abort();
    stopper.abort();
    served
}
