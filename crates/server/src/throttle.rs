//! Failed sign-in throttling, per account and per client address.
//!
//! Throttling, not lock-out: a subject over its limit is refused until its oldest failure
//! in the window ages out, and the limits are per subject, so the real user signing in from
//! another address still gets in while an attacker's address is held back.
//!
//! Failures are written to the database (a restart does not reset them) and mirrored in
//! memory, so the check on every sign-in and every registry token request costs no query.
//! The mirror is loaded at start; instances sharing a database do not yet see each other's
//! failures until they restart.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};
use crate::store::{millis, Store};

/// A sliding-window limit on failures.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub failures: usize,
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

/// The longest window: failures older than this no longer matter.
fn horizon() -> Duration {
    PER_ACCOUNT.window.max(PER_ADDRESS.window)
}

/// Subjects tracked before a sweep drops those with no recent failure.
const SWEEP_AT: usize = 50_000;

/// Recent failures per subject, in time order.
#[derive(Debug, Default)]
pub struct Throttle {
    recent: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl Throttle {
    /// The failures of the last hour, from the store.
    pub async fn load(store: &Store, now: DateTime<Utc>) -> Result<Self> {
        let mut recent: HashMap<String, VecDeque<i64>> = HashMap::new();
        for (subject, at) in store.failures_since(now - horizon()).await? {
            recent.entry(subject).or_default().push_back(at);
        }
        Ok(Throttle {
            recent: Mutex::new(recent),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<i64>>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The throttling subjects of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `None` when the attempt names no account (a forged 2FA challenge).
    account: Option<String>,
    address: String,
}

impl Attempt {
    /// An attempt on `username` from `ip`. Unknown names count too, so the answer does not
    /// tell which names exist.
    pub fn new(username: &str, ip: IpAddr) -> Self {
        Attempt {
            account: Some(format!("user:{}", username.to_lowercase())),
            address: format!("ip:{ip}"),
        }
    }

    /// An attempt from `ip` that names no account.
    pub fn from_address(ip: IpAddr) -> Self {
        Attempt {
            account: None,
            address: format!("ip:{ip}"),
        }
    }

    fn subjects(&self) -> impl Iterator<Item = (&String, Limit)> {
        std::iter::once((&self.address, PER_ADDRESS))
            .chain(self.account.iter().map(|account| (account, PER_ACCOUNT)))
    }

    /// Refuses with 429 when either subject is over its limit at `now`.
    pub fn check(&self, throttle: &Throttle, now: DateTime<Utc>) -> Result<()> {
        let recent = throttle.lock();
        let now_ms = millis(now);
        for (subject, limit) in self.subjects() {
            let Some(failures) = recent.get(subject) else {
                continue;
            };
            let since = now_ms - limit.window.num_milliseconds();
            let in_window: Vec<i64> = failures.iter().copied().filter(|at| *at > since).collect();
            if in_window.len() >= limit.failures {
                // Free again when enough of the oldest failures have aged out.
                let freeing = in_window[in_window.len() - limit.failures];
                let wait_ms = (freeing + limit.window.num_milliseconds() - now_ms).max(1000);
                let retry_after = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1);
                return Err(Error::Throttled { retry_after });
            }
        }
        Ok(())
    }

    /// Counts a failure against both subjects, in memory and in the store.
    pub async fn fail(&self, throttle: &Throttle, store: &Store, now: DateTime<Utc>) -> Result<()> {
        {
            let mut recent = throttle.lock();
            let forget_before = millis(now - horizon());
            for (subject, _) in self.subjects() {
                let failures = recent.entry(subject.clone()).or_default();
                while failures.front().is_some_and(|at| *at <= forget_before) {
                    failures.pop_front();
                }
                failures.push_back(millis(now));
            }
            if recent.len() > SWEEP_AT {
                recent.retain(|_, failures| failures.back().is_some_and(|at| *at > forget_before));
            }
        }
        let subjects: Vec<String> = self
            .subjects()
            .map(|(subject, _)| subject.clone())
            .collect();
        store.record_failure(&subjects, now, now - horizon()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_limit_waits_until_its_oldest_failure_ages_out() {
        let throttle = Throttle::default();
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let attacker = Attempt::new("ann", "127.0.0.9".parse().unwrap());
        {
            let mut recent = throttle.lock();
            for i in 0..30 {
                let at = millis(start + Duration::seconds(i));
                recent
                    .entry(attacker.address.clone())
                    .or_default()
                    .push_back(at);
                recent
                    .entry(attacker.account.clone().unwrap())
                    .or_default()
                    .push_back(at);
            }
        }
        let now = start + Duration::seconds(60);
        match attacker.check(&throttle, now) {
            Err(Error::Throttled { retry_after }) => assert_eq!(retry_after, 120),
            other => panic!("expected 429, got {other:?}"),
        }
        // The real user from another address is not held back.
        assert!(Attempt::new("ann", "127.0.0.10".parse().unwrap())
            .check(&throttle, now)
            .is_ok());
        // Three minutes after the first failure the address may try again.
        assert!(attacker
            .check(&throttle, start + Duration::seconds(181))
            .is_ok());
    }
}
