//! Rotation with an overlap: a successor with the same label, scopes, expiry and origin, and
//! the old token working until the overlap ends (in-flight CI jobs), then refused everywhere.

use chrono::{DateTime, Utc};
use hubkey_api::{
    AccessToken, PlainToken, RotateAccessTokenRequest, TokenEventKind, MAX_OVERLAP_SECONDS,
};
use uuid::Uuid;

use super::{require_password_session, ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::invalidation::Stale;
use crate::session::Caller;
use crate::store::{millis, EventDetail, NewToken, Store, TokenCheck, TokenSpec};

/// How long a reuse from one address and agent is one event.
pub const REUSE_COALESCE: std::time::Duration = std::time::Duration::from_secs(3600);
/// The most `reuse_detected` events one token records per [`REUSE_COALESCE`], however many
/// addresses and agents present it (an attacker rotating agents cannot flood the feed).
pub const REUSE_EVENTS_PER_TOKEN: u32 = 10;

/// What reuse was already recorded recently, so a hammering client makes one event.
pub struct ReuseSeen {
    /// (token, address, agent) recorded within the window.
    seen: moka::sync::Cache<(String, String, String), ()>,
    /// Events per token within the window.
    per_token: moka::sync::Cache<String, std::sync::Arc<std::sync::atomic::AtomicU32>>,
}

impl Default for ReuseSeen {
    fn default() -> Self {
        ReuseSeen {
            seen: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REUSE_COALESCE)
                .build(),
            per_token: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REUSE_COALESCE)
                .build(),
        }
    }
}

impl std::fmt::Debug for ReuseSeen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReuseSeen").finish_non_exhaustive()
    }
}

impl ReuseSeen {
    /// True when this reuse should be recorded (first from this address and agent in the
    /// window, and the token's cap not reached); notes it.
    fn first(&self, token: &str, address: &str, agent: &str) -> bool {
        let key = (token.to_owned(), address.to_owned(), agent.to_owned());
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, ());
        let count = self.per_token.get_with(token.to_owned(), Default::default);
        count.fetch_add(1, std::sync::atomic::Ordering::AcqRel) < REUSE_EVENTS_PER_TOKEN
    }
}

impl Hub {
    /// `POST /v2/access-tokens/{uuid}/rotate`: in one transaction under the account's token
    /// lock, a new token copying the old one's label, scopes, expiry, origin and client
    /// (an auto token's successor is the same device's auto token; the pruning rule runs at
    /// the next sign-in, not here, so a rotation never deletes anything), linked both ways,
    /// with a `rotated` event on each. The old token works until `overlap_seconds` after the request's `now`.
    /// A token already rotated cannot be rotated again (rotate its successor).
    pub async fn rotate_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        request: &RotateAccessTokenRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        if request.overlap_seconds > MAX_OVERLAP_SECONDS {
            return Err(Error::invalid(
                "overlap_seconds",
                format!("must be between 0 and {MAX_OVERLAP_SECONDS} (7 days)"),
            ));
        }
        let secret = PlainToken::generate();
        let digest = secret.digest();
        let hint = secret.hint();
        let creator_ip = client.ip.to_string();
        let creator_ua: String = client.user_agent.chars().take(256).collect();
        let new_uuid = Uuid::new_v4();
        let mut tx = self.store.begin().await?;
        let mut tokens = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        // The overlap runs from the request's time (the stamp, which orders the events, may
        // be a few milliseconds ahead of it).
        let overlap_until = now + chrono::Duration::seconds(i64::from(request.overlap_seconds));
        let now = tokens.stamp();
        let old = Store::token_in(&mut tokens, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        if old.rotated_to.is_some() {
            return Err(Error::invalid(
                "uuid",
                "this token was already rotated; rotate its successor",
            ));
        }
        let scopes = old.scopes();
        let spec = TokenSpec {
            label: &old.label,
            scopes: &scopes,
            origin: old.origin(),
            client_id: &old.client_id,
            expires_at: old.expires_at.map(crate::store::time_of),
        };
        let new = NewToken {
            uuid: new_uuid,
            digest: digest.as_str(),
            hint: &hint,
            spec,
            creator_ip: &creator_ip,
            creator_ua: &creator_ua,
        };
        Store::insert_token(&mut tokens, &new).await?;
        Store::link_rotation(&mut tokens, &old.uuid, &new_uuid.to_string(), overlap_until).await?;
        if !old.new_address_alerts {
            // The successor of a CI token is used from as many addresses.
            Store::set_new_address_alerts(&mut tokens, &new_uuid.to_string(), false).await?;
        }
        let new_row = Store::token_in(&mut tokens, new_uuid)
            .await?
            .ok_or_else(|| Error::Internal("token vanished inside its own transaction".into()))?;
        let old_row = Store::token_in(&mut tokens, uuid)
            .await?
            .ok_or_else(|| Error::Internal("token vanished inside its own transaction".into()))?;
        let created = EventDetail {
            address: Some(&creator_ip),
            user_agent: Some(creator_ua.as_str()).filter(|agent| !agent.is_empty()),
            ..EventDetail::default()
        };
        Store::insert_event_with(&mut tokens, TokenEventKind::Created, &new_row, created).await?;
        for (row, other) in [(&old_row, &new_row.uuid), (&new_row, &old_row.uuid)] {
            let detail = EventDetail {
                related_uuid: Some(other),
                ..EventDetail::default()
            };
            Store::insert_event_with(&mut tokens, TokenEventKind::Rotated, row, detail).await?;
        }
        self.commit(tx, &[Stale::token(&old_row.digest)]).await?;
        tracing::info!(old = %old_row.uuid, new = %new_row.uuid, overlap_until = millis(overlap_until), "token rotated");
        let mut answer = new_row.to_api(now);
        answer.token = secret.expose().to_owned();
        Ok(answer)
    }
}

impl Hub {
    /// A rotated-away token was presented after its overlap: records `reuse_detected` on it
    /// (naming its successor, the address and the agent), coalesced per token, address and
    /// agent per hour and capped per token; with the account's `revoke_on_reuse`, also
    /// deactivates the successor (a `deactivated` event). The request is refused either way.
    pub(super) async fn note_reuse(
        &self,
        found: &TokenCheck,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let address = client.ip.to_string();
        let agent: String = client.user_agent.chars().take(256).collect();
        if !self.reuse_seen.first(&found.uuid, &address, &agent) {
            return Ok(());
        }
        tracing::warn!(token = %found.uuid, %address, "a rotated-away token was used after its overlap");
        let mut tx = self.store.begin().await?;
        let mut tokens = Store::lock_account_tokens(&mut tx, &found.user_id, now).await?;
        let Ok(uuid) = Uuid::parse_str(&found.uuid) else {
            return Ok(());
        };
        let Some(old) = Store::token_in(&mut tokens, uuid).await? else {
            return Ok(());
        };
        let detail = EventDetail {
            address: Some(&address),
            user_agent: Some(&agent)
                .filter(|agent| !agent.is_empty())
                .map(String::as_str),
            related_uuid: old.rotated_to.as_deref(),
            ..EventDetail::default()
        };
        Store::insert_event_with(&mut tokens, TokenEventKind::ReuseDetected, &old, detail).await?;
        let mut stale = Vec::new();
        if Store::revoke_on_reuse_in(&mut tokens).await? {
            let successor = old
                .rotated_to
                .as_deref()
                .and_then(|uuid| Uuid::parse_str(uuid).ok());
            if let Some(successor) = successor {
                if let Some(mut next) = Store::token_in(&mut tokens, successor).await? {
                    if next.is_active {
                        next.is_active = false;
                        Store::update_token(&mut tokens, &next.uuid, &next.label, false).await?;
                        Store::insert_event(&mut tokens, TokenEventKind::Deactivated, &next)
                            .await?;
                        stale.push(Stale::token(&next.digest));
                    }
                }
            }
        }
        self.commit(tx, &stale).await?;
        Ok(())
    }

    /// `GET /v2/users/settings`.
    pub async fn account_settings(&self, caller: &Caller) -> Result<hubkey_api::AccountSettings> {
        require_password_session(caller)?;
        Ok(hubkey_api::AccountSettings {
            revoke_on_reuse: self.store.revoke_on_reuse(&caller.user_id).await?,
        })
    }

    /// `PATCH /v2/users/settings`: only the fields present change.
    pub async fn patch_account_settings(
        &self,
        caller: &Caller,
        patch: &hubkey_api::PatchAccountSettings,
    ) -> Result<hubkey_api::AccountSettings> {
        require_password_session(caller)?;
        if let Some(on) = patch.revoke_on_reuse {
            self.store.set_revoke_on_reuse(&caller.user_id, on).await?;
        }
        self.account_settings(caller).await
    }
}
