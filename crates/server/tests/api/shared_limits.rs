//! Sign-in limits shared by two hubkeyd instances on one PostgreSQL database: guesses spread
//! over both evaluate no more than one instance alone allows, whatever the number in flight.

use std::net::Ipv4Addr;

use hubkey_client::{ClientError, HubClient};

use crate::harness::{password_session, TestServer, PASSWORD};
use crate::limits::{
    all_at_once, attacker_address, challenge, concurrent_wrong_passwords, wrong_codes,
    wrong_passwords_until_throttled, Tally, IN_FLIGHT, WRONG_CODE,
};
use crate::pg::skip_unless_postgres;

/// The i-th attempt's client: from `address(i)`, through instance i mod 2.
fn over<'a>(
    instances: [&'a TestServer; 2],
    address: impl Fn(usize) -> Ipv4Addr + 'a,
) -> impl Fn(usize) -> HubClient + 'a {
    move |i| instances[i % 2].client_at(address(i))
}

#[tokio::test]
async fn postgres_only_a_thousand_wrong_passwords_from_one_address_over_two_instances_evaluate_its_limit(
) {
    if skip_unless_postgres(
        "postgres_only_a_thousand_wrong_passwords_from_one_address_over_two_instances_evaluate_its_limit",
    ) {
        return;
    }
    let first = TestServer::start().await;
    let second = first.another_instance().await;
    first.add_user("ann", PASSWORD).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 9);

    let burst =
        concurrent_wrong_passwords(over([&first, &second], |_| attacker), "ann", IN_FLIGHT).await;
    println!("1 000 in flight from one address over two instances: {burst:?}");
    assert!(burst.other.is_empty(), "only 401 and 429: {burst:?}");
    assert_eq!(burst.evaluated + burst.throttled, IN_FLIGHT);
    let after =
        wrong_passwords_until_throttled(over([&first, &second], |_| attacker), "ann", 400).await;
    // The address's limit (30 in 3 minutes) holds over both instances, exactly.
    assert_eq!(burst.evaluated + after, 30, "guesses evaluated in all");

    // The real user, from another address, still gets in through either.
    password_session(&second.client_from(10), "ann", PASSWORD).await;
    password_session(&first.client_from(10), "ann", PASSWORD).await;
}

#[tokio::test]
async fn postgres_only_a_thousand_wrong_passwords_from_a_thousand_addresses_over_two_instances_evaluate_the_account_limit(
) {
    if skip_unless_postgres(
        "postgres_only_a_thousand_wrong_passwords_from_a_thousand_addresses_over_two_instances_evaluate_the_account_limit",
    ) {
        return;
    }
    let first = TestServer::start().await;
    let second = first.another_instance().await;
    first.add_user("ann", PASSWORD).await;

    let burst =
        concurrent_wrong_passwords(over([&first, &second], attacker_address), "ann", IN_FLIGHT)
            .await;
    println!("1 000 in flight from 1 000 addresses over two instances: {burst:?}");
    assert!(burst.other.is_empty(), "only 401 and 429: {burst:?}");
    assert_eq!(burst.evaluated + burst.throttled, IN_FLIGHT);
    let after = wrong_passwords_until_throttled(
        over([&first, &second], |i| attacker_address(IN_FLIGHT + i)),
        "ann",
        400,
    )
    .await;
    // The account's limit (100 an hour) holds over both instances, exactly.
    assert_eq!(burst.evaluated + after, 100, "guesses evaluated in all");
}

#[tokio::test]
async fn postgres_only_codes_on_one_challenge_over_two_instances_compare_at_most_five() {
    if skip_unless_postgres(
        "postgres_only_codes_on_one_challenge_over_two_instances_compare_at_most_five",
    ) {
        return;
    }
    let first = TestServer::start().await;
    let second = first.another_instance().await;
    first.add_user("ann", PASSWORD).await;
    let secret = first.enable_totp("ann").await;
    let challenge = challenge(&first.client_from(12), "ann").await;
    let codes = wrong_codes(&secret, crate::harness::unix_now(), IN_FLIGHT);
    let instances = [&first, &second];

    // From a thousand addresses, so that no address's own limit is what stops them.
    let answers = all_at_once(codes.iter().enumerate().map(|(i, code)| {
        let client = instances[i % 2].client_at(attacker_address(i));
        let (challenge, code) = (challenge.clone(), code.clone());
        async move { client.login_2fa(&challenge, &code).await }
    }))
    .await;
    let mut tally = Tally::default();
    let mut expired = 0;
    for answer in answers {
        match answer {
            Err(ClientError::ChallengeExpired) => expired += 1,
            answer => tally.add(answer, WRONG_CODE),
        }
    }
    println!(
        "1 000 codes in flight on one challenge over two instances: {tally:?}, {expired} \
         challenge_expired"
    );
    assert!(tally.other.is_empty(), "unexpected answers: {tally:?}");
    // Then one at a time, alternating instances, until the challenge ends.
    let mut compared = tally.evaluated;
    let mut ended = false;
    for (i, code) in codes.iter().take(12).enumerate() {
        let client = instances[i % 2].client_at(attacker_address(IN_FLIGHT + i));
        match client.login_2fa(&challenge, code).await {
            Err(ClientError::Unauthorized { message }) if message == WRONG_CODE => compared += 1,
            Err(ClientError::ChallengeExpired) => {
                ended = true;
                break;
            }
            // The account's own limit of codes in flight or in a row: not a comparison.
            Err(ClientError::Throttled { .. }) => {}
            other => panic!("expected a wrong code or the end of the challenge, got {other:?}"),
        }
    }
    assert!(ended, "the challenge ends after its attempts");
    assert!(
        compared <= 5,
        "{compared} codes compared on the challenge in all; a challenge allows 5"
    );
}
