//! Two-factor sign-in a person sets up on the Account screen: the QR code and key, the first
//! code, the ten recovery codes shown once and saved, then signing in with a TOTP code, with a
//! recovery code, and that recovery code refused the second time.

use data_encoding::BASE32_NOPAD;
use hubkey_client::ClientError;
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;

use super::{hub_with_registry, PASSWORD};

/// The QR codes in the PNG screenshot at `path`, decoded as an authenticator app's camera
/// would: every pixel's luma, then rqrr's grid finder and decoder.
fn qr_codes_in(path: &std::path::Path) -> Vec<String> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let (width, height) = (frame.width as usize, frame.height as usize);
    let luma = |x: usize, y: usize| -> u8 {
        let at = (y * width + x) * channels;
        match channels {
            1 | 2 => pixels[at],
            _ => {
                let (r, g, b) = (
                    u32::from(pixels[at]),
                    u32::from(pixels[at + 1]),
                    u32::from(pixels[at + 2]),
                );
                u8::try_from((299 * r + 587 * g + 114 * b) / 1000).unwrap_or(u8::MAX)
            }
        }
    };
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, luma);
    image
        .detect_grids()
        .into_iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
        .collect()
}

/// The authenticator's code for `secret` at `drift` steps from now.
fn code(secret: &[u8], drift: i64) -> String {
    let now = hubkeyd::totp::step_at(chrono::Utc::now().timestamp());
    hubkeyd::totp::code_at_step(secret, now + drift)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_is_turned_on_in_the_window_and_its_codes_sign_in() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    // Another session of the account, which turning two-factor sign-in on ends.
    let elsewhere = hub.sign_in("ann", PASSWORD).await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    let home = app.sign_in_page().sign_in("ann", PASSWORD).await;
    let panel = home.two_factor();
    panel.wait_on(false).await;

    // The password is asked again: a wrong one is said, and nothing starts.
    let refused = panel.start_refused("not the password").await;
    assert!(refused.contains("password is not right"), "{refused}");
    // The QR code is drawn and the key shown in groups of four.
    let shown = panel.start(PASSWORD).await;
    let screenshot = app.screenshot("two-factor-qr").await;
    assert!(screenshot.exists());
    assert!(
        shown.split(' ').all(|group| (1..=4).contains(&group.len())),
        "{shown:?}"
    );
    let secret = BASE32_NOPAD
        .decode(shown.replace(' ', "").as_bytes())
        .expect("the key is base32");
    // The QR code on screen scans as the otpauth URI of that same key.
    let scanned = qr_codes_in(&screenshot);
    assert_eq!(scanned.len(), 1, "{scanned:?}");
    assert!(
        scanned[0].starts_with("otpauth://totp/")
            && scanned[0].contains(&format!("secret={}", shown.replace(' ', ""))),
        "{scanned:?}"
    );

    // A wrong first code is said so; the right one turns it on and shows ten codes.
    app.fill("#totp-first-code", &code(&secret, 5)).await;
    app.click("#confirm-two-factor").await;
    assert_eq!(
        app.wait_for("[data-testid=two-factor-error]")
            .await
            .attr("data-code")
            .await
            .unwrap()
            .as_deref(),
        Some("wrong_code")
    );
    let codes = panel.confirm(&code(&secret, 0)).await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    app.screenshot("two-factor-recovery-codes").await;

    // Saved through the native dialog: every code, one a line.
    let saved = tempfile::tempdir().unwrap();
    let file = saved.path().join("codes.txt");
    let said = panel.save_codes(&file).await;
    assert!(said.contains("codes.txt"), "{said}");
    let content = std::fs::read_to_string(&file).unwrap();
    for recovery in &codes {
        assert!(content.lines().any(|line| line == recovery), "{content}");
    }
    let done = panel.close_codes().await;
    assert!(done.contains("Every other session"), "{done}");
    panel.wait_on(true).await;
    assert_eq!(panel.recovery_codes_left().await, 10);
    // The server ended the other session, as the screen said.
    assert!(matches!(
        elsewhere.list_tokens(1, 1).await,
        Err(ClientError::Unauthorized { .. } | ClientError::SessionRevoked)
    ));

    // Out and in again with the authenticator's next code.
    let sign_in = home.sign_out().await;
    sign_in.submit_password("ann", PASSWORD).await;
    sign_in.wait_for_code_step().await;
    sign_in.submit_code(&code(&secret, 1)).await;
    assert_eq!(app.home().signed_in_as().await, "Signed in as ann");

    // Out and in with a recovery code: it works once ...
    let sign_in = app.home().sign_out().await;
    sign_in.submit_password("ann", PASSWORD).await;
    sign_in.wait_for_code_step().await;
    sign_in.submit_code(&codes[0]).await;
    let home = app.home();
    assert_eq!(home.signed_in_as().await, "Signed in as ann");
    home.two_factor().wait_on(true).await;
    assert_eq!(home.two_factor().recovery_codes_left().await, 9);

    // ... and is refused the second time.
    let sign_in = home.sign_out().await;
    sign_in.submit_password("ann", PASSWORD).await;
    sign_in.wait_for_code_step().await;
    sign_in.submit_code(&codes[0]).await;
    assert_eq!(sign_in.error_code().await.as_deref(), Some("wrong_code"));
    app.screenshot("two-factor-recovery-code-used").await;
    // Another recovery code still signs in.
    sign_in.submit_code(&codes[1]).await;
    let home = app.home();
    assert_eq!(home.signed_in_as().await, "Signed in as ann");

    // Turning it off asks for the password and a code; a wrong password is said so.
    let panel = home.two_factor();
    panel.wait_on(true).await;
    let (code_name, _) = panel
        .turn_off("not the password", &codes[2])
        .await
        .expect_err("a wrong password is refused");
    assert_eq!(code_name, "invalid_input");
    app.fill("#two-factor-password", PASSWORD).await;
    app.fill("#two-factor-off-code", &codes[3]).await;
    app.click("#confirm-turn-off-two-factor").await;
    let done = app.text("[data-testid=two-factor-done]").await;
    assert!(done.contains("off"), "{done}");
    panel.wait_on(false).await;
    app.screenshot("two-factor-off").await;
    app.quit().await;
}
