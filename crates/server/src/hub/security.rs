//! Containing a compromised account: changing the password, signing out everywhere,
//! disabling the account (admin), the account's security events, and the sweep that deletes
//! ended sessions and expired 2FA challenges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hubkey_api::{AccountEventKind, AccountEventPage, TokenEventKind};
use zeroize::Zeroizing;

use super::{feed_cursor, feed_start, require_password_session, ClientInfo, Hub};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::invalidation::{Ears, Stale};
use crate::password;
use crate::session::{self, Caller};
use crate::store::{EventOrigin, RevokeReason, Store, Swept, UserRow};
use crate::throttle::Attempt;

impl Hub {
    /// `PUT /v2/users/password`: checks `current` under the sign-in throttle (a wrong one
    /// counts like a failed login), sets `new` (the policy of `hubkeyd user add`), ends every
    /// other session of the account and, with `revoke_tokens`, deactivates every active
    /// token of it (with a `deactivated` event each). The caller's own session lives on.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: Zeroizing<String>,
        new: Zeroizing<String>,
        revoke_tokens: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<()> {
        require_password_session(caller)?;
        password::check_policy(&new).map_err(|err| rename_field(err, "new_password"))?;
        let attempt = Attempt::on_account(&caller.username, client.ip);
        let reservation = self.throttle.reserve(&attempt, now).await?;
        let user = self
            .check_password(reservation, &caller.username, current, now)
            .await?;
        let hash = self.hasher.hash(new).await?;
        let address = client.ip.to_string();
        let ended = self
            .store
            .set_password(
                &user.id,
                &hash,
                Some(&caller.session_id),
                client.event_origin(&address),
                now,
            )
            .await?;
        tracing::info!(user = %user.id, sessions_ended = ended, "password changed");
        if revoke_tokens {
            self.deactivate_all_tokens(&user.id, now).await?;
        }
        Ok(())
    }

    /// `POST /v2/users/sessions/revoke-all`: ends every session of the account, the caller's
    /// included, with a `sessions_revoked` event. Answers how many were live.
    pub async fn revoke_all_sessions(
        &self,
        caller: &Caller,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        require_password_session(caller)?;
        let address = client.ip.to_string();
        self.store
            .revoke_sessions(
                &caller.user_id,
                None,
                now,
                RevokeReason::RevokedAll,
                Some((
                    AccountEventKind::SessionsRevoked,
                    client.event_origin(&address),
                )),
            )
            .await
    }

    /// `GET /v2/users/security-events`: the account's security events after `after`, oldest
    /// first.
    pub async fn account_events(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: u32,
    ) -> Result<AccountEventPage> {
        require_password_session(caller)?;
        let after_id = feed_start(after, limit)?;
        let (events, has_more) = self
            .store
            .account_events_after(&caller.user_id, after_id, i64::from(limit))
            .await?;
        let cursor = feed_cursor(events.last().map(|event| event.cursor.as_str()), after_id);
        Ok(AccountEventPage {
            events,
            cursor,
            has_more,
        })
    }

    /// `hubkeyd user disable|enable`: a disabled account signs in nowhere, its tokens and
    /// bearers are refused and its sessions end; enabling lets it sign in again (ended
    /// sessions stay ended). Answers how many sessions ended.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let user = self.named_user(username).await?;
        let stale = [Stale::Account(user.id.clone())];
        let ears = self.ears(&stale).await;
        let ended = self
            .store
            .set_disabled(&user.id, disabled, &stale, ears.as_ref().map(Ears::id), now)
            .await?;
        self.forget(&stale);
        self.confirmed(ears).await;
        if disabled {
            self.store
                .record_account_event(
                    &user.id,
                    AccountEventKind::SessionsRevoked,
                    EventOrigin::default(),
                    now,
                )
                .await?;
        }
        Ok(ended)
    }

    /// `hubkeyd user reset-password`: sets `password` (the policy of `user add`) and ends
    /// every session of the account. Answers how many sessions ended.
    pub async fn reset_password(
        &self,
        username: &str,
        password: Zeroizing<String>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let user = self.named_user(username).await?;
        password::check_policy(&password)?;
        let hash = self.hasher.hash(password).await?;
        self.store
            .set_password(&user.id, &hash, None, EventOrigin::default(), now)
            .await
    }

    /// `hubkeyd user revoke-sessions`: ends every session of the account.
    pub async fn revoke_user_sessions(&self, username: &str, now: DateTime<Utc>) -> Result<u64> {
        let user = self.named_user(username).await?;
        self.store
            .revoke_sessions(
                &user.id,
                None,
                now,
                RevokeReason::RevokedAll,
                Some((AccountEventKind::SessionsRevoked, EventOrigin::default())),
            )
            .await
    }

    /// Deletes sessions that ended more than [`session::SESSION_RETENTION`] before `now`
    /// (with their spent refresh tokens), the 2FA challenges expired at `now`, and what the
    /// change table no longer needs (listeners silent for
    /// [`crate::change_table::LISTENER_RETENTION`], rows every listener has read).
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<Swept> {
        let first_kept = crate::usage::epoch_day(now) - i64::from(self.access_log_days) + 1;
        let access = self.store.delete_access_before(first_kept).await?;
        if access > 0 {
            tracing::debug!(
                lines = access,
                "deleted access-log lines past their retention"
            );
        }
        self.store
            .sweep(
                now - session::SESSION_RETENTION,
                now,
                now - super::device::GRANT_RETENTION,
                now - crate::change_table::LISTENER_RETENTION,
            )
            .await
    }

    /// Sweeps every `interval` on `clock`, for as long as the server runs. A failed sweep
    /// is logged and tried again at the next tick.
    pub async fn sweep_forever(self, clock: Clock, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.sweep(clock.now()).await {
                Ok(swept) if swept != Swept::default() => tracing::debug!(
                    sessions = swept.sessions,
                    challenges = swept.challenges,
                    device_grants = swept.device_grants,
                    cache_changes = swept.cache_changes,
                    cache_listeners = swept.cache_listeners,
                    "swept ended sessions, expired challenges and device grants, read changes"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "sweeping ended sessions failed"),
            }
        }
    }

    /// Deactivates every active token of the account, with a `deactivated` event each.
    async fn deactivate_all_tokens(&self, user_id: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let mut tokens = Store::lock_account_tokens(&mut tx, user_id, now).await?;
        let mut active = Store::active_tokens_in(&mut tokens).await?;
        for row in &mut active {
            row.is_active = false;
            Store::update_token(&mut tokens, &row.uuid, &row.label, false).await?;
            Store::insert_event(&mut tokens, TokenEventKind::Deactivated, row).await?;
        }
        let stale: Vec<Stale> = active.iter().map(|row| Stale::token(&row.digest)).collect();
        self.commit(tx, &stale).await?;
        Ok(())
    }

    async fn named_user(&self, username: &str) -> Result<UserRow> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))
    }
}

/// A policy refusal about `password`, told about `field` instead.
fn rename_field(err: Error, field: &str) -> Error {
    match err {
        Error::Invalid { fields, .. } => {
            let message = fields
                .into_values()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            Error::invalid(field, message)
        }
        other => other,
    }
}
