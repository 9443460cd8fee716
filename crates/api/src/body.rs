//! Request and response bodies, with Docker Hub's field names.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Scope;

/// `POST /v2/users/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A session: a short-lived bearer JWT and, for password logins, a refresh token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer JWT for the API, valid for `expires_in` seconds.
    pub token: String,
    /// Exchanges for a new session at `/v2/users/refresh` (our extension); single use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until `token` expires (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// `POST /v2/users/2fa-login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorLoginRequest {
    pub login_2fa_token: String,
    /// The current 6-digit TOTP code.
    pub code: String,
}

/// `POST /v2/users/refresh` (our extension).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /v2/auth/token`: `secret` is a password or a personal access token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthTokenRequest {
    pub identifier: String,
    pub secret: String,
}

/// Answer of `POST /v2/auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthTokenResponse {
    pub access_token: String,
}

/// Who made a token: a person by hand, or the desktop app at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Manual,
    Auto,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Manual => "manual",
            Origin::Auto => "auto",
        }
    }

    /// Reads the stored form; anything but `auto` is manual.
    pub fn from_stored(s: &str) -> Self {
        if s == "auto" {
            Origin::Auto
        } else {
            Origin::Manual
        }
    }
}

/// Whether a token works right now (our extension; Hub gives only `is_active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    Active,
    Inactive,
    Expired,
}

/// `POST /v2/access-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessTokenRequest {
    /// 1 to 100 characters.
    pub token_label: String,
    /// At least one scope.
    pub scopes: Vec<Scope>,
    /// Optional expiry, in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PATCH /v2/access-tokens/{uuid}`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAccessTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    /// Our extension: whether a use from a new address records a `new_address` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_address_alerts: Option<bool>,
}

/// One personal access token as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessToken {
    pub uuid: Uuid,
    /// The client that created it (`hubkey`, `docker-desktop`, or empty for the API).
    pub client_id: String,
    pub creator_ip: String,
    pub creator_ua: String,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub generated_by: Origin,
    pub is_active: bool,
    /// The plaintext token: only in the answer that created it, empty everywhere else.
    pub token: String,
    pub token_label: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Our extension: the masked form, `hkpat_…` and the last four characters.
    pub token_hint: String,
    /// Our extension: active, inactive or expired, as of the answer.
    pub state: TokenState,
    /// Our extension: uses per UTC day over the last 30 days, oldest first; days without
    /// use are left out.
    #[serde(default)]
    pub usage: Vec<DailyUse>,
    /// Our extension: the token this one replaced by a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<Uuid>,
    /// Our extension: the token that replaced this one by a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<Uuid>,
    /// Our extension: for a rotated-away token, when it stops working (the end of the
    /// overlap the rotation asked for); refused from this instant on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_until: Option<DateTime<Utc>>,
    /// Our extension: the addresses the token was most recently used from, newest first (at
    /// most [`LAST_ADDRESSES`]).
    #[serde(default)]
    pub last_addresses: Vec<String>,
    /// Our extension: whether a use from an address the token was never used from records a
    /// `new_address` event (on by default; off for tokens used from many addresses, such as
    /// CI's).
    #[serde(default = "new_address_alerts_default")]
    pub new_address_alerts: bool,
}

fn new_address_alerts_default() -> bool {
    true
}

/// How many addresses [`AccessToken::last_addresses`] lists.
pub const LAST_ADDRESSES: usize = 5;

/// How often a token was used on one UTC day (our extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DailyUse {
    pub day: NaiveDate,
    pub uses: u64,
}

/// A repository's visibility, as hubkeyd keeps it for the registry token service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Repository {
    pub namespace: String,
    pub name: String,
    /// Private repositories are pulled only by their owner; public ones by anyone.
    pub is_private: bool,
}

/// `PATCH /v2/repositories/{namespace}/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRepositoryRequest {
    pub is_private: bool,
}

/// Answer of the registry token endpoint (`GET`/`POST /token`), per the distribution
/// token-auth spec.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryTokenResponse {
    pub token: String,
    pub access_token: String,
    /// Seconds the token is valid.
    pub expires_in: u64,
    pub issued_at: DateTime<Utc>,
    /// Only for the OAuth2 form with `access_type=offline` and a personal access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `GET /v2/access-tokens`: one page of the account's tokens, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessTokenPage {
    /// All tokens of the account.
    pub count: u64,
    /// URL of the next page, if any.
    pub next: Option<String>,
    /// URL of the previous page, if any.
    pub previous: Option<String>,
    /// Tokens that are active and not expired.
    pub active_count: u64,
    pub results: Vec<AccessToken>,
}

/// Optional body of `POST /v2/access-tokens/desktop-generate` (our extension; Hub sends none):
/// names the client and device for the auto token's label. Without it the server reads the
/// User-Agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DesktopGenerateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// Answer of `desktop-generate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DesktopGenerateResponse {
    pub data: GeneratedToken,
}

/// The auto token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GeneratedToken {
    pub token: String,
    /// Our extension: so the app can find and delete its own token later.
    pub uuid: Uuid,
    /// Our extension: the label the server gave it.
    pub token_label: String,
}

/// What happened to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenEventKind {
    Created,
    Activated,
    Deactivated,
    Relabelled,
    Deleted,
    /// Deleted by the server because the account had more than five auto tokens.
    Pruned,
    /// Its `expires_at` passed.
    Expired,
    /// A secret scanner (GitHub's partner program) found it in public: deactivated, with the
    /// `url` and `source` of the finding. One event per distinct finding.
    Leaked,
    /// Someone sent it to the public revocation endpoint: deactivated.
    Reported,
    /// Replaced by a rotation (on the old token, `related_token` the new one) or made by one
    /// (on the new token, `related_token` the old one).
    Rotated,
    /// A rotated-away token was presented after its overlap ended and refused; `related_token`
    /// is its successor, `address` and `user_agent` the request's. Coalesced: at most one per
    /// token, address and agent per hour.
    ReuseDetected,
    /// The token was accepted from an address it had never been used from (its first use
    /// does not count); `address` and `user_agent` are the request's. At most
    /// ten per token per hour, and none for a token whose `new_address_alerts` is off.
    NewAddress,
}

impl TokenEventKind {
    pub const ALL: [TokenEventKind; 12] = [
        TokenEventKind::Created,
        TokenEventKind::Activated,
        TokenEventKind::Deactivated,
        TokenEventKind::Relabelled,
        TokenEventKind::Deleted,
        TokenEventKind::Pruned,
        TokenEventKind::Expired,
        TokenEventKind::Leaked,
        TokenEventKind::Reported,
        TokenEventKind::Rotated,
        TokenEventKind::ReuseDetected,
        TokenEventKind::NewAddress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenEventKind::Created => "created",
            TokenEventKind::Activated => "activated",
            TokenEventKind::Deactivated => "deactivated",
            TokenEventKind::Relabelled => "relabelled",
            TokenEventKind::Deleted => "deleted",
            TokenEventKind::Pruned => "pruned",
            TokenEventKind::Expired => "expired",
            TokenEventKind::Leaked => "leaked",
            TokenEventKind::Reported => "reported",
            TokenEventKind::Rotated => "rotated",
            TokenEventKind::ReuseDetected => "reuse_detected",
            TokenEventKind::NewAddress => "new_address",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

/// One entry of the events feed (our extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenEvent {
    /// Position of this event in the feed; pass it as `after` to read what follows.
    pub cursor: String,
    pub kind: TokenEventKind,
    pub token_uuid: Uuid,
    pub token_label: String,
    pub generated_by: Origin,
    pub at: DateTime<Utc>,
    /// For pruned tokens: when the token was last used, if ever.
    #[serde(default)]
    pub last_used: Option<DateTime<Utc>>,
    /// For pruned tokens: the client of the token (its device is in the label).
    #[serde(default)]
    pub client_id: String,
    /// For `leaked`: where the token was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `leaked`: what the finding was in (GitHub's `source`: content, commit, issue…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For `reuse_detected` and `new_address`: the address the request came from; for
    /// `created`, the creating request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// For `reuse_detected` and `new_address`: the request's User-Agent; for `created`, the
    /// creating request's (a desktop app tells its own creations from another device's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// For `rotated` and `reuse_detected`: the other token of the rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_token: Option<Uuid>,
}

/// `GET /v2/access-tokens/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenEventPage {
    pub events: Vec<TokenEvent>,
    /// Where to continue: pass as `after` on the next call. Equal to the request's `after`
    /// when nothing new happened. Opaque; increases as events are added.
    pub cursor: String,
    /// True when more events wait after `cursor`.
    pub has_more: bool,
}

/// `PUT /v2/users/password` (our extension): change the signed-in account's password.
/// Every other session of the account ends; with `revoke_tokens`, every personal access token
/// of the account is deactivated too.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
    /// Also deactivate every personal access token of the account (default: they stay).
    #[serde(default)]
    pub revoke_tokens: bool,
}

/// Answer of `POST /v2/users/sessions/revoke-all` (our extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedSessions {
    /// Sessions that were live and are now ended, the caller's included.
    pub revoked: u64,
}

/// What happened to an account's security (our extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountEventKind {
    /// A spent refresh token was presented again: someone else may hold a copy, so the whole
    /// session was ended.
    RefreshReuse,
    /// The password was changed (by the account or by the administrator).
    PasswordChanged,
    /// Sessions were ended on request ("sign out everywhere", or the administrator).
    SessionsRevoked,
    /// Two-factor authentication was turned on, off or re-keyed.
    TwoFactorChanged,
    /// Too many wrong second-factor codes: sign-in needs the password again.
    SecondFactorLocked,
    /// A device sign-in (RFC 8628) was approved on the verification page, from `address`:
    /// the device gets a full session of the account.
    DeviceApproved,
}

impl AccountEventKind {
    pub const ALL: [AccountEventKind; 6] = [
        AccountEventKind::RefreshReuse,
        AccountEventKind::PasswordChanged,
        AccountEventKind::SessionsRevoked,
        AccountEventKind::TwoFactorChanged,
        AccountEventKind::SecondFactorLocked,
        AccountEventKind::DeviceApproved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountEventKind::RefreshReuse => "refresh_reuse",
            AccountEventKind::PasswordChanged => "password_changed",
            AccountEventKind::SessionsRevoked => "sessions_revoked",
            AccountEventKind::TwoFactorChanged => "two_factor_changed",
            AccountEventKind::SecondFactorLocked => "second_factor_locked",
            AccountEventKind::DeviceApproved => "device_approved",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

/// One entry of the account's security feed (our extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountEvent {
    /// Position of this event in the feed; pass it as `after` to read what follows.
    pub cursor: String,
    pub kind: AccountEventKind,
    pub at: DateTime<Utc>,
    /// The address the request that caused it came from, when a request did.
    #[serde(default)]
    pub address: Option<String>,
    /// The User-Agent of that request, when it sent one.
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// `GET /v2/users/security-events` (our extension): oldest first, like the token events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountEventPage {
    pub events: Vec<AccountEvent>,
    /// Where to continue: pass as `after` on the next call. Equal to the request's `after`
    /// when nothing new happened. Opaque; increases as events are added.
    pub cursor: String,
    /// True when more events wait after `cursor`.
    pub has_more: bool,
}

/// `GET /v2/hubkey/info` (our extension): where this hub's registry is, so a desktop app
/// knows which registry host to point the docker CLI at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HubInfo {
    /// The registry host (`host:port`) whose token server this hub is, when configured.
    pub registry_host: Option<String>,
    /// The token endpoint registries send clients to.
    pub token_realm: String,
    /// The service name in registry tokens.
    pub service: String,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// OAuth 2.0 device authorization grant (RFC 8628), `POST /oauth/device/code`: the client and
/// the device it runs on, as the verification page shows them to the person who approves.
/// Form-encoded as the RFC says; JSON is accepted too.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DeviceCodeRequest {
    /// The OAuth client (e.g. `hubkey-desktop`, `hubkey-cli`); 1 to 64 printable characters.
    pub client_id: String,
    /// Recorded and ignored: an approved grant is a full session of the approving account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The application as a person knows it (e.g. "hubkey for Linux"); at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The device's name (e.g. its host name); at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// The device's operating system; at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceCodeResponse {
    /// The secret the device polls `/oauth/token` with; single use.
    pub device_code: String,
    /// What the person types on the verification page, as `XXXX-XXXX`.
    pub user_code: String,
    /// `{server}/device`.
    pub verification_uri: String,
    /// `{server}/device?user_code=XXXX-XXXX`.
    pub verification_uri_complete: String,
    /// Seconds the codes live (600).
    pub expires_in: u64,
    /// Seconds to wait between polls (5).
    pub interval: u64,
}

/// `POST /oauth/token` (form-encoded) with the device code grant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DeviceTokenRequest {
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: String,
    pub device_code: String,
    /// Optional; not checked against the grant's (kept for RFC clients that send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The grant type of RFC 8628 §3.4.
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 6749 §5.1: an approved device grant's session, the same a password sign-in opens (a
/// bearer JWT for the API and a refresh token for `/v2/users/refresh`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceTokenResponse {
    /// Bearer JWT for the API, valid for `expires_in` seconds.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    pub expires_in: u64,
    /// Exchanges for a new session at `/v2/users/refresh`; single use.
    pub refresh_token: String,
}

/// RFC 6749 §5.2 error body of the OAuth endpoints: `error` is one of `invalid_request`,
/// `invalid_client`, `unsupported_grant_type`, `invalid_grant`, `authorization_pending`,
/// `slow_down`, `access_denied`, `expired_token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// With `slow_down`: the interval now in force for this code, in seconds (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

/// `POST /v2/users/2fa/enrol` (our extension): a new TOTP secret, not in force until
/// confirmed with a first code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret in RFC 4648 base32, for typing into an authenticator.
    pub secret: String,
    /// The `otpauth://totp/…` URI an authenticator imports (usually as a QR code).
    pub otpauth_uri: String,
    /// When this enrolment expires unless confirmed.
    pub expires_at: DateTime<Utc>,
}

/// `POST /v2/users/2fa/enrol`: the account's password, asked again (a session alone must not
/// be enough to put a second factor only its holder knows on the account).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrolRequest {
    pub password: String,
}

/// A TOTP code: `POST /v2/users/2fa/confirm` and `/v2/users/2fa/recovery-codes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeRequest {
    /// The authenticator's current 6-digit code (or, where the operation says so, a recovery
    /// code).
    pub code: String,
}

/// `POST /v2/users/2fa/disable`: the password AND a current code or a recovery code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotpRequest {
    pub password: String,
    pub code: String,
}

/// Ten single-use recovery codes, shown this once; each works once in place of a TOTP code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `GET /v2/users/2fa`: whether the account has two-factor sign-in, and recovery codes left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    pub recovery_codes_left: u32,
}

/// One finding of GitHub's secret scanning, as its partner program posts it to
/// `POST /v2/secret-scanning/github` (a JSON array of these).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretScanningMatch {
    /// The string that matched the token pattern.
    pub token: String,
    /// The pattern's name, as registered with the scanner.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    pub url: String,
    /// What it was found in (`content`, `commit`, `issue_comment`, `npm`…).
    #[serde(default)]
    pub source: String,
}

/// Whether a reported string is one of this hub's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretScanningLabel {
    /// A token of this hub (active or not): it is now deactivated.
    TruePositive,
    /// Not a token of this hub.
    FalsePositive,
}

/// The answer for one [`SecretScanningMatch`], in GitHub's partner format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretScanningResult {
    pub token_raw: String,
    pub token_type: String,
    pub label: SecretScanningLabel,
}

/// `POST /v2/credentials/revoke` (our extension, like GitHub's credential revocation API):
/// personal access tokens someone found; each real one is deactivated. No authentication.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeCredentialsRequest {
    /// At most [`MAX_REVOKE_CREDENTIALS`] strings.
    pub credentials: Vec<String>,
}

/// The most credentials one `POST /v2/credentials/revoke` takes.
pub const MAX_REVOKE_CREDENTIALS: usize = 1000;

/// The answer of `POST /v2/credentials/revoke`: always the same, whether or not any
/// credential was a live token (no oracle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokeCredentialsResponse {
    /// Always `"accepted"`.
    pub status: String,
}

/// `POST /v2/access-tokens/{uuid}/rotate` (our extension): the body is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateAccessTokenRequest {
    /// How long the old token keeps working, 0 to [`MAX_OVERLAP_SECONDS`] (default 0: it
    /// stops at once).
    #[serde(default)]
    pub overlap_seconds: u32,
}

/// The longest overlap of a rotation: 7 days.
pub const MAX_OVERLAP_SECONDS: u32 = 7 * 24 * 3600;

/// `GET/PATCH /v2/users/settings` (our extension): the account's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountSettings {
    /// A rotated-away token presented after its overlap also deactivates its successor
    /// (default off: a stale CI job would otherwise take the new token down with it).
    pub revoke_on_reuse: bool,
}

/// `PATCH /v2/users/settings`: only the fields present change.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAccountSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_on_reuse: Option<bool>,
}

/// One line of a token's access log (our extension): its uses from one address and agent,
/// doing one thing, on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenAccess {
    /// Position in the log; pass it as `after` to read what follows.
    pub cursor: String,
    pub day: NaiveDate,
    pub address: String,
    pub user_agent: String,
    /// What the uses did: `registry:NAMESPACE/NAME:ACTIONS` or `api:sign-in`.
    pub action: String,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub uses: u64,
}

/// `GET /v2/access-tokens/{uuid}/activity` (our extension): oldest first, paged like the
/// events feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenActivityPage {
    pub entries: Vec<TokenAccess>,
    /// Where to continue: pass as `after` on the next call.
    pub cursor: String,
    pub has_more: bool,
}
