//! Password hashing (argon2id with OWASP's parameters) and the password policy.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::background::Threads;
use crate::error::{Error, Result, SetupError};

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Shortest password accepted (NIST 800-63B).
pub const MIN_LEN: usize = 8;
/// Longest password accepted, in characters; NIST asks that at least 64 be allowed.
pub const MAX_LEN: usize = 256;

static COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Hashes and verifies passwords on threads of their own at a lowered scheduling priority
/// ([`crate::background`]). A burst of sign-ins, or a flood of wrong passwords, then neither
/// blocks the async runtime nor takes the CPU from token checks, which are the hot path;
/// hashing uses whatever the rest leaves. Each hash takes 19 MiB, so the thread count also
/// bounds the memory.
#[derive(Clone)]
pub struct PasswordHasher {
    threads: Threads,
    /// A hash of a random password, verified against when the user does not exist, so that
    /// "unknown user" costs the same time as "wrong password".
    decoy: Arc<String>,
}

impl PasswordHasher {
    /// A hasher with `threads` hashing threads.
    pub fn new(threads: usize) -> Result<Self, SetupError> {
        let decoy = hash_blocking(&crate::random::random_secret())?;
        // Waiting jobs beyond this make callers wait before queueing.
        let threads = Threads::start("password", threads, threads.max(1) * 64)?;
        Ok(PasswordHasher {
            threads,
            decoy: Arc::new(decoy),
        })
    }

    /// The PHC string of `password`, for storage.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// True when `password` matches `stored`. With `stored = None` (no such user) it checks
    /// against the decoy and returns false, taking the same time.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.decoy.as_ref().clone());
        let matches = self
            .run(move || verify_blocking(&password, &stored))
            .await??;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        self.threads.run(work).await
    }
}

fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|err| Error::Internal(format!("argon2 parameters: {err}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the calling thread: for admin commands and the blocking pool.
pub fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| Error::Internal(format!("argon2: {err}")))
}

fn verify_blocking(password: &str, stored: &str) -> Result<bool> {
    let parsed = PasswordHash::new(stored)
        .map_err(|err| Error::Internal(format!("stored password hash: {err}")))?;
    // The comparison inside verify_password is constant-time.
    Ok(argon2()?
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Checks a new password against the policy: 8 to 256 characters, not a common password.
pub fn check_policy(password: &str) -> Result<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_LEN} characters long"),
        ));
    }
    if len > MAX_LEN {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_LEN} characters long"),
        ));
    }
    if is_common(password) {
        return Err(Error::invalid(
            "password",
            "is one of the most common passwords; choose another",
        ));
    }
    Ok(())
}

fn is_common(password: &str) -> bool {
    let lowered = password.to_lowercase();
    COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .any(|common| !common.is_empty() && common == lowered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refuses_short_long_and_common_passwords() {
        assert!(check_policy("short").is_err());
        assert!(check_policy(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(check_policy("password123").is_err());
        assert!(check_policy("PassWord123").is_err());
        assert!(check_policy("correct horse battery staple").is_ok());
        assert!(check_policy(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn common_list_is_shipped_and_large() {
        assert!(COMMON_PASSWORDS.lines().count() >= 1000);
    }

    #[tokio::test]
    async fn verify_accepts_the_password_and_nothing_else() {
        let hasher = PasswordHasher::new(2).unwrap();
        let stored = hasher
            .hash(Zeroizing::new("tr0ub4dor&3x".into()))
            .await
            .unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let ok = |pw: &str| Zeroizing::new(pw.to_owned());
        assert!(hasher
            .verify(ok("tr0ub4dor&3x"), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify(ok("tr0ub4dor&3y"), Some(stored))
            .await
            .unwrap());
        assert!(!hasher.verify(ok("tr0ub4dor&3x"), None).await.unwrap());
    }
}
