//! What the account flows answer, as the UI receives them (TypeScript types are generated
//! from these): the signed-in [`Account`], the steps of a sign-in, whether the docker CLI was
//! handed the token, and what a sign-out could not do. No secret is ever among them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::server_url::ServerUrl;

/// The result of the password step.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SignInStep {
    /// Signed in and provisioned.
    SignedIn(Account),
    /// The account has two-factor authentication: call [`Desktop::submit_code`] with the
    /// authenticator's current code. The challenge stays in the core.
    CodeRequired,
}

/// A signed-in account, as the UI shows it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The server.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub server_url: ServerUrl,
    /// The account's user name.
    pub username: String,
    /// The registry the auto token is for, when the hub announces one.
    pub registry: Option<String>,
    /// Whether the docker CLI was pointed at the token.
    pub docker_hand_off: HandOff,
}

/// Whether the docker CLI now uses the auto token.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HandOff {
    /// `config.json` sends `registry`'s credentials to `docker-credential-hubkey`.
    Done {
        /// The registry host.
        registry: String,
        /// The file that says so.
        config_path: PathBuf,
    },
    /// Another credential helper is set for the registry in `config.json`; it was left as
    /// it is. The UI asks the person whether to replace it
    /// ([`crate::Desktop::replace_docker_helper`]).
    AskToReplace {
        /// The registry host.
        registry: String,
        /// The helper `config.json` names for it now.
        current: String,
        /// The file that says so.
        config_path: PathBuf,
    },
    /// The docker CLI was not set up; the sign-in itself succeeded.
    Skipped {
        /// Why, for the UI to branch on.
        reason: SkipReason,
        /// Why, for a person.
        message: String,
    },
}

/// Why the docker hand-off was skipped.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The hub announces no registry, so there is nothing to point the docker CLI at.
    NoRegistry,
    /// `config.json` does not parse; it was left untouched.
    DockerConfigUnparsable,
    /// `config.json` could not be written.
    DockerConfigUnwritable,
}

/// What [`Desktop::sign_out`] could not do; local entries are always cleaned when possible.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SignOutReport {
    /// The steps that failed, with why.
    pub not_done: Vec<Leftover>,
}

/// One sign-out step that failed.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leftover {
    /// Which step.
    pub step: SignOutStep,
    /// Why, for a person.
    pub message: String,
}

/// The steps of a sign-out.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOutStep {
    /// Deleting this device's auto token on the server.
    DeleteAutoToken,
    /// Ending the session on the server.
    RevokeSession,
    /// Erasing the docker credential from the keyring.
    EraseDockerCredential,
    /// Erasing the session from the keyring.
    EraseSession,
    /// Removing the `credHelpers` entry from `config.json`.
    DockerConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_serialises_for_the_ui() {
        let account = Account {
            server_url: ServerUrl::parse("http://127.0.0.1:5080/").unwrap(),
            username: "ann".into(),
            registry: None,
            docker_hand_off: HandOff::Skipped {
                reason: SkipReason::NoRegistry,
                message: "none".into(),
            },
        };
        let json = serde_json::to_value(SignInStep::SignedIn(account)).unwrap();
        assert_eq!(json["step"], "signed_in");
        assert_eq!(json["server_url"], "http://127.0.0.1:5080");
        assert_eq!(json["docker_hand_off"]["state"], "skipped");
        assert_eq!(json["docker_hand_off"]["reason"], "no_registry");
        assert_eq!(
            serde_json::to_value(SignInStep::CodeRequired).unwrap(),
            serde_json::json!({"step": "code_required"})
        );
    }
}
