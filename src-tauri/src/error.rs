//! Why a command failed, as the UI receives it: the core's [`DesktopError`] or the shell's
//! own settings, both written as the core's one [`ErrorBody`] shape.

use hubkey_desktop::{DesktopError, ErrorBody, ErrorCode};
use serde::Serialize;

use crate::settings::SettingsError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The core refused or failed.
    #[error(transparent)]
    Desktop(#[from] DesktopError),
    /// The app's own settings file could not be read or written.
    #[error("The app's settings could not be saved: {0}")]
    Settings(SettingsError),
}

impl From<SettingsError> for CommandError {
    fn from(err: SettingsError) -> Self {
        match err {
            // A remembered address that does not parse is the address's fault, as when typed.
            SettingsError::Server(err) => CommandError::Desktop(err),
            err => CommandError::Settings(err),
        }
    }
}

impl From<&CommandError> for ErrorBody {
    fn from(error: &CommandError) -> Self {
        match error {
            CommandError::Desktop(desktop) => ErrorBody::from(desktop),
            CommandError::Settings(_) => {
                ErrorBody::new(ErrorCode::SettingsUnavailable, error.to_string())
            }
        }
    }
}

impl Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ErrorBody::from(self).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_failure_has_its_own_code_and_a_bad_address_is_invalid_input() {
        let json =
            serde_json::to_value(CommandError::from(SettingsError::IntervalOutOfRange)).unwrap();
        assert_eq!(json["code"], "settings_unavailable");
        assert_eq!(
            json["message"],
            "The app's settings could not be saved: the polling interval must be between 10 and 3600 seconds"
        );
        let bad = hubkey_desktop::ServerUrl::parse("hub.example").unwrap_err();
        let json = serde_json::to_value(CommandError::from(SettingsError::Server(bad))).unwrap();
        assert_eq!(json["code"], "invalid_input");
    }

    #[test]
    fn a_throttled_answer_carries_its_wait() {
        let json = serde_json::to_value(CommandError::from(DesktopError::Throttled {
            retry_after: Some(std::time::Duration::from_secs(42)),
        }))
        .unwrap();
        assert_eq!(json["code"], "throttled");
        assert_eq!(json["retry_after"], 42);
    }
}
