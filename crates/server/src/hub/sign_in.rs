//! Sessions and sign-in: the password and 2FA login, refresh, logout, `auth/token`, and the
//! bearer check every authenticated request starts with ([`Hub::authenticate`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hubkey_api::token::looks_like_token;
use hubkey_api::{LoginResponse, TokenDigest};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{ClientInfo, Hub};
use crate::error::{Error, Result};
use crate::session::{self, Caller, SessionSource};
use crate::store::{self, Refresh, RevokeReason, TokenCheck, UserRow};
use crate::throttle::{self, Attempt, Reservation};

impl Hub {
    /// `POST /v2/users/login`: a session, or a 2FA challenge for accounts with TOTP.
    pub async fn login(
        &self,
        username: &str,
        password: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let user = self.password_step(username, password, client, now).await?;
        self.open_password_session(&user.id, &user.username, now)
            .await
    }

    /// The password step of a sign-in, under the sign-in throttle: the account when it has
    /// no second factor, else [`Error::SecondFactorRequired`] with a new challenge. Shared
    /// by the API's login and the device verification page, which opens another session.
    pub(super) async fn password_step(
        &self,
        username: &str,
        password: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<UserRow> {
        let attempt = sign_in_attempt(username, client.ip);
        let reservation = self.throttle.reserve(&attempt, now).await?;
        let user = self
            .check_password(reservation, username, password, now)
            .await?;
        if user.totp_sealed.is_some() {
            let challenge = crate::random::random_secret();
            self.store
                .insert_challenge(
                    TokenDigest::of(&challenge).as_str(),
                    &user.id,
                    now + session::CHALLENGE_TTL,
                )
                .await?;
            return Err(Error::SecondFactorRequired {
                login_2fa_token: challenge,
            });
        }
        Ok(user)
    }

    /// `POST /v2/users/2fa-login`: the second step of a login.
    pub async fn login_2fa(
        &self,
        challenge: &str,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let user = self
            .second_factor_step(challenge, code, client, now)
            .await?;
        self.open_password_session(&user.id, &user.username, now)
            .await
    }

    /// The second step of a sign-in: the account whose `challenge` it is, when `code` is its
    /// current TOTP code or one of its unused recovery codes (used up by this). Shared by the
    /// API's 2FA login and the device verification page.
    pub(super) async fn second_factor_step(
        &self,
        challenge: &str,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<UserRow> {
        let digest = TokenDigest::of(challenge);
        // A forged or stale challenge counts against the address like a wrong password.
        let mut reservation = self
            .throttle
            .reserve(&Attempt::from_address(client.ip), now)
            .await?;
        // Whose challenge it is, to hold the account's attempts in flight to a few before
        // any is written; then the challenge's attempt is taken, in one statement, before the
        // code is compared (at most CHALLENGE_ATTEMPTS codes, whatever the number in flight).
        let user = match self
            .store
            .challenge_owner(digest.as_str(), now, session::CHALLENGE_ATTEMPTS)
            .await?
        {
            Some(user_id) => self.store.user_by_id(&user_id).await?,
            None => None,
        };
        let Some((user, sealed)) = user.and_then(|user| {
            let sealed = user.totp_sealed.clone()?;
            Some((user, sealed))
        }) else {
            reservation.fail(now).await?;
            return Err(Error::ChallengeExpired);
        };
        reservation.add_account(&user.username, now).await?;
        let taken = self
            .store
            .attempt_challenge(digest.as_str(), now, session::CHALLENGE_ATTEMPTS)
            .await?;
        if taken.as_deref() != Some(user.id.as_str()) {
            reservation.fail(now).await?;
            return Err(Error::ChallengeExpired);
        }
        // So is the account's attempt in a row; no address is exempt from this one.
        let Some(in_a_row) = self.store.second_factor_attempt(&user.id, now).await? else {
            let until = self.store.second_factor_blocked_until(&user.id).await?;
            let wait_ms = until.map_or(1000, |until| until - store::millis(now));
            let retry_after = u64::try_from((wait_ms.max(1000) + 999) / 1000).unwrap_or(1);
            return Err(Error::Throttled { retry_after });
        };
        let refused = self
            .refuse_second_factor(&user.id, &sealed, code, now)
            .await?;
        if let Some(message) = refused {
            if in_a_row >= throttle::SECOND_FACTOR_CONSECUTIVE {
                self.store.void_challenges(&user.id).await?;
                self.second_factor_locked(&user, in_a_row, client, now)
                    .await?;
            }
            reservation.fail(now).await?;
            return Err(Error::Unauthorized(message.into()));
        }
        if !self.store.consume_challenge(digest.as_str()).await? {
            return Err(Error::ChallengeExpired);
        }
        self.store.second_factor_signed_in(&user.id).await?;
        self.throttle.succeed(reservation.attempt(), now).await?;
        reservation.release().await?;
        Ok(user)
    }

    /// The notice that `user`'s second factor was guessed wrong `in_a_row` times: their
    /// challenges are void and further codes wait. Logged at warn each time (no code, no
    /// secret); the owner is told once per run of wrong codes, by a `second_factor_locked`
    /// account event (the app's security-events feed) naming where the codes came from.
    pub(super) async fn second_factor_locked(
        &self,
        user: &UserRow,
        in_a_row: i64,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<()> {
        tracing::warn!(
            user = %user.username,
            in_a_row,
            at = %now,
            "wrong second-factor codes in a row: open sign-ins voided, further codes must wait"
        );
        if in_a_row != throttle::SECOND_FACTOR_CONSECUTIVE {
            return Ok(());
        }
        let address = client.ip.to_string();
        self.store
            .record_account_event(
                &user.id,
                hubkey_api::AccountEventKind::SecondFactorLocked,
                client.event_origin(&address),
                now,
            )
            .await
    }

    /// `POST /v2/users/refresh`: a new bearer and a new refresh token for a live session.
    /// The replaced refresh token may be presented once more within [`session::REFRESH_GRACE`]
    /// (a lost answer); any other use of a spent refresh token revokes the whole session
    /// (`session_revoked`) and records a `refresh_reuse` event from `client`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let next = crate::random::random_secret();
        let address = client.ip.to_string();
        let refreshed = self
            .store
            .rotate_refresh(
                TokenDigest::of(refresh_token).as_str(),
                TokenDigest::of(&next).as_str(),
                now,
                now - session::REFRESH_GRACE,
                client.event_origin(&address),
            )
            .await?;
        let session = match refreshed {
            Refresh::Rotated(session) => session,
            Refresh::Reused { session, newly } => {
                if newly {
                    tracing::warn!(
                        session = %session.id,
                        address = %client.ip,
                        "a spent refresh token was presented again: session revoked"
                    );
                }
                return Err(Error::SessionRevoked);
            }
            Refresh::Unknown => {
                return Err(Error::Unauthorized(
                    "The session has ended; sign in again".into(),
                ))
            }
        };
        let user = self
            .store
            .user_by_id(&session.user_id)
            .await?
            .filter(|user| user.disabled_at.is_none())
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        let caller = Caller {
            user_id: user.id,
            username: user.username,
            session_id: session.id,
            source: SessionSource::Password,
        };
        Ok(LoginResponse {
            token: session::mint(&self.keys, &caller, now, now + self.access_ttl)?,
            refresh_token: Some(next),
            expires_in: Some(self.access_ttl_seconds()),
        })
    }

    /// `POST /v2/users/logout`: ends the caller's session and its refresh token.
    pub async fn logout(&self, caller: &Caller, now: DateTime<Utc>) -> Result<()> {
        self.store
            .revoke_session(&caller.session_id, now, RevokeReason::Logout)
            .await
    }

    /// `POST /v2/auth/token`: a bearer from a password (accounts without 2FA) or a PAT.
    pub async fn auth_token(
        &self,
        identifier: &str,
        secret: Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let user = match self.prove(identifier, &secret, client, now).await? {
            Proof::Token(token) => {
                self.log_access(&token.uuid, client, super::access::SIGN_IN_ACTION, now);
                let expires_at = now + session::PAT_SESSION_TTL;
                let caller = self
                    .open_session(
                        &token.user_id,
                        identifier,
                        SessionKey::Token(&token.uuid),
                        now,
                        expires_at,
                    )
                    .await?;
                return session::mint(&self.keys, &caller, now, expires_at);
            }
            Proof::Password(user) => user,
        };
        refuse_password_with_2fa(&user)?;
        let response = self
            .open_password_session(&user.id, &user.username, now)
            .await?;
        Ok(response.token)
    }

    /// Checks `secret` for `username` under throttling: a PAT-shaped secret as a personal
    /// access token, anything else as the password. Wrong ones count against the account
    /// and the address.
    pub(super) async fn prove(
        &self,
        username: &str,
        secret: &Zeroizing<String>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Proof> {
        let attempt = sign_in_attempt(username, client.ip);
        if !looks_like_token(secret) {
            let reservation = self.throttle.reserve(&attempt, now).await?;
            let user = self
                .check_password(reservation, username, secret.clone(), now)
                .await?;
            return Ok(Proof::Password(user));
        }
        // A PAT cannot be guessed: the account's limit, which password guesses from many
        // addresses fill, must not refuse the account's own tokens (docker pulls, CI), nor
        // may a cap on requests in flight.
        self.throttle.check_address(&attempt, now)?;
        if !attempt.names_account() {
            self.throttle.fail(&attempt, now).await?;
            return Err(Error::bad_credentials());
        }
        match self.use_token(Some(username), secret, client, now).await {
            Ok(token) => Ok(Proof::Token(token)),
            Err(Error::Unauthorized(_)) => {
                self.throttle.fail(&attempt, now).await?;
                Err(Error::bad_credentials())
            }
            Err(other) => Err(other),
        }
    }

    /// The user `username` if `password` is theirs; otherwise turns `reservation` into a
    /// failure. An unknown or disabled user, or a name no account can have, costs the same
    /// time as a wrong password.
    pub(super) async fn check_password(
        &self,
        reservation: Reservation<'_>,
        username: &str,
        password: Zeroizing<String>,
        now: DateTime<Utc>,
    ) -> Result<UserRow> {
        // A disabled account is an unknown one here: same time, same answer, same count.
        let user = if reservation.attempt().names_account() {
            self.store
                .user_by_name(username)
                .await?
                .filter(|user| user.disabled_at.is_none())
        } else {
            None
        };
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        let (true, Some(user)) = (self.hasher.verify(password, stored).await?, user) else {
            reservation.fail(now).await?;
            return Err(Error::bad_credentials());
        };
        if user.totp_sealed.is_none() {
            self.throttle.succeed(reservation.attempt(), now).await?;
        }
        reservation.release().await?;
        Ok(user)
    }

    /// Resolves a bearer JWT to its caller, refusing expired and revoked sessions and
    /// disabled accounts. A session revoked for refresh-token reuse is `session_revoked`.
    pub async fn authenticate(&self, bearer: &str, now: DateTime<Utc>) -> Result<Caller> {
        let claims = session::verify(&self.keys, bearer, now)?;
        let session = self
            .store
            .session(&claims.sid)
            .await?
            .filter(|s| s.user_id == claims.uid)
            .ok_or_else(|| Error::Unauthorized("The session has ended; sign in again".into()))?;
        // A verification page's session never had a bearer minted for it: refuse one anyway.
        if session.source == SessionSource::DevicePage.as_str() {
            return Err(Error::Unauthorized(
                "The session has ended; sign in again".into(),
            ));
        }
        if session.revoked_for_reuse() {
            return Err(Error::SessionRevoked);
        }
        if session.revoked_at.is_some()
            || session.expires_at <= store::millis(now)
            || session.user_disabled
            || !session.token_works(now)
        {
            return Err(Error::Unauthorized(
                "The session has ended; sign in again".into(),
            ));
        }
        Ok(Caller {
            user_id: session.user_id,
            username: claims.sub,
            session_id: session.id,
            source: if session.source == SessionSource::Pat.as_str() {
                SessionSource::Pat
            } else {
                SessionSource::Password
            },
        })
    }

    pub(super) async fn open_password_session(
        &self,
        user_id: &str,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        let refresh = crate::random::random_secret();
        let caller = self
            .open_session(
                user_id,
                username,
                SessionKey::Refresh(TokenDigest::of(&refresh).as_str()),
                now,
                now + session::SESSION_TTL,
            )
            .await?;
        self.password_session_answer(&caller, refresh, now)
    }

    /// The answer that hands a new password session to its client: a bearer for `caller` and
    /// the session's refresh token.
    pub(super) fn password_session_answer(
        &self,
        caller: &Caller,
        refresh: String,
        now: DateTime<Utc>,
    ) -> Result<LoginResponse> {
        Ok(LoginResponse {
            token: session::mint(&self.keys, caller, now, now + self.access_ttl)?,
            refresh_token: Some(refresh),
            expires_in: Some(self.access_ttl_seconds()),
        })
    }

    pub(super) async fn open_session(
        &self,
        user_id: &str,
        username: &str,
        key: SessionKey<'_>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Caller> {
        let session_id = Uuid::new_v4().to_string();
        let (source, refresh_digest, token_uuid) = match key {
            SessionKey::Refresh(digest) => (SessionSource::Password, Some(digest), None),
            SessionKey::Token(uuid) => (SessionSource::Pat, None, Some(uuid)),
            SessionKey::DevicePage => (SessionSource::DevicePage, None, None),
        };
        let opened = self
            .store
            .insert_session(&store::NewSession {
                id: &session_id,
                user_id,
                source: source.as_str(),
                refresh_digest,
                token_uuid,
                created_at: now,
                expires_at,
            })
            .await?;
        if !opened {
            // Disabled between the check of its secret and now.
            return Err(Error::bad_credentials());
        }
        Ok(Caller {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            session_id,
            source,
        })
    }
}

/// The throttling subjects of a sign-in as `username` from `ip`: a name account creation
/// would refuse names no account, and counts against the address only (no key is made of
/// it), with the same answer as a wrong password.
fn sign_in_attempt(username: &str, ip: std::net::IpAddr) -> Attempt {
    if super::check_username(username).is_ok() {
        Attempt::on_account(username, ip)
    } else {
        Attempt::from_address(ip)
    }
}

/// What a new session is opened with: a password sign-in's refresh token (its digest), the
/// personal access token it was made from (its uuid: the bearer ends with the token), or
/// nothing, for the device verification page's own short session.
#[derive(Debug, Clone, Copy)]
pub(super) enum SessionKey<'a> {
    Refresh(&'a str),
    Token(&'a str),
    DevicePage,
}

/// What a secret proved: a live personal access token, or the account's password.
pub(super) enum Proof {
    Token(Arc<TokenCheck>),
    Password(UserRow),
}

/// With 2FA on, a password alone only starts the two-step login; everywhere else (the API's
/// auth/token, the registry) it takes a personal access token, as on Docker Hub.
pub(super) fn refuse_password_with_2fa(user: &UserRow) -> Result<()> {
    if user.totp_sealed.is_some() {
        return Err(Error::Unauthorized(
            "This account uses two-factor authentication: use a personal access token".into(),
        ));
    }
    Ok(())
}
