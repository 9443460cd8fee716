//! Failed sign-in throttling, per account and per client address.
//!
//! Throttling, not lock-out: a subject over its limit is refused until its oldest failure
//! in the window ages out, and the limits are per subject, so the real user signing in from
//! another address still gets in while an attacker's address is held back.
//!
//! **A limit of N evaluates at most N guesses, whatever the number in flight and the number
//! of instances on the database.** A password attempt takes a slot of each subject's limit in
//! the database ([`Throttle::reserve`]): one transaction locks the subjects (an advisory lock
//! per subject on PostgreSQL, the write lock on SQLite), counts their failures in the window
//! and inserts the attempt's failure row per subject, before the guess is checked. A wrong
//! guess leaves the rows as they are ([`Reservation::fail`] writes nothing more for them); a
//! right guess or an error deletes them ([`Reservation::release`], or dropping the
//! [`Reservation`]). An attempt whose instance died before its outcome stays a failure until
//! it ages out of the window: never fewer guesses counted than evaluated. Attacks are wrong
//! guesses, so they cost one row per subject and guess and nothing else. On top, no subject
//! has more than [`MAX_IN_FLIGHT`] attempts in flight in one process: beyond it, 429 at once,
//! without a query.
//!
//! An address the account fully signed in from in the last [`KNOWN_FOR`] is not held back by
//! the account's limit (only by its own), so guesses spread over many addresses cannot lock
//! the real user out of the places they sign in from; a valid personal access token is never
//! held back by the account's limit either (see `Hub::prove`). The second factor has a rule
//! of its own that no address escapes ([`SECOND_FACTOR_CONSECUTIVE`]).
//!
//! **What an attacker sends never sizes what is kept.** A subject is a 16-byte digest
//! ([`Subject`]): of a user name that account creation would accept (any other name counts
//! against the address only), of an IPv4 address, or of an IPv6 address's /64 (one host
//! holds a whole /64). Failures are written to the database (a restart does not reset them);
//! a timer ([`Throttle::sweep_forever`]) forgets failures older than the longest window,
//! and known addresses older than [`KNOWN_FOR`].
//!
//! Credentials that cannot be guessed (a personal access token, a refresh token) take no slot:
//! they are checked against the address's limit in an in-memory mirror of the failures
//! ([`Throttle::check_address`]), so the token check on the hot path costs no query. The
//! mirror holds the failures of the last hour at start and those this instance counts since:
//! across instances an address is held back there by the instances that saw its failures
//! (guesses of passwords and codes are held back by the database, on every instance).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Duration, Utc};
use hubkey_api::clock::Clock;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::{millis, Store};

/// A sliding-window limit on failures.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub failures: usize,
    pub window: Duration,
}

/// Per account: 100 failures in any hour, from addresses the account never signed in from.
///
/// A sliding window, not NIST 800-63B's "100 consecutive failures" (which only a success
/// resets): a count that never ages out would let anyone lock any account for good from
/// addresses it does not know, and the real user on a new device could never sign in. The
/// window bounds an online attacker to 2 400 guesses a day per account against a password
/// that passed the policy (8 characters or more, not a common password). The second factor,
/// a 6-digit code, does get a consecutive rule ([`SECOND_FACTOR_CONSECUTIVE`]).
pub const PER_ACCOUNT: Limit = Limit {
    failures: 100,
    window: Duration::hours(1),
};

/// Per client address (an IPv4 address or an IPv6 /64).
pub const PER_ADDRESS: Limit = Limit {
    failures: 30,
    window: Duration::minutes(3),
};

/// Attempts one subject may have in flight at once; more are refused with 429 at once. A
/// password check takes tens of milliseconds of a hashing thread: a person never has more.
pub const MAX_IN_FLIGHT: u32 = 4;

/// Wrong second-factor codes in a row (across challenges; only a full sign-in resets the
/// count) after which the account's open challenges are void and every further code waits
/// ([`SECOND_FACTOR_BACKOFF_STEP`]). The known-address exemption does not apply.
pub const SECOND_FACTOR_CONSECUTIVE: i64 = 10;

/// The wait after the n-th code in a row, n ≥ [`SECOND_FACTOR_CONSECUTIVE`]: this step times
/// (n − 9)², at most [`SECOND_FACTOR_BACKOFF_MAX`] (1, 4, 9, 16… minutes, a day from the 47th
/// code on). Computed by the statement that counts the attempt (`Store::second_factor_attempt`).
pub const SECOND_FACTOR_BACKOFF_STEP: Duration = Duration::minutes(1);

/// The longest second-factor wait.
pub const SECOND_FACTOR_BACKOFF_MAX: Duration = Duration::days(1);

/// How long a full sign-in keeps its address known to the account.
pub const KNOWN_FOR: Duration = Duration::days(30);

/// How often [`Throttle::sweep_forever`] forgets old failures and known addresses.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The longest window: failures older than this no longer matter.
fn horizon() -> Duration {
    PER_ACCOUNT.window.max(PER_ADDRESS.window)
}

/// A throttling subject: a fixed-size digest of an account name or a client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subject([u8; 16]);

impl Subject {
    fn of(kind: &[u8], bytes: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(kind)
            .chain_update([0])
            .chain_update(bytes)
            .finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Subject(key)
    }

    /// The account named `username` (a name account creation accepts).
    fn account(username: &str) -> Self {
        Subject::of(b"account", username.as_bytes())
    }

    /// The client at `ip`: an IPv4 address (also when mapped into IPv6), or an IPv6 /64.
    pub fn address(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Subject::of(b"ipv4", &v4.octets()),
            IpAddr::V6(v6) => Subject::of(b"ipv6/64", &v6.octets()[..8]),
        }
    }

    /// The stored form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The subject of a stored key, None when it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Subject)
    }
}

/// Failed sign-in throttling: the failures and known addresses in memory, and the store
/// they are written to, so callers hand it an [`Attempt`] and nothing else.
#[derive(Debug)]
pub struct Throttle {
    store: Store,
    memory: Memory,
}

/// The mirror of recent failures per subject, for [`Throttle::check_address`] and the cheap
/// refusals before the database; and this process's attempts in flight per subject.
#[derive(Debug, Default)]
struct Memory {
    subjects: Mutex<HashMap<Subject, Record>>,
    /// Attempts of this process between their first query and their end, per subject: at most
    /// [`MAX_IN_FLIGHT`], so a flood on one subject never holds more than that many database
    /// connections of an instance waiting on the subject's lock (it is refused at once).
    in_flight: Mutex<HashMap<Subject, u32>>,
}

/// One subject's failures. A subject has one limit, so it keeps at most that many failures
/// (the newest): the check needs no more.
#[derive(Debug, Default)]
struct Record {
    /// Unix ms, oldest first.
    failures: VecDeque<i64>,
}

/// What the throttle holds in memory, to state the bound an attacker can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Subjects with a failure within the longest window.
    pub subjects: usize,
    /// Failures kept over all subjects.
    pub failures: usize,
    /// The bytes these take: the map's table at its capacity and the failures' buffers (not
    /// the allocator's own overhead).
    pub bytes: usize,
}

impl Throttle {
    /// The mirror of the last hour's failures from `store`, which slots, failures and
    /// sign-ins are written to.
    pub async fn load(store: Store, now: DateTime<Utc>) -> Result<Self> {
        let failures = store.failures_since(now - horizon()).await?;
        let memory = Memory::default();
        {
            let mut subjects = memory.subjects();
            for (subject, at) in failures {
                if let Some(subject) = Subject::from_bytes(&subject) {
                    subjects.entry(subject).or_default().failures.push_back(at);
                }
            }
        }
        Ok(Throttle { store, memory })
    }

    /// Takes a slot of each subject of `attempt` for one guess, in the database, or refuses
    /// with 429 when a subject is over its limit (its failures in the window, attempts in
    /// flight on any instance included) or has [`MAX_IN_FLIGHT`] attempts in flight here. The account's limit does not apply from an address the
    /// account signed in from in the last [`KNOWN_FOR`].
    pub async fn reserve(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<Reservation<'_>> {
        let mut reservation = Reservation {
            throttle: self,
            id: random_id(),
            attempt: Attempt {
                account: None,
                address: attempt.address,
            },
            reserved: Vec::with_capacity(2),
            local: Vec::with_capacity(2),
        };
        reservation.take(true, attempt.account, now).await?;
        Ok(reservation)
    }

    /// Refuses with 429 when the address of `attempt` is over its limit, reserving nothing:
    /// for credentials that cannot be guessed (a personal access token, a refresh token),
    /// where neither the account's limit nor a cap on requests in flight should refuse the
    /// account's own tokens (docker pulls, CI). Wrong ones still count ([`Throttle::fail`]).
    pub fn check_address(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let subjects = self.memory.subjects();
        match subjects.get(&attempt.address) {
            Some(record) => record.admits(PER_ADDRESS, now),
            None => Ok(()),
        }
    }

    /// A wrong guess of `attempt`, whose failures on `reserved` are recorded already: those of
    /// its other subjects (the account's, from an address the account knows) are written now.
    async fn fail_reserved(
        &self,
        attempt: &Attempt,
        reserved: &[Subject],
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.memory.fail(attempt, now);
        let unreserved: Vec<&[u8]> = attempt
            .subjects()
            .map(|(subject, _)| subject)
            .filter(|subject| !reserved.contains(subject))
            .map(Subject::as_bytes)
            .collect();
        if unreserved.is_empty() {
            return Ok(());
        }
        self.store.record_failure(&unreserved, now).await
    }

    /// Notes a full sign-in (password, and second factor when on): the address becomes
    /// known to the account for [`KNOWN_FOR`].
    pub async fn succeed(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let Some(account) = attempt.account else {
            return Ok(());
        };
        self.store
            .record_sign_in_address(account.as_bytes(), attempt.address.as_bytes(), now)
            .await
    }

    /// Counts a failure of an attempt that reserved nothing ([`Throttle::check_address`])
    /// against its subjects, in memory and in the store.
    pub async fn fail(&self, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        self.memory.fail(attempt, now);
        let subjects: Vec<&[u8]> = attempt.subjects().map(|(s, _)| s.as_bytes()).collect();
        self.store.record_failure(&subjects, now).await
    }

    /// Forgets failures older than the longest window, in memory (one pass under the lock)
    /// and in the database, and known addresses older than [`KNOWN_FOR`]; also deletes
    /// expired 2FA challenges.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<()> {
        let forget_before = millis(now - horizon());
        self.memory.subjects().retain(|_, record| {
            while record
                .failures
                .front()
                .is_some_and(|at| *at <= forget_before)
            {
                record.failures.pop_front();
            }
            !record.failures.is_empty()
        });
        self.store
            .forget_throttling(now - horizon(), now - KNOWN_FOR, now)
            .await
    }

    /// Runs [`Throttle::sweep`] every [`SWEEP_EVERY`] on `clock`'s time, for ever.
    pub async fn sweep_forever(self: Arc<Self>, clock: Clock) {
        let mut ticker = tokio::time::interval(SWEEP_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let started = std::time::Instant::now();
            match self.sweep(clock.now()).await {
                Ok(()) => tracing::debug!(
                    took_ms = started.elapsed().as_millis(),
                    footprint = ?self.footprint(),
                    "throttle swept"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "sweeping the throttle failed; will retry");
                }
            }
        }
    }

    /// What is held in memory now.
    pub fn footprint(&self) -> Footprint {
        use std::mem::size_of;
        let subjects = self.memory.subjects();
        let buffers: usize = subjects
            .values()
            .map(|record| record.failures.capacity() * size_of::<i64>())
            .sum();
        Footprint {
            subjects: subjects.len(),
            failures: subjects.values().map(|record| record.failures.len()).sum(),
            bytes: subjects.capacity() * (size_of::<(Subject, Record)>() + 1) + buffers,
        }
    }
}

/// Slots of an attempt's subjects, taken in the database by [`Throttle::reserve`]: a wrong
/// guess turns them into failures ([`Reservation::fail`]); a right guess or an error gives
/// them back ([`Reservation::release`]; dropping the reservation gives them back too, from a
/// task: a request abandoned before its answer tells nothing).
#[derive(Debug)]
#[must_use = "a reservation is given back when dropped"]
pub struct Reservation<'a> {
    throttle: &'a Throttle,
    /// The attempt's key in its failure rows.
    id: i64,
    /// The subjects a failure counts against.
    attempt: Attempt,
    /// The subjects whose slot is held (the account's is not from a known address).
    reserved: Vec<Subject>,
    /// The subjects this attempt counts in flight in this process ([`Memory::enter`]).
    local: Vec<Subject>,
}

/// A random key for one attempt's failure rows (a subject's rows in the window number in the
/// tens: 64 bits never collide there).
fn random_id() -> i64 {
    use rand::RngCore;
    i64::from_ne_bytes(rand::rngs::OsRng.next_u64().to_ne_bytes())
}

impl Reservation<'_> {
    /// The attempt, as far as it is known (see [`Reservation::add_account`]).
    pub fn attempt(&self) -> &Attempt {
        &self.attempt
    }

    /// Extends an attempt that named no account (a 2FA code, whose challenge tells the
    /// account) to `username`'s, under the same rules as [`Throttle::reserve`]. On 429 the
    /// reservation keeps the subjects it had.
    pub async fn add_account(&mut self, username: &str, now: DateTime<Utc>) -> Result<()> {
        self.take(false, Some(Subject::account(username)), now)
            .await
    }

    /// Takes the address's slot (when `address`) and the account's (unless the address is
    /// known to it) in one transaction that holds both subjects' locks while it counts.
    /// Refused at once, without a query, when this process already has [`MAX_IN_FLIGHT`]
    /// attempts of a subject in flight or its mirror shows the address over its limit (the
    /// mirror's failures are real ones: the database would refuse too).
    async fn take(
        &mut self,
        address: bool,
        account: Option<Subject>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if address {
            self.throttle.check_address(&self.attempt, now)?;
        }
        let local: Vec<Subject> = address
            .then_some(self.attempt.address)
            .into_iter()
            .chain(account)
            .collect();
        self.throttle.memory.enter(&local)?;
        self.local.extend(local);
        let store = &self.throttle.store;
        let locked: Vec<&[u8]> = address
            .then_some(self.attempt.address.as_bytes())
            .into_iter()
            .chain(account.as_ref().map(Subject::as_bytes))
            .collect();
        if locked.is_empty() {
            return Ok(());
        }
        let mut lock = store.lock_subjects(&locked, now - horizon()).await?;
        let mut taking = Vec::with_capacity(2);
        if address {
            taking.push((self.attempt.address, PER_ADDRESS));
        }
        if let Some(account) = account {
            let known = lock
                .known(
                    account.as_bytes(),
                    self.attempt.address.as_bytes(),
                    now - KNOWN_FOR,
                )
                .await?;
            if !known {
                taking.push((account, PER_ACCOUNT));
            }
        }
        for (subject, limit) in &taking {
            let failures = lock
                .failures(subject.as_bytes(), now - limit.window, limit.failures)
                .await?;
            let record = Record {
                failures: failures.into(),
            };
            record.admits(*limit, now)?;
        }
        for (subject, _) in &taking {
            lock.reserve(subject.as_bytes(), self.id, now).await?;
        }
        lock.commit().await?;
        self.reserved
            .extend(taking.iter().map(|(subject, _)| *subject));
        if account.is_some() {
            self.attempt.account = account;
        }
        Ok(())
    }

    /// The guess was wrong: its slots stay failures, and the attempt's other subjects get
    /// theirs (in the store and in the mirror).
    pub async fn fail(mut self, now: DateTime<Utc>) -> Result<()> {
        let reserved = std::mem::take(&mut self.reserved);
        self.throttle
            .fail_reserved(&self.attempt, &reserved, now)
            .await
    }

    /// The guess was right (or was not checked): its slots are given back before the answer.
    pub async fn release(mut self) -> Result<()> {
        let reserved = std::mem::take(&mut self.reserved);
        if reserved.is_empty() {
            return Ok(());
        }
        let subjects: Vec<&[u8]> = reserved.iter().map(Subject::as_bytes).collect();
        let released = self
            .throttle
            .store
            .release_reserved(self.id, &subjects)
            .await;
        if released.is_err() {
            self.reserved = reserved;
        }
        released
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.throttle.memory.leave(&self.local);
        if self.reserved.is_empty() {
            return;
        }
        // Without a runtime (shutting down) the slots stay failures until they age out.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.throttle.store.clone();
        let id = self.id;
        let reserved = std::mem::take(&mut self.reserved);
        runtime.spawn(async move {
            let subjects: Vec<&[u8]> = reserved.iter().map(Subject::as_bytes).collect();
            if let Err(err) = store.release_reserved(id, &subjects).await {
                tracing::warn!(
                    error = %err,
                    "giving back sign-in slots failed; they count as failures until they age out"
                );
            }
        });
    }
}

impl Memory {
    fn subjects(&self) -> MutexGuard<'_, HashMap<Subject, Record>> {
        self.subjects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an attempt in flight in this process on each of `subjects`, or refuses with 429
    /// (and counts nothing) when one already has [`MAX_IN_FLIGHT`].
    fn enter(&self, subjects: &[Subject]) -> Result<()> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if subjects
            .iter()
            .any(|subject| in_flight.get(subject).is_some_and(|n| *n >= MAX_IN_FLIGHT))
        {
            return Err(Error::Throttled { retry_after: 1 });
        }
        for subject in subjects {
            *in_flight.entry(*subject).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Ends the attempts [`Memory::enter`] counted; forgets a subject left with none.
    fn leave(&self, subjects: &[Subject]) {
        if subjects.is_empty() {
            return;
        }
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for subject in subjects {
            if let Some(n) = in_flight.get_mut(subject) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    in_flight.remove(subject);
                }
            }
        }
    }

    /// Counts a failure against every subject of `attempt`.
    fn fail(&self, attempt: &Attempt, now: DateTime<Utc>) {
        let mut records = self.subjects();
        for (subject, limit) in attempt.subjects() {
            let record = records.entry(*subject).or_default();
            record.failures.push_back(millis(now));
            while record.failures.len() > limit.failures {
                record.failures.pop_front();
            }
        }
    }
}

impl Record {
    /// Refuses with 429, with the wait, when `limit` is reached by the failures in its window
    /// at `now` (attempts in flight included: their rows are failures from the start).
    fn admits(&self, limit: Limit, now: DateTime<Utc>) -> Result<()> {
        let now_ms = millis(now);
        let window_ms = limit.window.num_milliseconds();
        let since = now_ms - window_ms;
        let in_window: Vec<i64> = self
            .failures
            .iter()
            .copied()
            .filter(|at| *at > since)
            .collect();
        let taken = in_window.len();
        if taken < limit.failures {
            return Ok(());
        }
        // Free again when enough of the oldest failures have aged out (or, sooner, when an
        // attempt in flight among them turns out right and is given back).
        let must_age_out = taken - limit.failures + 1;
        let wait_ms = match in_window.get(must_age_out - 1) {
            Some(freeing) => (freeing + window_ms - now_ms).max(1000),
            None => 1000,
        };
        let retry_after = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1);
        Err(Error::Throttled { retry_after })
    }
}

/// The throttling subjects of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `None` when the attempt names no possible account (a forged 2FA challenge, a user name
    /// account creation would refuse).
    account: Option<Subject>,
    address: Subject,
}

impl Attempt {
    /// An attempt on the account `username` from `ip`. Only for a name account creation
    /// accepts (`hub::check_username`); unknown names count too, so the answer does not tell
    /// which names exist.
    pub fn on_account(username: &str, ip: IpAddr) -> Self {
        Attempt {
            account: Some(Subject::account(username)),
            address: Subject::address(ip),
        }
    }

    /// An attempt from `ip` that names no possible account.
    pub fn from_address(ip: IpAddr) -> Self {
        Attempt {
            account: None,
            address: Subject::address(ip),
        }
    }

    /// Whether the attempt names a possible account.
    pub fn names_account(&self) -> bool {
        self.account.is_some()
    }

    fn subjects(&self) -> impl Iterator<Item = (&Subject, Limit)> {
        std::iter::once((&self.address, PER_ADDRESS))
            .chain(self.account.iter().map(|account| (account, PER_ACCOUNT)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn an_address_over_its_limit_waits_until_its_oldest_failure_ages_out() {
        let memory = Memory::default();
        let start = start();
        let attacker = Attempt::on_account("ann", "127.0.0.9".parse().unwrap());
        for i in 0..30 {
            memory.fail(&attacker, start + Duration::seconds(i));
        }
        let now = start + Duration::seconds(60);
        let subjects = memory.subjects();
        let record = &subjects[&attacker.address];
        match record.admits(PER_ADDRESS, now) {
            Err(Error::Throttled { retry_after }) => assert_eq!(retry_after, 120),
            other => panic!("expected 429, got {other:?}"),
        }
        // The account's own limit (100) is not reached.
        let account = &subjects[&attacker.account.unwrap()];
        assert!(account.admits(PER_ACCOUNT, now).is_ok());
        // Three minutes after the first failure the address may try again.
        assert!(record
            .admits(PER_ADDRESS, start + Duration::seconds(181))
            .is_ok());
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Subject::address(one), Subject::address(same_64));
        assert_ne!(Subject::address(one), Subject::address(next_64));
        assert_eq!(
            Subject::address("::ffff:192.0.2.7".parse().unwrap()),
            Subject::address("192.0.2.7".parse().unwrap())
        );
        assert_ne!(
            Subject::address("192.0.2.7".parse().unwrap()),
            Subject::address("192.0.2.8".parse().unwrap())
        );
    }

    #[test]
    fn a_subject_is_sixteen_bytes_whatever_the_name() {
        let long = "a".repeat(64 * 1024);
        assert_eq!(Subject::account(&long).as_bytes().len(), 16);
        assert_ne!(Subject::account("ann"), Subject::account("bob"));
    }
}
