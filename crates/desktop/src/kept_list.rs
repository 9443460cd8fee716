//! The last token list the core served, kept so that a Security screen that opens again (a
//! window made again from the tray) paints at once, before the server answers.
//!
//! Invariants: the kept list is [`TokenRow`]s, which carry no token value (only the masked
//! hint), so keeping it keeps no secret; it is kept in this process's memory only (carried over in memory when the
//! process replaces its own image, [`crate::carry_over`]), per server
//! and for the account that listed it, served only while that account's session is live, and
//! forgotten with the session ([`Desktop::drop_live`](crate::desktop::Desktop)). It is never
//! the answer: the screen marks it as being refreshed and replaces it whole with the server's
//! list, or says that the refresh failed. The core's own actions (deactivate, delete, create,
//! rotate) are applied to it, so a reopen does not show what this app itself just changed
//! back.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::desktop::{lock, Desktop};
use crate::server_url::ServerUrl;
use crate::tokens::TokenRow;

/// The rows of the last complete listing, whose account and when.
#[derive(Debug, Clone)]
pub(crate) struct KeptList {
    pub(crate) username: String,
    pub(crate) listed_at: DateTime<Utc>,
    pub(crate) rows: Arc<Vec<TokenRow>>,
}

impl KeptList {
    pub(crate) fn new(username: String, listed_at: DateTime<Utc>, rows: Vec<TokenRow>) -> Self {
        KeptList {
            username,
            listed_at,
            rows: Arc::new(rows),
        }
    }
}

/// A kept list as the screen receives it.
#[derive(Debug, Clone)]
pub struct Kept {
    /// When the server answered it.
    pub listed_at: DateTime<Utc>,
    /// Its rows, in the list's order.
    pub rows: Arc<Vec<TokenRow>>,
}

impl Desktop {
    /// The list last served for the live session with `server`, if any: what the Security
    /// screen paints while it asks the server again.
    pub fn kept_tokens(&self, server: &ServerUrl) -> Option<Kept> {
        let username = self.live(server)?.username;
        lock(&self.kept_lists)
            .get(server)
            .filter(|kept| kept.username == username)
            .map(|kept| Kept {
                listed_at: kept.listed_at,
                rows: Arc::clone(&kept.rows),
            })
    }

    /// Keeps `rows`, the complete list the server just answered for `username` on `server`.
    pub(crate) fn keep_list(&self, server: &ServerUrl, username: String, rows: Vec<TokenRow>) {
        let kept = KeptList::new(username, self.now(), rows);
        lock(&self.kept_lists).insert(server.clone(), kept);
    }

    /// Forgets the list kept for `server`.
    pub(crate) fn forget_kept_list(&self, server: &ServerUrl) {
        lock(&self.kept_lists).remove(server);
    }

    /// Applies a change this app made to the list kept for `server`.
    fn change_kept_list(&self, server: &ServerUrl, change: impl FnOnce(&mut Vec<TokenRow>)) {
        if let Some(kept) = lock(&self.kept_lists).get_mut(server) {
            change(Arc::make_mut(&mut kept.rows));
        }
    }

    /// The server answered `row` as it now is (after a deactivation, a reactivation, a
    /// switch of its alerts).
    pub(crate) fn kept_row_changed(&self, server: &ServerUrl, row: &TokenRow) {
        self.change_kept_list(server, |rows| {
            if let Some(old) = rows.iter_mut().find(|old| old.uuid == row.uuid) {
                *old = row.clone();
            }
        });
    }

    /// The token `uuid` was deleted.
    pub(crate) fn kept_row_removed(&self, server: &ServerUrl, uuid: Uuid) {
        self.change_kept_list(server, |rows| rows.retain(|old| old.uuid != uuid));
    }

    /// The token `row` was created (it goes first: the list is newest first).
    pub(crate) fn kept_row_created(&self, server: &ServerUrl, row: &TokenRow) {
        self.change_kept_list(server, |rows| rows.insert(0, row.clone()));
    }

    /// The token `old` was rotated into `successor` (it goes first), `old` working until
    /// about `overlap_until` (the core's clock; the server's list brings the exact time).
    pub(crate) fn kept_row_rotated(
        &self,
        server: &ServerUrl,
        old: Uuid,
        successor: &TokenRow,
        overlap_until: DateTime<Utc>,
    ) {
        self.change_kept_list(server, |rows| {
            if let Some(row) = rows.iter_mut().find(|row| row.uuid == old) {
                row.rotated_to = Some(successor.uuid);
                row.overlap_until = Some(overlap_until);
                // This device's auto token is now the successor.
                row.this_device &= !successor.this_device;
            }
            rows.insert(0, successor.clone());
        });
    }
}
