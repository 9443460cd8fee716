//! Two-factor sign-in from the Account screen: its state, turning it on (a secret shown as a
//! QR code drawn here, confirmed with a first code, then ten recovery codes shown once),
//! turning it off (password and a code) and new recovery codes (a code). Every change ends
//! the account's other sessions on the server; this app's session stays.
//!
//! Invariants: the TOTP secret and the recovery codes are show-once values, like a manual
//! token's: they go to the screen that shows them and nowhere else (no log, no file unless the
//! person saves the codes); no password or code appears in an error. A wrong password or code
//! is told as such, never as an ended session: the bearer is checked (and renewed) with the
//! state call first, because the server answers a wrong code with the same 401 as a stale
//! bearer.

use hubkey_client::{ClientError, HubClient};
use qrcode::{Color, EcLevel, QrCode};
use serde::Serialize;

use crate::desktop::Desktop;
use crate::error::DesktopError;
use crate::server_url::ServerUrl;

/// Whether the account signs in with a second factor, as the Account screen shows it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TwoFactorState {
    /// Two-factor sign-in is on.
    pub enabled: bool,
    /// Recovery codes not used yet (0 when off).
    pub recovery_codes_left: u32,
}

/// A QR code as an SVG path: `size` modules square (quiet zone included), the dark modules
/// as one path of unit squares. The UI draws it in an `<svg viewBox="0 0 size size">`, so no
/// markup crosses into the webview and no image is fetched.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QrSvg {
    /// Modules per side, the quiet zone included.
    pub size: u32,
    /// The SVG path data of the dark modules.
    pub path: String,
}

/// A TOTP enrolment waiting for its first code: what the authenticator app needs, shown once.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotpSetup {
    /// The secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// The `otpauth://` URI as a QR code, for scanning.
    pub qr: QrSvg,
    /// When the enrolment lapses unless confirmed (RFC 3339).
    pub expires_at: String,
}

/// Modules of quiet zone around a QR code (ISO/IEC 18004 asks for 4).
const QUIET_ZONE: usize = 4;

/// Draws `text` as a QR code (error correction M, as authenticator enrolment codes use).
pub fn qr_svg(text: &str) -> Result<QrSvg, DesktopError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|err| {
        DesktopError::ServerError {
            status: None,
            message: format!("the enrolment address cannot be drawn as a QR code ({err})"),
        }
    })?;
    let width = code.width();
    let colors = code.to_colors();
    let mut path = String::new();
    for (index, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (x, y) = (index % width + QUIET_ZONE, index / width + QUIET_ZONE);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let size = u32::try_from(width + 2 * QUIET_ZONE).unwrap_or(u32::MAX);
    Ok(QrSvg { size, path })
}

/// A code as typed: spaces (the secret's and the codes' grouping) dropped.
fn typed(code: &str) -> Result<String, DesktopError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.is_empty() {
        return Err(DesktopError::InvalidInput {
            message: "Enter the code from your authenticator app (or a recovery code).".into(),
        });
    }
    if code.len() > 64 {
        return Err(DesktopError::WrongCode);
    }
    Ok(code)
}

impl Desktop {
    /// The account's two-factor state, renewing the bearer if it expired.
    pub async fn two_factor_state(
        &self,
        server: &ServerUrl,
    ) -> Result<TwoFactorState, DesktopError> {
        let status = self
            .with_session(server, |client, _| async move {
                client.two_factor_status().await
            })
            .await?;
        Ok(TwoFactorState {
            enabled: status.enabled,
            recovery_codes_left: status.recovery_codes_left,
        })
    }

    /// The live client after a call that proved (or renewed) its bearer, so that a 401 to
    /// the next call is about the password or code sent with it.
    async fn proven_client(&self, server: &ServerUrl) -> Result<HubClient, DesktopError> {
        self.two_factor_state(server).await?;
        self.session_client(server)
            .ok_or(DesktopError::SessionEnded)
    }

    /// Starts turning two-factor sign-in on, given the password: a new secret (replacing an
    /// unconfirmed one), with its QR code. Nothing is in force until
    /// [`Desktop::confirm_two_factor`].
    pub async fn start_two_factor(
        &self,
        server: &ServerUrl,
        password: &str,
    ) -> Result<TotpSetup, DesktopError> {
        if password.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter your password to turn two-factor sign-in on.".into(),
            });
        }
        let client = self.proven_client(server).await?;
        let enrolment = match client.start_totp_enrolment(password).await {
            Ok(enrolment) => enrolment,
            Err(ClientError::Unauthorized { .. }) => {
                return Err(DesktopError::InvalidInput {
                    message: "Your password is not right; two-factor sign-in is still off.".into(),
                })
            }
            Err(err) => return Err(DesktopError::from_client(server.as_str(), err)),
        };
        Ok(TotpSetup {
            qr: qr_svg(&enrolment.otpauth_uri)?,
            secret: enrolment.secret,
            expires_at: enrolment.expires_at.to_rfc3339(),
        })
    }

    /// Confirms the enrolment with the authenticator's first code: two-factor sign-in is on,
    /// every other session of the account ends, and the ten recovery codes are answered,
    /// this once.
    pub async fn confirm_two_factor(
        &self,
        server: &ServerUrl,
        code: &str,
    ) -> Result<Vec<String>, DesktopError> {
        let code = typed(code)?;
        let client = self.proven_client(server).await?;
        match client.confirm_totp(&code).await {
            Ok(codes) => Ok(codes.recovery_codes),
            // The server answers a wrong first code as a field error on `code` ("incorrect
            // code…"); its other refusals there (no enrolment waiting) are said as it says them.
            Err(ClientError::Invalid { body })
                if body.fields.get("code").is_some_and(|messages| {
                    messages
                        .iter()
                        .any(|message| message.starts_with("incorrect"))
                }) =>
            {
                Err(DesktopError::WrongCode)
            }
            Err(err) => Err(DesktopError::from_client(server.as_str(), err)),
        }
    }

    /// Turns two-factor sign-in off, given the password and a current code (or a recovery
    /// code); every other session of the account ends.
    pub async fn disable_two_factor(
        &self,
        server: &ServerUrl,
        password: &str,
        code: &str,
    ) -> Result<(), DesktopError> {
        if password.is_empty() {
            return Err(DesktopError::InvalidInput {
                message: "Enter your password and a code from your authenticator app.".into(),
            });
        }
        let code = typed(code)?;
        let client = self.proven_client(server).await?;
        match client.disable_totp(password, &code).await {
            Ok(()) => Ok(()),
            Err(ClientError::Unauthorized { .. }) => Err(DesktopError::InvalidInput {
                message: "Your password or the code is not right (a recovery code works once); two-factor sign-in is still on.".into(),
            }),
            Err(err) => Err(DesktopError::from_client(server.as_str(), err)),
        }
    }

    /// Replaces the recovery codes given a current code (or a recovery code): the old ones
    /// stop working, every other session of the account ends, and the new ten are answered
    /// this once.
    pub async fn new_recovery_codes(
        &self,
        server: &ServerUrl,
        code: &str,
    ) -> Result<Vec<String>, DesktopError> {
        let code = typed(code)?;
        let client = self.proven_client(server).await?;
        match client.regenerate_recovery_codes(&code).await {
            Ok(codes) => Ok(codes.recovery_codes),
            Err(ClientError::Unauthorized { .. }) => Err(DesktopError::WrongCode),
            Err(err) => Err(DesktopError::from_client(server.as_str(), err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_path_draws_every_dark_module_inside_its_quiet_zone() {
        let uri = "otpauth://totp/hubkey:zoe?secret=JBSWY3DPEHPK3PXP&issuer=hubkey";
        let qr = qr_svg(uri).unwrap();
        let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M).unwrap();
        let dark = code
            .to_colors()
            .iter()
            .filter(|color| **color == Color::Dark)
            .count();
        assert_eq!(qr.path.matches('M').count(), dark);
        assert_eq!(qr.size as usize, code.width() + 8);
        // The top-left finder pattern starts at the quiet zone's edge.
        assert!(qr.path.starts_with("M4 4h1v1h-1z"));
    }

    #[test]
    fn a_typed_code_loses_its_spaces_and_an_empty_one_is_refused() {
        assert_eq!(typed(" 123 456 ").unwrap(), "123456");
        assert!(matches!(
            typed("  "),
            Err(DesktopError::InvalidInput { .. })
        ));
    }
}
