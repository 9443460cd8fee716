//! Issue 14 item 15: a crash in the middle of a registry-key rotation never leaves hubkeyd
//! signing with a key the registry does not trust. The real `hubkeyd registry-key` command
//! is stopped (abort, as a crash) after each of its durable steps in turn
//! (`HUBKEYD_TEST_CRASH_AFTER_STEP=N`, debug builds); then a restarted hubkeyd must sign with
//! a certificate of the bundle the registry was given, the signature must verify with that
//! certificate's key, and running the command again must finish the rotation, and the next.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

use crate::harness::{assert_success, jwt_part, DataDir, TestServer};

/// The DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte point follows it.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `hubkeyd registry-key COMMAND`, stopped after step `crash_after` when given.
async fn registry_key(
    data: &DataDir,
    command: &str,
    crash_after: Option<u32>,
) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubkeyd"));
    child
        .arg("--data-dir")
        .arg(data.path())
        .args(["registry-key", command])
        .current_dir(data.path())
        .env_remove("HUBKEYD_DATABASE_URL")
        .env_remove("HUBKEYD_DATA_DIR")
        .env_remove("HUBKEYD_TEST_CRASH_AFTER_STEP")
        .kill_on_drop(true);
    if let Some(step) = crash_after {
        child.env("HUBKEYD_TEST_CRASH_AFTER_STEP", step.to_string());
    }
    tokio::time::timeout(std::time::Duration::from_secs(30), child.output())
        .await
        .expect("registry-key finishes within 30 s")
        .expect("run hubkeyd registry-key")
}

/// The certificates (DER) of a PEM bundle.
fn certificates(bundle: &str) -> Vec<Vec<u8>> {
    bundle
        .split("-----BEGIN CERTIFICATE-----")
        .filter_map(|part| part.split("-----END CERTIFICATE-----").next())
        .map(|body| body.split_whitespace().collect::<String>())
        .filter(|body| !body.is_empty())
        .map(|body| {
            data_encoding::BASE64
                .decode(body.as_bytes())
                .expect("PEM base64")
        })
        .collect()
}

/// What the registry is given: the bundle as `registry-key bundle` prints it now.
async fn deployed_bundle(data: &DataDir) -> Vec<Vec<u8>> {
    let output = registry_key(data, "bundle", None).await;
    assert_success(&output, "registry-key bundle");
    certificates(&String::from_utf8_lossy(&output.stdout))
}

/// Restarts hubkeyd, takes an anonymous registry token, and checks what the registry would:
/// the `x5c` certificate is one it trusts and the signature verifies with its key.
/// Returns that certificate.
async fn served_certificate_is_trusted(
    server: &mut TestServer,
    trusted: &[Vec<u8>],
    when: &str,
) -> Vec<u8> {
    server.restart().await;
    let answer: serde_json::Value = reqwest::get(format!(
        "{}/token?service=registry&scope=repository:ann/app:pull",
        server.url
    ))
    .await
    .expect("request a token")
    .json()
    .await
    .expect("token JSON");
    let jwt = answer["token"].as_str().expect("a token");
    let parts: Vec<&str> = jwt.split('.').collect();
    let header = jwt_part(jwt, 0);
    let cert = data_encoding::BASE64
        .decode(header["x5c"][0].as_str().expect("x5c").as_bytes())
        .expect("x5c base64");
    assert!(
        trusted.contains(&cert),
        "{when}: hubkeyd signs with a certificate the registry does not trust"
    );
    let at = cert
        .windows(P256_SPKI_PREFIX.len())
        .position(|window| window == P256_SPKI_PREFIX)
        .expect("a P-256 key in the certificate")
        + P256_SPKI_PREFIX.len();
    let point = &cert[at..at + 65];
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(parts[2].as_bytes())
        .expect("signature base64url");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .unwrap_or_else(|_| panic!("{when}: the signature does not verify with the x5c key"));
    server.stop();
    cert
}

/// Runs a command that must succeed.
async fn ok(data: &DataDir, command: &str) {
    assert_success(&registry_key(data, command, None).await, command);
}

#[tokio::test]
async fn a_crash_after_any_rotation_step_leaves_a_trusted_signer_and_rotation_resumes() {
    let mut tested = Vec::new();
    for command in ["stage", "promote", "retire"] {
        for step in 1.. {
            let mut server = TestServer::start().await;
            server.stop();
            let first = deployed_bundle(server.data()).await;
            let mut trusted = first.clone();
            if command != "stage" {
                ok(server.data(), "stage").await;
                trusted = deployed_bundle(server.data()).await;
            }
            if command == "retire" {
                ok(server.data(), "promote").await;
                served_certificate_is_trusted(&mut server, &trusted, "after promote").await;
            }
            let output = registry_key(server.data(), command, Some(step)).await;
            if output.status.success() {
                // Fewer steps than `step`: every crash point of this command was tried.
                break;
            }
            assert!(
                std::os::unix::process::ExitStatusExt::signal(&output.status).is_some(),
                "{command} step {step}: expected a crash, got {} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            let when = format!("crash after {command} step {step}");
            // The registry still has the bundle deployed before this command (a stage is
            // deployed only once it completed).
            let signing = served_certificate_is_trusted(&mut server, &trusted, &when).await;
            assert!(
                deployed_bundle(server.data()).await.contains(&signing),
                "{when}: the signing certificate left the bundle"
            );
            // Running the command again finishes it (or says it is done, after its last step).
            let again = registry_key(server.data(), command, None).await;
            let said = String::from_utf8_lossy(&again.stderr);
            assert!(
                again.status.success()
                    || [
                        "already staged",
                        "no key is staged",
                        "no previous certificate"
                    ]
                    .iter()
                    .any(|done| said.contains(done)),
                "{when}: running {command} again failed: {said}"
            );
            if command == "stage" {
                trusted = deployed_bundle(server.data()).await;
            }
            if command != "retire" {
                ok(
                    server.data(),
                    if command == "stage" {
                        "promote"
                    } else {
                        "retire"
                    },
                )
                .await;
            }
            if command == "stage" {
                served_certificate_is_trusted(&mut server, &trusted, &format!("{when}, promoted"))
                    .await;
                ok(server.data(), "retire").await;
            }
            let rotated =
                served_certificate_is_trusted(&mut server, &trusted, &format!("{when}, rotated"))
                    .await;
            assert!(
                !first.contains(&rotated),
                "{when}: the rotation changed the key"
            );
            assert_eq!(
                deployed_bundle(server.data()).await,
                vec![rotated.clone()],
                "{when}: one key left"
            );
            // And the next rotation completes.
            ok(server.data(), "stage").await;
            let next_trusted = deployed_bundle(server.data()).await;
            ok(server.data(), "promote").await;
            let next = served_certificate_is_trusted(
                &mut server,
                &next_trusted,
                &format!("{when}, next rotation"),
            )
            .await;
            assert_ne!(next, rotated);
            ok(server.data(), "retire").await;
            assert_eq!(deployed_bundle(server.data()).await, vec![next]);
            tested.push(when);
        }
    }
    println!("crash points tested: {tested:?}");
    // stage: certificate, key; promote: previous, signing certificate, signing key, next
    // key, next certificate; retire: previous.
    assert_eq!(tested.len(), 2 + 5 + 1, "{tested:?}");
}
