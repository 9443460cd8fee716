//! `hubkeyd copy-store`: a SQLite deployment moved to PostgreSQL answers every read as
//! before, and goes on working there.

use std::time::Duration;

use hubkey_api::{DesktopGenerateRequest, PatchAccessTokenRequest};
use hubkey_client::HubClient;
use serde_json::{json, Value};

use crate::harness::{
    all_events, assert_success, manual, password_session, DataDir, TestServer, PASSWORD,
};
use crate::pg::skip_unless_postgres;

/// What the API and the admin CLI answer about everything the copy moves.
async fn answers(server: &TestServer, ann: &HubClient, bob: &HubClient) -> Value {
    let mut all = serde_json::Map::new();
    for (name, client) in [("ann", ann), ("bob", bob)] {
        let tokens = client.list_all_tokens().await.expect("list tokens");
        let events = all_events(client).await;
        let security = client.account_events(None).await.expect("security events");
        all.insert(
            name.into(),
            json!({ "tokens": tokens, "events": events, "security": security }),
        );
    }
    for (what, args) in [
        ("users", ["user", "list"]),
        ("repositories", ["repo", "list"]),
    ] {
        let output = server.data().run(&args, None).await;
        assert_success(&output, what);
        all.insert(what.into(), String::from_utf8_lossy(&output.stdout).into());
    }
    Value::Object(all)
}

#[tokio::test]
async fn postgres_only_copy_store_moves_a_sqlite_deployment_with_the_same_answers() {
    if skip_unless_postgres(
        "postgres_only_copy_store_moves_a_sqlite_deployment_with_the_same_answers",
    ) {
        return;
    }
    let data = DataDir::on_sqlite();
    data.add_user("ann", PASSWORD).await;
    data.add_user("bob", PASSWORD).await;
    let mut server = TestServer::start_in(data).await;
    assert_success(
        &server
            .data()
            .run(&["repo", "public", "library/alpine"], None)
            .await,
        "repo public",
    );
    let ann_session = password_session(&server.client(), "ann", PASSWORD).await;
    let bob_session = password_session(&server.client(), "bob", PASSWORD).await;
    let ann = server.client().with_token(ann_session.token.clone());
    let bob = server.client().with_token(bob_session.token.clone());
    // Tokens of every kind and state, events of every kind, usage and security events.
    let kept = ann.create_token(&manual("kept")).await.expect("create");
    let off = ann.create_token(&manual("off")).await.expect("create");
    ann.patch_token(
        off.uuid,
        &PatchAccessTokenRequest {
            token_label: Some("off, relabelled".into()),
            is_active: Some(false),
            new_address_alerts: None,
        },
    )
    .await
    .expect("patch");
    let gone = ann.create_token(&manual("gone")).await.expect("create");
    ann.delete_token(gone.uuid).await.expect("delete");
    for n in 0..7 {
        let request = DesktopGenerateRequest {
            client_name: Some("copy-test".into()),
            device_name: Some(format!("device {n}")),
        };
        ann.desktop_generate(Some(&request))
            .await
            .expect("desktop-generate");
    }
    bob.create_token(&manual("bob's")).await.expect("create");
    for _ in 0..3 {
        server
            .client()
            .auth_token("ann", &kept.token)
            .await
            .expect("use the token");
    }
    // A security event: a password change (which keeps this session).
    ann.change_password(PASSWORD, "a-new-long-passphrase-9", false)
        .await
        .expect("change the password");
    tokio::time::sleep(hubkeyd::usage::FLUSH_INTERVAL + Duration::from_millis(500)).await;
    let before = answers(&server, &ann, &bob).await;

    let status = server.stop();
    assert!(status.success(), "{status}");
    let sqlite = server.data().database_url();
    let url = server.data_mut().move_to_new_postgres_database();
    let output = server
        .data()
        .run(&["--database", &sqlite, "copy-store", "--to", &url], None)
        .await;
    assert_success(&output, "copy-store");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("access_tokens\t8 rows"), "{said}");

    // The same data directory (its server.key: the sessions stay valid), now on PostgreSQL.
    server.restart().await;
    let ann = server.client().with_token(ann_session.token);
    let bob = server.client().with_token(bob_session.token);
    let after = answers(&server, &ann, &bob).await;
    assert_eq!(
        after, before,
        "the answers on PostgreSQL differ from SQLite's"
    );

    // It goes on there: new events follow the copied ones in the feed.
    let events = all_events(&ann).await.len();
    let new = ann
        .create_token(&manual("after the move"))
        .await
        .expect("create on PostgreSQL");
    let feed = all_events(&ann).await;
    assert_eq!(feed.len(), events + 1);
    assert_eq!(feed.last().map(|event| event.token_uuid), Some(new.uuid));

    // A second copy into a database with accounts is refused.
    let output = server
        .data()
        .run(&["--database", &sqlite, "copy-store", "--to", &url], None)
        .await;
    assert!(
        !output.status.success(),
        "a copy into a used database succeeded"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("already has accounts"));
}
