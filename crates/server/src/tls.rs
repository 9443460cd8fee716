//! Native TLS of the API (`serve --tls-cert PEM --tls-key PEM`), so a small deployment needs
//! no proxy in front.
//!
//! rustls with the ring provider, served by axum-server, whose `RustlsConfig` is swapped on a
//! live listener: SIGHUP reads both files again and new connections get the new certificate
//! while the listener and the connections already open stay. A replacement that does not load
//! (unreadable, not PEM, no certificate, a key that is not the certificate's) is refused whole:
//! the old certificate keeps serving and the log says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::SetupError;

/// The certificate chain and key files, as the operator named them.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The live TLS configuration of a listener and the files it came from.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    config: RustlsConfig,
}

impl Tls {
    /// Loads the files; an error here stops the start.
    pub fn open(files: TlsFiles) -> Result<Self, SetupError> {
        let config = RustlsConfig::from_config(load(&files)?);
        Ok(Tls { files, config })
    }

    /// The configuration the listener serves.
    pub fn config(&self) -> RustlsConfig {
        self.config.clone()
    }

    /// Reads the files again and serves them to new connections; on error the old
    /// certificate stays.
    pub fn reload(&self) -> Result<(), SetupError> {
        let config = load(&self.files)?;
        self.config.reload_from_config(config);
        Ok(())
    }

    /// Reloads on every SIGHUP, for as long as the server runs.
    #[cfg(unix)]
    pub async fn reload_on_hangup(self) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(%err, "no SIGHUP handler: the TLS certificate will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match self.reload() {
                Ok(()) => tracing::info!(
                    cert = %self.files.cert.display(),
                    "SIGHUP: reloaded the TLS certificate and key"
                ),
                Err(err) => tracing::warn!(
                    %err,
                    "SIGHUP: kept the TLS certificate in use; the new files do not load"
                ),
            }
        }
    }

    /// Without SIGHUP there is nothing to wait for.
    #[cfg(not(unix))]
    pub async fn reload_on_hangup(self) {}
}

/// A rustls server configuration of the files: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, SetupError> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| {
        SetupError::Usage(format!(
            "--tls-key {}: no private key read ({err})",
            files.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // `with_single_cert` refuses a key that does not match the certificate's public key.
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| SetupError::Usage(format!("TLS: {err}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| {
            SetupError::Usage(format!(
                "--tls-cert {} with --tls-key {}: {err}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let bad = |why: String| SetupError::Usage(format!("--tls-cert {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| bad(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(err.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(certs)
}
