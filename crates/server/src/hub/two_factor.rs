//! Two-factor sign-in a person controls: TOTP enrolment confirmed by a first code, ten
//! single-use recovery codes (shown once, kept as digests), turning it off (password AND a
//! code), and new recovery codes (a code). Each change ends the account's other sessions and
//! records a `two_factor_changed` event; a session made from a PAT can do none of it.
//!
//! A recovery code is 16 characters of RFC 4648 base32 (80 random bits), shown
//! `xxxx-xxxx-xxxx-xxxx`; it works once wherever a TOTP code does (sign-in, the device
//! verification page, turning 2FA off, new recovery codes).

use chrono::{DateTime, Duration, Utc};
use hubkey_api::{RecoveryCodes, TotpEnrolment, TwoFactorStatus};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{require_password_session, ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::session::Caller;
use crate::store;
use crate::throttle::{self, Attempt};
use crate::totp;

/// How long an enrolment waits for its first code.
pub const ENROLMENT_TTL: Duration = Duration::minutes(10);
/// Recovery codes handed out at once.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (base32, 5 bits each: 80 bits).
const RECOVERY_LEN: usize = 16;

/// A recovery code as typed (any case, dashes and spaces ignored) in its canonical form.
fn normalise_recovery_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == RECOVERY_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)))
    .then_some(code)
}

fn recovery_digest(user_id: &str, code: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(b"hubkey recovery code v1\0")
        .chain_update(user_id.as_bytes())
        .chain_update([0])
        .chain_update(code.as_bytes())
        .finalize()
        .to_vec()
}

/// Ten new codes for `user_id`: as shown, and their digests.
fn new_recovery_codes(user_id: &str) -> (Vec<String>, Vec<Vec<u8>>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = Zeroizing::new([0u8; RECOVERY_LEN * 5 / 8]);
            OsRng.fill_bytes(bytes.as_mut());
            let code = data_encoding::BASE32_NOPAD
                .encode(bytes.as_ref())
                .to_ascii_lowercase();
            let digest = recovery_digest(user_id, &code);
            let shown = code
                .as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            (shown, digest)
        })
        .unzip()
}

impl Hub {
    /// Why `code` does not pass as `user_id`'s second factor (None: it does, and is used up):
    /// the current TOTP code of the sealed secret (each step once), or an unused recovery code.
    pub(super) async fn refuse_second_factor(
        &self,
        user_id: &str,
        sealed: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<&'static str>> {
        if let Some(recovery) = normalise_recovery_code(code) {
            let used = self
                .store
                .use_recovery_code(user_id, &recovery_digest(user_id, &recovery), now)
                .await?;
            return Ok((!used).then_some("Incorrect or already used recovery code"));
        }
        let secret = self.keys.unseal(sealed)?;
        Ok(match totp::verify(&secret, code, now.timestamp()) {
            None => Some("Incorrect verification code"),
            Some(step) => (!self.store.accept_totp_step(user_id, step).await?)
                .then_some("This verification code was already used; wait for the next one"),
        })
    }

    /// Checks `code` as the caller's second factor for a change of 2FA, under the same rules
    /// as a sign-in's: counted in the account's wrong codes in a row (from the tenth on, each
    /// waits longer) and against the address.
    async fn check_own_second_factor(
        &self,
        caller: &Caller,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let user = self
            .store
            .user_by_id(&caller.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        let Some(sealed) = user.totp_sealed.clone() else {
            return Err(Error::invalid("code", "two-factor sign-in is not on"));
        };
        let reservation = self
            .throttle
            .reserve(&Attempt::on_account(&user.username, client.ip), now)
            .await?;
        let Some(in_a_row) = self.store.second_factor_attempt(&user.id, now).await? else {
            let until = self.store.second_factor_blocked_until(&user.id).await?;
            let wait_ms = until.map_or(1000, |until| until - store::millis(now));
            let retry_after = u64::try_from((wait_ms.max(1000) + 999) / 1000).unwrap_or(1);
            return Err(Error::Throttled { retry_after });
        };
        if let Some(message) = self
            .refuse_second_factor(&user.id, &sealed, code, now)
            .await?
        {
            if in_a_row >= throttle::SECOND_FACTOR_CONSECUTIVE {
                self.store.void_challenges(&user.id).await?;
                self.second_factor_locked(&user, in_a_row, client, now)
                    .await?;
            }
            reservation.fail(now).await?;
            return Err(Error::Unauthorized(message.into()));
        }
        reservation.release().await?;
        self.store.second_factor_signed_in(&user.id).await?;
        Ok(())
    }

    /// `GET /v2/users/2fa`.
    pub async fn two_factor_status(&self, caller: &Caller) -> Result<TwoFactorStatus> {
        require_password_session(caller)?;
        let user = self
            .store
            .user_by_id(&caller.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        let left = self.store.recovery_codes_left(&user.id).await?;
        Ok(TwoFactorStatus {
            enabled: user.totp_sealed.is_some(),
            recovery_codes_left: u32::try_from(left).unwrap_or(0),
        })
    }

    /// `POST /v2/users/2fa/enrol`: given the password again, a new secret, in force once
    /// confirmed with a first code within [`ENROLMENT_TTL`]. Refused while 2FA is on (turn it
    /// off first). The password is asked because a second factor only its enroller knows
    /// locks everyone else out: a stolen session alone must not be able to add one.
    pub async fn start_totp_enrolment(
        &self,
        caller: &Caller,
        password: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<TotpEnrolment> {
        require_password_session(caller)?;
        let attempt = Attempt::on_account(&caller.username, client.ip);
        let reservation = self.throttle.reserve(&attempt, now).await?;
        self.check_password(reservation, &caller.username, password, now)
            .await?;
        let user = self
            .store
            .user_by_id(&caller.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        if user.totp_sealed.is_some() {
            return Err(Error::invalid(
                "two_factor",
                "two-factor sign-in is already on; turn it off first to enrol a new authenticator",
            ));
        }
        let secret = Zeroizing::new(totp::new_secret());
        let sealed = self.keys.seal(secret.as_ref())?;
        let expires_at = now + ENROLMENT_TTL;
        self.store
            .set_pending_totp(&user.id, &sealed, expires_at)
            .await?;
        Ok(TotpEnrolment {
            secret: totp::secret_base32(secret.as_ref()),
            otpauth_uri: totp::otpauth_uri(&user.username, secret.as_ref()),
            expires_at,
        })
    }

    /// `POST /v2/users/2fa/confirm`: the first code of the pending enrolment turns 2FA on;
    /// answers the ten recovery codes, this once. The account's other sessions end.
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<RecoveryCodes> {
        require_password_session(caller)?;
        let Some(sealed) = self.store.pending_totp(&caller.user_id, now).await? else {
            return Err(Error::invalid(
                "code",
                "no enrolment is waiting for a code (none started, or it expired): start again",
            ));
        };
        let reservation = self
            .throttle
            .reserve(&Attempt::on_account(&caller.username, client.ip), now)
            .await?;
        let secret = self.keys.unseal(&sealed)?;
        let Some(step) = totp::verify(&secret, code, now.timestamp()) else {
            reservation.fail(now).await?;
            return Err(Error::invalid(
                "code",
                "incorrect code: check the authenticator's clock and try the current code",
            ));
        };
        reservation.release().await?;
        let (codes, digests) = new_recovery_codes(&caller.user_id);
        let address = client.ip.to_string();
        let confirmed = self
            .store
            .confirm_totp(
                &caller.user_id,
                &sealed,
                step,
                &digests,
                (Some(&caller.session_id), client.event_origin(&address)),
                now,
            )
            .await?;
        if !confirmed {
            return Err(Error::invalid(
                "code",
                "this enrolment was confirmed, replaced or expired meanwhile",
            ));
        }
        tracing::info!(user = %caller.username, "two-factor sign-in turned on");
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// `POST /v2/users/2fa/disable`: the password AND a current code (or a recovery code)
    /// turn 2FA off; the recovery codes are forgotten and the other sessions end.
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        password: Zeroizing<String>,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<()> {
        require_password_session(caller)?;
        let attempt = Attempt::on_account(&caller.username, client.ip);
        let reservation = self.throttle.reserve(&attempt, now).await?;
        self.check_password(reservation, &caller.username, password, now)
            .await?;
        self.check_own_second_factor(caller, code, client, now)
            .await?;
        let address = client.ip.to_string();
        self.store
            .disable_totp(
                &caller.user_id,
                Some(&caller.session_id),
                client.event_origin(&address),
                now,
            )
            .await?;
        tracing::info!(user = %caller.username, "two-factor sign-in turned off");
        Ok(())
    }

    /// `POST /v2/users/2fa/recovery-codes`: a current code (or a recovery code) replaces the
    /// recovery codes; the old ones stop working and the other sessions end.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<RecoveryCodes> {
        require_password_session(caller)?;
        self.check_own_second_factor(caller, code, client, now)
            .await?;
        let (codes, digests) = new_recovery_codes(&caller.user_id);
        let address = client.ip.to_string();
        self.store
            .replace_recovery_codes(
                &caller.user_id,
                &digests,
                Some(&caller.session_id),
                client.event_origin(&address),
                now,
            )
            .await?;
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_read_back_in_any_case_and_grouping() {
        let (codes, digests) = new_recovery_codes("u1");
        assert_eq!(codes.len(), RECOVERY_CODES);
        for (code, digest) in codes.iter().zip(&digests) {
            assert_eq!(code.len(), 19, "{code}");
            let typed = code.to_uppercase().replace('-', " ");
            let canonical = normalise_recovery_code(&typed).unwrap();
            assert_eq!(&recovery_digest("u1", &canonical), digest);
            assert_ne!(&recovery_digest("u2", &canonical), digest);
        }
        assert_eq!(normalise_recovery_code("123456"), None);
    }
}
