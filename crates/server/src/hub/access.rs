//! The per-token access log: what every accepted use did, and reading it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hubkey_api::{AccessToken, TokenActivityPage, LAST_ADDRESSES};
use uuid::Uuid;

use super::{feed_cursor, feed_start, require_password_session, ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::registry::access::ResourceActions;
use crate::session::Caller;

/// What an API sign-in with a token is logged as.
pub const SIGN_IN_ACTION: &str = "api:sign-in";

impl Hub {
    /// Logs an accepted use of token `uuid` by `client`, doing `action`.
    pub(super) fn log_access(
        &self,
        uuid: &str,
        client: &ClientInfo,
        action: &str,
        now: DateTime<Utc>,
    ) {
        self.access_log.record(
            uuid,
            &client.ip.to_string(),
            &client.user_agent,
            action,
            now,
        );
    }

    /// Logs a registry token request: one line per repository granted
    /// (`registry:NAME:ACTIONS`), or `registry:login` when nothing was asked.
    pub(super) fn log_registry_access(
        &self,
        uuid: &str,
        client: &ClientInfo,
        granted: &[ResourceActions],
        now: DateTime<Utc>,
    ) {
        if !self.access_log.is_enabled() {
            return;
        }
        let address = client.ip.to_string();
        if granted.is_empty() {
            self.access_log
                .record(uuid, &address, &client.user_agent, "registry:login", now);
        }
        for access in granted {
            let action = format!(
                "registry:{}:{}",
                access.name,
                if access.actions.is_empty() {
                    "-".to_owned()
                } else {
                    access.actions.join(",")
                }
            );
            self.access_log
                .record(uuid, &address, &client.user_agent, &action, now);
        }
    }

    /// `GET /v2/access-tokens/{uuid}/activity`: the token's access log after `after`, oldest
    /// first, paged like the events feed (the lines not yet written are written first).
    pub async fn token_activity(
        &self,
        caller: &Caller,
        uuid: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TokenActivityPage> {
        require_password_session(caller)?;
        let after_id = feed_start(after, limit)?;
        let row = self
            .store
            .token(&caller.user_id, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        self.access_log.flush(&self.store).await?;
        let (entries, has_more) = self
            .store
            .access_page(&row.uuid, after_id, i64::from(limit))
            .await?;
        let cursor = feed_cursor(entries.last().map(|entry| entry.cursor.as_str()), after_id);
        Ok(TokenActivityPage {
            entries,
            cursor,
            has_more,
        })
    }

    /// Fills `token.last_addresses`: the stored and the pending, newest first.
    pub(super) async fn with_last_addresses(&self, token: &mut AccessToken) -> Result<()> {
        let limit = i64::try_from(LAST_ADDRESSES).unwrap_or(5);
        let stored = self
            .store
            .last_addresses(&token.uuid.to_string(), limit)
            .await?;
        self.fill_last_addresses(token, stored);
        Ok(())
    }

    /// Fills `last_addresses` of a page of `user_id`'s tokens (`offset`, `limit` as the page
    /// was read), with one query for the whole page.
    pub(super) async fn with_last_addresses_of_page(
        &self,
        user_id: &str,
        offset: i64,
        limit: i64,
        tokens: &mut [AccessToken],
    ) -> Result<()> {
        let per_token = i64::try_from(LAST_ADDRESSES).unwrap_or(5);
        let mut stored: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for (uuid, address, at) in self
            .store
            .last_addresses_of_page(user_id, offset, limit, per_token)
            .await?
        {
            stored.entry(uuid).or_default().push((address, at));
        }
        for token in tokens {
            let seen = stored.remove(&token.uuid.to_string()).unwrap_or_default();
            self.fill_last_addresses(token, seen);
        }
        Ok(())
    }

    /// `token.last_addresses` from `stored` and the access log's pending lines, newest first,
    /// each address once.
    fn fill_last_addresses(&self, token: &mut AccessToken, mut seen: Vec<(String, i64)>) {
        seen.extend(self.access_log.pending_addresses(&token.uuid.to_string()));
        seen.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        let mut addresses: Vec<String> = Vec::new();
        for (address, _) in seen {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
            if addresses.len() == LAST_ADDRESSES {
                break;
            }
        }
        token.last_addresses = addresses;
    }
}
