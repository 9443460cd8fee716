//! What the webview may do: the Tauri configuration grants only what the UI uses (its own
//! commands and the app's own event), the CSP is strict, nothing is loaded from elsewhere;
//! and in the running app, the webview cannot reach a server on its own nor be navigated away
//! from the app's own pages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hubkey_e2e::desktop::DesktopApp;
use hubkey_e2e::keyring::KeyringSession;

use super::hub_with_registry;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The CSP's directives, by name.
fn directives(csp: &str) -> Vec<(String, Vec<String>)> {
    csp.split(';')
        .map(str::split_whitespace)
        .filter_map(|mut words| {
            let name = words.next()?.to_owned();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect()
}

#[test]
fn tauri_config_has_a_strict_csp_and_no_remote_content() {
    let config = json(&repository().join("src-tauri/tauri.conf.json"));
    assert!(
        config["build"].get("devUrl").is_none(),
        "a devUrl makes debug builds load a server"
    );
    assert_eq!(config["build"]["frontendDist"], "../ui/dist");
    for window in config["app"]["windows"].as_array().unwrap() {
        assert!(window.get("url").is_none(), "a window loads {window}");
    }
    let security = &config["app"]["security"];
    assert_eq!(security["freezePrototype"], true);
    assert!(
        security
            .get("dangerousDisableAssetCspModification")
            .is_none()
            && security.get("dangerousRemoteDomainIpcAccess").is_none(),
        "{security}"
    );
    let csp = security["csp"].as_str().expect("a CSP string");
    let directives = directives(csp);
    let get = |name: &str| {
        directives
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, sources)| sources.clone())
            .unwrap_or_else(|| panic!("the CSP has no {name}: {csp}"))
    };
    assert_eq!(get("default-src"), ["'self'"]);
    assert_eq!(get("script-src"), ["'self'"]);
    assert_eq!(get("object-src"), ["'none'"]);
    assert_eq!(get("base-uri"), ["'none'"]);
    assert_eq!(get("frame-ancestors"), ["'none'"]);
    // Only the IPC channel, never a server.
    assert_eq!(get("connect-src"), ["ipc:", "http://ipc.localhost"]);
    for (name, sources) in &directives {
        for source in sources {
            assert!(
                !matches!(
                    source.as_str(),
                    "'unsafe-inline'" | "'unsafe-eval'" | "*" | "http:" | "https:" | "blob:"
                ),
                "{name} allows {source}"
            );
            let remote = source.starts_with("http") && source != "http://ipc.localhost";
            assert!(!remote, "{name} allows {source}");
        }
    }
}

#[test]
fn capabilities_grant_only_the_app_event() {
    let dir = repository().join("src-tauri/capabilities");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let capability = json(&files[0]);
    assert_eq!(capability["windows"], serde_json::json!(["main"]));
    assert!(
        capability.get("remote").is_none(),
        "no remote URL gets IPC access"
    );
    assert_eq!(
        capability["permissions"],
        serde_json::json!(["core:event:allow-listen", "core:event:allow-unlisten"])
    );
    // ... which is all the UI uses: invoke (the app's own commands need no permission)
    // and listen, and no plugin's JavaScript API.
    let ui = repository().join("ui/src");
    let mut pending = vec![ui];
    let mut imports = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                for (n, line) in text.lines().enumerate() {
                    if line.contains("@tauri-apps/") {
                        imports.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(!imports.is_empty());
    for import in &imports {
        assert!(
            import.contains("'@tauri-apps/api/core'") || import.contains("'@tauri-apps/api/event'"),
            "the UI uses more than invoke and listen: {import}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webview_cannot_reach_a_server_or_load_remote_content() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().wait().await;

    // The hub is up and answers this test ...
    assert!(hub.client().health().await.is_ok());
    // ... but the page's own fetch to it, and an image from it, are refused by the CSP.
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        app.webdriver.execute_async(
            "const [url, done] = arguments; \
             const fetched = fetch(url + '/v2/hubkey/info').then(() => 'fetched', (e) => 'refused: ' + e); \
             const image = new Promise((resolve) => { const img = new Image(); \
               img.onload = () => resolve('loaded'); img.onerror = () => resolve('refused'); \
               img.src = url + '/favicon.ico'; }); \
             Promise.all([fetched, image]).then((all) => done(all));",
            vec![hub.url.clone().into()],
        ),
    )
    .await
    .expect("the page answered")
    .unwrap();
    let outcome: Vec<String> = serde_json::from_value(outcome).unwrap();
    assert!(outcome[0].starts_with("refused"), "{outcome:?}");
    assert_eq!(outcome[1], "refused", "{outcome:?}");
    app.quit().await;
}

/// Runs `attempt` (a script that tries to leave the page for `arguments[0]`) in the page,
/// then, 1.5 s later in that same page, answers its address and whether it is still the
/// document the test marked. A navigation that happens ends the script's page: the answer
/// then never comes (or is an error), and the test fails.
async fn after_attempt(app: &DesktopApp, attempt: &str, target: &str) -> (String, bool) {
    let script = format!(
        "const done = arguments[arguments.length - 1]; \
         try {{ {attempt} }} catch (e) {{}} \
         setTimeout(() => done([String(location.href), window.__hubkey_test_mark === 1]), 1500);"
    );
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        app.webdriver.execute_async(&script, vec![target.into()]),
    )
    .await;
    match answer {
        Ok(Ok(answer)) => serde_json::from_value(answer).unwrap(),
        Ok(Err(err)) => panic!("{attempt} → {target}: {err}"),
        Err(_) => panic!("{attempt} → {target}: the page did not answer"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webview_cannot_be_navigated_away_from_the_app() {
    let keyring = KeyringSession::start();
    keyring.install_env();
    let hub = hub_with_registry().await;
    let app = DesktopApp::start(&keyring, &hub.url).await;
    app.sign_in_page().wait().await;
    app.webdriver
        .execute("window.__hubkey_test_mark = 1;", vec![])
        .await
        .unwrap();
    let home = app.webdriver.current_url().await.unwrap().to_string();
    assert!(home.starts_with("tauri://localhost"), "{home}");

    // A page of the live hubkeyd (it answers this test), and a public site, reached the ways
    // a page can leave: a script setting the location, a link the person clicks, a form.
    let elsewhere = format!("{}/v2/hubkey/info", hub.url);
    assert!(hub.client().health().await.is_ok());
    let attempts = [
        "location.href = arguments[0];",
        "location.replace(arguments[0]);",
        "const a = document.createElement('a'); a.href = arguments[0]; a.textContent = 'x'; \
         document.body.appendChild(a); a.click();",
        "const f = document.createElement('form'); f.method = 'get'; f.action = arguments[0]; \
         document.body.appendChild(f); f.submit();",
    ];
    for target in [elsewhere.as_str(), "https://example.com/"] {
        for attempt in attempts {
            let (href, marked) = after_attempt(&app, attempt, target).await;
            assert_eq!(href, home, "{attempt} → {target}: the window left the app");
            assert!(marked, "{attempt} → {target}: the document was replaced");
        }
    }
    // The app still works: its own page answers and shows the sign-in screen.
    app.sign_in_page().wait().await;
    app.screenshot("navigation-refused").await;
    app.quit().await;
}
