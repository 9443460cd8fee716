//! The secrets scan: one realistic session through the real app (password and TOTP sign-in,
//! the silent auto token, new recovery codes, two-factor sign-in turned off and on again, a
//! manual token created, shown once, deactivated and deleted, sign out), then every file the
//! app and hubkeyd wrote and everything the webview received over IPC is searched for every secret the session used, in the forms a leak takes (as is,
//! JSON-escaped, URL-encoded, base64 at any alignment, hex, base32, UTF-16). The only hits
//! allowed are the show-once values in the one answer that shows each: the manual token's in
//! `create_token`, the new TOTP secret's in `start_two_factor`, the recovery codes' in
//! `new_recovery_codes` and `confirm_two_factor`.

use std::path::{Path, PathBuf};

use data_encoding::{Encoding, BASE32_NOPAD, BASE64, BASE64URL, HEXLOWER, HEXUPPER};
use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;
use hubkey_keyring::{docker, OsKeyring, SecretStore};

use super::{hub_with_registry, REGISTRY};

/// A password with the characters that encodings change (space, quote, backslash, `&`, `+`,
/// `/`, `%`), so that its escaped and encoded forms differ from the plain one.
const PASSWORD: &str = r#"tr0ub4dor & "3" +/ horse\battery%"#;
const USER: &str = "zoe";
const LABEL: &str = "secrets scan token";

/// One form of one secret to look for.
struct Needle {
    secret: &'static str,
    form: String,
    bytes: Vec<u8>,
}

/// Where something was found: what it is called in the report, and its bytes.
struct Haystack {
    name: String,
    bytes: Vec<u8>,
}

/// The forms `secret` can leak in when it is text.
fn text_forms(secret: &'static str, value: &str) -> Vec<Needle> {
    let mut forms = vec![
        (String::from("plain"), value.as_bytes().to_vec()),
        (
            "UTF-16LE".into(),
            value.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        ),
        ("JSON-escaped".into(), {
            let json = serde_json::to_string(value).unwrap();
            json.as_bytes()[1..json.len() - 1].to_vec()
        }),
        (
            "URL-encoded".into(),
            percent_encode(value, false).into_bytes(),
        ),
        (
            "form-encoded".into(),
            percent_encode(value, true).into_bytes(),
        ),
    ];
    forms.extend(binary_forms(value.as_bytes()));
    needles(secret, forms)
}

/// The forms raw `bytes` can leak in: as they are, hex, base32 (how authenticator apps
/// show a TOTP secret) and base64, each at every alignment inside a longer encoded text.
fn binary_forms(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![
        ("raw".into(), bytes.to_vec()),
        ("hex".into(), HEXLOWER.encode(bytes).into_bytes()),
        ("HEX".into(), HEXUPPER.encode(bytes).into_bytes()),
    ];
    let encodings: [(&str, &Encoding, usize, usize); 3] = [
        ("base64", &BASE64, 3, 4),
        ("base64url", &BASE64URL, 3, 4),
        ("base32", &BASE32_NOPAD, 5, 8),
    ];
    for (name, encoding, group, chars) in encodings {
        for skip in 0..group.min(bytes.len()) {
            let rest = &bytes[skip..];
            let whole = rest.len() / group * group;
            let text = encoding.encode(&rest[..whole]);
            if text.len() >= 2 * chars {
                forms.push((format!("{name} (from byte {skip})"), text.into_bytes()));
            }
        }
    }
    forms
}

fn needles(secret: &'static str, forms: Vec<(String, Vec<u8>)>) -> Vec<Needle> {
    let mut needles: Vec<Needle> = Vec::new();
    for (form, bytes) in forms {
        if !needles.iter().any(|needle| needle.bytes == bytes) {
            needles.push(Needle {
                secret,
                form,
                bytes,
            });
        }
    }
    needles
}

/// Percent-encodes everything but RFC 3986's unreserved characters; `form` writes a space
/// as `+`, as HTML forms do.
fn percent_encode(value: &str, form: bool) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            b' ' if form => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Every regular file below `dir` (symlinks are not followed: their targets are scanned
/// where they live).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

fn file_haystacks(dirs: &[&Path]) -> Vec<Haystack> {
    dirs.iter()
        .flat_map(|dir| files_below(dir))
        .filter_map(|path| {
            std::fs::read(&path).ok().map(|bytes| Haystack {
                name: format!("file {}", path.display()),
                bytes,
            })
        })
        .collect()
}

/// What the webview holds at the end: the DOM with every field's value, localStorage and
/// sessionStorage.
async fn page_haystacks(app: &DesktopApp) -> Vec<Haystack> {
    let page = app
        .webdriver
        .execute(
            "const fields = [...document.querySelectorAll('input, textarea, select')] \
               .map((field) => field.id + '=' + field.value); \
             const storage = (store) => { const all = {}; \
               for (let i = 0; i < store.length; i++) { const key = store.key(i); all[key] = store.getItem(key); } \
               return JSON.stringify(all); }; \
             return [document.documentElement.outerHTML, fields.join('\\n'), \
                     storage(window.localStorage), storage(window.sessionStorage)];",
            vec![],
        )
        .await
        .unwrap();
    let parts: Vec<String> = serde_json::from_value(page).unwrap();
    ["DOM", "field values", "localStorage", "sessionStorage"]
        .iter()
        .zip(parts)
        .map(|(name, text)| Haystack {
            name: (*name).to_owned(),
            bytes: text.into_bytes(),
        })
        .collect()
}

/// One record of the app's IPC audit (`HUBKEY_IPC_AUDIT=1`): an invoke answer (`cmd` set)
/// or an event delivered to a listener.
#[derive(Debug)]
struct Delivery {
    cmd: Option<String>,
    data: String,
}

async fn ipc_deliveries(app: &DesktopApp) -> Vec<Delivery> {
    let log = app
        .webdriver
        .execute("return window.__HUBKEY_IPC_AUDIT__ || null;", vec![])
        .await
        .unwrap();
    assert!(
        !log.is_null(),
        "the app did not install the IPC audit: build it with `cargo build -p hubkey --features ipc-audit` \
         (and is HUBKEY_IPC_AUDIT=1 reaching it?)"
    );
    log.as_array()
        .expect("an array")
        .iter()
        .map(|record| Delivery {
            cmd: record["cmd"].as_str().map(str::to_owned),
            data: record["data"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_file_or_the_webview_except_the_show_once_value() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    // The app inherits this from the test process through tauri-driver.
    std::env::set_var("HUBKEY_IPC_AUDIT", "1");
    let hub = hub_with_registry().await;
    hub.add_user(USER, PASSWORD).await;
    let totp_secret = hub.hub.enable_totp(USER, chrono::Utc::now()).await.unwrap();
    let app = DesktopApp::start(&keyring, &hub.url).await;

    // Sign in with the password, then the authenticator's code.
    let sign_in = app.sign_in_page();
    sign_in.submit_password(USER, PASSWORD).await;
    sign_in.wait_for_code_step().await;
    let step = hubkeyd::totp::step_at(chrono::Utc::now().timestamp());
    sign_in
        .submit_code(&hubkeyd::totp::code_at_step(&totp_secret, step))
        .await;
    assert_eq!(
        app.home().signed_in_as().await,
        format!("Signed in as {USER}")
    );
    let store = OsKeyring::new();
    let auto_token = docker::get(&store, REGISTRY)
        .unwrap()
        .expect("the auto token in the keyring")
        .secret
        .expose()
        .to_owned();
    let session: serde_json::Value = serde_json::from_str(
        store
            .get(&format!("session:{}", hub.url))
            .unwrap()
            .expect("the session in the keyring")
            .expose(),
    )
    .unwrap();
    let refresh_token = session["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();

    // Two-factor sign-in on the Account screen: new recovery codes (shown once), turned off
    // with one of them, then on again (a new secret shown once, its first code, ten more
    // recovery codes shown once).
    let panel = app.home().two_factor();
    panel.wait_on(true).await;
    let renewed = panel
        .new_codes(&hubkeyd::totp::code_at_step(&totp_secret, step + 1))
        .await
        .expect("new recovery codes");
    panel.close_codes().await;
    panel
        .turn_off(PASSWORD, &renewed[0])
        .await
        .expect("two-factor sign-in turned off");
    panel.wait_on(false).await;
    let shown_secret = panel.start(PASSWORD).await;
    let new_secret = BASE32_NOPAD
        .decode(shown_secret.replace(' ', "").as_bytes())
        .expect("the key is base32");
    let now = hubkeyd::totp::step_at(chrono::Utc::now().timestamp());
    let enrolled = panel
        .confirm(&hubkeyd::totp::code_at_step(&new_secret, now))
        .await;
    panel.close_codes().await;
    panel.wait_on(true).await;

    // A manual token: created, its value read once, deactivated, then deleted.
    let security = app.nav().security().await;
    security.wait_for_rows().await;
    let shown = security
        .start_creating()
        .await
        .label(LABEL)
        .await
        .submit()
        .await;
    let manual_token = shown.value().await;
    assert!(manual_token.starts_with("hkpat_"), "{manual_token}");
    shown.close().await;
    let uuid = security.uuid_of(LABEL).await.expect("the new row");
    let row = security.row(uuid);
    row.toggle().await;
    row.wait_state("inactive").await;
    row.delete().await;
    security.delete_dialog().confirm().await;
    for _ in 0..100 {
        if !row.is_rendered().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Sign out.
    app.nav().account().await.sign_out().await;

    let deliveries = ipc_deliveries(&app).await;
    let commands: Vec<&str> = deliveries.iter().filter_map(|d| d.cmd.as_deref()).collect();
    for expected in [
        "sign_in",
        "submit_code",
        "list_tokens",
        "create_token",
        "delete_token",
        "new_recovery_codes",
        "disable_two_factor",
        "start_two_factor",
        "confirm_two_factor",
        "sign_out",
    ] {
        assert!(
            commands.contains(&expected),
            "the audit missed {expected}: {commands:?}"
        );
    }
    let mut haystacks = page_haystacks(&app).await;
    for (n, delivery) in deliveries.iter().enumerate() {
        haystacks.push(Haystack {
            name: format!(
                "IPC #{n} ({})",
                delivery
                    .cmd
                    .as_deref()
                    .unwrap_or("event or unmatched callback")
            ),
            bytes: delivery.data.clone().into_bytes(),
        });
    }
    let data_home = keyring
        .env()
        .into_iter()
        .find(|(name, _)| name == "XDG_DATA_HOME")
        .map(|(_, value)| PathBuf::from(value))
        .unwrap();
    // hubkeyd's files while it runs (the WAL holds the latest writes) ...
    haystacks.extend(file_haystacks(&[hub.data_dir()]));
    let home = app.quit().await;
    // ... and once it has stopped and checkpointed; the app's HOME (config, cache, docker
    // config, its log) and data dir (the store, WebKit's storage, the keyring's files).
    let data = hub.stop().await;
    let files = file_haystacks(&[home.path(), &data_home, data.path()]);
    let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
    for expected in ["settings.json", "config.json", "hubkeyd.db", "app.log"] {
        assert!(
            names.iter().any(|name| name.ends_with(expected)),
            "{expected} was not scanned: {names:#?}"
        );
    }
    // The scan can find things: the token's label is in the database.
    assert!(
        files
            .iter()
            .chain(&haystacks)
            .any(|file| file.name.contains("hubkeyd.db") && contains(&file.bytes, LABEL.as_bytes())),
        "the scan did not see the database's contents"
    );
    haystacks.extend(files);

    let mut secrets = Vec::new();
    secrets.extend(text_forms("the password", PASSWORD));
    secrets.extend(needles("the TOTP secret", binary_forms(&totp_secret)));
    secrets.extend(text_forms("the auto token", &auto_token));
    secrets.extend(text_forms("the refresh token", &refresh_token));
    secrets.extend(text_forms("the manual token", &manual_token));
    let manual: Vec<Needle> = text_forms("the manual token", &manual_token);
    // The other show-once values, each allowed only in the answer that shows it.
    let mut show_once: Vec<(&str, Vec<Needle>)> = vec![
        ("(create_token)", manual),
        (
            "(start_two_factor)",
            needles("the new TOTP secret", binary_forms(&new_secret)),
        ),
    ];
    for (command, codes) in [
        ("(new_recovery_codes)", &renewed),
        ("(confirm_two_factor)", &enrolled),
    ] {
        let needles: Vec<Needle> = codes
            .iter()
            .flat_map(|code| text_forms("a recovery code", code))
            .collect();
        show_once.push((command, needles));
    }
    for (_, needles) in &show_once {
        secrets.extend(needles.iter().map(|needle| Needle {
            secret: needle.secret,
            form: needle.form.clone(),
            bytes: needle.bytes.clone(),
        }));
    }

    let mut leaks = Vec::new();
    let mut shown_once = Vec::new();
    for haystack in &haystacks {
        for needle in &secrets {
            if contains(&haystack.bytes, &needle.bytes) {
                let allowed = show_once.iter().any(|(command, values)| {
                    haystack.name.ends_with(command)
                        && values.iter().any(|value| value.bytes == needle.bytes)
                });
                let hit = format!("{} ({}) in {}", needle.secret, needle.form, haystack.name);
                if allowed {
                    shown_once.push(hit);
                } else {
                    leaks.push(hit);
                }
            }
        }
    }
    println!(
        "scanned {} haystacks ({} IPC deliveries), {} needles",
        haystacks.len(),
        deliveries.len(),
        secrets.len()
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The scan saw each show-once value where it is shown: it can find them.
    for (command, _) in &show_once {
        assert!(
            shown_once.iter().any(|hit| hit.ends_with(command)),
            "no show-once value found in {command}: {shown_once:?}"
        );
    }
    let create_answers = deliveries
        .iter()
        .filter(|d| d.cmd.as_deref() == Some("create_token") && d.data.contains(&manual_token))
        .count();
    assert_eq!(
        create_answers, 1,
        "the show-once value is in exactly one IPC answer: {shown_once:?}"
    );
}

#[test]
fn the_scan_finds_a_secret_in_the_forms_it_leaks_in() {
    let needles = text_forms("the password", PASSWORD);
    let found = |haystack: &[u8]| needles.iter().any(|n| contains(haystack, &n.bytes));
    // Basic auth and docker's `auth` field: base64 of "user:secret", at every alignment.
    for user in ["", "z", "zo", "zoe:"] {
        let pair = format!("{user}{PASSWORD}");
        assert!(found(BASE64.encode(pair.as_bytes()).as_bytes()), "{pair}");
        assert!(
            found(BASE64URL.encode(pair.as_bytes()).as_bytes()),
            "{pair}"
        );
    }
    let json = serde_json::json!({ "password": PASSWORD }).to_string();
    assert!(found(json.as_bytes()), "{json}");
    let form = format!("username=zoe&password={}", percent_encode(PASSWORD, true));
    assert!(found(form.as_bytes()), "{form}");
    let utf16: Vec<u8> = format!("k={PASSWORD}")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert!(found(&utf16));
    assert!(!found(br#"tr0ub4dor & "3" +/ horse"#), "a part is no hit");

    let totp: Vec<u8> = (1..=20).collect();
    let totp_needles = needles_of(&totp);
    let uri = format!(
        "otpauth://totp/hubkey:zoe?secret={}&issuer=hubkey",
        BASE32_NOPAD.encode(&totp)
    );
    assert!(totp_needles
        .iter()
        .any(|n| contains(uri.as_bytes(), &n.bytes)));
}

fn needles_of(bytes: &[u8]) -> Vec<Needle> {
    needles("the TOTP secret", binary_forms(bytes))
}

/// The hubkey package's features, as cargo reads them.
fn app_features() -> serde_json::Map<String, serde_json::Value> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src-tauri/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "hubkey")
        .expect("the hubkey package");
    package["features"].as_object().unwrap().clone()
}

/// The IPC audit copies show-once values into the page: a shipped build must not have it.
/// Grepping a release binary takes a release build (minutes here), so this holds the two
/// facts that keep it out: the feature is off by default (also through the features the
/// default turns on), and a build with it but without debug assertions does not compile.
#[test]
fn the_ipc_audit_is_compiled_only_into_test_builds() {
    let features = app_features();
    assert!(features.contains_key("ipc-audit"), "{features:?}");
    let mut pending = vec!["default".to_owned()];
    let mut seen = Vec::new();
    while let Some(feature) = pending.pop() {
        assert_ne!(feature, "ipc-audit", "the default build has the IPC audit");
        if seen.contains(&feature) {
            continue;
        }
        for next in features
            .get(&feature)
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
        {
            pending.push(next.as_str().unwrap().to_owned());
        }
        seen.push(feature);
    }
    let lib = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../src-tauri/src/lib.rs"),
    )
    .unwrap();
    let lines: Vec<&str> = lib.lines().map(str::trim).collect();
    let guard = lines
        .iter()
        .position(|line| *line == r#"#[cfg(all(feature = "ipc-audit", not(debug_assertions)))]"#)
        .expect("the release guard's cfg");
    assert!(
        lines[guard + 1].starts_with("compile_error!("),
        "the release guard is not a compile_error: {}",
        lines[guard + 1]
    );
    // Every use of the module sits behind the feature.
    for (n, line) in lines.iter().enumerate() {
        if line.contains("ipc_audit") && !line.starts_with("//") {
            assert_eq!(
                lines[n - 1],
                r#"#[cfg(feature = "ipc-audit")]"#,
                "lib.rs:{}: {line} is not behind the feature",
                n + 1
            );
        }
    }
}
