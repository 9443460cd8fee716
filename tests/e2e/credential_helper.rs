//! `docker-credential-hubkey` against a real GNOME Keyring on a private bus, run as the docker
//! CLI runs it (one process per action), and the docker CLI itself logging in and out
//! through it.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::desktop_core::server;
use hubkey_api::Scope;
use hubkey_e2e::keyring::{credential_helper, KeyringSession};
use hubkey_e2e::server::manual_token;
use hubkey_e2e::tools::{run, CommandOutput};
use hubkey_e2e::{Hubkeyd, OciImage, Registry, Skopeo};
use hubkey_keyring::{docker, OsKeyring, SecretStore, SERVICE};

const PASSWORD: &str = "correct horse battery";
const NOT_FOUND: &str = "credentials not found in native keychain";

/// Runs `docker-credential-hubkey ACTION` with `input` on stdin in `env` only (plus PATH), as
/// the docker CLI would: a fresh process each time.
fn helper(env: &[(String, String)], action: &str, input: &str) -> CommandOutput {
    use std::io::Write;
    let mut child = Command::new(credential_helper())
        .arg(action)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    output.into()
}

fn credentials(server_url: &str, username: &str, secret: &str) -> String {
    serde_json::json!({"ServerURL": server_url, "Username": username, "Secret": secret}).to_string()
}

#[test]
fn helper_store_get_list_erase_persist_across_processes() {
    let keyring = KeyringSession::start();
    let env = keyring.env();

    helper(
        &env,
        "store",
        &credentials("127.0.0.1:5000", "ann", "dckr_pat_ann"),
    )
    .expect_success("store");
    helper(
        &env,
        "store",
        &credentials("https://index.docker.io/v1/", "bob", "dckr_pat_bob"),
    )
    .expect_success("store a second registry");

    let got = helper(&env, "get", "127.0.0.1:5000\n");
    got.expect_success("get in a new process");
    let got: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"ServerURL": "127.0.0.1:5000", "Username": "ann", "Secret": "dckr_pat_ann"})
    );

    let listed = helper(&env, "list", "");
    listed.expect_success("list");
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({"127.0.0.1:5000": "ann", "https://index.docker.io/v1/": "bob"})
    );

    // Seen from outside hubkey: the entry is in the Secret Service under our attributes.
    let account = docker::account("127.0.0.1:5000");
    let entry = keyring
        .secret_tool_lookup(SERVICE, &account)
        .expect("secret-tool finds the entry");
    let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(entry["Secret"], "dckr_pat_ann");
    let index = keyring
        .secret_tool_lookup(SERVICE, docker::INDEX_ACCOUNT)
        .expect("secret-tool finds the index");
    assert!(
        !index.contains("dckr_pat"),
        "the index holds no secret: {index}"
    );

    // docker logout erases HOST, http://HOST and https://HOST; all must succeed.
    for url in [
        "127.0.0.1:5000",
        "http://127.0.0.1:5000",
        "https://127.0.0.1:5000",
    ] {
        helper(&env, "erase", url).expect_success("erase");
    }
    assert_eq!(keyring.secret_tool_lookup(SERVICE, &account), None);
    let listed = helper(&env, "list", "");
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({"https://index.docker.io/v1/": "bob"})
    );
}

#[test]
fn helper_get_of_a_missing_entry_prints_the_docker_message_and_exits_1() {
    let keyring = KeyringSession::start();
    let missing = helper(&keyring.env(), "get", "127.0.0.1:5999");
    missing.expect_failure("get of a missing entry");
    assert_eq!(missing.stdout, format!("{NOT_FOUND}\n"));
    assert_eq!(missing.stderr, "");
}

#[test]
fn os_keyring_in_this_process_and_the_helper_share_entries() {
    // The pitfall: keyring 3 without its Linux feature keeps secrets in memory, per process.
    // Written here, read by the helper's process and by secret-tool, and the other way round.
    let keyring = KeyringSession::start();
    keyring.install_env();
    let store = OsKeyring::new();
    assert_eq!(store.describe(), "Secret Service (GNOME Keyring)");

    docker::store(&store, "127.0.0.1:6000", "ann", "dckr_pat_from_app").unwrap();
    let got = helper(&keyring.env(), "get", "127.0.0.1:6000");
    got.expect_success("helper get of an entry the app wrote");
    assert!(got.stdout.contains("dckr_pat_from_app"), "{}", got.stdout);

    helper(
        &keyring.env(),
        "store",
        &credentials("127.0.0.1:6001", "bob", "dckr_pat_from_docker"),
    )
    .expect_success("store");
    let credential = docker::get(&store, "http://127.0.0.1:6001")
        .unwrap()
        .unwrap();
    assert_eq!(credential.username, "bob");
    assert_eq!(credential.secret.expose(), "dckr_pat_from_docker");

    store.set("plain", "value").unwrap();
    assert_eq!(
        keyring.secret_tool_lookup(SERVICE, "plain").as_deref(),
        Some("value")
    );
    store.delete("plain").unwrap();
    store.delete("plain").unwrap();
    assert!(store.get("plain").unwrap().is_none());
    assert_eq!(keyring.secret_tool_lookup(SERVICE, "plain"), None);
}

#[test]
fn an_entry_written_by_another_program_is_reported_not_echoed() {
    let keyring = KeyringSession::start();
    keyring.secret_tool_store(SERVICE, &docker::account("127.0.0.1:5000"), "hunter2");
    let got = helper(&keyring.env(), "get", "127.0.0.1:5000");
    got.expect_failure("get of a foreign entry");
    assert!(
        got.stdout.contains("not written by hubkey"),
        "{}",
        got.stdout
    );
    assert!(!got.text().contains("hunter2"), "{}", got.text());
}

#[test]
fn helper_without_a_secret_service_names_what_is_missing() {
    let bus = KeyringSession::without_secret_service();
    for (action, input) in [
        ("get", "127.0.0.1:5000".to_owned()),
        ("store", credentials("127.0.0.1:5000", "ann", "dckr_pat_x")),
        ("list", String::new()),
    ] {
        let out = helper(&bus.env(), action, &input);
        out.expect_failure(action);
        assert_eq!(
            out.stdout,
            "the keyring is not available: no Secret Service is running \
             (install and start gnome-keyring or KeePassXC)\n",
            "{action}"
        );
        assert!(!out.text().contains("dckr_pat_x"));
    }
}

#[test]
fn helper_without_a_session_bus_says_so() {
    let empty = tempfile::tempdir().unwrap();
    // No DBUS_SESSION_BUS_ADDRESS, no DISPLAY, and no $XDG_RUNTIME_DIR/bus to fall back on.
    let env = vec![(
        "XDG_RUNTIME_DIR".to_owned(),
        empty.path().display().to_string(),
    )];
    let out = helper(&env, "get", "127.0.0.1:5000");
    out.expect_failure("get without a bus");
    assert_eq!(
        out.stdout,
        "the keyring is not available: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)\n"
    );
}

/// A DOCKER_CONFIG whose config.json sends `host` to `docker-credential-hubkey`, and a PATH
/// on which docker finds the helper.
struct DockerHome {
    config: tempfile::TempDir,
    bin: tempfile::TempDir,
}

impl DockerHome {
    fn for_host(host: &str) -> Self {
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("config.json"),
            serde_json::json!({"credHelpers": {host: "hubkey"}}).to_string(),
        )
        .unwrap();
        // Only the helper on PATH, not the whole target dir.
        let bin = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            credential_helper(),
            bin.path().join("docker-credential-hubkey"),
        )
        .unwrap();
        DockerHome { config, bin }
    }

    fn config_json(&self) -> String {
        std::fs::read_to_string(self.config.path().join("config.json")).unwrap()
    }

    /// Runs `docker ARGS` with this home and the keyring session.
    async fn docker(
        &self,
        keyring: &KeyringSession,
        args: &[&str],
        stdin: Option<&str>,
    ) -> CommandOutput {
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let config = self.config.path().display().to_string();
        let session = keyring.env();
        let mut env: Vec<(&str, &str)> = session
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend([("DOCKER_CONFIG", config.as_str()), ("PATH", path.as_str())]);
        run("docker", args, &env, stdin).await
    }
}

fn assert_no_secret_in(path: &Path, text: &str, secret: &str) {
    assert!(
        !text.contains(secret),
        "{} holds the secret:\n{text}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_login_stores_the_token_through_the_helper_and_logout_erases_it() {
    let hub = Hubkeyd::start().await;
    hub.add_user("ann", PASSWORD).await;
    let registry = Registry::start(&hub).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    let token = manual_token(&ann, "docker login", Scope::Write).await;
    let keyring = KeyringSession::start();
    let home = DockerHome::for_host(&registry.host);

    let login = home
        .docker(
            &keyring,
            &["login", &registry.host, "-u", "ann", "--password-stdin"],
            Some(&token.token),
        )
        .await;
    login.expect_success("docker login through the helper");
    assert!(login.stdout.contains("Login Succeeded"), "{}", login.text());

    // The token went to the keyring, not into config.json.
    let config = home.config_json();
    assert_no_secret_in(
        &home.config.path().join("config.json"),
        &config,
        &token.token,
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["credHelpers"][&registry.host], "hubkey");
    if let Some(auths) = config.get("auths").and_then(|a| a.as_object()) {
        for (host, auth) in auths {
            assert!(auth.get("auth").is_none(), "auths.{host} holds a secret");
            assert!(
                auth.get("identitytoken").is_none(),
                "auths.{host} holds a token"
            );
        }
    }
    let entry = keyring
        .secret_tool_lookup(SERVICE, &docker::account(&registry.host))
        .expect("the keyring has the login");
    let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(entry["Username"], "ann");
    assert_eq!(entry["Secret"], token.token.as_str());

    // docker reads it back through the helper's `get`.
    let image = OciImage::write("through the helper");
    Skopeo::copy(
        &image.reference(),
        &registry.reference("ann/helper", "1"),
        &format!("ann:{}", token.token),
    )
    .await
    .expect_success("push an image to inspect");
    let inspect = home
        .docker(
            &keyring,
            &[
                "manifest",
                "inspect",
                "--insecure",
                &format!("{}/ann/helper:1", registry.host),
            ],
            None,
        )
        .await;
    inspect.expect_success("docker manifest inspect with the helper's credentials");
    assert!(
        inspect.stdout.contains("schemaVersion"),
        "{}",
        inspect.text()
    );

    let logout = home
        .docker(&keyring, &["logout", &registry.host], None)
        .await;
    logout.expect_success("docker logout");
    assert!(!logout.text().contains("WARNING"), "{}", logout.text());
    assert_eq!(
        keyring.secret_tool_lookup(SERVICE, &docker::account(&registry.host)),
        None
    );
    let missing = helper(&keyring.env(), "get", &registry.host);
    assert_eq!(missing.stdout, format!("{NOT_FOUND}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_app_signs_in_docker_pulls_with_the_auto_token_and_logout_erases_it() {
    let host = hubkey_e2e::registry::free_loopback_port();
    let site = hubkeyd::Site {
        public_url: None,
        registry_host: Some(host.clone()),
    };
    let hub = Hubkeyd::start_with(tempfile::tempdir().unwrap(), "127.0.0.1:0", site).await;
    hub.add_user("ann", PASSWORD).await;
    let registry = Registry::start_on(&hub, &host).await;
    let ann = hub.sign_in("ann", PASSWORD).await;
    let push = manual_token(&ann, "push", Scope::Write).await;
    let image = OciImage::write("pulled with the auto token");
    Skopeo::copy(
        &image.reference(),
        &registry.reference("ann/app", "1"),
        &format!("ann:{}", push.token),
    )
    .await
    .expect_success("push an image to inspect");

    // The app's core signs in: auto token into the keyring, config.json pointed at the helper.
    let keyring = KeyringSession::start();
    keyring.install_env();
    let home = DockerHome::for_host("unrelated.example:5000");
    let store: std::sync::Arc<dyn SecretStore> = std::sync::Arc::new(OsKeyring::new());
    let core =
        hubkey_desktop::Desktop::new(store, home.config.path().join("config.json"), "ci box");
    let step = core
        .sign_in(&server(&hub.url), "ann", PASSWORD)
        .await
        .unwrap();
    assert!(
        matches!(step, hubkey_desktop::SignInStep::SignedIn(_)),
        "{step:?}"
    );
    let config: serde_json::Value = serde_json::from_str(&home.config_json()).unwrap();
    assert_eq!(config["credHelpers"][&host], "hubkey");
    assert_eq!(
        config["credHelpers"]["unrelated.example:5000"], "hubkey",
        "other entries are kept"
    );

    // docker asks the helper (`get`), which answers with the auto token from the keyring.
    let inspect = home
        .docker(
            &keyring,
            &[
                "manifest",
                "inspect",
                "--insecure",
                &format!("{host}/ann/app:1"),
            ],
            None,
        )
        .await;
    inspect.expect_success("docker manifest inspect with the auto token");
    assert!(
        inspect.stdout.contains("schemaVersion"),
        "{}",
        inspect.text()
    );
    let autos = ann.list_all_tokens().await.unwrap();
    let auto = autos
        .iter()
        .find(|t| t.generated_by == hubkey_api::Origin::Auto)
        .expect("the auto token");
    assert!(auto.last_used.is_some(), "docker used the auto token");

    home.docker(&keyring, &["logout", &host], None)
        .await
        .expect_success("docker logout");
    assert!(docker::get(&OsKeyring::new(), &host).unwrap().is_none());
}
