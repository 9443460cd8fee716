//! Rotation with an overlap: a successor with the same label, scopes, expiry and origin, and
//! the old token working until the overlap ends (in-flight CI jobs), then refused everywhere.

use chrono::{DateTime, Utc};
use hubkey_api::{
    AccessToken, PlainToken, RotateAccessTokenRequest, TokenEventKind, MAX_OVERLAP_SECONDS,
};
use uuid::Uuid;

use super::{require_password_session, ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::session::Caller;
use crate::store::{millis, EventDetail, NewToken, Store, TokenSpec};

impl Hub {
    /// `POST /v2/access-tokens/{uuid}/rotate`: in one transaction under the account's token
    /// lock, a new token copying the old one's label, scopes, expiry, origin and client
    /// (an auto token's successor is the same device's auto token; the pruning rule runs at
    /// the next sign-in, not here, so a rotation never deletes anything), linked both ways,
    /// with a `rotated` event on each. The old token works until `overlap_seconds` from now.
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
        let overlap_until = now + chrono::Duration::seconds(i64::from(request.overlap_seconds));
        Store::link_rotation(&mut tokens, &old.uuid, &new_uuid.to_string(), overlap_until).await?;
        let new_row = Store::token_in(&mut tokens, new_uuid)
            .await?
            .ok_or_else(|| Error::Internal("token vanished inside its own transaction".into()))?;
        let old_row = Store::token_in(&mut tokens, uuid)
            .await?
            .ok_or_else(|| Error::Internal("token vanished inside its own transaction".into()))?;
        Store::insert_event(&mut tokens, TokenEventKind::Created, &new_row).await?;
        for (row, other) in [(&old_row, &new_row.uuid), (&new_row, &old_row.uuid)] {
            let detail = EventDetail {
                related_uuid: Some(other),
                ..EventDetail::default()
            };
            Store::insert_event_with(&mut tokens, TokenEventKind::Rotated, row, detail).await?;
        }
        tx.commit().await?;
        self.tokens.forget(&old_row.digest);
        tracing::info!(old = %old_row.uuid, new = %new_row.uuid, overlap_until = millis(overlap_until), "token rotated");
        let mut answer = new_row.to_api(now);
        answer.token = secret.expose().to_owned();
        Ok(answer)
    }
}
