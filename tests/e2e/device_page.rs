//! hubkeyd's device verification page (`/device`, RFC 8628) in a real browser: Debian's
//! Chromium, headless, driven through chromedriver, against hubkeyd in this process; the
//! device side is `hubkey-client` polling `/oauth/token` as the app and `hubkey login` will.
//! Each page is saved as a screenshot (`HUBKEY_SCREENSHOTS`, else `target/debug/screenshots`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hubkey_api::{DeviceCodeRequest, DeviceCodeResponse};
use hubkey_client::{DevicePoll, HubClient};
use hubkey_e2e::desktop::{screenshot_dir, ProcessGroup};
use hubkey_e2e::Hubkeyd;

const PASSWORD: &str = "correct horse battery";

/// chromedriver on a free loopback port and a headless Chromium session through it; both
/// end when dropped, also when a test fails (chromedriver leads its own process group, and
/// the whole group is killed: killing chromedriver alone left its Chromium running). The GUI
/// test of the app's browser sign-in uses it as the system browser.
pub(crate) struct Browser {
    client: Client,
    _driver: ProcessGroup,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub(crate) async fn start() -> Self {
        let port = free_port();
        let driver = ProcessGroup::spawn(
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromedriver (Debian package chromium-driver)");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=760,900"],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(capabilities.clone());
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    println!("chromedriver not ready ({err}); retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(err) => panic!("no chromedriver session: {err}"),
            }
        };
        Browser {
            client,
            _driver: driver,
        }
    }

    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks a form's button and waits until the page it posts to has replaced this one:
    /// Chromium may answer the click before the navigation, and a read then finds the old
    /// page (or an element of it going stale under the read).
    pub(crate) async fn click(&self, css: &str) {
        let old_page = self.client.find(Locator::Css("html")).await.unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        for _ in 0..200 {
            match old_page.tag_name().await {
                Err(fantoccini::error::CmdError::Standard(err))
                    if err.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("clicking {css} loaded no new page in 20 s");
    }

    pub(crate) async fn heading(&self) -> String {
        self.client
            .wait()
            .for_element(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits (up to 20 s) until the page's heading is `expected`: after a click the old
    /// page's heading can still be found, and go stale while it is read.
    pub(crate) async fn wait_heading(&self, expected: &str) {
        let mut last = String::new();
        for _ in 0..200 {
            if let Ok(h1) = self.client.find(Locator::Css("h1")).await {
                if let Ok(text) = h1.text().await {
                    if text == expected {
                        return;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page's heading stayed {last:?}, not {expected:?}");
    }

    pub(crate) async fn body(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

async fn hub() -> Hubkeyd {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    hub
}

async fn start_grant(client: &HubClient) -> DeviceCodeResponse {
    client
        .start_device_grant(&DeviceCodeRequest {
            client_id: "hubkey-cli".into(),
            scope: None,
            client_name: Some("hubkey CLI".into()),
            device_name: Some("build-box".into()),
            os: Some("Debian GNU/Linux 13".into()),
        })
        .await
        .unwrap()
}

/// Polls as a device does, at the server's interval (longer after `slow_down`), until the
/// grant is no longer pending.
async fn poll_until_decided(client: HubClient, grant: DeviceCodeResponse) -> DevicePoll {
    let mut interval = grant.interval;
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        match client.poll_device_grant(&grant.device_code).await.unwrap() {
            DevicePoll::Pending => {}
            DevicePoll::SlowDown { interval: slower } => interval = slower,
            other => return other,
        }
    }
}

/// Signs ann in on the page opened at `verification_uri_complete` and lands on the
/// confirmation, which must show the code and the device's description.
async fn sign_in_to_confirmation(browser: &Browser, grant: &DeviceCodeResponse, shots: &str) {
    browser.open(&grant.verification_uri_complete).await;
    assert_eq!(browser.heading().await, "Sign in to approve");
    browser.screenshot(&format!("{shots}-sign-in")).await;
    browser.fill("#username", "ann").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    assert_eq!(browser.heading().await, "Approve this device?");
    let body = browser.body().await;
    for shown in [
        grant.user_code.as_str(),
        "hubkey CLI",
        "build-box",
        "Debian GNU/Linux 13",
        "127.0.0.1",
    ] {
        assert!(
            body.contains(shown),
            "the confirmation shows {shown}: {body}"
        );
    }
}

#[tokio::test]
async fn approving_in_the_browser_signs_the_polling_device_in() {
    let hub = hub().await;
    let grant = start_grant(&hub.client()).await;
    let polling = tokio::spawn(poll_until_decided(hub.client(), grant.clone()));
    let browser = Browser::start().await;
    sign_in_to_confirmation(&browser, &grant, "device").await;
    browser.screenshot("device-confirm").await;
    browser.click("button.approve").await;
    assert_eq!(browser.heading().await, "Device approved");
    browser.screenshot("device-approved").await;
    let DevicePoll::Approved(session) = polling.await.unwrap() else {
        panic!("the device was not signed in");
    };
    // A full session of ann: it lists (and could create) her tokens.
    hub.client()
        .with_token(session.access_token)
        .list_tokens(1, 10)
        .await
        .unwrap();
    browser.close().await;
}

#[tokio::test]
async fn denying_in_the_browser_is_access_denied_for_the_device() {
    let hub = hub().await;
    let grant = start_grant(&hub.client()).await;
    let browser = Browser::start().await;
    sign_in_to_confirmation(&browser, &grant, "device-deny").await;
    browser.click("button.deny").await;
    assert_eq!(browser.heading().await, "Request denied");
    browser.screenshot("device-denied").await;
    assert!(matches!(
        hub.client()
            .poll_device_grant(&grant.device_code)
            .await
            .unwrap(),
        DevicePoll::Denied
    ));
    browser.close().await;
}

#[tokio::test]
async fn an_account_with_totp_gives_its_code_on_the_page() {
    let hub = hub().await;
    let secret = hub
        .hub
        .enable_totp("ann", chrono::Utc::now())
        .await
        .unwrap();
    let grant = start_grant(&hub.client()).await;
    let browser = Browser::start().await;
    browser.open(&grant.verification_uri_complete).await;
    browser.fill("#username", "ann").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    assert_eq!(browser.heading().await, "Two-factor sign-in");
    browser.fill("#code", "000000").await;
    browser.click("button[type=submit]").await;
    assert!(browser.body().await.contains("Incorrect verification code"));
    browser.screenshot("device-two-factor-wrong").await;
    let code = hubkeyd::totp::code_at_step(
        &secret,
        hubkeyd::totp::step_at(chrono::Utc::now().timestamp()),
    );
    browser.fill("#code", &code).await;
    browser.screenshot("device-two-factor").await;
    browser.click("button[type=submit]").await;
    assert_eq!(browser.heading().await, "Approve this device?");
    browser.click("button.approve").await;
    assert_eq!(browser.heading().await, "Device approved");
    assert!(matches!(
        hub.client()
            .poll_device_grant(&grant.device_code)
            .await
            .unwrap(),
        DevicePoll::Approved(_)
    ));
    browser.close().await;
}

#[tokio::test]
async fn a_wrong_code_gets_a_clear_page() {
    let hub = hub().await;
    let browser = Browser::start().await;
    browser.open(&format!("{}/device", hub.url)).await;
    assert_eq!(browser.heading().await, "Connect a device");
    browser.fill("#user_code", "bcdf-ghjk").await;
    browser.screenshot("device-enter-code").await;
    browser.click("button[type=submit]").await;
    assert!(browser.body().await.contains("That code is not valid"));
    browser.screenshot("device-wrong-code").await;
    // Typed in lower case, the real code leads on to sign-in.
    let grant = start_grant(&hub.client()).await;
    browser
        .fill("#user_code", &grant.user_code.to_lowercase())
        .await;
    browser.click("button[type=submit]").await;
    assert_eq!(browser.heading().await, "Sign in to approve");
    browser.close().await;
}

#[tokio::test]
async fn an_expired_code_gets_a_clear_page() {
    let clock = hubkeyd::clock::ManualClock::new(chrono::Utc::now());
    let hub = Hubkeyd::start_on_clock(
        tempfile::tempdir().unwrap(),
        "127.0.0.1:0",
        hubkeyd::Site::default(),
        |hub| hub,
        clock.clone(),
    )
    .await;
    let grant = start_grant(&hub.client()).await;
    clock.advance(chrono::Duration::minutes(11));
    let browser = Browser::start().await;
    browser.open(&grant.verification_uri_complete).await;
    assert_eq!(browser.heading().await, "This code has expired");
    browser.screenshot("device-expired").await;
    assert!(matches!(
        hub.client()
            .poll_device_grant(&grant.device_code)
            .await
            .unwrap(),
        DevicePoll::Expired
    ));
    browser.close().await;
}
