//! Time-based one-time passwords (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, with one
//! step of tolerance either side. The arithmetic and the constant-time comparison are
//! totp-rs's; what is ours is the choice of parameters, the secret's life (made here, sealed
//! by the store) and the replay rule: [`verify`] returns the step that matched, and the store
//! accepts each step once per account (`Store::accept_totp_step`).

use rand::rngs::OsRng;
use rand::RngCore;
use totp_rs::{Algorithm, Builder, Totp};

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Bytes of secret (RFC 4226 recommends 160 bits).
pub const SECRET_LEN: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret in RFC 4648 base32 without padding, as authenticator apps read it.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI an authenticator app imports (usually from a QR code).
pub fn otpauth_uri(username: &str, secret: &[u8]) -> String {
    let account: String = username
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!(
        "otpauth://totp/hubkey:{account}?secret={}&issuer=hubkey&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        secret_base32(secret)
    )
}

/// The generator for `secret` with our parameters. `build_noncompliant` skips only the
/// checks these constants pass (6 digits, a non-zero step) and the secret's minimum length,
/// which [`new_secret`] exceeds; HMAC takes keys of any length, so nothing here can panic.
fn totp(secret: &[u8]) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECONDS.unsigned_abs())
        .with_skew(1)
        .with_secret(secret)
        .build_noncompliant()
}

/// The time step containing `unix_seconds`.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The code of one time step (RFC 4226 HOTP with the step as counter); steps before 1970
/// have no code of their own and give step 0's.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let at = u64::try_from(step).unwrap_or(0) * STEP_SECONDS.unsigned_abs();
    totp(secret).generate(at).to_string()
}

/// The step whose code `code` is, among the current step and one either side, or `None`.
/// The comparison is constant-time.
pub fn verify(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(unix_seconds).ok()?;
    let step = totp(secret).check(code, now)?;
    i64::try_from(step).ok()
}
#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (the 8-digit codes' last 6 digits).
    #[test]
    fn matches_rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at_step(secret, step_at(time)), &code8[2..], "t={time}");
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_no_more() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let step = step_at(now);
        for drift in [-1, 0, 1] {
            let code = code_at_step(&secret, step + drift);
            assert_eq!(verify(&secret, &code, now), Some(step + drift));
        }
        let far = code_at_step(&secret, step + 3);
        assert_eq!(verify(&secret, &far, now), None);
        assert_eq!(verify(&secret, "12a456", now), None);
        assert_eq!(verify(&secret, "", now), None);
    }

    #[test]
    fn uri_names_the_account_and_secret() {
        let uri = otpauth_uri("ann lee", &[0u8; 20]);
        assert!(uri.starts_with("otpauth://totp/hubkey:ann%20lee?secret=AAAAAAAA"));
        assert!(uri.contains("&period=30"));
    }
}
