//! The docker CLI hand-off: pointing `config.json` at `docker-credential-hubkey` for the
//! hub's registry, after a sign-in and again at each restore (so a `config.json` fixed since
//! is set up then). A file that cannot be changed is reported, never an error of the sign-in.
//!
//! Invariants: a credential helper the person set for the registry is replaced only when
//! they agreed to ([`Desktop::replace_docker_helper`]), and the helper it replaced is kept
//! with the session ([`DockerEntry`]) so that signing out puts it back; signing out touches
//! only an entry hubkey wrote.

use serde::{Deserialize, Serialize};

use crate::desktop::Desktop;
use crate::docker_config::{Claim, DockerConfigError};
use crate::error::DesktopError;
use crate::outcome::{HandOff, SkipReason};
use crate::server_url::ServerUrl;

/// Who wrote the registry's `credHelpers` entry, kept with the session so that a sign-out
/// (also after a restart) undoes exactly what hubkey did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum DockerEntry {
    /// A session kept by a version that did not record it; that version wrote the entry
    /// over whatever was there, so sign-out removes it when it still names hubkey.
    #[default]
    Unrecorded,
    /// hubkey did not write the entry (it named hubkey already, or another helper the person
    /// kept): sign-out leaves it.
    NotWritten,
    /// hubkey wrote the entry over `previous` (`None`: there was none): sign-out puts that
    /// back, when the entry still names hubkey.
    Written {
        /// The person's helper for the registry before.
        previous: Option<String>,
    },
}

impl DockerEntry {
    /// The record after a claim that answered `claim`, given the record of an earlier session
    /// with the same server and registry (`None` when there is none).
    fn after(claim: &Claim, earlier: Option<&DockerEntry>) -> DockerEntry {
        match (claim, earlier) {
            (Claim::Written { previous }, _) => DockerEntry::Written {
                previous: previous.clone(),
            },
            // The entry is as an earlier session left it: its record still holds.
            (Claim::AlreadyOurs | Claim::TakenBy(_), Some(earlier)) => earlier.clone(),
            (Claim::AlreadyOurs | Claim::TakenBy(_), None) => DockerEntry::NotWritten,
        }
    }

    /// What sign-out puts back: `None` to leave the entry alone, else the helper to restore
    /// (itself `None`: remove the entry).
    pub(crate) fn to_restore(&self) -> Option<Option<&str>> {
        match self {
            DockerEntry::Unrecorded => Some(None),
            DockerEntry::NotWritten => None,
            DockerEntry::Written { previous } => Some(previous.as_deref()),
        }
    }
}

impl Desktop {
    /// Points the docker CLI at `registry` unless another helper is set for it (then the
    /// answer asks the person, [`HandOff::AskToReplace`]); a `config.json` that cannot be
    /// changed is reported, not an error. Answers the hand-off and the record to keep with
    /// the session, from `earlier`, the record of the session before (if any).
    pub(crate) fn hand_off(
        &self,
        registry: Option<&str>,
        earlier: Option<&DockerEntry>,
    ) -> (HandOff, Option<DockerEntry>) {
        let Some(registry) = registry else {
            let skipped = HandOff::Skipped {
                reason: SkipReason::NoRegistry,
                message: "The hub announces no registry, so the docker CLI was not set up.".into(),
            };
            return (skipped, earlier.cloned());
        };
        match self.docker_config.claim(registry, None) {
            Ok(claim) => (
                self.handed_off(registry, &claim),
                Some(DockerEntry::after(&claim, earlier)),
            ),
            Err(err) => (skipped(err), earlier.cloned()),
        }
    }

    /// Replaces the docker credential helper `current`, which the person was shown for the
    /// registry of the live session with `server` and agreed to replace; the helper is kept
    /// with the session first, so sign-out puts it back even after a crash. When the entry
    /// changed meanwhile, nothing is written and the answer asks again.
    pub async fn replace_docker_helper(
        &self,
        server: &ServerUrl,
        current: &str,
    ) -> Result<HandOff, DesktopError> {
        // Not restarted under it (`carry_over.rs`).
        let _busy = self.busy();
        // The session entry keeps its name (crate::entry_bounds).
        crate::entry_bounds::check_helper_name(current)?;
        let live = self.live(server).ok_or(DesktopError::SessionEnded)?;
        let Some(registry) = live.registry.clone() else {
            return Ok(self.hand_off(None, None).0);
        };
        let Some(mut stored) = self.read_session(server).await? else {
            return Err(DesktopError::SessionEnded);
        };
        let earlier = stored.docker_entry.clone();
        stored.docker_entry = DockerEntry::Written {
            previous: Some(current.to_owned()),
        };
        self.save_session(server, &stored).await?;
        let claimed = self.docker_config.claim(&registry, Some(current));
        let written = matches!(claimed, Ok(Claim::Written { .. }));
        if !written {
            // Nothing was replaced: the record goes back to what it was.
            stored.docker_entry = earlier;
            self.save_session(server, &stored).await?;
        }
        self.set_live_docker_entry(server, stored.docker_entry.clone());
        Ok(match claimed {
            Ok(claim) => self.handed_off(&registry, &claim),
            Err(err) => skipped(err),
        })
    }

    /// What a claim of `registry` means for the person.
    fn handed_off(&self, registry: &str, claim: &Claim) -> HandOff {
        match claim {
            Claim::Written { .. } | Claim::AlreadyOurs => HandOff::Done {
                registry: registry.to_owned(),
                config_path: self.docker_config.path().to_path_buf(),
            },
            Claim::TakenBy(current) => HandOff::AskToReplace {
                registry: registry.to_owned(),
                current: current.clone(),
                config_path: self.docker_config.path().to_path_buf(),
            },
        }
    }
}

/// A `config.json` that could not be read or written, as the hand-off reports it.
fn skipped(err: DockerConfigError) -> HandOff {
    match err {
        err @ DockerConfigError::Unparsable { .. } => HandOff::Skipped {
            reason: SkipReason::DockerConfigUnparsable,
            message: DesktopError::from(err).to_string(),
        },
        err @ DockerConfigError::Io { .. } => HandOff::Skipped {
            reason: SkipReason::DockerConfigUnwritable,
            message: format!("The docker CLI was not set up: {err}."),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_says_what_sign_out_puts_back() {
        let wrote = |previous: Option<&str>| DockerEntry::Written {
            previous: previous.map(str::to_owned),
        };
        let written = |previous: Option<&str>| Claim::Written {
            previous: previous.map(str::to_owned),
        };
        // Written now: what was there is put back.
        assert_eq!(DockerEntry::after(&written(None), None), wrote(None));
        assert_eq!(
            DockerEntry::after(&written(Some("desktop")), Some(&DockerEntry::NotWritten)),
            wrote(Some("desktop"))
        );
        // Found as an earlier session of this app left it: that session's record holds.
        assert_eq!(
            DockerEntry::after(&Claim::AlreadyOurs, Some(&wrote(Some("pass")))),
            wrote(Some("pass"))
        );
        // Found naming hubkey or another helper, with no session before: not ours to undo.
        assert_eq!(
            DockerEntry::after(&Claim::AlreadyOurs, None),
            DockerEntry::NotWritten
        );
        assert_eq!(
            DockerEntry::after(&Claim::TakenBy("desktop".into()), None),
            DockerEntry::NotWritten
        );

        assert_eq!(DockerEntry::NotWritten.to_restore(), None);
        assert_eq!(DockerEntry::Unrecorded.to_restore(), Some(None));
        assert_eq!(wrote(Some("desktop")).to_restore(), Some(Some("desktop")));
        // A session kept before the record existed reads as unrecorded.
        let old: DockerEntry = serde_json::from_str(r#"{"state":"unrecorded"}"#).unwrap();
        assert_eq!(old, DockerEntry::Unrecorded);
    }
}
