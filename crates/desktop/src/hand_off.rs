//! The docker CLI hand-off: pointing `config.json` at `docker-credential-hubkey` for the
//! hub's registry, after a sign-in and again at each restore (so a `config.json` fixed since
//! is set up then). A file that cannot be changed is reported, never an error of the sign-in.

use crate::desktop::Desktop;
use crate::docker_config::{DockerConfigError, HELPER};
use crate::error::DesktopError;
use crate::outcome::{HandOff, SkipReason};

impl Desktop {
    /// Points the docker CLI at `registry`; a `config.json` that cannot be changed is
    /// reported, not an error.
    pub(crate) fn hand_off(&self, registry: Option<&str>) -> HandOff {
        let Some(registry) = registry else {
            return HandOff::Skipped {
                reason: SkipReason::NoRegistry,
                message: "The hub announces no registry, so the docker CLI was not set up.".into(),
            };
        };
        match self.docker_config.point_at_helper(registry, HELPER) {
            Ok(_) => HandOff::Done {
                registry: registry.to_owned(),
                config_path: self.docker_config.path().to_path_buf(),
            },
            Err(err @ DockerConfigError::Unparsable { .. }) => HandOff::Skipped {
                reason: SkipReason::DockerConfigUnparsable,
                message: DesktopError::from(err).to_string(),
            },
            Err(err @ DockerConfigError::Io { .. }) => HandOff::Skipped {
                reason: SkipReason::DockerConfigUnwritable,
                message: format!("The docker CLI was not set up: {err}."),
            },
        }
    }
}
