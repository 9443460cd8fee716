//! Issue 14 item 4: a web page cannot spend a visitor's sign-in budget. Any page can make a
//! browser POST a form to `/token` (no CORS preflight for form content types); hubkeyd
//! refuses requests carrying a browser's cross-site markers with a 403 before reading a
//! credential, so nothing is counted against the visitor's address. Registry clients send
//! neither marker and keep working.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{TestServer, PASSWORD};

/// The cross-site markers a browser sends, in the variants an attacking page can produce.
const MARKERS: &[&[(&str, &str)]] = &[
    &[
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ],
    &[("origin", "https://evil.example")],
    &[("sec-fetch-site", "cross-site")],
    &[("origin", "null")],
    &[
        ("origin", "https://sub.127.0.0.1.example"),
        ("sec-fetch-site", "same-site"),
    ],
];

/// Bodies a page can post without a preflight.
fn wrong_password_post(http: &reqwest::Client, url: &str, n: usize) -> reqwest::RequestBuilder {
    let form = "grant_type=password&username=ann&password=wrong-guess&service=registry";
    let request = http.post(format!("{url}/token"));
    match n % 3 {
        0 => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
        1 => request.header("content-type", "text/plain").body(form),
        _ => request
            .header("content-type", "multipart/form-data; boundary=x")
            .body(
                "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\npassword\r\n--x--\r\n",
            ),
    }
}

#[tokio::test]
async fn cross_site_wrong_password_posts_leave_the_visitor_unthrottled() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let http = reqwest::Client::new();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (http, url, counter) = (http.clone(), server.url.clone(), counter.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= 1000 {
                    break;
                }
                let mut request = if n % 10 == 9 {
                    // Basic credentials on a GET (an image or a navigation).
                    http.get(format!("{url}/token?service=registry"))
                        .basic_auth("ann", Some("wrong-guess"))
                } else {
                    wrong_password_post(&http, &url, n)
                };
                for (name, value) in MARKERS[n % MARKERS.len()] {
                    request = request.header(*name, *value);
                }
                let answer = request.send().await.expect("request");
                let status = answer.status().as_u16();
                let body: serde_json::Value = answer.json().await.unwrap_or_default();
                statuses.push((status, body["details"].as_str().unwrap_or("").to_owned()));
            }
            statuses
        }));
    }
    let mut refused = 0;
    for worker in workers {
        for (status, details) in worker.await.expect("worker") {
            assert_eq!(status, 403, "{details}");
            assert!(details.contains("cross-site"), "{details}");
            refused += 1;
        }
    }
    assert_eq!(refused, 1000);
    // JSON sign-in routes take no form: a page's text/plain post is refused unread.
    for _ in 0..50 {
        let answer = http
            .post(format!("{}/v2/users/login", server.url))
            .header("content-type", "text/plain")
            .header("origin", "https://evil.example")
            .body(r#"{"username":"ann","password":"wrong-guess"}"#)
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), 400);
    }
    // The visitor, from the same address, signs in at once: nothing was counted.
    let answer = http
        .post(format!("{}/token", server.url))
        .form(&[
            ("grant_type", "password"),
            ("username", "ann"),
            ("password", PASSWORD),
            ("service", "registry"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 200, "the right sign-in after the attack");
    server.sign_in("ann", PASSWORD).await;
}

#[tokio::test]
async fn requests_without_browser_markers_or_from_the_own_origin_still_work() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let http = reqwest::Client::new();
    let own = server.url.clone();
    // What docker, skopeo, podman and containerd send: no Origin, no Sec-Fetch-Site.
    let get = http
        .get(format!(
            "{}/token?service=registry&scope=repository:ann/app:pull",
            server.url
        ))
        .basic_auth("ann", Some(PASSWORD));
    let post = http.post(format!("{}/token", server.url)).form(&[
        ("grant_type", "password"),
        ("username", "ann"),
        ("password", PASSWORD),
    ]);
    for request in [get, post] {
        assert_eq!(request.send().await.expect("request").status(), 200);
    }
    // A browser on hubkeyd's own origin, or a typed address, is not cross-site.
    for headers in [
        [("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
        [("sec-fetch-site", "none"), ("x-unused", "")],
    ] {
        let mut request = http
            .get(format!("{}/token?service=registry", server.url))
            .basic_auth("ann", Some(PASSWORD));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        assert_eq!(request.send().await.expect("request").status(), 200);
    }
}
