//! A manual token's show-once value that the person has not confirmed copying yet.
//!
//! The window can close (and its page go, with the value it showed) before the person copied
//! the value, and the server never shows it again. So the core keeps the last value it
//! answered to show once — in this process's memory only: never on disk, never in a log
//! (`CreatedToken` prints itself redacted and wipes its value on drop) — until the person
//! confirms ([`Desktop::confirm_copied`]), signs out or quits. A page that appears meanwhile
//! shows it again ([`Desktop::unconfirmed_token`]).

use uuid::Uuid;

use crate::desktop::{lock, Desktop};
use crate::server_url::ServerUrl;
use crate::tokens::CreatedToken;

impl Desktop {
    /// Keeps `created`, just answered on `server`, until it is confirmed (replacing any value
    /// kept before: a page shows one value at a time, so an older one was dismissed).
    pub(crate) fn keep_unconfirmed(&self, server: &ServerUrl, created: &CreatedToken) {
        *lock(&self.unconfirmed) = Some((server.clone(), created.clone()));
    }

    /// The value created on `server` and not confirmed copied yet, to show again.
    pub fn unconfirmed_token(&self, server: &ServerUrl) -> Option<CreatedToken> {
        lock(&self.unconfirmed)
            .as_ref()
            .filter(|(kept_for, _)| kept_for == server)
            .map(|(_, created)| created.clone())
    }

    /// Whether a value is waiting to be confirmed (on any server).
    pub fn has_unconfirmed_token(&self) -> bool {
        lock(&self.unconfirmed).is_some()
    }

    /// The person copied (or dismissed) the value of `uuid`: it is forgotten. Another token's
    /// kept value stays.
    pub fn confirm_copied(&self, uuid: Uuid) {
        let mut kept = lock(&self.unconfirmed);
        if kept
            .as_ref()
            .is_some_and(|(_, created)| created.row.uuid == uuid)
        {
            *kept = None;
        }
    }

    /// Forgets the value kept for `server` (at sign-out).
    pub(crate) fn forget_unconfirmed(&self, server: &ServerUrl) {
        let mut kept = lock(&self.unconfirmed);
        if kept
            .as_ref()
            .is_some_and(|(kept_for, _)| kept_for == server)
        {
            *kept = None;
        }
    }
}
