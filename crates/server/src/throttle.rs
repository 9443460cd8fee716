//! Failed sign-in throttling, per account and per client address.
//!
//! Throttling, not lock-out: a subject over its limit is refused until its oldest failure
//! in the window ages out, and the limits are per subject, so the real user signing in from
//! another address still gets in while an attacker's address is held back.
//!
//! An address the account fully signed in from in the last [`KNOWN_FOR`] is not held back by
//! the account's limit (only by its own), so guesses spread over many addresses cannot lock
//! the real user out of the places they sign in from; a valid personal access token is never
//! held back by the account's limit either (see `Hub::prove`).
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

/// How long a full sign-in keeps its address known to the account.
pub const KNOWN_FOR: Duration = Duration::days(30);

/// The longest window: failures older than this no longer matter.
fn horizon() -> Duration {
    PER_ACCOUNT.window.max(PER_ADDRESS.window)
}

/// Subjects tracked before a sweep drops those with no recent failure.
const SWEEP_AT: usize = 50_000;

/// Failed sign-in throttling: the failures and known addresses in memory, and the store
/// they are written to, so callers hand it an [`Attempt`] and nothing else.
#[derive(Debug)]
pub struct Throttle {
    store: Store,
    memory: Memory,
}

/// Recent failures per subject, in time order; and the addresses each account signed in from.
#[derive(Debug, Default)]
struct Memory {
    recent: Mutex<HashMap<String, VecDeque<i64>>>,
    /// (account subject, address subject) → last full sign-in, Unix ms.
    known: Mutex<HashMap<(String, String), i64>>,
}

impl Throttle {
    /// The failures of the last hour and the known addresses, from `store`, which later
    /// failures and sign-ins are written to.
    pub async fn load(store: Store, now: DateTime<Utc>) -> Result<Self> {
        let mut recent: HashMap<String, VecDeque<i64>> = HashMap::new();
        for (subject, at) in store.failures_since(now - horizon()).await? {
            recent.entry(subject).or_default().push_back(at);
        }
        let known = store
            .sign_in_addresses_since(now - KNOWN_FOR)
            .await?
            .into_iter()
            .map(|(account, address, at)| ((account, address), at))
            .collect();
        Ok(Throttle {
            store,
            memory: Memory {
                recent: Mutex::new(recent),
                known: Mutex::new(known),
            },
        })
    }

    /// Refuses with 429 when either subject of `attempt` is over its limit at `now`; the
    /// account's limit does not apply from an address the account signed in from in the last
    /// [`KNOWN_FOR`].
    pub fn check(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        self.memory.check(attempt, now)
    }

    /// Like [`Throttle::check`], with the address's limit only: for credentials that cannot
    /// be guessed (a personal access token), where the account's limit would only let an
    /// attacker's password guesses lock out the account's tokens.
    pub fn check_address(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        self.memory
            .check_subjects(std::iter::once((&attempt.address, PER_ADDRESS)), now)
    }

    /// Notes a full sign-in (password, and second factor when on): the address becomes
    /// known to the account for [`KNOWN_FOR`].
    pub async fn succeed(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let Some(account) = &attempt.account else {
            return Ok(());
        };
        let previous = self
            .memory
            .known()
            .insert((account.clone(), attempt.address.clone()), millis(now));
        // One write per address a day is enough to keep it known.
        if previous.is_some_and(|at| at > millis(now - Duration::days(1))) {
            return Ok(());
        }
        self.store
            .record_sign_in_address(account, &attempt.address, now, now - KNOWN_FOR)
            .await
    }

    /// Counts a failure against both subjects of `attempt`, in memory and in the store.
    pub async fn fail(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        self.memory.fail(attempt, now);
        let subjects: Vec<String> = attempt
            .subjects()
            .map(|(subject, _)| subject.clone())
            .collect();
        self.store
            .record_failure(&subjects, now, now - horizon())
            .await
    }
}

impl Memory {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), i64>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<i64>>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let known = attempt.account.as_ref().is_some_and(|account| {
            self.known()
                .get(&(account.clone(), attempt.address.clone()))
                .is_some_and(|at| *at > millis(now - KNOWN_FOR))
        });
        let account = attempt
            .account
            .iter()
            .filter(|_| !known)
            .map(|account| (account, PER_ACCOUNT));
        self.check_subjects(
            std::iter::once((&attempt.address, PER_ADDRESS)).chain(account),
            now,
        )
    }

    fn fail(&self, attempt: &Attempt, now: DateTime<Utc>) {
        let mut recent = self.lock();
        let forget_before = millis(now - horizon());
        for (subject, _) in attempt.subjects() {
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

    /// Refuses with 429, with the wait, when a subject is over its limit at `now`.
    fn check_subjects<'a>(
        &self,
        subjects: impl Iterator<Item = (&'a String, Limit)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let recent = self.lock();
        let now_ms = millis(now);
        for (subject, limit) in subjects {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_limit_waits_until_its_oldest_failure_ages_out() {
        let throttle = Memory::default();
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
        match throttle.check(&attacker, now) {
            Err(Error::Throttled { retry_after }) => assert_eq!(retry_after, 120),
            other => panic!("expected 429, got {other:?}"),
        }
        // The real user from another address is not held back.
        assert!(throttle
            .check(&Attempt::new("ann", "127.0.0.10".parse().unwrap()), now)
            .is_ok());
        // Three minutes after the first failure the address may try again.
        assert!(throttle
            .check(&attacker, start + Duration::seconds(181))
            .is_ok());
    }
}
