//! The binary as an operator meets it: the admin commands, `serve`'s readiness line and
//! shutdown, `/healthz` and the OpenAPI document.

use std::process::Output;

use crate::harness::{assert_success, manual, password_session, DataDir, TestServer, PASSWORD};
use crate::pg::{skip_unless_postgres, skip_unless_sqlite};

/// Asserts that an admin command failed and explained itself on stderr.
fn assert_refused(output: &Output, why: &str) {
    assert!(!output.status.success(), "{why}: the command succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.trim().is_empty(), "{why}: no message on stderr");
}

/// The lines of `user list`, sorted.
async fn user_list(data: &DataDir) -> Vec<String> {
    let output = data.run(&["user", "list"], None).await;
    assert_success(&output, "user list");
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn user_add_refuses_weak_passwords() {
    let data = DataDir::new();
    for (password, why) in [
        ("seven77".to_owned(), "shorter than 8 characters"),
        ("x".repeat(257), "longer than 256 characters"),
        ("password123".to_owned(), "a common password"),
        ("qwertyuiop".to_owned(), "a common password"),
    ] {
        let output = data.try_add_user("ann", &password).await;
        assert_refused(&output, why);
    }
    assert!(user_list(&data).await.is_empty(), "no account was made");

    data.add_user("ann", "eight-ch").await;
    data.add_user("bob", &"y".repeat(256)).await;
    assert_eq!(user_list(&data).await.len(), 2);
}

#[tokio::test]
async fn a_database_url_hubkeyd_cannot_serve_is_refused_not_made_a_sqlite_file() {
    let data = DataDir::new();
    let url = "mysql://hk:s3cret@127.0.0.1:1/hubkey";
    for args in [
        vec!["--database", url, "user", "list"],
        vec!["--database", url, "serve", "--listen", "127.0.0.1:0"],
    ] {
        let output = data.run(&args, None).await;
        assert_refused(&output, "a MySQL URL");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("\"mysql\""), "{stderr}");
        assert!(
            !stderr.contains("s3cret"),
            "the URL's password was repeated: {stderr}"
        );
    }
    // Nothing was created: no SQLite file named after the URL (the commands run in the data
    // directory), no default database, no keys.
    let left: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_postgres_url_goes_to_postgres_and_one_that_does_not_answer_fails_at_once() {
    // Nothing listens on port 1: the error comes at once (not after the pool's timeout), says
    // what failed, and does not repeat the password; no SQLite file is made of the URL.
    let data = DataDir::new();
    for url in [
        "postgres://hk:s3cret@127.0.0.1:1/hubkey",
        "postgresql://hk:s3cret@127.0.0.1:1/hubkey",
    ] {
        for args in [
            vec!["--database", url, "user", "list"],
            vec!["--database", url, "serve", "--listen", "127.0.0.1:0"],
        ] {
            let started = std::time::Instant::now();
            let output = data.run(&args, None).await;
            assert_refused(&output, url);
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("PostgreSQL"), "{stderr}");
            assert!(
                !stderr.contains("s3cret"),
                "the password was repeated: {stderr}"
            );
        }
    }
    let left: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|name| !name.starts_with("postgres")),
        "{left:?}"
    );
}

#[tokio::test]
async fn user_add_refuses_a_duplicate_name() {
    let data = DataDir::new();
    data.add_user("ann", PASSWORD).await;
    let output = data.try_add_user("ann", "another-good-password").await;
    assert_refused(&output, "duplicate user");
    assert_eq!(user_list(&data).await, vec!["ann\t2fa=off\ttokens=0"]);
}

#[tokio::test]
async fn password_stdin_drops_only_the_trailing_newline() {
    let server = TestServer::start().await;
    let password = "  spaces around  ";
    server.add_user("ann", password).await;
    let client = server.client();
    // The password is exactly what came before the newline.
    password_session(&client, "ann", password).await;
    assert!(client.login("ann", password.trim()).await.is_err());
}

#[tokio::test]
async fn user_totp_prints_an_otpauth_uri_and_the_secret() {
    let data = DataDir::new();
    data.add_user("ann", PASSWORD).await;
    let output = data.run(&["user", "totp", "ann"], None).await;
    assert_success(&output, "user totp");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let secret = lines[1]
        .strip_prefix("secret: ")
        .expect("second line is `secret: …`");
    assert_eq!(
        lines[0],
        format!(
            "otpauth://totp/hubkey:ann?secret={secret}&issuer=hubkey&algorithm=SHA1&digits=6&period=30"
        )
    );
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("unpadded RFC 4648 base32");
    assert_eq!(bytes.len(), 20);
    assert_eq!(user_list(&data).await, vec!["ann\t2fa=on\ttokens=0"]);
}

#[tokio::test]
async fn user_list_shows_2fa_and_token_counts() {
    let server = TestServer::start().await;
    let ann = server.user("ann").await;
    server.add_user("bob", PASSWORD).await;
    ann.create_token(&manual("one")).await.expect("create");
    ann.create_token(&manual("two")).await.expect("create");
    ann.desktop_generate(None).await.expect("desktop-generate");
    server.enable_totp("ann").await;
    assert_eq!(
        user_list(server.data()).await,
        vec!["ann\t2fa=on\ttokens=3", "bob\t2fa=off\ttokens=0"]
    );
}

#[tokio::test]
async fn sqlite_only_database_flag_overrides_the_default_location() {
    if skip_unless_sqlite("sqlite_only_database_flag_overrides_the_default_location") {
        return;
    }
    let data = DataDir::new();
    let elsewhere = data.path().join("elsewhere.db");
    let url = format!("sqlite://{}", elsewhere.display());
    let output = data
        .run(
            &["--database", &url, "user", "add", "ann", "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        )
        .await;
    assert_success(&output, "--database URL user add");
    assert!(elsewhere.exists(), "the database is where --database says");
    assert!(!data.db_path().exists(), "the default database is not used");
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_only_database_files_are_owner_only_whatever_the_umask() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    if skip_unless_sqlite("sqlite_only_database_files_are_owner_only_whatever_the_umask") {
        return;
    }
    let data = DataDir::new();
    // `serve` under umask 000, so that the database has its -wal and -shm files open.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" --data-dir "$1" serve --listen 127.0.0.1:0"#)
        .arg(env!("CARGO_BIN_EXE_hubkeyd"))
        .arg(data.path())
        .current_dir(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hubkeyd under sh");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    assert!(line.starts_with("listening on"), "{line}");
    let db = data.db_path();
    let modes: Vec<(String, u32)> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let path = format!("{}{suffix}", db.display());
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|err| panic!("{path}: {err}"))
                .permissions()
                .mode();
            (path, mode & 0o777)
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    for (path, mode) in modes {
        assert_eq!(mode, 0o600, "{path} has mode {mode:o}");
    }

    // A database made by an older hubkeyd with a wider mode is narrowed when opened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = data.run(&["user", "list"], None).await;
    assert_success(&output, "user list");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "an existing database is narrowed to 0600");
}

#[cfg(unix)]
#[tokio::test]
async fn a_data_directory_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;

    let data = DataDir::new();
    for mode in [0o777, 0o770, 0o702] {
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        for args in [
            vec!["user", "list"],
            vec!["serve", "--listen", "127.0.0.1:0"],
        ] {
            let output = data.run(&args, None).await;
            assert_refused(&output, "a data directory others can write");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(&data.path().display().to_string()),
                "{stderr}"
            );
            assert!(stderr.contains("chmod 700"), "{stderr}");
        }
    }
    assert!(!data.db_path().exists(), "nothing was created");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_success(&data.run(&["user", "list"], None).await, "user list");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = TestServer::start().await;
    server.client().health().await.expect("healthy");
    let status = server.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    let health = server.client().health().await.expect("healthz");
    assert_eq!(health.status, "ok");
}

#[tokio::test]
async fn openapi_document_lists_every_path() {
    let server = TestServer::start().await;
    let document = server.client().openapi().await.expect("openapi.json");
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    let paths = document["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/v2/users/login", &["post"]),
        ("/v2/users/2fa-login", &["post"]),
        ("/v2/users/refresh", &["post"]),
        ("/v2/users/logout", &["post"]),
        ("/v2/users/password", &["put"]),
        ("/v2/users/sessions/revoke-all", &["post"]),
        ("/v2/users/security-events", &["get"]),
        ("/v2/auth/token", &["post"]),
        ("/v2/access-tokens", &["get", "post"]),
        ("/v2/access-tokens/{uuid}", &["get", "patch", "delete"]),
        ("/v2/access-tokens/desktop-generate", &["post"]),
        ("/v2/access-tokens/events", &["get"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing from {:?}", paths.keys()));
        for method in methods {
            assert!(item.get(*method).is_some(), "{method} {path} is missing");
        }
    }
}

#[tokio::test]
async fn postgres_only_instances_starting_together_on_an_empty_database_migrate_it_once() {
    if skip_unless_postgres(
        "postgres_only_instances_starting_together_on_an_empty_database_migrate_it_once",
    ) {
        return;
    }
    // Four servers (each with its own data directory) start at once on one empty database:
    // each migrates at start, under PostgreSQL's advisory lock, so one migrates and the others
    // find the schema done. Without the lock they would race to create the same tables.
    let first = DataDir::new();
    let url = first.database_url();
    let others: Vec<DataDir> = (0..3).map(|_| DataDir::on_postgres(url.clone())).collect();
    let mut others = others.into_iter();
    let (a, b, c, d) = tokio::join!(
        TestServer::start_in(first),
        TestServer::start_in(others.next().unwrap()),
        TestServer::start_in(others.next().unwrap()),
        TestServer::start_in(others.next().unwrap()),
    );
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "sql")
        })
        .count();
    let applied = a.data().count_rows("_sqlx_migrations").await;
    assert_eq!(
        applied,
        i64::try_from(migrations).unwrap(),
        "each migration applied once"
    );
    // One database behind all four: an account added through one signs in on each.
    a.add_user("ann", PASSWORD).await;
    for server in [&a, &b, &c, &d] {
        password_session(&server.client(), "ann", PASSWORD).await;
    }
}
