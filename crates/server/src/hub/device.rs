//! The device authorization grant (RFC 8628): a device asks for a code pair, a person signs
//! in on the verification page (`/device`) and approves or denies it, and the device's poll
//! then gets the same session a password sign-in opens.
//!
//! What an approval binds: the grant is tied to the account that signed in on the page and
//! pressed Approve (`device_grants.user_id`); the device's session is a normal full session
//! of that account (source `password`: it may manage tokens, as the desktop app needs), with
//! a refresh token, living [`session::SESSION_TTL`] from the exchange. The page's own sign-in
//! is a separate short session ([`SessionSource::DevicePage`]) that can do nothing but decide
//! grants, and ends with the decision.

use chrono::{DateTime, Duration, Utc};
use hubkey_api::{DeviceCodeRequest, LoginResponse, TokenDigest};
use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::sign_in::SessionKey;
use super::{ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::session::{self, Caller, SessionSource};
use crate::store::{self, DeviceClaim, DeviceGrantRow, NewDeviceGrant, RevokeReason};
use crate::throttle::Attempt;

/// How long a device code and its user code live (RFC 8628 §3.2 `expires_in`).
pub const GRANT_TTL: Duration = Duration::minutes(10);
/// The polling interval handed out (RFC 8628 §3.2 `interval`), in seconds.
pub const POLL_INTERVAL: i64 = 5;
/// What `slow_down` adds to a code's interval (RFC 8628 §3.5), in seconds.
pub const SLOW_DOWN_STEP: i64 = 5;
/// How long an expired grant is kept before the sweep deletes it: meanwhile a late poll hears
/// `expired_token` rather than `invalid_grant`.
pub const GRANT_RETENTION: Duration = Duration::hours(1);
/// The user code's alphabet: 20 consonants, no vowels (no words), none that look alike
/// (RFC 8628 §6.1's example). 20^8 ≈ 2.56e10 codes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;
/// Longest `client_id`, and longest client name, device name and OS.
const MAX_CLIENT_ID: usize = 64;
const MAX_DESCRIPTION: usize = 100;

/// A device code pair just handed out.
#[derive(Debug, Clone)]
pub struct DeviceGrantStart {
    pub device_code: Zeroizing<String>,
    /// As shown: `XXXX-XXXX`.
    pub user_code: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// What a poll of `/oauth/token` learns.
#[derive(Debug, Clone)]
pub enum DevicePoll {
    Pending,
    /// Polled sooner than the interval: it is now this many seconds.
    SlowDown {
        interval: u64,
    },
    Denied,
    Expired,
    /// Unknown, or its session was handed out already.
    InvalidGrant,
    Approved(LoginResponse),
}

/// A grant as the verification page shows it.
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    /// As shown: `XXXX-XXXX`.
    pub user_code: String,
    pub client_id: String,
    pub client_name: Option<String>,
    pub device_name: Option<String>,
    pub os: Option<String>,
    pub requested_address: String,
    pub requested_at: DateTime<Utc>,
    pub expired: bool,
    /// Approved or denied already (or its session handed out).
    pub decided: bool,
}

impl DeviceGrant {
    fn from_row(row: DeviceGrantRow, now: DateTime<Utc>) -> Self {
        DeviceGrant {
            user_code: display_user_code(&row.user_code),
            client_id: row.client_id,
            client_name: row.client_name,
            device_name: row.device_name,
            os: row.os,
            requested_address: row.requested_address,
            requested_at: chrono::TimeZone::timestamp_millis_opt(&Utc, row.requested_at)
                .single()
                .unwrap_or(now),
            expired: row.expires_at <= store::millis(now),
            decided: row.status != "pending",
        }
    }
}

/// A user code as typed (any case, with or without the dash or spaces) in its stored form,
/// 8 letters of [`USER_CODE_ALPHABET`]; None when it cannot be one.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// `ABCDEFGH` as `ABCD-EFGH`.
fn display_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LEN && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

fn new_user_code() -> String {
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[OsRng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

fn device_digest(device_code: &str) -> Vec<u8> {
    Sha256::digest(device_code.as_bytes()).to_vec()
}

/// A description field: trimmed, at most `max` characters, no control characters; empty
/// is absent.
fn description(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(Error::invalid(field, format!("at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "no control characters"));
    }
    Ok(Some(value.to_owned()))
}

impl Hub {
    /// `POST /oauth/device/code`: a new device code pair for the device that `client` is,
    /// described by `request`.
    pub async fn start_device_grant(
        &self,
        request: &DeviceCodeRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<DeviceGrantStart> {
        let client_id = request.client_id.trim();
        if client_id.is_empty()
            || client_id.len() > MAX_CLIENT_ID
            || !client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::invalid(
                "client_id",
                format!("1 to {MAX_CLIENT_ID} printable ASCII characters"),
            ));
        }
        let scope = description("scope", request.scope.as_deref(), 200)?;
        let client_name = description(
            "client_name",
            request.client_name.as_deref(),
            MAX_DESCRIPTION,
        )?;
        let device_name = description(
            "device_name",
            request.device_name.as_deref(),
            MAX_DESCRIPTION,
        )?;
        let os = description("os", request.os.as_deref(), MAX_DESCRIPTION)?;
        let device_code = Zeroizing::new(crate::random::random_secret());
        let digest = device_digest(&device_code);
        let address = client.ip.to_canonical().to_string();
        // A taken user code (a live or unswept grant) is drawn again; with 2.56e10 codes a
        // second draw is already rare.
        for _ in 0..8 {
            let user_code = new_user_code();
            let inserted = self
                .store
                .insert_device_grant(&NewDeviceGrant {
                    device_digest: &digest,
                    user_code: &user_code,
                    client_id,
                    scope: scope.as_deref(),
                    client_name: client_name.as_deref(),
                    device_name: device_name.as_deref(),
                    os: os.as_deref(),
                    requested_address: &address,
                    now,
                    expires_at: now + GRANT_TTL,
                    interval_s: POLL_INTERVAL,
                })
                .await?;
            if inserted {
                return Ok(DeviceGrantStart {
                    device_code,
                    user_code: display_user_code(&user_code),
                    expires_in: u64::try_from(GRANT_TTL.num_seconds()).unwrap_or(600),
                    interval: POLL_INTERVAL.unsigned_abs(),
                });
            }
        }
        Err(Error::Internal("no free user code after 8 draws".into()))
    }

    /// `POST /oauth/token` with the device code grant: the grant's state, or its session
    /// once approved (handed out once: of polls racing after the approval, one gets it).
    pub async fn poll_device_grant(
        &self,
        device_code: &str,
        now: DateTime<Utc>,
    ) -> Result<DevicePoll> {
        let digest = device_digest(device_code);
        let Some(poll) = self
            .store
            .poll_device_grant(&digest, now, SLOW_DOWN_STEP)
            .await?
        else {
            return Ok(DevicePoll::InvalidGrant);
        };
        if poll.status == "used" {
            return Ok(DevicePoll::InvalidGrant);
        }
        if poll.expires_at <= store::millis(now) {
            return Ok(DevicePoll::Expired);
        }
        match poll.status.as_str() {
            "denied" => Ok(DevicePoll::Denied),
            "approved" => {
                let refresh = crate::random::random_secret();
                let session_id = Uuid::new_v4().to_string();
                let claim = self
                    .store
                    .claim_device_grant(
                        &digest,
                        now,
                        &session_id,
                        TokenDigest::of(&refresh).as_str(),
                        now + session::SESSION_TTL,
                    )
                    .await?;
                match claim {
                    // Another poll took it between the two statements.
                    DeviceClaim::Gone => Ok(DevicePoll::InvalidGrant),
                    DeviceClaim::Refused => Ok(DevicePoll::Denied),
                    DeviceClaim::Opened { user_id, username } => {
                        let caller = Caller {
                            user_id,
                            username,
                            session_id,
                            source: SessionSource::Password,
                        };
                        Ok(DevicePoll::Approved(
                            self.password_session_answer(&caller, refresh, now)?,
                        ))
                    }
                }
            }
            _ if poll.slowed != 0 => Ok(DevicePoll::SlowDown {
                interval: poll.interval_s.unsigned_abs(),
            }),
            _ => Ok(DevicePoll::Pending),
        }
    }

    /// The grant a person typed the user code of, on the verification page. A code that is
    /// malformed or names no grant counts as a failed sign-in against `client`'s address
    /// (30 in 3 minutes, so at most 600 guesses an hour per address); 429 once over.
    pub async fn find_device_grant(
        &self,
        typed: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceGrant>> {
        let reservation = self
            .throttle
            .reserve(&Attempt::from_address(client.ip), now)
            .await?;
        let row = match normalise_user_code(typed) {
            Some(code) => self.store.device_grant_by_user_code(&code).await?,
            None => None,
        };
        match row {
            Some(row) => {
                reservation.release().await?;
                Ok(Some(DeviceGrant::from_row(row, now)))
            }
            None => {
                reservation.fail(now).await?;
                Ok(None)
            }
        }
    }

    /// The verification page's password step: the id of a new page session (when the
    /// account has no second factor), or [`Error::SecondFactorRequired`]. Throttled and
    /// answered exactly as `POST /v2/users/login`.
    pub async fn device_page_sign_in(
        &self,
        username: &str,
        password: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let user = self.password_step(username, password, client, now).await?;
        self.open_page_session(&user.id, &user.username, now).await
    }

    /// The verification page's second step (a TOTP code or a recovery code), as
    /// `POST /v2/users/2fa-login`: the id of a new page session.
    pub async fn device_page_second_factor(
        &self,
        challenge: &str,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let user = self
            .second_factor_step(challenge, code, client, now)
            .await?;
        self.open_page_session(&user.id, &user.username, now).await
    }

    async fn open_page_session(
        &self,
        user_id: &str,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let caller = self
            .open_session(
                user_id,
                username,
                SessionKey::DevicePage,
                now,
                now + session::DEVICE_PAGE_TTL,
            )
            .await?;
        Ok(caller.session_id)
    }

    /// The account signed in to the verification page by `session_id`: its id and name,
    /// while that page session lives (revoked with the account's other sessions).
    pub async fn device_page_user(
        &self,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>> {
        let Some(row) = self.store.session(session_id).await? else {
            return Ok(None);
        };
        if row.source != SessionSource::DevicePage.as_str()
            || row.revoked_at.is_some()
            || row.expires_at <= store::millis(now)
            || row.user_disabled
        {
            return Ok(None);
        }
        let user = self.store.user_by_id(&row.user_id).await?;
        Ok(user.map(|user| (user.id, user.username)))
    }

    /// Approves or denies the grant of `user_code` for the account of page session
    /// `session_id`, which then ends (one sign-in, one decision). False when the grant was
    /// decided already, has expired, or the page session has ended. An approval is recorded
    /// in the account's security events (`device_approved`, from the browser's address).
    pub async fn decide_device_grant(
        &self,
        session_id: &str,
        user_code: &str,
        approve: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let Some((user_id, username)) = self.device_page_user(session_id, now).await? else {
            return Ok(false);
        };
        let Some(code) = normalise_user_code(user_code) else {
            return Ok(false);
        };
        let decided = self
            .store
            .decide_device_grant(
                &code,
                &user_id,
                approve,
                client.event_origin(&client.ip.to_string()),
                now,
            )
            .await?;
        if decided {
            tracing::info!(user = %username, approve, "device grant decided");
            self.store
                .revoke_session(session_id, now, RevokeReason::Logout)
                .await?;
        }
        Ok(decided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_compared_without_case_dash_or_spaces() {
        assert_eq!(
            normalise_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalise_user_code(" BCDF GHJK ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(normalise_user_code("BCDFGHJ"), None);
        assert_eq!(
            normalise_user_code("ABCDEFGH"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalise_user_code("BCDF-GHJKL"), None);
    }

    #[test]
    fn new_user_codes_use_the_alphabet_and_read_back() {
        for _ in 0..1000 {
            let code = new_user_code();
            assert_eq!(normalise_user_code(&display_user_code(&code)), Some(code));
        }
    }
}
