//! The desktop app's core, without a window: sign-in (with a second factor when asked), the
//! silent auto token, the session in the OS keyring, and the docker CLI hand-off.
//!
//! The Tauri shell only translates between its commands and [`Desktop`]; everything here is
//! tested against a real hubkeyd and a real keyring without a UI.
//!
//! Invariants: the auto token's plaintext never leaves this crate except into the
//! [`hubkey_keyring::SecretStore`]; no error or serialised value carries a password or a
//! token; the docker `config.json` is merged, never overwritten when it does not parse.

#![warn(missing_docs)]

mod account;
mod activity;
pub mod alerts;
mod atomic;
mod carry_over;
mod desktop;
mod device_sign_in;
pub mod docker_config;
pub mod entry_bounds;
mod error;
pub mod export;
#[cfg(test)]
mod fixtures;
mod hand_off;
mod kept_list;
mod outcome;
mod password;
pub mod platform;
mod secrets;
mod server_url;
mod session;
mod settings_file;
pub mod start_at_login;
mod tokens;
mod two_factor;
mod unconfirmed;
pub mod watcher;
mod window_place;

pub use account::{CLIENT_NAME, DOCKER_HUB_REGISTRY};
pub use activity::{
    AccessLine, AccessPage, ActivityEvent, EventFilter, EventKind, EventPage, EventToken,
    TokenDetail, ACCESS_CAP, TIMELINE_CAP,
};
pub use alerts::{Alert, AlertKind, AlertSettings};
pub use carry_over::{AtRest, Busy, CarriedState};
pub use desktop::Desktop;
pub use device_sign_in::{BrowserSignIn, BrowserSignInStep, CLIENT_ID};
pub use docker_config::{config_path, config_path_from_env, DockerConfig, DockerConfigError};
pub use error::{DesktopError, ErrorBody, ErrorCode};
pub use export::ExportFormat;
pub use hubkey_api::clock::{Clock, ManualClock};
pub use kept_list::Kept;
pub use outcome::{Account, HandOff, Leftover, SignInStep, SignOutReport, SignOutStep, SkipReason};
pub use password::PasswordChanged;
pub use platform::Os;
pub use secrets::{session_account, SESSION_ACCOUNT_PREFIX};
pub use server_url::{is_loopback_host, ServerUrl, Unencrypted, DOCKER_HUB};
pub use settings_file::{SettingsError, SettingsFile};
pub use start_at_login::{LoginItem, LoginState, StartAtLoginError};
pub use tokens::{
    CreatedToken, DayUse, Rotation, TokenChunk, TokenOrigin, TokenRow, TokenScope, TokenStatus,
    CHUNK_ROWS,
};
pub use two_factor::{qr_svg, QrSvg, TotpSetup, TwoFactorState};
pub use watcher::{
    escape_markup, next_delay, poll_once, AlertContext, NotificationEvent, PrunedToken,
    WatchCursor, WatchOutcome,
};
pub use window_place::{Screen, WindowPlace};
