//! Failed sign-in throttling, per account and per client address.
//!
//! Throttling, not lock-out: a subject over its limit is refused until its oldest failure
//! in the window ages out, and the limits are per subject, so the real user signing in from
//! another address still gets in while an attacker's address is held back. Failures are kept
//! in the database, so a restart does not reset them and all instances share them.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};
use crate::store::{millis, Store};

/// A sliding-window limit on failures.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub failures: i64,
    pub window: Duration,
}

/// NIST 800-63B: at most 100 consecutive failures per account.
pub const PER_ACCOUNT: Limit = Limit {
    failures: 100,
    window: Duration::hours(1),
};

/// Per client address.
pub const PER_ADDRESS: Limit = Limit {
    failures: 30,
    window: Duration::minutes(3),
};

/// The throttling subjects of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    account: String,
    address: String,
}

impl Attempt {
    /// An attempt on `username` from `ip`. Unknown names count too, so the answer does not
    /// tell which names exist.
    pub fn new(username: &str, ip: IpAddr) -> Self {
        Attempt {
            account: format!("user:{}", username.to_lowercase()),
            address: format!("ip:{ip}"),
        }
    }

    /// Refuses with 429 when either subject is over its limit at `now`.
    pub async fn check(&self, store: &Store, now: DateTime<Utc>) -> Result<()> {
        for (subject, limit) in [(&self.address, PER_ADDRESS), (&self.account, PER_ACCOUNT)] {
            let (count, oldest) = store.failures_since(subject, now - limit.window).await?;
            if count >= limit.failures {
                let frees_at = oldest.unwrap_or(millis(now)) + limit.window.num_milliseconds();
                let wait_ms = (frees_at - millis(now)).max(1000);
                let retry_after = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1);
                return Err(Error::Throttled { retry_after });
            }
        }
        Ok(())
    }

    /// Counts a failure against both subjects.
    pub async fn fail(&self, store: &Store, now: DateTime<Utc>) -> Result<()> {
        let longest = PER_ACCOUNT.window.max(PER_ADDRESS.window);
        store
            .record_failure(
                &[self.account.clone(), self.address.clone()],
                now,
                now - longest,
            )
            .await
    }
}
