//! The Security screen's core: every access token of the signed-in account, and the actions
//! on them (deactivate, reactivate, delete, create, rotate), through the live session.
//!
//! Invariants: the only secret that leaves this module is the show-once value of a manual
//! token this app just created or rotated ([`CreatedToken::secret`]); a rotation is one
//! server call (`POST /v2/access-tokens/{uuid}/rotate`), which makes the successor and ends
//! the old token's life after the overlap asked for, so a failure leaves the old token as it
//! was. Rotating this device's auto token puts its successor straight into the keyring (the
//! docker CLI's credential), never into an answer.

use chrono::{DateTime, NaiveDate, Utc};
use hubkey_api::MAX_OVERLAP_SECONDS;
use hubkey_api::{
    AccessToken, CreateAccessTokenRequest, Origin, PatchAccessTokenRequest, Scope, TokenState,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::desktop::Desktop;
use crate::error::DesktopError;
use crate::server_url::ServerUrl;

/// Where a token came from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenOrigin {
    /// Made by a desktop app at sign-in (this one or another device's); pruned by the server.
    Auto,
    /// Made by a person; never pruned.
    Manual,
}

/// Whether a token works now.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// It works.
    Active,
    /// Switched off; it can be switched on again.
    Inactive,
    /// Past its expiry; it never works again.
    Expired,
}

/// What a token may do, from the narrowest to the widest (each includes the previous ones).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Pull public repositories.
    PublicRead,
    /// Pull.
    Read,
    /// Pull and push.
    Write,
    /// Pull, push and delete.
    Admin,
}

impl From<TokenScope> for Scope {
    fn from(scope: TokenScope) -> Self {
        match scope {
            TokenScope::PublicRead => Scope::PublicRead,
            TokenScope::Read => Scope::Read,
            TokenScope::Write => Scope::Write,
            TokenScope::Admin => Scope::Admin,
        }
    }
}

impl From<Scope> for TokenScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::PublicRead => TokenScope::PublicRead,
            Scope::Read => TokenScope::Read,
            Scope::Write => TokenScope::Write,
            Scope::Admin => TokenScope::Admin,
        }
    }
}

/// How often a token was used on one UTC day.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUse {
    /// The day, `YYYY-MM-DD`.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub day: NaiveDate,
    /// Uses that day.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub uses: u64,
}

/// One token as the Security screen shows it. Carries no secret: the hint is masked.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    /// The token's id on the server.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub uuid: Uuid,
    /// Its label.
    pub label: String,
    /// Auto (a desktop sign-in) or manual.
    pub origin: TokenOrigin,
    /// Whether it is this app's own auto token (the docker CLI's credential).
    pub this_device: bool,
    /// The widest scope it has.
    pub scope: Option<TokenScope>,
    /// That scope in words ("read & write").
    pub scope_words: String,
    /// The masked token, prefix and last four characters.
    pub hint: String,
    /// When it was made (RFC 3339).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub created_at: DateTime<Utc>,
    /// When it was last used (RFC 3339), if ever.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub last_used: Option<DateTime<Utc>>,
    /// The address it was created from.
    pub creator_ip: String,
    /// The user agent that created it.
    pub creator_ua: String,
    /// The client that created it (`hubkey`, `docker-desktop`, empty for the API).
    pub client_id: String,
    /// Active, inactive or expired, as the server answered.
    pub state: TokenStatus,
    /// When it stops working (RFC 3339), if ever.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub expires_at: Option<DateTime<Utc>>,
    /// Uses per UTC day over the last 30 days, oldest first; days without use left out.
    pub usage: Vec<DayUse>,
    /// The token this one replaced by a rotation.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub rotated_from: Option<Uuid>,
    /// The token that replaced this one by a rotation.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub rotated_to: Option<Uuid>,
    /// For a rotated-away token: when it stops (or stopped) working (RFC 3339).
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub overlap_until: Option<DateTime<Utc>>,
    /// The addresses it was most recently used from, newest first (at most five).
    pub last_addresses: Vec<String>,
    /// Whether a use from a new address is an alert (off for tokens used from many, such as
    /// CI's).
    pub new_address_alerts: bool,
}

/// A part of the token list on its way to the Security screen
/// ([`Desktop::list_tokens_in_chunks`]).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenChunk {
    /// Set on the chunks of the list the core kept from its last listing
    /// ([`Desktop::kept_tokens_in_chunks`]): when the server answered it. The screen paints
    /// them while it waits for the server's list, which replaces them whole.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub kept_at: Option<DateTime<Utc>>,
    /// The first chunk of a listing: rows received before it belong to an attempt that was
    /// started over (after the session was renewed) and are dropped.
    pub restart: bool,
    /// The last chunk of the listing.
    pub last: bool,
    /// The next rows, in the list's order.
    pub rows: Vec<TokenRow>,
}

/// Rows per [`TokenChunk`]: the webview parses each chunk's JSON on its own, so the largest
/// transient string it holds is a chunk's (about 0.4 MiB), not the whole list's.
pub const CHUNK_ROWS: usize = 1_000;

impl TokenRow {
    /// The row of `token`; `this_device` is the app's own auto token.
    pub fn new(token: &AccessToken, this_device: Option<Uuid>) -> Self {
        let scope = Scope::widest(&token.scopes);
        TokenRow {
            uuid: token.uuid,
            label: token.token_label.clone(),
            origin: match token.generated_by {
                Origin::Auto => TokenOrigin::Auto,
                Origin::Manual => TokenOrigin::Manual,
            },
            this_device: this_device == Some(token.uuid),
            scope: scope.map(TokenScope::from),
            scope_words: scope.map(Scope::describe).unwrap_or("none").to_owned(),
            hint: token.token_hint.clone(),
            created_at: token.created_at,
            last_used: token.last_used,
            creator_ip: token.creator_ip.clone(),
            creator_ua: token.creator_ua.clone(),
            client_id: token.client_id.clone(),
            state: match token.state {
                TokenState::Active => TokenStatus::Active,
                TokenState::Inactive => TokenStatus::Inactive,
                TokenState::Expired => TokenStatus::Expired,
            },
            expires_at: token.expires_at,
            usage: token
                .usage
                .iter()
                .map(|day| DayUse {
                    day: day.day,
                    uses: day.uses,
                })
                .collect(),
            rotated_from: token.rotated_from,
            rotated_to: token.rotated_to,
            overlap_until: token.overlap_until,
            last_addresses: token.last_addresses.clone(),
            new_address_alerts: token.new_address_alerts,
        }
    }
}

/// A token just created, with its value: the one secret the webview may hold, to show once.
/// The value is wiped when this is dropped and never printed.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Clone, PartialEq, Serialize)]
pub struct CreatedToken {
    /// The new token.
    pub row: TokenRow,
    /// Its value, shown this once; the server keeps only its digest.
    pub secret: String,
    /// Set when the action half succeeded.
    pub warning: Option<String>,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("row", &self.row)
            .field("secret", &"<redacted>")
            .field("warning", &self.warning)
            .finish()
    }
}

impl Drop for CreatedToken {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// What a rotation answers.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rotation {
    /// A manual token's successor, with its value to show once.
    Shown(CreatedToken),
    /// This device's auto token's successor: its value went to the keyring (the docker CLI's
    /// credential), never to the screen.
    Kept {
        /// The successor.
        row: TokenRow,
        /// Set when the keyring could not take it.
        warning: Option<String>,
    },
}

/// Longest label the server accepts.
const MAX_LABEL: usize = 100;

impl Desktop {
    /// Every token of the account signed in to `server`, newest first, following the
    /// server's pagination to the end.
    pub async fn list_tokens(&self, server: &ServerUrl) -> Result<Vec<TokenRow>, DesktopError> {
        self.with_session(server, |client, this_device| async move {
            let tokens = client.list_all_tokens().await?;
            Ok(tokens
                .iter()
                .map(|token| TokenRow::new(token, this_device))
                .collect())
        })
        .await
    }

    /// The same list handed to `send` in [`TokenChunk`]s of [`CHUNK_ROWS`] rows as the pages
    /// arrive (at least one chunk, the last one marked); answers how many rows the final
    /// attempt sent. If the session has to be renewed midway the listing starts over, with a
    /// chunk marked `restart`. The complete list is kept ([`Desktop::kept_tokens`]) for the
    /// next screen to paint before the server answers.
    pub async fn list_tokens_in_chunks(
        &self,
        server: &ServerUrl,
        send: impl Fn(&TokenChunk) + Sync,
    ) -> Result<usize, DesktopError> {
        let send = &send;
        let username = self.live(server).map(|live| live.username);
        let (count, listed) = self
            .with_session(server, |client, this_device| async move {
                let mut listed = Vec::new();
                let mut chunk = TokenChunk {
                    kept_at: None,
                    restart: true,
                    last: false,
                    rows: Vec::new(),
                };
                let count = client
                    .for_each_token_page(|page| {
                        chunk
                            .rows
                            .extend(page.iter().map(|token| TokenRow::new(token, this_device)));
                        if chunk.rows.len() >= CHUNK_ROWS {
                            send(&chunk);
                            listed.append(&mut chunk.rows);
                            chunk.restart = false;
                        }
                    })
                    .await?;
                chunk.last = true;
                send(&chunk);
                listed.append(&mut chunk.rows);
                Ok((count, listed))
            })
            .await?;
        if let Some(username) = username {
            self.keep_list(server, username, listed);
        }
        Ok(count)
    }

    /// The list kept from the last listing for the live session with `server`
    /// ([`Desktop::kept_tokens`]) handed to `send` in [`TokenChunk`]s of [`CHUNK_ROWS`] rows
    /// marked with when it was listed (the first marked `restart`, the final one `last`);
    /// nothing when none is kept. Answers how many rows were sent.
    pub fn kept_tokens_in_chunks(&self, server: &ServerUrl, send: impl Fn(&TokenChunk)) -> usize {
        let Some(kept) = self.kept_tokens(server) else {
            return 0;
        };
        // An empty list is one empty chunk, as the server's is.
        let mut parts: Vec<&[TokenRow]> = kept.rows.chunks(CHUNK_ROWS).collect();
        if parts.is_empty() {
            parts.push(&[]);
        }
        let last = parts.len() - 1;
        for (at, rows) in parts.into_iter().enumerate() {
            send(&TokenChunk {
                kept_at: Some(kept.listed_at),
                restart: at == 0,
                last: at == last,
                rows: rows.to_vec(),
            });
        }
        kept.rows.len()
    }

    /// Deactivates (`active == false`) or reactivates a token; answers the row as the server
    /// now has it.
    pub async fn set_token_active(
        &self,
        server: &ServerUrl,
        uuid: Uuid,
        active: bool,
    ) -> Result<TokenRow, DesktopError> {
        let row = self
            .with_session(server, |client, this_device| async move {
                let token = client.patch_token(uuid, &activity(active)).await?;
                Ok(TokenRow::new(&token, this_device))
            })
            .await?;
        self.kept_row_changed(server, &row);
        Ok(row)
    }

    /// Turns the `new_address` alerts of a token on or off (on the server, so every device
    /// of the account follows it); answers the row as the server now has it.
    pub async fn set_new_address_alerts(
        &self,
        server: &ServerUrl,
        uuid: Uuid,
        on: bool,
    ) -> Result<TokenRow, DesktopError> {
        let row = self
            .with_session(server, |client, this_device| async move {
                let patch = PatchAccessTokenRequest {
                    new_address_alerts: Some(on),
                    ..PatchAccessTokenRequest::default()
                };
                let token = client.patch_token(uuid, &patch).await?;
                Ok(TokenRow::new(&token, this_device))
            })
            .await?;
        self.kept_row_changed(server, &row);
        Ok(row)
    }

    /// Deletes a token for good. Deleting this device's auto token cuts the docker CLI off
    /// until the next sign-in.
    pub async fn delete_token(&self, server: &ServerUrl, uuid: Uuid) -> Result<(), DesktopError> {
        self.with_session(server, |client, _| async move {
            client.delete_token(uuid).await
        })
        .await?;
        self.kept_row_removed(server, uuid);
        Ok(())
    }

    /// Creates a manual token labelled `label` with `scope`, expiring at `expires_at` if
    /// given; the answer carries its value, to show once.
    pub async fn create_token(
        &self,
        server: &ServerUrl,
        label: &str,
        scope: TokenScope,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedToken, DesktopError> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > MAX_LABEL {
            return Err(DesktopError::InvalidInput {
                message: format!("A token's label has 1 to {MAX_LABEL} characters."),
            });
        }
        let request = CreateAccessTokenRequest {
            token_label: label.to_owned(),
            scopes: vec![scope.into()],
            expires_at,
        };
        self.create(server, &request).await
    }

    /// Rotates a token through the server: a successor with the same label, scopes and
    /// expiry, while the old token keeps working `overlap_seconds` more (0 to
    /// [`MAX_OVERLAP_SECONDS`], 7 days), then is refused.
    ///
    /// A manual token's successor is answered with its value, to show once. This device's
    /// auto token's successor goes into the keyring as the docker CLI's credential and
    /// becomes this session's auto token; the answer then carries no value
    /// ([`Rotation::Kept`]). Another device's auto token is not rotated: its value could not
    /// reach that device (it is replaced there at its next sign-in).
    pub async fn rotate_token(
        &self,
        server: &ServerUrl,
        uuid: Uuid,
        overlap_seconds: u32,
    ) -> Result<Rotation, DesktopError> {
        if overlap_seconds > MAX_OVERLAP_SECONDS {
            return Err(DesktopError::InvalidInput {
                message: "The overlap is at most 7 days.".to_owned(),
            });
        }
        let (old, this_device) = self
            .with_session(server, |client, this_device| async move {
                Ok((client.get_token(uuid).await?, this_device))
            })
            .await?;
        let own = this_device == Some(uuid);
        if old.generated_by == Origin::Auto && !own {
            return Err(DesktopError::InvalidInput {
                message: "This auto token belongs to another device, which could not receive its successor; that device replaces it at its next sign-in. Deactivate or delete it instead.".to_owned(),
            });
        }
        if old.rotated_to.is_some() {
            return Err(DesktopError::InvalidInput {
                message: "This token was already rotated; rotate its successor.".to_owned(),
            });
        }
        let mut token = self
            .with_session(server, |client, _| async move {
                client.rotate_token(uuid, overlap_seconds).await
            })
            .await?;
        let secret = Zeroizing::new(std::mem::take(&mut token.token));
        let overlap_until = self.now() + chrono::Duration::seconds(i64::from(overlap_seconds));
        let successor = TokenRow::new(&token, if own { Some(token.uuid) } else { this_device });
        self.kept_row_rotated(server, uuid, &successor, overlap_until);
        if !own {
            let created = CreatedToken {
                row: successor,
                secret: secret.to_string(),
                warning: None,
            };
            self.keep_unconfirmed(server, &created);
            return Ok(Rotation::Shown(created));
        }
        let warning = self
            .keep_rotated_auto_token(server, token.uuid, secret)
            .await
            .err()
            .map(|err| {
                format!(
                    "The token was rotated, but its successor could not be kept for the docker CLI ({err}); the docker CLI works until the overlap ends, then sign in again."
                )
            });
        Ok(Rotation::Kept {
            row: successor,
            warning,
        })
    }

    /// The successor of this device's auto token: the docker credential and the session's
    /// auto token become it (in the keyring and in the live session).
    async fn keep_rotated_auto_token(
        &self,
        server: &ServerUrl,
        successor: Uuid,
        secret: Zeroizing<String>,
    ) -> Result<(), DesktopError> {
        let live = self.live(server).ok_or(DesktopError::SessionEnded)?;
        if let Some(registry) = live.registry.as_deref() {
            self.save_docker_credential(registry, &live.username, secret)
                .await?;
        }
        if let Some(mut stored) = self.read_session(server).await? {
            stored.auto_token_uuid = Some(successor);
            self.save_session(server, &stored).await?;
        }
        self.set_live_auto_token(server, successor);
        Ok(())
    }

    /// Creates the token `request` asks for; the answer holds its value.
    async fn create(
        &self,
        server: &ServerUrl,
        request: &CreateAccessTokenRequest,
    ) -> Result<CreatedToken, DesktopError> {
        let created = self
            .with_session(server, |client, this_device| async move {
                let mut token = client.create_token(request).await?;
                let secret = std::mem::take(&mut token.token);
                Ok(CreatedToken {
                    row: TokenRow::new(&token, this_device),
                    secret,
                    warning: None,
                })
            })
            .await?;
        self.kept_row_created(server, &created.row);
        self.keep_unconfirmed(server, &created);
        Ok(created)
    }
}

/// The patch that switches a token on or off.
fn activity(active: bool) -> PatchAccessTokenRequest {
    PatchAccessTokenRequest {
        token_label: None,
        is_active: Some(active),
        new_address_alerts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scopes: Vec<Scope>, generated_by: Origin) -> AccessToken {
        AccessToken {
            uuid: Uuid::nil(),
            client_id: "hubkey".into(),
            creator_ip: "127.0.0.1".into(),
            creator_ua: "test".into(),
            created_at: DateTime::UNIX_EPOCH,
            last_used: None,
            generated_by,
            is_active: true,
            token: String::new(),
            token_label: "ci".into(),
            new_address_alerts: true,
            scopes,
            expires_at: None,
            token_hint: "hkpat_…abcd".into(),
            state: TokenState::Active,
            usage: vec![],
            rotated_from: None,
            rotated_to: None,
            overlap_until: None,
            last_addresses: vec![],
        }
    }

    #[test]
    fn row_names_the_widest_scope_in_words() {
        let row = TokenRow::new(
            &token(vec![Scope::Read, Scope::Write], Origin::Manual),
            None,
        );
        assert_eq!(row.scope, Some(TokenScope::Write));
        assert_eq!(row.scope_words, "read & write");
        assert_eq!(row.origin, TokenOrigin::Manual);
        assert!(!row.this_device);
    }

    #[test]
    fn row_marks_this_devices_auto_token() {
        let row = TokenRow::new(&token(vec![Scope::Admin], Origin::Auto), Some(Uuid::nil()));
        assert!(row.this_device);
        assert_eq!(row.origin, TokenOrigin::Auto);
    }

    #[test]
    fn created_token_never_prints_its_value() {
        let created = CreatedToken {
            row: TokenRow::new(&token(vec![Scope::Read], Origin::Manual), None),
            secret: "hkpat_secretvalue".into(),
            warning: None,
        };
        assert!(!format!("{created:?}").contains("secretvalue"));
    }
}
