//! When a token leaks: a secret scanner's report (GitHub's partner program) and the public
//! revocation endpoint. Both deactivate, never delete (the owner decides), and write an
//! event the desktop app turns into an alert.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use hubkey_api::{
    PlainToken, SecretScanningLabel, SecretScanningMatch, SecretScanningResult, TokenDigest,
    TokenEventKind, MAX_REVOKE_CREDENTIALS,
};

use super::Hub;
use crate::access_log::cut;
use crate::error::{Error, Result};
use crate::invalidation::Stale;
use crate::store::{millis, EventDetail, Store};
use crate::throttle::Subject;

/// The most findings one secret-scanning report may hold.
pub const MAX_SCANNING_MATCHES: usize = 1000;
/// The longest `url` or `source` of a finding that is stored (longer ones are cut).
const MAX_FINDING_TEXT: usize = 2048;
/// Public revocation requests one address (an IPv4 address or an IPv6 /64) may send per
/// [`REVOKE_WINDOW`].
pub const REVOKE_PER_ADDRESS: u32 = 10;
/// The window of [`REVOKE_PER_ADDRESS`].
pub const REVOKE_WINDOW: chrono::Duration = chrono::Duration::minutes(1);
/// Addresses the revocation limiter remembers at once (about 100 bytes each); beyond, the
/// least recently seen are forgotten (they get a fresh window: a bound on memory, not a
/// hole: each still gets at most its limit per window while it is remembered).
const REVOKE_ADDRESSES: u64 = 100_000;

/// Per-address fixed windows of the public revocation endpoint.
pub struct RevokeLimiter {
    windows: moka::sync::Cache<Subject, Arc<Mutex<(i64, u32)>>>,
}

impl std::fmt::Debug for RevokeLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeLimiter")
            .field("addresses", &self.windows.entry_count())
            .finish()
    }
}

impl Default for RevokeLimiter {
    fn default() -> Self {
        RevokeLimiter {
            windows: moka::sync::Cache::builder()
                .max_capacity(REVOKE_ADDRESSES)
                .time_to_idle(std::time::Duration::from_secs(120))
                .build(),
        }
    }
}

impl RevokeLimiter {
    /// Counts one request from `ip` at `now`; over the limit, the seconds until its window
    /// ends.
    fn take(&self, ip: IpAddr, now: DateTime<Utc>) -> Result<()> {
        let window = self
            .windows
            .get_with(Subject::address(ip), || Arc::new(Mutex::new((0, 0))));
        let mut window = window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = millis(now);
        let length = REVOKE_WINDOW.num_milliseconds();
        if now >= window.0 + length {
            *window = (now, 0);
        }
        if window.1 >= REVOKE_PER_ADDRESS {
            let wait_ms = window.0 + length - now;
            return Err(Error::RateLimited {
                retry_after: u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1),
            });
        }
        window.1 += 1;
        Ok(())
    }
}

/// Digests of tokens a public revocation found, waiting for the background writer; a set,
/// so one token reported many times is one write.
#[derive(Debug, Default)]
pub struct RevocationQueue {
    pending: Mutex<std::collections::HashSet<String>>,
    wake: tokio::sync::Notify,
    /// Held by a drain from taking its batch until it is written.
    writing: tokio::sync::Mutex<()>,
}

/// How long the writer waits after the first queued token before writing, so tokens that
/// arrive together are one transaction per account.
const REVOCATION_BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

impl Hub {
    /// `POST /v2/secret-scanning/github`, once the signature was checked: labels each
    /// finding, and deactivates each of our tokens with a `leaked` event naming the URL and
    /// source. The same finding reported again changes nothing and records nothing.
    pub async fn report_leaked(
        &self,
        findings: &[SecretScanningMatch],
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretScanningResult>> {
        if findings.len() > MAX_SCANNING_MATCHES {
            return Err(Error::invalid(
                "body",
                format!("at most {MAX_SCANNING_MATCHES} findings per report"),
            ));
        }
        let mut results = Vec::with_capacity(findings.len());
        for finding in findings {
            let found = match PlainToken::parse(&finding.token) {
                Ok(token) => self.store.token_by_digest(token.digest().as_str()).await?,
                Err(_) => None,
            };
            let label = match found {
                Some(found) => {
                    self.deactivate_leaked(&found.token.user_id, &found.token.uuid, finding, now)
                        .await?;
                    SecretScanningLabel::TruePositive
                }
                None => SecretScanningLabel::FalsePositive,
            };
            results.push(SecretScanningResult {
                token_raw: finding.token.clone(),
                token_type: finding.token_type.clone(),
                label,
            });
        }
        Ok(results)
    }

    async fn deactivate_leaked(
        &self,
        user_id: &str,
        uuid: &str,
        finding: &SecretScanningMatch,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let url = cut(&finding.url, MAX_FINDING_TEXT);
        let source = cut(&finding.source, MAX_FINDING_TEXT);
        let Ok(uuid) = uuid::Uuid::parse_str(uuid) else {
            return Ok(());
        };
        let mut tx = self.store.begin().await?;
        let mut tokens = Store::lock_account_tokens(&mut tx, user_id, now).await?;
        let Some(mut row) = Store::token_in(&mut tokens, uuid).await? else {
            return Ok(());
        };
        if Store::has_event_about(&mut tokens, &row.uuid, TokenEventKind::Leaked, url, source)
            .await?
        {
            return Ok(());
        }
        if row.is_active {
            row.is_active = false;
            Store::update_token(&mut tokens, &row.uuid, &row.label, false).await?;
        }
        let detail = EventDetail {
            url: Some(url),
            source: Some(source),
            ..EventDetail::default()
        };
        Store::insert_event_with(&mut tokens, TokenEventKind::Leaked, &row, detail).await?;
        self.commit(tx, &[Stale::token(&row.digest)]).await?;
        tracing::warn!(token = %row.uuid, source, "a token was reported leaked by secret scanning and deactivated");
        Ok(())
    }

    /// `POST /v2/credentials/revoke`: no authentication, the same answer whatever was sent.
    /// Each credential that parses as a token costs one probe of the digest index (never
    /// the cache, whose hits would be faster for real tokens, and no row read, which would
    /// be slower), whether or not it exists; the digests found are queued for the
    /// background writer, which deactivates the live ones with a `reported` event, so the
    /// answer does not wait for a write either. A string that is not a well-formed token
    /// costs nothing.
    pub async fn revoke_credentials(
        &self,
        credentials: &[String],
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if credentials.len() > MAX_REVOKE_CREDENTIALS {
            return Err(Error::invalid(
                "credentials",
                format!("at most {MAX_REVOKE_CREDENTIALS} per request"),
            ));
        }
        self.revoke_limiter.take(ip, now)?;
        let mut digests: Vec<TokenDigest> = credentials
            .iter()
            .filter_map(|credential| PlainToken::parse(credential).ok())
            .map(|token| token.digest())
            .collect();
        digests.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        digests.dedup();
        let mut found = Vec::new();
        for digest in digests {
            // The same index probe whether or not the token exists: no row is read.
            if self.store.digest_exists(digest.as_str()).await? {
                found.push(digest);
            }
        }
        if !found.is_empty() {
            let mut pending = self
                .revocations
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.extend(found.iter().map(|digest| digest.as_str().to_owned()));
            drop(pending);
            self.revocations.wake.notify_one();
        }
        Ok(())
    }

    /// Deactivates every token the public revocation queued, each with a `reported` event
    /// (none for a token that is no longer active: a second report is not news). Called by
    /// [`Hub::revocations_forever`], and at shutdown.
    pub async fn write_revocations(&self, now: DateTime<Utc>) -> Result<usize> {
        let _writing = self.revocations.writing.lock().await;
        let batch = std::mem::take(
            &mut *self
                .revocations
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut by_account: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for digest in batch {
            if let Some(found) = self.store.token_by_digest(&digest).await? {
                by_account
                    .entry(found.token.user_id.clone())
                    .or_default()
                    .push((found.token.uuid.clone(), digest));
            }
        }
        let mut written = 0;
        for (user_id, tokens_of) in by_account {
            let mut tx = self.store.begin().await?;
            let mut tokens = match Store::lock_account_tokens(&mut tx, &user_id, now).await {
                Ok(tokens) => tokens,
                // The account is gone, and its tokens with it.
                Err(Error::Unauthorized(_)) => continue,
                Err(other) => return Err(other),
            };
            let mut stale = Vec::new();
            for (uuid, digest) in tokens_of {
                let Ok(parsed) = uuid::Uuid::parse_str(&uuid) else {
                    continue;
                };
                let Some(mut row) = Store::token_in(&mut tokens, parsed).await? else {
                    continue;
                };
                if !row.is_active {
                    continue;
                }
                row.is_active = false;
                Store::update_token(&mut tokens, &row.uuid, &row.label, false).await?;
                Store::insert_event(&mut tokens, TokenEventKind::Reported, &row).await?;
                stale.push(Stale::token(&digest));
                written += 1;
            }
            self.commit(tx, &stale).await?;
        }
        if written > 0 {
            tracing::warn!(
                tokens = written,
                "tokens reported at the public revocation endpoint were deactivated"
            );
        }
        Ok(written)
    }

    /// Writes queued revocations as they arrive; run as a task.
    pub async fn revocations_forever(self, clock: crate::clock::Clock) {
        loop {
            self.revocations.wake.notified().await;
            tokio::time::sleep(REVOCATION_BATCH_DELAY).await;
            if let Err(err) = self.write_revocations(clock.now()).await {
                tracing::warn!(error = %err, "deactivating reported tokens failed");
            }
        }
    }
}
