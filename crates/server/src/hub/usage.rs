//! Token use: the check of a presented PAT on the hot path, which records the use, and the
//! usage figures shown with each token (stored and not yet flushed, merged).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hubkey_api::{AccessToken, DailyUse, PlainToken};

use super::{Hub, USAGE_DAYS};
use crate::error::{Error, Result};
use crate::invalidation::token_key;
use crate::store::{TokenCheck, TokenRow};
use crate::usage::epoch_day;

impl Hub {
    /// Checks a PAT presented by `username` (or by anyone, for `None`) and records its use.
    /// Every refusal (malformed, bad checksum, unknown, someone else's, inactive, expired) is
    /// the same error to the caller; the reason is logged.
    pub async fn use_token(
        &self,
        username: Option<&str>,
        secret: &str,
        client: &super::ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Arc<TokenCheck>> {
        let token = PlainToken::parse(secret).map_err(|err| {
            tracing::debug!(reason = %err, "access token refused");
            Error::bad_credentials()
        })?;
        let digest = token.digest();
        let load = || async {
            Ok(self
                .store
                .token_check_by_digest(digest.as_str())
                .await?
                .map(Arc::new))
        };
        // Keyed by the digest's first digits (what other instances announce): a hit may be
        // another token's, and then the database answers.
        let found = match self
            .tokens
            .get_or_load(token_key(digest.as_str()), load)
            .await?
        {
            Some(hit) if hit.digest != digest.as_str() => load().await?,
            found => found,
        };
        let reason = match &found {
            None => Some("unknown"),
            Some(found) if username.is_some_and(|name| name != found.username) => {
                Some("belongs to another account")
            }
            Some(found) if found.user_disabled => Some("account disabled"),
            Some(found) if found.is_expired(now) => Some("expired"),
            Some(found) if !found.is_active => Some("inactive"),
            // Checked against the row's own `overlap_until` at `now`, cached or not: the
            // refusal starts at the overlap's end, not up to TOKEN_CACHE_AGE later.
            Some(found) if found.is_rotated_away(now) => Some("rotated away"),
            Some(_) => None,
        };
        match (reason, found) {
            (None, Some(found)) => {
                self.usage.record(&found.uuid, now);
                Ok(found)
            }
            (reason, found) => {
                tracing::debug!(reason = reason.unwrap_or("unknown"), "access token refused");
                if let (Some("rotated away"), Some(found)) = (reason, found) {
                    // A refusal all the same, whether or not the record could be written.
                    if let Err(err) = self.note_reuse(&found, client, now).await {
                        tracing::warn!(error = %err, "recording a rotated token's reuse failed");
                    }
                }
                Err(Error::bad_credentials())
            }
        }
    }

    /// The API form of `row` with its stored usage (`(uuid, day, uses)` rows, any tokens) and
    /// its unflushed uses merged in.
    pub(super) fn with_usage(
        &self,
        row: &TokenRow,
        stored: &[(String, i64, i64)],
        now: DateTime<Utc>,
    ) -> AccessToken {
        let mut days: std::collections::BTreeMap<i64, i64> = stored
            .iter()
            .filter(|(uuid, _, _)| *uuid == row.uuid)
            .map(|(_, day, uses)| (*day, *uses))
            .collect();
        let mut token = row.to_api(now);
        if let Some(pending) = self.usage.pending(&row.uuid) {
            for (day, uses) in pending.days.iter() {
                *days.entry(day).or_insert(0) += uses;
            }
            let pending_last = DateTime::from_timestamp_millis(pending.last_used);
            token.last_used = token.last_used.max(pending_last);
        }
        let first_day = epoch_day(now) - USAGE_DAYS + 1;
        token.usage = days
            .into_iter()
            .filter(|(day, _)| *day >= first_day)
            .filter_map(|(day, uses)| {
                Some(DailyUse {
                    day: DateTime::from_timestamp(day * 86_400, 0)?.date_naive(),
                    uses: u64::try_from(uses).ok()?,
                })
            })
            .collect();
        token
    }
}
