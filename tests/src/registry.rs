//! A real CNCF distribution registry (`/usr/bin/docker-registry`), configured by
//! `hubkeyd registry-config` to trust a [`crate::Hubkeyd`].

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::Hubkeyd;

const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry. Dropping it kills the process.
pub struct Registry {
    /// `127.0.0.1:PORT`, the registry host as clients name it.
    pub host: String,
    child: Child,
    _dir: TempDir,
}

impl Registry {
    /// Writes the configuration for `hub` with `hubkeyd registry-config`'s code and starts
    /// the registry on a free loopback port; waits until it answers.
    pub async fn start(hub: &Hubkeyd) -> Self {
        Self::start_on(hub, &free_loopback_port()).await
    }

    /// Like [`Registry::start`], on `host` (`127.0.0.1:PORT`), for a hub that was told its
    /// registry host before the registry existed.
    pub async fn start_on(hub: &Hubkeyd, host: &str) -> Self {
        let host = host.to_owned();
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install the Debian package docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let bundle = hubkeyd::registry::keys::RegistryKeys::open(hub.data_dir())
            .unwrap()
            .bundle()
            .unwrap();
        hubkeyd::registry::write_registry_config(dir.path(), &hub.url, &host, &bundle).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            host,
            child,
            _dir: dir,
        };
        registry.wait_ready().await;
        registry
    }

    /// Waits until `/v2/` answers (401: it wants a token).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://{}/v2/", self.host);
        loop {
            let status = tokio::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .output()
                .await
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default();
            if status == "401" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not start (last status {status:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `docker://HOST/NAME:TAG` for skopeo.
    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("docker://{}/{repository}:{tag}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_loopback_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}
