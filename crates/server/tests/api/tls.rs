//! Native TLS (`serve --tls-cert --tls-key`): a real TLS client reaches the API over https on
//! loopback, trusting only the test's own CA; SIGHUP swaps the certificate for new
//! connections without closing the listener, and a replacement that does not load changes
//! nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

use crate::harness::{DataDir, TestServer, PASSWORD};

/// The test's certificate authority.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hubkey test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM, DER).
    fn leaf(&self, name: &str) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// A client that trusts this CA only, reports the peer's certificate, and opens a new
    /// connection for every request it is built for.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.cert.pem().as_bytes()).unwrap(),
            )
            .tls_info(true)
            .build()
            .unwrap()
    }
}

/// Replaces `path` whole (write beside, rename), as an operator's tooling would.
fn replace(path: &Path, contents: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// The DER certificate a fresh connection to `url` is served.
async fn served_certificate(ca: &Ca, url: &str) -> Vec<u8> {
    let response = ca
        .client()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    peer_certificate(&response)
}

fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info with the peer's certificate")
        .to_vec()
}

fn hang_up(server: &TestServer) {
    let sent = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits until the server's log has `needle` `count` times.
async fn wait_for_log(server: &TestServer, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_text().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {count}× {needle:?} in the log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
}

async fn tls_server(ca: &Ca) -> (TestServer, Files, Vec<u8>) {
    let data = DataDir::new();
    data.add_user("ann", PASSWORD).await;
    let dir = data.path().join("tls");
    std::fs::create_dir(&dir).unwrap();
    let files = Files {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let (cert, key, der) = ca.leaf("first");
    replace(&files.cert, &cert);
    replace(&files.key, &key);
    let server = TestServer::start_with(
        data,
        &[
            "--tls-cert",
            files.cert.to_str().unwrap(),
            "--tls-key",
            files.key.to_str().unwrap(),
        ],
    )
    .await;
    (server, files, der)
}

#[tokio::test]
async fn the_api_is_served_over_https_and_sighup_swaps_the_certificate_for_new_connections() {
    let ca = Ca::new();
    let (server, files, first) = tls_server(&ca).await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // The API over TLS: a password sign-in.
    let kept = ca.client();
    let response = kept
        .post(format!("{}/v2/users/login", server.url))
        .json(&serde_json::json!({ "username": "ann", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(peer_certificate(&response), first);
    let session: serde_json::Value = response.json().await.unwrap();
    assert!(session["token"].is_string());
    // Plain http on the TLS port gets no answer.
    assert!(
        reqwest::get(server.url.replacen("https", "http", 1) + "/healthz")
            .await
            .map_or(true, |r| !r.status().is_success())
    );

    // A new certificate and key, then SIGHUP.
    let (cert, key, second) = ca.leaf("second");
    assert_ne!(first, second);
    replace(&files.cert, &cert);
    replace(&files.key, &key);
    hang_up(&server);
    wait_for_log(&server, "reloaded the TLS certificate", 1).await;
    assert_eq!(served_certificate(&ca, &server.url).await, second);
    // The connection opened before the reload still works (the listener never closed).
    let again = kept
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    // Broken replacements: a key that is not the certificate's, then garbage. Each is
    // refused whole and the second certificate keeps serving.
    let (third_cert, _, _) = ca.leaf("third");
    replace(&files.cert, &third_cert);
    hang_up(&server);
    wait_for_log(&server, "kept the TLS certificate in use", 1).await;
    assert_eq!(served_certificate(&ca, &server.url).await, second);
    replace(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n",
    );
    hang_up(&server);
    wait_for_log(&server, "kept the TLS certificate in use", 2).await;
    assert_eq!(served_certificate(&ca, &server.url).await, second);
    std::fs::remove_file(&files.key).unwrap();
    hang_up(&server);
    wait_for_log(&server, "kept the TLS certificate in use", 3).await;
    assert_eq!(served_certificate(&ca, &server.url).await, second);
    // The key never reaches the log.
    assert!(!server.log_text().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_certificate_that_does_not_load_stops_the_start_with_the_reason() {
    let ca = Ca::new();
    let data = DataDir::new();
    let (cert, _, _) = ca.leaf("mine");
    let (_, other_key, _) = ca.leaf("other");
    let (cert_path, key_path) = (data.path().join("cert.pem"), data.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, other_key).unwrap();
    let output = data
        .run(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert_path.to_str().unwrap(),
                "--tls-key",
                key_path.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    // One without the other is a usage error.
    let output = data
        .run(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert_path.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
}

#[tokio::test]
async fn registry_config_refuses_an_http_realm_when_hubkeyd_serves_https() {
    let data = DataDir::new();
    let out = data.path().join("registry");
    let out = out.to_str().unwrap();
    let args = |url: &'static str| {
        [
            "registry-config",
            "--hub-url",
            url,
            "--registry-listen",
            "127.0.0.1:5000",
            "--out",
            out,
            "--tls-cert",
            "/etc/hubkeyd/cert.pem",
        ]
    };
    let refused = data.run(&args("http://127.0.0.1:5080"), None).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be https"));
    let written = data.run(&args("https://127.0.0.1:5080"), None).await;
    crate::harness::assert_success(&written, "registry-config");
    let config = std::fs::read_to_string(Path::new(out).join("config.yml")).unwrap();
    assert!(
        config.contains("realm: \"https://127.0.0.1:5080/token\""),
        "{config}"
    );
}
