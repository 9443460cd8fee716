//! What failed-sign-in throttling keeps in the database, shared by every instance: recent
//! failures per subject (an attempt in flight is one already, taken under [`SubjectsLock`]),
//! the addresses each account fully signed in from, and each account's wrong second-factor
//! codes in a row. Subjects are the throttle's 16-byte digests.

use chrono::{DateTime, Utc};

use super::{millis, Backend, DbTransaction, Store};
use crate::error::Result;
use crate::throttle::{
    SECOND_FACTOR_BACKOFF_MAX, SECOND_FACTOR_BACKOFF_STEP, SECOND_FACTOR_CONSECUTIVE,
};

impl Store {
    /// Every failure since `since`, oldest first: (subject, time).
    pub async fn failures_since(&self, since: DateTime<Utc>) -> Result<Vec<(Vec<u8>, i64)>> {
        Ok(
            sqlx::query_as("SELECT subject, at FROM login_failures WHERE at > $1 ORDER BY at")
                .bind(millis(since))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Records one failure for each subject. Old ones are deleted by
    /// [`Store::forget_throttling`], for every subject at once.
    pub async fn record_failure(&self, subjects: &[&[u8]], now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for subject in subjects {
            sqlx::query("INSERT INTO login_failures (subject, at) VALUES ($1, $2)")
                .bind(*subject)
                .bind(millis(now))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Locks `subjects` (sorted, so two attempts sharing subjects cannot deadlock) for the
    /// transaction that decides a reservation, and deletes their failures at or before
    /// `forget_before` (they no longer count). On PostgreSQL the lock is a transaction-scoped
    /// advisory lock per subject (keyed by the digest's first 32 bits: two subjects sharing a
    /// key only wait for each other); on SQLite it is the database's write lock, which the
    /// first statement (that delete) takes, so two attempts never count from one snapshot.
    pub async fn lock_subjects(
        &self,
        subjects: &[&[u8]],
        forget_before: DateTime<Utc>,
    ) -> Result<SubjectsLock> {
        let mut subjects = subjects.to_vec();
        subjects.sort_unstable();
        subjects.dedup();
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            for subject in &subjects {
                sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                    .bind(ADVISORY_CLASS)
                    .bind(advisory_key(subject))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for subject in &subjects {
            sqlx::query("DELETE FROM login_failures WHERE subject = $1 AND at <= $2")
                .bind(*subject)
                .bind(millis(forget_before))
                .execute(&mut *tx)
                .await?;
        }
        Ok(SubjectsLock { tx })
    }

    /// Gives back the slots `attempt` took on `reserved` (a right guess, an error, an
    /// abandoned request): their failure rows go. A wrong guess leaves them as they are.
    pub async fn release_reserved(&self, attempt: i64, reserved: &[&[u8]]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for subject in reserved {
            sqlx::query("DELETE FROM login_failures WHERE subject = $1 AND attempt = $2")
                .bind(*subject)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes failures at or before `failures_before`, known addresses last used at or
    /// before `addresses_before`, and 2FA challenges expired at `now`.
    pub async fn forget_throttling(
        &self,
        failures_before: DateTime<Utc>,
        addresses_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM login_failures WHERE at <= $1")
            .bind(millis(failures_before))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sign_in_addresses WHERE last_at <= $1")
            .bind(millis(addresses_before))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The (account, address) subjects with a full sign-in after `since`.
    pub async fn sign_in_addresses_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>, i64)>> {
        Ok(sqlx::query_as(
            "SELECT account, address, last_at FROM sign_in_addresses WHERE last_at > $1",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Notes a full sign-in of `account` from `address` at `now`.
    pub async fn record_sign_in_address(
        &self,
        account: &[u8],
        address: &[u8],
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sign_in_addresses (account, address, last_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account, address) DO UPDATE SET last_at = excluded.last_at",
        )
        .bind(account)
        .bind(address)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts a second-factor attempt of `user_id` at `now` before its code is compared, in
    /// one statement (so attempts in flight cannot all pass): the number of attempts in a row
    /// without a full sign-in, this one included, or None while the account waits (from the
    /// [`SECOND_FACTOR_CONSECUTIVE`]-th on, each attempt sets the wait after it; see
    /// [`SECOND_FACTOR_BACKOFF_STEP`]). A full sign-in deletes the count
    /// ([`Store::second_factor_signed_in`]).
    pub async fn second_factor_attempt(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let step = SECOND_FACTOR_BACKOFF_STEP.num_milliseconds();
        let max = SECOND_FACTOR_BACKOFF_MAX.num_milliseconds();
        // (n − 9)² steps for the n-th attempt; the square stops growing at the maximum.
        let max_factor = (max / step).isqrt() + 1;
        Ok(sqlx::query_scalar(
            "INSERT INTO second_factor_failures (user_id, consecutive, last_at, blocked_until) \
             VALUES ($1, 1, $2, CASE WHEN 1 >= $3 THEN $2 + $4 ELSE NULL END) \
             ON CONFLICT (user_id) DO UPDATE SET \
               consecutive = second_factor_failures.consecutive + 1, \
               last_at = $2, \
               blocked_until = CASE \
                 WHEN second_factor_failures.consecutive + 1 < $3 THEN NULL \
                 WHEN second_factor_failures.consecutive + 2 - $3 >= $6 THEN $2 + $5 \
                 ELSE $2 + $4 * (second_factor_failures.consecutive + 2 - $3) \
                   * (second_factor_failures.consecutive + 2 - $3) END \
             WHERE second_factor_failures.consecutive < $3 \
               OR second_factor_failures.blocked_until <= $2 \
             RETURNING consecutive",
        )
        .bind(user_id)
        .bind(millis(now))
        .bind(SECOND_FACTOR_CONSECUTIVE)
        .bind(step)
        .bind(max)
        .bind(max_factor)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Until when `user_id`'s second factor waits, Unix ms, if it does.
    pub async fn second_factor_blocked_until(&self, user_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT blocked_until FROM second_factor_failures WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// A full sign-in: the wrong codes in a row start over.
    pub async fn second_factor_signed_in(&self, user_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM second_factor_failures WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The advisory lock class of throttling subjects on PostgreSQL ("hkth"): the two-key lock
/// space, apart from the one-key space sqlx's migrator locks in.
const ADVISORY_CLASS: i32 = 0x686b_7468;

/// A subject's advisory lock key: the first 32 bits of its digest.
fn advisory_key(subject: &[u8]) -> i32 {
    let mut key = [0u8; 4];
    for (to, from) in key.iter_mut().zip(subject) {
        *to = *from;
    }
    i32::from_be_bytes(key)
}

/// Subjects locked by [`Store::lock_subjects`] inside an open transaction, in which a
/// reservation reads their state and takes their slots; [`SubjectsLock::commit`] ends it
/// (dropped, it rolls back and takes nothing).
#[derive(Debug)]
pub struct SubjectsLock {
    tx: DbTransaction,
}

impl SubjectsLock {
    /// The newest `keep` failures of `subject` after `since`, oldest first, attempts in
    /// flight included (each is a failure from the moment it took its slot).
    pub async fn failures(
        &mut self,
        subject: &[u8],
        since: DateTime<Utc>,
        keep: usize,
    ) -> Result<Vec<i64>> {
        let mut newest_first: Vec<i64> = sqlx::query_scalar(
            "SELECT at FROM login_failures WHERE subject = $1 AND at > $2 \
             ORDER BY at DESC LIMIT $3",
        )
        .bind(subject)
        .bind(millis(since))
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.tx)
        .await?;
        newest_first.reverse();
        Ok(newest_first)
    }

    /// Whether `account` fully signed in from `address` after `since`.
    pub async fn known(
        &mut self,
        account: &[u8],
        address: &[u8],
        since: DateTime<Utc>,
    ) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM sign_in_addresses \
             WHERE account = $1 AND address = $2 AND last_at > $3",
        )
        .bind(account)
        .bind(address)
        .bind(millis(since))
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(found.is_some())
    }

    /// Takes a slot of `subject` for `attempt` at `now`: its failure, unless given back
    /// ([`Store::release_reserved`]).
    pub async fn reserve(
        &mut self,
        subject: &[u8],
        attempt: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO login_failures (subject, at, attempt) VALUES ($1, $2, $3)")
            .bind(subject)
            .bind(millis(now))
            .bind(attempt)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Commits the slots taken and releases the locks.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
