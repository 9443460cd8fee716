//! Accounts, as the admin commands manage them: creating users and turning on TOTP.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::Hub;
use crate::error::{Error, Result};
use crate::password;
use crate::totp;

impl Hub {
    /// Creates a user after checking the name and the password policy.
    pub async fn add_user(
        &self,
        username: &str,
        password: Zeroizing<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_username(username)?;
        password::check_policy(&password)?;
        let hash = self.hasher.hash(password).await?;
        self.store.insert_user(username, &hash, now).await
    }

    /// Turns on TOTP for a user (replacing any earlier secret) and returns the new secret.
    /// Every session of the account ends (one opened with the old factor, or none, must not
    /// outlive the change) and a `two_factor_changed` event is recorded.
    pub async fn enable_totp(
        &self,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<[u8; totp::SECRET_LEN]> {
        let user = self
            .store
            .user_by_name(username)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))?;
        let secret = totp::new_secret();
        self.store
            .set_totp(&user.id, &self.keys.seal(&secret)?, now)
            .await?;
        Ok(secret)
    }
}

/// User names double as registry namespaces: 2 to 30 characters of lowercase letters and
/// digits, with single `.`, `_` or `-` between them.
pub fn check_username(username: &str) -> Result<()> {
    let valid_chars = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    let separators_ok = !username.starts_with(['.', '_', '-'])
        && !username.ends_with(['.', '_', '-'])
        && !username
            .as_bytes()
            .windows(2)
            .any(|pair| pair.iter().all(|b| matches!(b, b'.' | b'_' | b'-')));
    if (2..=30).contains(&username.len()) && valid_chars && separators_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "username",
            "use 2 to 30 lowercase letters and digits, with single '.', '_' or '-' between them",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_namespace_safe() {
        for good in ["ann", "ann-lee", "a.b_c", "x9"] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "Ann",
            "-ann",
            "ann-",
            "a--b",
            "ann lee",
            "ann/lee",
            &"a".repeat(31),
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
