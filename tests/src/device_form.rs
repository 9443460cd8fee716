//! Approving or denying a device code through hubkeyd's `/device` page with a plain HTTP
//! client, as a browser without script would: the page's own forms, its CSRF field and its
//! cookie, posted in order (code page, sign-in, decision). For tests of the clients of the
//! grant (the desktop core, `hubkey-cli login`); the page itself is tested in a real
//! Chromium by `device_page.rs`.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, SET_COOKIE};

/// The person's answer on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The Approve button.
    Approve,
    /// The Deny button.
    Deny,
}

/// A visitor of one hub's `/device` page: a cookie jar of its own.
pub struct DeviceForm {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl DeviceForm {
    /// A visitor of the hub at `base_url` (`http://127.0.0.1:port`).
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base_url.trim_end_matches('/').to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    /// Opens `/device?user_code=…`, signs in as `username` and presses `decision`; panics
    /// unless every page answered 200 and the last one says the decision was taken.
    pub async fn decide(
        &mut self,
        user_code: &str,
        username: &str,
        password: &str,
        decision: Decision,
    ) {
        let page = self
            .send(
                self.http
                    .get(format!("{}/device", self.base))
                    .query(&[("user_code", user_code)]),
            )
            .await;
        let page = self
            .post(
                "/device/sign-in",
                &[
                    ("csrf", &csrf(&page)),
                    ("user_code", user_code),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert!(
            page.contains("Approve this device?"),
            "not the confirmation page: {page}"
        );
        let value = match decision {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        };
        let page = self
            .post(
                "/device/decide",
                &[
                    ("csrf", &csrf(&page)),
                    ("user_code", user_code),
                    ("decision", value),
                ],
            )
            .await;
        let expected = match decision {
            Decision::Approve => "Device approved",
            Decision::Deny => "Request denied",
        };
        assert!(
            page.contains(expected),
            "the decision was not taken: {page}"
        );
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> String {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> String {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if jar.is_empty() {
            request
        } else {
            request.header(COOKIE, jar.join("; "))
        };
        let response = request.send().await.unwrap();
        for cookie in response.headers().get_all(SET_COOKIE) {
            let cookie = cookie.to_str().unwrap();
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The page's CSRF field.
fn csrf(page: &str) -> String {
    let start = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field: {page}"))
        + r#"name="csrf" value=""#.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}
