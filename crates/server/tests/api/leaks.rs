//! When a token leaks: GitHub's secret-scanning partner endpoint (signed reports) and the
//! public revocation endpoint (no oracle).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hubkey_api::{SecretScanningLabel, TokenEventKind, TokenState};
use hubkey_client::HubClient;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

use crate::harness::{all_events, manual, status_of, DataDir, TestServer};

const KEY_ID: &str = "hubkey-test-key-1";

/// A fixed P-256 key standing for one of GitHub's.
fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).expect("a valid scalar")
}

/// The key set in GitHub's format, holding `keys`.
fn key_set(keys: &[(&str, &SigningKey)]) -> String {
    let public_keys: Vec<_> = keys
        .iter()
        .map(|(id, key)| {
            serde_json::json!({
                "key_identifier": id,
                "key": key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
                "is_current": true,
            })
        })
        .collect();
    serde_json::json!({ "public_keys": public_keys }).to_string()
}

/// The base64 DER signature of `body`, as GitHub sends it.
fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    data_encoding::BASE64.encode(signature.to_der().as_bytes())
}

fn report(findings: &[(&str, &str, &str)]) -> Vec<u8> {
    let findings: Vec<_> = findings
        .iter()
        .map(|(token, url, source)| {
            serde_json::json!({"token": token, "type": "hubkey_personal_access_token", "url": url, "source": source})
        })
        .collect();
    serde_json::to_vec(&findings).unwrap()
}

/// A server whose partner endpoint trusts `key` as [`KEY_ID`].
async fn partner_server(key: &SigningKey) -> TestServer {
    let data = DataDir::new();
    let path = data.path().join("github-keys.json");
    std::fs::write(&path, key_set(&[(KEY_ID, key)])).unwrap();
    let path = path.to_str().unwrap().to_owned();
    TestServer::start_with(data, &["--secret-scanning-keys", &path]).await
}

#[tokio::test]
async fn a_signed_report_deactivates_our_tokens_once_and_labels_the_rest() {
    let key = signing_key(7);
    let server = partner_server(&key).await;
    let ann = server.user("ann").await;
    let leaked = ann.create_token(&manual("ci")).await.unwrap();
    let off = ann.create_token(&manual("old")).await.unwrap();
    let kept = ann.create_token(&manual("kept")).await.unwrap();
    ann.patch_token(
        off.uuid,
        &hubkey_api::PatchAccessTokenRequest {
            is_active: Some(false),
            token_label: None,
            new_address_alerts: None,
        },
    )
    .await
    .unwrap();
    let made_up = hubkey_api::PlainToken::generate();
    let url = "https://github.com/octo/app/blob/0123/.env";
    let body = report(&[
        (&leaked.token, url, "content"),
        (&off.token, url, "commit"),
        (made_up.expose(), url, "content"),
        ("hkpat_not-a-token", url, "content"),
    ]);
    let anyone = server.client();
    let labels = anyone
        .report_secret_scanning(body.clone(), KEY_ID, &sign(&key, &body))
        .await
        .expect("a signed report is answered");
    let got: Vec<_> = labels
        .iter()
        .map(|l| (l.token_raw.as_str(), l.label))
        .collect();
    assert_eq!(
        got,
        vec![
            (leaked.token.as_str(), SecretScanningLabel::TruePositive),
            (off.token.as_str(), SecretScanningLabel::TruePositive),
            (made_up.expose(), SecretScanningLabel::FalsePositive),
            ("hkpat_not-a-token", SecretScanningLabel::FalsePositive),
        ]
    );
    assert!(labels
        .iter()
        .all(|l| l.token_type == "hubkey_personal_access_token"));
    let found = ann.get_token(leaked.uuid).await.unwrap();
    assert!(!found.is_active, "deactivated");
    assert_eq!(found.state, TokenState::Inactive);
    assert!(ann.get_token(kept.uuid).await.unwrap().is_active);
    assert_eq!(
        status_of(server.client().auth_token("ann", &leaked.token).await),
        401,
        "a leaked token is refused at once (no cache)"
    );

    // The same report again: same answer, no new event.
    let again = anyone
        .report_secret_scanning(body.clone(), KEY_ID, &sign(&key, &body))
        .await
        .unwrap();
    assert_eq!(again, labels);
    let leaks: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::Leaked)
        .collect();
    assert_eq!(leaks.len(), 2, "{leaks:?}");
    assert_eq!(leaks[0].token_uuid, leaked.uuid);
    assert_eq!(leaks[0].url.as_deref(), Some(url));
    assert_eq!(leaks[0].source.as_deref(), Some("content"));
    assert_eq!(leaks[1].token_uuid, off.uuid);
    assert_eq!(leaks[1].source.as_deref(), Some("commit"));

    // The owner reactivates it; another finding elsewhere deactivates it again, with its event.
    ann.patch_token(
        leaked.uuid,
        &hubkey_api::PatchAccessTokenRequest {
            is_active: Some(true),
            token_label: None,
            new_address_alerts: None,
        },
    )
    .await
    .unwrap();
    let elsewhere = report(&[(&leaked.token, "https://www.npmjs.com/package/x", "npm")]);
    anyone
        .report_secret_scanning(elsewhere.clone(), KEY_ID, &sign(&key, &elsewhere))
        .await
        .unwrap();
    assert!(!ann.get_token(leaked.uuid).await.unwrap().is_active);
    let leaks = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::Leaked)
        .count();
    assert_eq!(leaks, 3);
}

#[tokio::test]
async fn unsigned_wrongly_signed_or_unknown_key_reports_change_nothing() {
    let key = signing_key(7);
    let stranger = signing_key(9);
    let server = partner_server(&key).await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("ci")).await.unwrap();
    let body = report(&[(&token.token, "https://example.test/x", "content")]);
    let url = format!("{}/v2/secret-scanning/github", server.url);
    let http = reqwest::Client::new();
    let send = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let good = sign(&key, &body);
    let mut tampered = body.clone();
    let last = tampered.len() - 3;
    tampered[last] = b' ';
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        ("unsigned", vec![], body.clone()),
        (
            "no key id",
            vec![("Github-Public-Key-Signature", good.clone())],
            body.clone(),
        ),
        (
            "no signature",
            vec![("Github-Public-Key-Identifier", KEY_ID.into())],
            body.clone(),
        ),
        (
            "another key's signature",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.into()),
                ("Github-Public-Key-Signature", sign(&stranger, &body)),
            ],
            body.clone(),
        ),
        (
            "unknown key id",
            vec![
                ("Github-Public-Key-Identifier", "made-up".into()),
                ("Github-Public-Key-Signature", good.clone()),
            ],
            body.clone(),
        ),
        (
            "body changed after signing",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.into()),
                ("Github-Public-Key-Signature", good.clone()),
            ],
            tampered,
        ),
        (
            "signature not base64",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.into()),
                ("Github-Public-Key-Signature", "%%%".into()),
            ],
            body.clone(),
        ),
        (
            "signature of 64 KiB",
            vec![
                ("Github-Public-Key-Identifier", KEY_ID.into()),
                ("Github-Public-Key-Signature", "A".repeat(65536)),
            ],
            body.clone(),
        ),
    ];
    for (what, headers, body) in cases {
        assert_eq!(send(headers, body).await, 401, "{what}");
    }
    // Correctly signed, but not a list of findings: 400, nothing changes.
    let junk = br#"{"token": "x"}"#.to_vec();
    let status = send(
        vec![
            ("Github-Public-Key-Identifier", KEY_ID.into()),
            ("Github-Public-Key-Signature", sign(&key, &junk)),
        ],
        junk,
    )
    .await;
    assert_eq!(status, 400);
    // Over the route's 1 MiB: 413 before any signature work.
    let huge = vec![b' '; 1024 * 1024 + 1];
    let status = send(
        vec![
            ("Github-Public-Key-Identifier", KEY_ID.into()),
            ("Github-Public-Key-Signature", sign(&key, &huge)),
        ],
        huge,
    )
    .await;
    assert_eq!(status, 413);
    // A batch larger than the router's 64 KiB but within 1 MiB is read.
    let many: Vec<(String, &str, &str)> = (0..1000)
        .map(|_| {
            (
                hubkey_api::PlainToken::generate().expose().to_owned(),
                "https://github.com/octo/app/blob/0123456789abcdef0123456789abcdef01234567/deploy/ci.env",
                "content",
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = many.iter().map(|(t, u, s)| (t.as_str(), *u, *s)).collect();
    let big = report(&refs);
    assert!(big.len() > 64 * 1024, "{}", big.len());
    let labels = server
        .client()
        .report_secret_scanning(big.clone(), KEY_ID, &sign(&key, &big))
        .await
        .expect("a large signed batch is read");
    assert_eq!(labels.len(), 1000);
    assert!(labels
        .iter()
        .all(|l| l.label == SecretScanningLabel::FalsePositive));

    assert!(ann.get_token(token.uuid).await.unwrap().is_active);
    let events = all_events(&ann).await;
    assert!(
        events.iter().all(|e| e.kind == TokenEventKind::Created),
        "{events:?}"
    );
    server
        .client()
        .auth_token("ann", &token.token)
        .await
        .expect("the token still works");
}

#[tokio::test]
async fn the_partner_endpoint_is_off_without_a_key_set() {
    let key = signing_key(7);
    let server = TestServer::start().await;
    let body = report(&[("hkpat_x", "u", "content")]);
    let status = status_of(
        server
            .client()
            .report_secret_scanning(body.clone(), KEY_ID, &sign(&key, &body))
            .await,
    );
    assert_eq!(status, 404);
}

/// A loopback HTTP server answering every request with `body`; counts the requests.
fn serve_key_set(body: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/meta/public_keys/secret_scanning",
        listener.local_addr().unwrap()
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                body.len(),
                body
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, hits)
}

#[tokio::test]
async fn the_key_set_can_come_from_a_url_and_an_unknown_key_does_not_refetch_every_time() {
    let key = signing_key(7);
    let (url, hits) = serve_key_set(key_set(&[(KEY_ID, &key)]));
    let server =
        TestServer::start_with(DataDir::new(), &["--secret-scanning-keys-url", &url]).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once at start");
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("ci")).await.unwrap();
    let body = report(&[(&token.token, "https://example.test/x", "content")]);
    let labels = server
        .client()
        .report_secret_scanning(body.clone(), KEY_ID, &sign(&key, &body))
        .await
        .unwrap();
    assert_eq!(labels[0].label, SecretScanningLabel::TruePositive);
    // Made-up key ids: refused, and within the minute no new fetch.
    for _ in 0..20 {
        let status = status_of(
            server
                .client()
                .report_secret_scanning(body.clone(), "made-up", &sign(&key, &body))
                .await,
        );
        assert_eq!(status, 401);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no fetch per unknown key");
}

/// A client of `server` that connects from 127.1.<a>.<b>.
fn from(server: &TestServer, n: u16) -> HubClient {
    let [a, b] = n.to_be_bytes();
    server.client_at(std::net::Ipv4Addr::new(127, 1, a, b.max(1)))
}

/// Waits until the background writer has deactivated `uuid` (the answer does not wait).
async fn until_inactive(owner: &HubClient, uuid: uuid::Uuid) {
    for _ in 0..200 {
        if !owner.get_token(uuid).await.unwrap().is_active {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{uuid} was not deactivated within 2 s");
}

#[tokio::test]
async fn public_revocation_deactivates_real_tokens_and_answers_the_same_for_anything() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let a = ann.create_token(&manual("a")).await.unwrap();
    let b = bob.create_token(&manual("b")).await.unwrap();
    let spared = ann.create_token(&manual("spared")).await.unwrap();
    let raw = |body: String| {
        let server = &server;
        async move {
            let answer = server
                .raw_bytes(
                    reqwest::Method::POST,
                    "/v2/credentials/revoke",
                    &[("content-type", b"application/json")],
                    Some(body.into_bytes()),
                )
                .await;
            (answer.status, answer.body)
        }
    };
    let made_up = hubkey_api::PlainToken::generate();
    let mut bad_checksum = a.token.clone();
    bad_checksum.replace_range(a.token.len() - 6.., "000000");
    let answers = [
        raw(serde_json::json!({"credentials": [a.token, b.token, a.token]}).to_string()).await,
        raw(serde_json::json!({"credentials": [made_up.expose()]}).to_string()).await,
        raw(serde_json::json!({"credentials": ["garbage", bad_checksum]}).to_string()).await,
        raw(serde_json::json!({"credentials": []}).to_string()).await,
        // Already inactive now (or about to be): the same answer.
        raw(serde_json::json!({"credentials": [a.token]}).to_string()).await,
    ];
    for (status, body) in &answers {
        assert_eq!(
            (*status, body),
            (200, &serde_json::json!({"status": "accepted"}))
        );
    }
    until_inactive(&ann, a.uuid).await;
    until_inactive(&bob, b.uuid).await;
    assert!(ann.get_token(spared.uuid).await.unwrap().is_active);
    let reported: Vec<_> = all_events(&ann)
        .await
        .into_iter()
        .filter(|e| e.kind == TokenEventKind::Reported)
        .collect();
    assert_eq!(
        reported.len(),
        1,
        "one event however often it was sent: {reported:?}"
    );
    assert_eq!(reported[0].token_uuid, a.uuid);
    assert_eq!(
        status_of(server.client().auth_token("bob", &b.token).await),
        401
    );

    let too_many: Vec<String> = (0..1001).map(|_| "x".to_owned()).collect();
    let (status, _) = raw(serde_json::json!({ "credentials": too_many }).to_string()).await;
    assert_eq!(status, 400);
    let (status, _) = raw("{\"credentials\": \"hkpat_\"}".into()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn public_revocation_is_throttled_per_address_with_retry_after() {
    let server = TestServer::start().await;
    let client = server.client_from(77);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(match client.revoke_credentials(&["x".into()]).await {
            Ok(_) => 200,
            Err(err) => {
                if err.status() == Some(429) {
                    assert!(
                        matches!(err, hubkey_client::ClientError::Throttled { retry_after: Some(s), .. } if (1..=60).contains(&s.as_secs())),
                        "{err:?}"
                    );
                }
                err.status().unwrap()
            }
        });
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10..], [429, 429]);
    // Another address is not affected.
    server
        .client_from(78)
        .revoke_credentials(&["x".into()])
        .await
        .expect("another address has its own limit");
}

/// No oracle in the time either: requests naming only real tokens and requests naming only
/// unknown (well-formed) tokens take the same time, measured as an attacker would: many
/// requests of each, interleaved, from many addresses (the per-address limit), each real
/// token a live one when it is sent.
#[tokio::test]
async fn public_revocation_takes_the_same_time_for_real_and_unknown_tokens() {
    const ROUNDS: usize = 200;
    const PER_REQUEST: usize = 10;
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let mut real = Vec::new();
    for i in 0..ROUNDS * PER_REQUEST {
        real.push(
            ann.create_token(&manual(&format!("t{i}")))
                .await
                .unwrap()
                .token,
        );
    }
    let mut real_ms = Vec::new();
    let mut unknown_ms = Vec::new();
    for round in 0..ROUNDS {
        let client = from(&server, u16::try_from(round).unwrap() + 1);
        let unknown: Vec<String> = (0..PER_REQUEST)
            .map(|_| hubkey_api::PlainToken::generate().expose().to_owned())
            .collect();
        let live = real[round * PER_REQUEST..(round + 1) * PER_REQUEST].to_vec();
        // Alternate which goes first, so a warm-up or a trend favours neither.
        let order: [(&Vec<String>, bool); 2] = if round % 2 == 0 {
            [(&live, true), (&unknown, false)]
        } else {
            [(&unknown, false), (&live, true)]
        };
        for (credentials, is_real) in order {
            let started = std::time::Instant::now();
            client.revoke_credentials(credentials).await.unwrap();
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if is_real {
                real_ms.push(ms);
            } else {
                unknown_ms.push(ms);
            }
        }
    }
    let summary = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        let at = |percent: usize| samples[(samples.len() - 1) * percent / 100];
        (at(25), at(50), at(75), at(90))
    };
    let real_q = summary(&mut real_ms);
    let unknown_q = summary(&mut unknown_ms);
    println!(
        "revocation time, {ROUNDS} requests of {PER_REQUEST} each: real tokens p25/p50/p75/p90 \
         {real_q:.2?} ms, unknown tokens {unknown_q:.2?} ms"
    );
    // A Mann-Whitney-style check: the share of (real, unknown) pairs where the real request
    // took longer. 0.5 is no difference; a write in the answer's path made it ~1.0.
    let longer = real_ms
        .iter()
        .map(|r| unknown_ms.iter().filter(|u| r > u).count())
        .sum::<usize>() as f64
        / (real_ms.len() * unknown_ms.len()) as f64;
    println!("P(real request slower than unknown) = {longer:.3}");
    assert!(
        (0.35..=0.65).contains(&longer),
        "real and unknown tokens are told apart by time: {longer:.3}"
    );
    // Every real token was deactivated all the same.
    let mut active = u64::MAX;
    for _ in 0..300 {
        active = ann.list_tokens(1, 10).await.unwrap().active_count;
        if active == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(active, 0, "{active} still active after 30 s");
}

/// The verification docs/secret-scanning.md gives scanners: the registry endpoint's refresh
/// grant with the token alone (no account name): 200 for a live token, 401 otherwise.
#[tokio::test]
async fn the_documented_verification_needs_no_user_name() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    let token = ann.create_token(&manual("ci")).await.unwrap();
    let verify = |secret: String| {
        let url = format!("{}/token", server.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", secret.as_str()),
                    ("service", "hubkey-registry"),
                    ("client_id", "verify"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(verify(token.token.clone()).await, 200);
    assert_eq!(
        verify(hubkey_api::PlainToken::generate().expose().to_owned()).await,
        401
    );
    ann.patch_token(
        token.uuid,
        &hubkey_api::PatchAccessTokenRequest {
            is_active: Some(false),
            token_label: None,
            new_address_alerts: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(verify(token.token).await, 401);
}
