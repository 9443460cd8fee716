//! Several hubkeyd instances of one deployment: the same `server.key` and database, each
//! its own process and port, as an operator runs them behind a load balancer. A person's
//! requests may land on any of them; what one instance changes, every other one honours.

use crate::harness::{manual, password_session, TestServer, PASSWORD};

#[tokio::test]
async fn a_session_and_a_token_from_one_instance_work_on_another() {
    let first = TestServer::start().await;
    let second = first.another_instance().await;
    assert_ne!(first.url, second.url);
    first.add_user("ann", PASSWORD).await;

    // A session opened on the first is signed with the shared server.key: the second
    // instance accepts it.
    let session = password_session(&first.client(), "ann", PASSWORD).await;
    let on_first = first.client().with_token(session.token.clone());
    let on_second = second.client().with_token(session.token);
    let created = on_first.create_token(&manual("ci")).await.expect("create");
    let listed = on_second
        .list_all_tokens()
        .await
        .expect("list on the second");
    assert!(listed.iter().any(|token| token.uuid == created.uuid));
    second
        .client()
        .auth_token("ann", &created.token)
        .await
        .expect("the token made on the first signs in on the second");
}

#[tokio::test]
async fn uses_flushed_by_two_instances_merge_the_latest_use_wins_and_counts_add() {
    let mut first = TestServer::start().await;
    let mut second = first.another_instance().await;
    first.add_user("ann", PASSWORD).await;
    let session = password_session(&first.client(), "ann", PASSWORD).await;
    let created = first
        .client()
        .with_token(session.token.clone())
        .create_token(&manual("ci"))
        .await
        .expect("create");

    // Two earlier uses through the second instance, three later ones through the first.
    for _ in 0..2 {
        second
            .client()
            .auth_token("ann", &created.token)
            .await
            .expect("a use on the second");
    }
    let later = chrono::Utc::now();
    for _ in 0..3 {
        first
            .client()
            .auth_token("ann", &created.token)
            .await
            .expect("a use on the first");
    }
    // The first flushes (at its stop) before the second: the second's older use arrives last
    // and must not move last_used back; its counts add to the first's.
    first.stop();
    second.stop();
    first.restart().await;
    let token = first
        .client()
        .with_token(session.token)
        .get_token(created.uuid)
        .await
        .expect("get");
    let last_used = token.last_used.expect("last_used after the uses");
    assert!(
        last_used >= later - chrono::Duration::milliseconds(1),
        "{last_used} is older than the first instance's uses ({later})"
    );
    let uses: u64 = token.usage.iter().map(|day| day.uses).sum();
    assert_eq!(uses, 5, "{:?}", token.usage);
}
