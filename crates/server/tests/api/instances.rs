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
