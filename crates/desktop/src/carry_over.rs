//! What the core carries over when the app starts itself again within its own process.
//!
//! On Linux the tray-resident app, once its window has been closed for a moment, replaces
//! its program image with a fresh one that never loads a webview (`src-tauri/src/resident.rs`):
//! the only way to give back what WebKit left behind. The process, its PID and its tray stay;
//! its memory starts again. What the core held in memory and must not lose goes across as a
//! [`CarriedState`]: the live sessions (so no refresh token is spent and no server is asked)
//! and the kept token lists (so the next window still paints at once).
//!
//! Invariants: the state is taken only while the core is at rest ([`Desktop::carry_out`]):
//! no request of the core in flight ([`Desktop::busy`]), no renewal (the lock is held until
//! the process image is replaced), no sign-in half-way, no show-once value waiting to be
//! copied. It holds bearers: it travels in memory only, from one image of the process to the
//! next, and is never written to a file, a log or the webview.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

use crate::desktop::{lock, Desktop, LiveSession};
use crate::error::DesktopError;
use crate::hand_off::DockerEntry;
use crate::kept_list::KeptList;
use crate::server_url::ServerUrl;
use crate::tokens::TokenRow;

/// What the core hands to the next image of its process.
#[derive(Serialize, Deserialize, Default)]
pub struct CarriedState {
    sessions: Vec<CarriedSession>,
    kept_lists: Vec<CarriedList>,
}

impl std::fmt::Debug for CarriedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bearers.
        f.debug_struct("CarriedState")
            .field("sessions", &self.sessions.len())
            .field("kept_lists", &self.kept_lists.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct CarriedSession {
    server: String,
    /// Wiped when dropped.
    bearer: String,
    username: String,
    auto_token_uuid: Option<Uuid>,
    registry: Option<String>,
    docker_entry: DockerEntry,
}

impl Drop for CarriedSession {
    fn drop(&mut self) {
        self.bearer.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct CarriedList {
    server: String,
    username: String,
    listed_at: chrono::DateTime<chrono::Utc>,
    rows: Vec<TokenRow>,
}

/// Counts a request of the core in flight while it lives ([`Desktop::busy`]); it may move to
/// another thread and outlive the borrow of the core.
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The core at rest, kept so until dropped: no renewal can start meanwhile.
pub struct AtRest<'a> {
    _renewing: tokio::sync::MutexGuard<'a, ()>,
}

impl Desktop {
    /// Marks work as under way until the guard is dropped: a request of the core, or what
    /// the shell must finish in this image of the process (a poll of the events feed and
    /// the notifications it leads to, a notification waiting for its click, which would go
    /// to the old image). The process is not restarted under it.
    pub fn busy(&self) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(&self.in_flight))
    }

    /// What to carry over to the next image of this process, if the core is at rest now;
    /// `None` when something is under way (try again later). Keep the [`AtRest`] guard until
    /// the image is replaced.
    pub fn carry_out(&self) -> Option<(CarriedState, AtRest<'_>)> {
        let renewing = self.renewing.try_lock().ok()?;
        let under_way = self.in_flight.load(Ordering::Acquire) > 0
            || self.has_unconfirmed_token()
            || lock(&self.pending).is_some()
            || lock(&self.browser).is_some();
        if under_way {
            return None;
        }
        let sessions = lock(&self.live)
            .iter()
            .filter_map(|(server, live)| {
                Some(CarriedSession {
                    server: server.to_string(),
                    bearer: live.client.bearer()?.to_owned(),
                    username: live.username.clone(),
                    auto_token_uuid: live.auto_token_uuid,
                    registry: live.registry.clone(),
                    docker_entry: live.docker_entry.clone(),
                })
            })
            .collect();
        let kept_lists = lock(&self.kept_lists)
            .iter()
            .map(|(server, kept)| CarriedList {
                server: server.to_string(),
                username: kept.username.clone(),
                listed_at: kept.listed_at,
                rows: kept.rows.as_ref().clone(),
            })
            .collect();
        Some((
            CarriedState {
                sessions,
                kept_lists,
            },
            AtRest {
                _renewing: renewing,
            },
        ))
    }

    /// Takes over what the previous image of this process carried out: its live sessions
    /// (each a new generation) and kept lists. Answers the servers with a live session.
    pub fn carry_in(&self, state: CarriedState) -> Result<Vec<ServerUrl>, DesktopError> {
        let mut servers = Vec::new();
        for mut session in state.sessions {
            let server = ServerUrl::parse(&session.server)?;
            let live = LiveSession {
                client: self
                    .client(&server)?
                    .with_token(std::mem::take(&mut session.bearer)),
                username: std::mem::take(&mut session.username),
                auto_token_uuid: session.auto_token_uuid,
                registry: session.registry.take(),
                docker_entry: std::mem::take(&mut session.docker_entry),
                generation: 0,
            };
            self.install_live(&server, live);
            servers.push(server);
        }
        for list in state.kept_lists {
            let server = ServerUrl::parse(&list.server)?;
            lock(&self.kept_lists).insert(
                server,
                KeptList::new(list.username, list.listed_at, list.rows),
            );
        }
        Ok(servers)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use hubkey_keyring::MemoryStore;

    fn desktop() -> Desktop {
        Desktop::new(
            Arc::new(MemoryStore::default()),
            std::env::temp_dir().join("hubkey-carry-over-test/config.json"),
            "laptop",
        )
    }

    #[test]
    fn a_busy_core_carries_nothing_out_until_the_request_ends() {
        let desktop = desktop();
        let busy = desktop.busy();
        assert!(desktop.carry_out().is_none());
        drop(busy);
        assert!(desktop.carry_out().is_some());
    }

    #[tokio::test]
    async fn a_renewal_under_way_keeps_the_state_in_and_the_rest_guard_holds_renewals_off() {
        let desktop = desktop();
        {
            let _renewing = desktop.renewing.lock().await;
            assert!(desktop.carry_out().is_none());
        }
        let (_, at_rest) = desktop.carry_out().unwrap();
        assert!(desktop.renewing.try_lock().is_err());
        drop(at_rest);
        assert!(desktop.renewing.try_lock().is_ok());
    }

    #[test]
    fn live_sessions_and_kept_lists_go_across_and_their_debug_form_names_no_bearer() {
        let before = desktop();
        let server = ServerUrl::parse("http://127.0.0.1:9").unwrap();
        let live = LiveSession {
            client: before.client(&server).unwrap().with_token("bearer-secret"),
            username: "ann".into(),
            auto_token_uuid: Some(Uuid::nil()),
            registry: Some("127.0.0.1:5000".into()),
            docker_entry: DockerEntry::NotWritten,
            generation: 0,
        };
        before.install_live(&server, live);
        before.keep_list(&server, "ann".into(), Vec::new());

        let (state, _at_rest) = before.carry_out().unwrap();
        assert!(!format!("{state:?}").contains("bearer-secret"));
        let json = serde_json::to_string(&state).unwrap();
        let state: CarriedState = serde_json::from_str(&json).unwrap();

        let after = desktop();
        assert_eq!(after.carry_in(state).unwrap(), vec![server.clone()]);
        let live = after.live(&server).unwrap();
        assert_eq!(live.client.bearer(), Some("bearer-secret"));
        assert_eq!(live.username, "ann");
        assert_eq!(live.auto_token_uuid, Some(Uuid::nil()));
        assert_eq!(live.docker_entry, DockerEntry::NotWritten);
        assert!(live.generation > 0);
        assert!(after.kept_tokens(&server).is_some());
    }
}
