//! The Windows `docker-credential-hubkey.exe` under Wine, through Wine's implementation of the
//! Windows Credential Manager: the keyring backend the Windows app and helper use
//! (keyring's `windows-native`), run for real rather than only compiled.
//!
//! Each action gets the exact bytes the docker CLI sends (docker-credential-helpers' client:
//! `store` a JSON object encoded by Go's `json.Encoder`, so with a trailing newline; `get` and
//! `erase` the bare server URL; `list` nothing), in a new process each time, as docker runs it.

use hubkey_e2e::wine::{windows_credential_helper, WinePrefix};

const NOT_FOUND: &str = "credentials not found in native keychain";
const CREDENTIAL_MANAGER: &str = r"HKCU\Software\Wine\Credential Manager";

/// What the docker CLI writes to `docker-credential-hubkey store`.
fn docker_store_input(server_url: &str, username: &str, secret: &str) -> Vec<u8> {
    let mut json =
        serde_json::json!({"ServerURL": server_url, "Username": username, "Secret": secret})
            .to_string()
            .into_bytes();
    json.push(b'\n');
    json
}

#[test]
fn the_windows_helper_stores_gets_lists_and_erases_through_credential_manager() {
    let wine = WinePrefix::boot();
    let helper = wine.install(&windows_credential_helper());
    let run = |action: &str, input: &[u8]| wine.run(&helper, &[action], input);

    let version = run("version", b"");
    version.expect_success("version");
    assert!(
        version.stdout.contains("docker-credential-hubkey"),
        "{}",
        version.text()
    );

    // Nothing stored yet: the docker CLI's "not found" text, exit 1; an empty list.
    let missing = run("get", b"127.0.0.1:5081");
    missing.expect_failure("get before store");
    assert_eq!(missing.stdout.trim_end(), NOT_FOUND);
    assert_eq!(run("list", b"").stdout, "{}");

    let secret = "hkpat_wine_0123456789abcdefghijklmnopqrstuv";
    run(
        "store",
        &docker_store_input("127.0.0.1:5081", "ann", secret),
    )
    .expect_success("store");

    // The entry is in Wine's Credential Manager (encrypted there: the secret is not in clear).
    let stored = wine.registry(CREDENTIAL_MANAGER);
    assert!(
        stored.contains("Generic: docker:127.0.0.1:5081.hubkey"),
        "no Credential Manager entry for the registry:\n{stored}"
    );
    assert!(stored.contains("Generic: docker-index.hubkey"), "{stored}");
    assert!(
        !stored.contains(secret),
        "the secret is in clear in Wine's registry"
    );

    // Every spelling docker uses for one registry finds it, in a new process.
    for spelling in [
        "127.0.0.1:5081",
        "https://127.0.0.1:5081",
        "http://127.0.0.1:5081/",
    ] {
        let got = run("get", spelling.as_bytes());
        got.expect_success("get");
        let answer: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"ServerURL": spelling, "Username": "ann", "Secret": secret})
        );
    }
    let listed: serde_json::Value = serde_json::from_str(&run("list", b"").stdout).unwrap();
    assert_eq!(listed, serde_json::json!({"127.0.0.1:5081": "ann"}));

    // Storing again replaces the user and secret.
    run(
        "store",
        &docker_store_input("https://127.0.0.1:5081", "bob", "hkpat_second"),
    )
    .expect_success("store again");
    let got: serde_json::Value =
        serde_json::from_str(&run("get", b"127.0.0.1:5081").stdout).unwrap();
    assert_eq!(got["Username"], "bob");
    assert_eq!(got["Secret"], "hkpat_second");

    run("erase", b"https://127.0.0.1:5081").expect_success("erase");
    let gone = run("get", b"127.0.0.1:5081");
    gone.expect_failure("get after erase");
    assert_eq!(gone.stdout.trim_end(), NOT_FOUND);
    assert_eq!(run("list", b"").stdout, "{}");
    let left = wine.registry(CREDENTIAL_MANAGER);
    assert!(!left.contains("docker:127.0.0.1:5081"), "{left}");
    assert!(
        !left.contains("docker-index"),
        "an empty index is removed:\n{left}"
    );
    // Erasing what is not there succeeds, as the docker CLI expects of `docker logout`.
    run("erase", b"127.0.0.1:5081").expect_success("erase again");
}

#[test]
fn credential_managers_size_limit_holds_through_the_windows_helper() {
    let wine = WinePrefix::boot();
    let helper = wine.install(&windows_credential_helper());
    let run = |action: &str, input: &[u8]| wine.run(&helper, &[action], input);

    // The entry is the protocol's JSON; pad the secret so it is exactly 2 560 bytes of UTF-16.
    let entry_len = |secret: &str| {
        serde_json::json!({"ServerURL": "127.0.0.1:5081", "Username": "ann", "Secret": secret})
            .to_string()
            .len()
    };
    let largest = "s".repeat(1280 - entry_len(""));
    assert_eq!(entry_len(&largest) * 2, hubkey_keyring::MAX_SECRET_BYTES);
    run(
        "store",
        &docker_store_input("127.0.0.1:5081", "ann", &largest),
    )
    .expect_success("store of the largest entry");
    let got: serde_json::Value =
        serde_json::from_str(&run("get", b"127.0.0.1:5081").stdout).unwrap();
    assert_eq!(
        got["Secret"].as_str(),
        Some(largest.as_str()),
        "read back whole"
    );

    // One character more is refused with a clear message; the stored one is untouched.
    let too_large = run(
        "store",
        &docker_store_input("127.0.0.1:5081", "ann", &format!("{largest}s")),
    );
    too_large.expect_failure("store of an entry over 2 560 bytes");
    assert!(
        too_large.stdout.contains("2560") && !too_large.stdout.contains("sss"),
        "{}",
        too_large.text()
    );
    let got: serde_json::Value =
        serde_json::from_str(&run("get", b"127.0.0.1:5081").stdout).unwrap();
    assert_eq!(got["Secret"].as_str(), Some(largest.as_str()));

    // Enough registries to need several index pages, all listed.
    let registries: Vec<String> = (0..12)
        .map(|i| format!("registry-{i:02}.{}.example:5000", "r".repeat(40)))
        .collect();
    for (i, registry) in registries.iter().enumerate() {
        run(
            "store",
            &docker_store_input(registry, &format!("user{i}"), "hkpat_x"),
        )
        .expect_success("store of one of many registries");
    }
    let listed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&run("list", b"").stdout).unwrap();
    assert_eq!(listed.len(), registries.len() + 1);
    assert_eq!(listed[&registries[11]], "user11");
    assert!(
        wine.registry(CREDENTIAL_MANAGER)
            .contains("Generic: docker-index:2.hubkey"),
        "12 registries take more than one index page"
    );
}
