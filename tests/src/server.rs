//! hubkeyd in this process, on an ephemeral loopback port, over a temporary data directory.

use std::path::Path;

use chrono::Utc;
use hubkey_api::{AccessToken, CreateAccessTokenRequest, Scope};
use hubkey_client::{HubClient, LoginOutcome};
use hubkeyd::clock::Clock;
use hubkeyd::Hub;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// A running hubkeyd. Dropping it stops the server.
pub struct Hubkeyd {
    pub url: String,
    pub hub: Hub,
    data_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hubkeyd::SetupError>>>,
}

impl Hubkeyd {
    /// Starts a server on a new data directory.
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// Starts a server on `data_dir` (which may hold an earlier server's state).
    pub async fn start_in(data_dir: TempDir) -> Self {
        Self::start_at(data_dir, "127.0.0.1:0").await
    }

    /// Starts a server on `data_dir` listening on `addr` (to come back on the same port).
    pub async fn start_at(data_dir: TempDir, addr: &str) -> Self {
        Self::start_with(data_dir, addr, hubkeyd::Site::default()).await
    }

    /// Starts a server with `site` settings (e.g. the registry host it announces).
    pub async fn start_with(data_dir: TempDir, addr: &str, site: hubkeyd::Site) -> Self {
        Self::start_configured(data_dir, addr, site, |hub| hub).await
    }

    /// Like [`Hubkeyd::start_with`], with the hub changed by `configure` first (e.g. a short
    /// bearer lifetime).
    pub async fn start_configured(
        data_dir: TempDir,
        addr: &str,
        site: hubkeyd::Site,
        configure: impl FnOnce(Hub) -> Hub,
    ) -> Self {
        Self::start_on_clock(data_dir, addr, site, configure, Clock::system()).await
    }

    /// Like [`Hubkeyd::start_configured`], with every request's `now` read from `clock`: a
    /// test turns a [`hubkeyd::clock::ManualClock`] instead of sleeping until, say, a bearer
    /// expires.
    pub async fn start_on_clock(
        data_dir: TempDir,
        addr: &str,
        site: hubkeyd::Site,
        configure: impl FnOnce(Hub) -> Hub,
        clock: impl Into<Clock>,
    ) -> Self {
        Self::start_with_state(data_dir, addr, site, configure, |state| {
            state.with_clock(clock.into())
        })
        .await
    }

    /// Like [`Hubkeyd::start_with`], with GitHub's secret-scanning partner endpoint on: it
    /// trusts the key set (GitHub's format) in the file `keys`.
    pub async fn start_with_partner_keys(
        data_dir: TempDir,
        site: hubkeyd::Site,
        keys: &Path,
    ) -> Self {
        let source = hubkeyd::secret_scanning::KeySource::File(keys.to_owned());
        let keys = hubkeyd::secret_scanning::PartnerKeys::open(source)
            .await
            .unwrap();
        Self::start_with_state(
            data_dir,
            "127.0.0.1:0",
            site,
            |hub| hub,
            |state| state.with_secret_scanning(keys),
        )
        .await
    }

    /// The one start: the hub changed by `configure`, its HTTP state by `state`.
    async fn start_with_state(
        data_dir: TempDir,
        addr: &str,
        site: hubkeyd::Site,
        configure: impl FnOnce(Hub) -> Hub,
        state: impl FnOnce(hubkeyd::AppState) -> hubkeyd::AppState,
    ) -> Self {
        let db = format!("sqlite://{}", data_dir.path().join("hubkeyd.db").display());
        let mut instance = hubkeyd::open(data_dir.path(), &db).await.unwrap();
        instance.hub = configure(instance.hub);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let hub = instance.hub.clone();
        let state = state(hubkeyd::AppState::new(hub, site));
        let task = tokio::spawn(hubkeyd::run_app(state, listener, async {
            let _ = stopped.await;
        }));
        Hubkeyd {
            url,
            hub: instance.hub,
            data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server cleanly (flushing token use) and hands back its data directory.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown().await;
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.data_dir, dir)
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.hub.store().close().await;
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The host:port part of the URL.
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Creates a user (as `hubkeyd user add` does).
    pub async fn add_user(&self, name: &str, password: &str) {
        self.hub
            .add_user(name, Zeroizing::new(password.to_owned()), Utc::now())
            .await
            .unwrap();
    }

    /// An anonymous client.
    pub fn client(&self) -> HubClient {
        HubClient::new(&self.url).unwrap()
    }

    /// A client signed in with a password.
    pub async fn sign_in(&self, name: &str, password: &str) -> HubClient {
        match self.client().login(name, password).await.unwrap() {
            LoginOutcome::Session(session) => self.client().with_token(session.token),
            LoginOutcome::SecondFactor { .. } => panic!("{name} has 2FA on"),
        }
    }
}

impl Drop for Hubkeyd {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates a manual token with one scope and returns it with its secret.
pub async fn manual_token(client: &HubClient, label: &str, scope: Scope) -> AccessToken {
    client
        .create_token(&CreateAccessTokenRequest {
            token_label: label.to_owned(),
            scopes: vec![scope],
            expires_at: None,
        })
        .await
        .unwrap()
}
