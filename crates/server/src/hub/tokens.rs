//! Personal access tokens: create (manual and auto, with the pruning rule), list, read,
//! change, delete, and the events feed of what happened to them.

use chrono::{DateTime, Utc};
use hubkey_api::{
    AccessToken, CreateAccessTokenRequest, DesktopGenerateRequest, GeneratedToken, Origin,
    PatchAccessTokenRequest, PlainToken, Scope, TokenEventKind, TokenEventPage,
};
use uuid::Uuid;

use super::{feed_cursor, feed_start, require_password_session, ClientInfo, Hub, USAGE_DAYS};
use crate::error::{Error, Result};
use crate::invalidation::Stale;
use crate::session::Caller;
use crate::store::{EventDetail, NewToken, Store, TokenRow, TokenSpec};
use crate::usage::epoch_day;

/// Longest token label, in characters (Hub's limit).
pub const MAX_LABEL: usize = 100;
/// Largest page of tokens.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Largest page of events.
pub const MAX_EVENTS: u32 = 500;

/// A page of tokens, before the HTTP layer adds the page links.
#[derive(Debug, Clone)]
pub struct TokenPage {
    pub count: u64,
    pub active_count: u64,
    pub results: Vec<AccessToken>,
}

impl Hub {
    /// `POST /v2/access-tokens`: a manual token; the answer carries the secret, once.
    pub async fn create_token(
        &self,
        caller: &Caller,
        request: &CreateAccessTokenRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        let checked = check_create_request(request, now)?;
        let secret = PlainToken::generate();
        let spec = TokenSpec {
            label: checked.label,
            scopes: &checked.scopes,
            origin: Origin::Manual,
            client_id: "",
            expires_at: checked.expires_at,
        };
        let row = self
            .insert_token(caller, &secret, spec, client, now)
            .await?;
        let mut token = row.to_api(now);
        token.token = secret.expose().to_owned();
        Ok(token)
    }

    /// `POST /v2/access-tokens/desktop-generate`: an auto token with full rights, then the
    /// pruning rule, in one transaction.
    pub async fn desktop_generate(
        &self,
        caller: &Caller,
        request: &DesktopGenerateRequest,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<GeneratedToken> {
        require_password_session(caller)?;
        let (client_name, device) = describe_client(request, &client.user_agent);
        let label = truncate(&format!("{client_name} on {device}"), MAX_LABEL);
        let secret = PlainToken::generate();
        let spec = TokenSpec {
            label: &label,
            scopes: &[Scope::Admin],
            origin: Origin::Auto,
            client_id: &client_name,
            expires_at: None,
        };
        let row = self
            .insert_token(caller, &secret, spec, client, now)
            .await?;
        Ok(GeneratedToken {
            token: secret.expose().to_owned(),
            uuid: Uuid::parse_str(&row.uuid).unwrap_or_default(),
            token_label: row.label,
        })
    }

    /// Stores a new token of the caller's, with its `created` event, and for an auto token
    /// applies the pruning rule in the same transaction.
    async fn insert_token(
        &self,
        caller: &Caller,
        secret: &PlainToken,
        spec: TokenSpec<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<TokenRow> {
        let uuid = Uuid::new_v4();
        let creator_ip = client.ip.to_string();
        let creator_ua = truncate(&client.user_agent, 256);
        let digest = secret.digest();
        let hint = secret.hint();
        let new = NewToken {
            uuid,
            digest: digest.as_str(),
            hint: &hint,
            spec,
            creator_ip: &creator_ip,
            creator_ua: &creator_ua,
        };
        let auto = spec.origin == Origin::Auto;
        if auto {
            // The pruning rule ranks by last use: write the pending uses first.
            self.usage.flush(&self.store).await?;
        }
        let mut tx = self.store.begin().await?;
        // Stamped with the account's token clock, so creation times follow commit order.
        let mut tokens = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        Store::insert_token(&mut tokens, &new).await?;
        let row = Store::token_in(&mut tokens, uuid)
            .await?
            .ok_or_else(|| Error::Internal("token vanished inside its own transaction".into()))?;
        // Who created it, so a desktop app tells its own creations from another device's.
        let detail = EventDetail {
            address: Some(&creator_ip),
            user_agent: Some(&creator_ua)
                .filter(|agent| !agent.is_empty())
                .map(String::as_str),
            ..EventDetail::default()
        };
        Store::insert_event_with(&mut tokens, TokenEventKind::Created, &row, detail).await?;
        let pruned = if auto {
            Store::prune_auto_tokens(&mut tokens, uuid).await?
        } else {
            Vec::new()
        };
        let stale: Vec<Stale> = pruned
            .iter()
            .map(|gone| Stale::token(&gone.digest))
            .collect();
        self.commit(tx, &stale).await?;
        if !pruned.is_empty() {
            tracing::info!(user = %caller.username, pruned = pruned.len(), "pruned old auto tokens");
        }
        Ok(row)
    }

    /// `GET /v2/access-tokens`: one page, newest first. Pages count from 1.
    pub async fn list_tokens(
        &self,
        caller: &Caller,
        page: u32,
        page_size: u32,
        now: DateTime<Utc>,
    ) -> Result<TokenPage> {
        require_password_session(caller)?;
        if page == 0 {
            return Err(Error::invalid("page", "pages count from 1"));
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        self.store.note_expired_tokens(&caller.user_id, now).await?;
        let (count, active_count) = self.store.count_tokens(&caller.user_id, now).await?;
        let offset = i64::from(page - 1) * i64::from(page_size);
        if page > 1 && offset >= count {
            return Err(Error::NotFound("Invalid page.".into()));
        }
        let limit = i64::from(page_size);
        let rows = self
            .store
            .list_tokens(&caller.user_id, offset, limit)
            .await?;
        let usage = self
            .store
            .usage_of_page(
                &caller.user_id,
                offset,
                limit,
                epoch_day(now) - USAGE_DAYS + 1,
            )
            .await?;
        let mut results: Vec<AccessToken> = rows
            .iter()
            .map(|row| self.with_usage(row, &usage, now))
            .collect();
        self.with_last_addresses_of_page(&caller.user_id, offset, limit, &mut results)
            .await?;
        Ok(TokenPage {
            count: u64::try_from(count).unwrap_or(0),
            active_count: u64::try_from(active_count).unwrap_or(0),
            results,
        })
    }

    /// `GET /v2/access-tokens/{uuid}`.
    pub async fn get_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        let row = self
            .store
            .token(&caller.user_id, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        let usage = self
            .store
            .usage_of_token(&row.uuid, epoch_day(now) - USAGE_DAYS + 1)
            .await?;
        let mut token = self.with_usage(&row, &usage, now);
        self.with_last_addresses(&mut token).await?;
        Ok(token)
    }

    /// `PATCH /v2/access-tokens/{uuid}`: relabel and/or (de)activate, with an event per change.
    pub async fn patch_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        patch: &PatchAccessTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        require_password_session(caller)?;
        let label = check_patch_request(patch)?;
        let mut tx = self.store.begin().await?;
        let mut tokens = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        let now = tokens.stamp();
        let mut row = Store::token_in(&mut tokens, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        let mut changes = Vec::new();
        if let Some(label) = label.filter(|label| *label != row.label) {
            row.label = label.to_owned();
            changes.push(TokenEventKind::Relabelled);
        }
        if let Some(active) = patch.is_active.filter(|active| *active != row.is_active) {
            row.is_active = active;
            changes.push(if active {
                TokenEventKind::Activated
            } else {
                TokenEventKind::Deactivated
            });
        }
        if let Some(on) = patch
            .new_address_alerts
            .filter(|on| *on != row.new_address_alerts)
        {
            row.new_address_alerts = on;
            Store::set_new_address_alerts(&mut tokens, &row.uuid, on).await?;
        }
        if !changes.is_empty() {
            Store::update_token(&mut tokens, &row.uuid, &row.label, row.is_active).await?;
            for kind in changes {
                Store::insert_event(&mut tokens, kind, &row).await?;
            }
        }
        self.commit(tx, &[Stale::token(&row.digest)]).await?;
        Ok(row.to_api(now))
    }

    /// `DELETE /v2/access-tokens/{uuid}`.
    pub async fn delete_token(
        &self,
        caller: &Caller,
        uuid: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        require_password_session(caller)?;
        let mut tx = self.store.begin().await?;
        let mut tokens = Store::lock_account_tokens(&mut tx, &caller.user_id, now).await?;
        let row = Store::token_in(&mut tokens, uuid)
            .await?
            .ok_or_else(Error::token_not_found)?;
        Store::delete_token(&mut tokens, &row.uuid).await?;
        Store::insert_event(&mut tokens, TokenEventKind::Deleted, &row).await?;
        self.commit(tx, &[Stale::token(&row.digest)]).await?;
        Ok(())
    }

    /// `GET /v2/access-tokens/events`: what happened to the account's tokens after `after`.
    pub async fn events(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<TokenEventPage> {
        require_password_session(caller)?;
        let after_id = feed_start(after, limit)?;
        self.store.note_expired_tokens(&caller.user_id, now).await?;
        let (events, has_more) = self
            .store
            .events_after(&caller.user_id, after_id, i64::from(limit))
            .await?;
        let cursor = feed_cursor(events.last().map(|event| event.cursor.as_str()), after_id);
        Ok(TokenEventPage {
            events,
            cursor,
            has_more,
        })
    }
}

/// A `POST /v2/access-tokens` body that passed [`check_create_request`]: what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCreate<'a> {
    /// The label as given (1 to 100 characters, not blank, no control characters).
    pub label: &'a str,
    /// The scopes, sorted and without duplicates; never empty.
    pub scopes: Vec<Scope>,
    /// The expiry, after `now` when present.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Validates a create body as of `now`, as `create_token` does before it stores anything.
/// Every refusal is [`Error::Invalid`] naming the field (a 400).
pub fn check_create_request(
    request: &CreateAccessTokenRequest,
    now: DateTime<Utc>,
) -> Result<CheckedCreate<'_>> {
    let label = check_label(&request.token_label)?;
    if request.scopes.is_empty() {
        return Err(Error::invalid("scopes", "give at least one scope"));
    }
    let mut scopes = request.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if let Some(expires_at) = request.expires_at {
        if expires_at <= now {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
    }
    Ok(CheckedCreate {
        label,
        scopes,
        expires_at: request.expires_at,
    })
}

/// Validates a patch body, as `patch_token` does before it opens a transaction: the new
/// label, if one is given. Every refusal is [`Error::Invalid`] (a 400).
pub fn check_patch_request(patch: &PatchAccessTokenRequest) -> Result<Option<&str>> {
    patch.token_label.as_deref().map(check_label).transpose()
}

/// A label must have 1 to 100 characters, not be blank, and hold no control characters
/// (U+0000–U+001F, U+007F–U+009F: a label is one line of text, and a terminal or log that
/// shows it must not be steered by it). Everything else is stored as given, bidirectional
/// marks included: the displays render them safely.
fn check_label(label: &str) -> Result<&str> {
    let len = label.chars().count();
    if label.trim().is_empty() {
        return Err(Error::invalid("token_label", "must not be empty"));
    }
    if len > MAX_LABEL {
        return Err(Error::invalid(
            "token_label",
            format!("must be at most {MAX_LABEL} characters"),
        ));
    }
    if let Some(control) = label.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            "token_label",
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(control)
            ),
        ));
    }
    Ok(label)
}

/// A label derived from what a client sent about itself (device name, User-Agent): control
/// characters become spaces, so the auto token is still made and [`check_label`] holds.
fn plain_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The client name and device for an auto token: from the request body when given, else
/// from the User-Agent (`product/version (device)`).
fn describe_client(request: &DesktopGenerateRequest, user_agent: &str) -> (String, String) {
    let product = user_agent
        .split(['/', ' '])
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or("hubkey");
    let device = user_agent
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside.trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("an unnamed device");
    let pick = |given: &Option<String>, fallback: &str, max: usize| {
        let given = given.as_deref().map(plain_text);
        let chosen = given
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(fallback);
        truncate(plain_text(chosen).trim(), max)
    };
    (
        pick(&request.client_name, product, 40),
        pick(&request.device_name, device, 50),
    )
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_for_length_and_control_characters() {
        assert!(check_label("").is_err());
        assert!(check_label("   ").is_err());
        assert!(check_label(&"é".repeat(100)).is_ok());
        assert!(check_label(&"é".repeat(101)).is_err());
        assert!(check_label("ci \u{202e}evil\u{200f}").is_ok());
        assert!(check_label("ci\u{7}").is_err());
        assert!(check_label("two\nlines").is_err());
        assert!(check_label("tab\there").is_err());
        assert!(check_label("c1\u{85}").is_err());
    }

    #[test]
    fn create_and_patch_checks_sort_scopes_and_refuse_with_the_field_named() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let request = |label: &str, scopes: Vec<Scope>, expires_at| CreateAccessTokenRequest {
            token_label: label.to_owned(),
            scopes,
            expires_at,
        };
        let three = request("ci", vec![Scope::Write, Scope::Read, Scope::Write], None);
        let checked = check_create_request(&three, now).unwrap();
        assert_eq!(checked.scopes, [Scope::Read, Scope::Write]);
        assert_eq!(checked.label, "ci");
        let field = |err: Error| match err {
            Error::Invalid { fields, .. } => fields.into_keys().collect::<Vec<_>>(),
            other => panic!("not a 400: {other:?}"),
        };
        let refused = |r| field(check_create_request(&r, now).unwrap_err());
        assert_eq!(refused(request("ci", vec![], None)), ["scopes"]);
        assert_eq!(
            refused(request(" ", vec![Scope::Read], None)),
            ["token_label"]
        );
        assert_eq!(
            refused(request("ci", vec![Scope::Read], Some(now))),
            ["expires_at"]
        );
        let patch = PatchAccessTokenRequest {
            token_label: Some("a\0b".to_owned()),
            is_active: None,
            new_address_alerts: None,
        };
        assert_eq!(
            field(check_patch_request(&patch).unwrap_err()),
            ["token_label"]
        );
        assert_eq!(
            check_patch_request(&PatchAccessTokenRequest::default()).unwrap(),
            None
        );
    }

    #[test]
    fn auto_token_label_comes_from_body_then_user_agent() {
        let none = DesktopGenerateRequest::default();
        assert_eq!(
            describe_client(&none, "hubkey/0.1.0 (ann-laptop)"),
            ("hubkey".into(), "ann-laptop".into())
        );
        assert_eq!(
            describe_client(&none, ""),
            ("hubkey".into(), "an unnamed device".into())
        );
        let named = DesktopGenerateRequest {
            client_name: Some("docker-desktop".into()),
            device_name: Some("build-box".into()),
        };
        assert_eq!(
            describe_client(&named, "curl/8"),
            ("docker-desktop".into(), "build-box".into())
        );
        let hostile = DesktopGenerateRequest {
            client_name: Some("x\u{1b}[2J".into()),
            device_name: Some("a\u{7}\nb".into()),
        };
        assert_eq!(
            describe_client(&hostile, ""),
            ("x [2J".into(), "a  b".into())
        );
        assert_eq!(
            describe_client(&none, "evil\u{1b}/1 (box\r\n)"),
            ("evil".into(), "box".into())
        );
    }
}
