//! Test fixtures shared by the core's unit tests (compiled for tests only).

use chrono::{DateTime, Utc};
use hubkey_api::{Origin, TokenEvent, TokenEventKind};
use uuid::Uuid;

/// A `kind` event about manual token `token` (labelled `token N`) at `at`, with feed cursor
/// `cursor`, and nothing else said (no address, agent, URL or related token).
pub(crate) fn token_event(
    cursor: impl Into<String>,
    at: DateTime<Utc>,
    kind: TokenEventKind,
    token: u128,
) -> TokenEvent {
    TokenEvent {
        cursor: cursor.into(),
        kind,
        token_uuid: Uuid::from_u128(token),
        token_label: format!("token {token}"),
        generated_by: Origin::Manual,
        at,
        last_used: None,
        client_id: String::new(),
        url: None,
        source: None,
        address: None,
        user_agent: None,
        related_token: None,
    }
}
