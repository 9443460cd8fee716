//! The Activity view's and the token detail's core: the account's token events as a
//! timeline (newest first, filtered by token and kind, paged), and one token's detail (its
//! row, its access log paged newest first, its uses per day over the days the server keeps).
//!
//! Invariants (bounded memory): the core keeps at most [`TIMELINE_CAP`] events per account
//! (the oldest are dropped as newer arrive, and the view says so) and the access log of one
//! token at a time, at most [`ACCESS_CAP`] lines of it; the uses per day count every line
//! the server sent, kept or not. Nothing here carries a secret.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use hubkey_api::{TokenAccess, TokenEvent, TokenEventKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::desktop::{lock, Desktop};
use crate::error::DesktopError;
use crate::server_url::ServerUrl;
use crate::tokens::{DayUse, TokenOrigin, TokenRow};

/// The most events the timeline keeps per account: a few thousand, the newest.
pub const TIMELINE_CAP: usize = 5_000;
/// The most access-log lines kept of the token whose detail is open, the newest.
pub const ACCESS_CAP: usize = 5_000;
/// Events asked of the server per request (its maximum).
const FEED_PAGE: u32 = 500;
/// Access-log lines asked of the server per request.
const ACCESS_PAGE: u32 = 500;
/// The most items one page of the timeline or the access log answers.
const MAX_PAGE: usize = 500;

/// What happened to a token, as the timeline filters and shows it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Made (by a person, a sign-in or a rotation).
    Created,
    /// Switched on again.
    Activated,
    /// Switched off.
    Deactivated,
    /// Given another label.
    Relabelled,
    /// Deleted by a person.
    Deleted,
    /// Deleted by the server: the account had more than five auto tokens.
    Pruned,
    /// Its expiry passed.
    Expired,
    /// Found in public by a secret scanner and deactivated.
    Leaked,
    /// Sent to the public revocation endpoint and deactivated.
    Reported,
    /// Replaced by a rotation, or made by one.
    Rotated,
    /// Used after its rotation's overlap ended, and refused.
    ReuseDetected,
    /// Used from an address it had never been used from.
    NewAddress,
}

impl From<TokenEventKind> for EventKind {
    fn from(kind: TokenEventKind) -> Self {
        match kind {
            TokenEventKind::Created => EventKind::Created,
            TokenEventKind::Activated => EventKind::Activated,
            TokenEventKind::Deactivated => EventKind::Deactivated,
            TokenEventKind::Relabelled => EventKind::Relabelled,
            TokenEventKind::Deleted => EventKind::Deleted,
            TokenEventKind::Pruned => EventKind::Pruned,
            TokenEventKind::Expired => EventKind::Expired,
            TokenEventKind::Leaked => EventKind::Leaked,
            TokenEventKind::Reported => EventKind::Reported,
            TokenEventKind::Rotated => EventKind::Rotated,
            TokenEventKind::ReuseDetected => EventKind::ReuseDetected,
            TokenEventKind::NewAddress => EventKind::NewAddress,
        }
    }
}

/// One event of the timeline.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityEvent {
    /// Its place in the feed: pass it as `before` for the events older than it.
    pub cursor: String,
    /// What happened.
    pub kind: EventKind,
    /// The token it happened to.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub token_uuid: Uuid,
    /// That token's label at the time.
    pub token_label: String,
    /// Auto or manual.
    pub origin: TokenOrigin,
    /// When (RFC 3339).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub at: DateTime<Utc>,
    /// For `leaked`: where the token was found.
    pub url: Option<String>,
    /// For `leaked`: what the finding was in.
    pub source: Option<String>,
    /// For `reuse_detected`: the refused request's address.
    pub address: Option<String>,
    /// For `reuse_detected`: the refused request's user agent.
    pub user_agent: Option<String>,
    /// For `rotated` and `reuse_detected`: the other token of the rotation.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub related_token: Option<Uuid>,
}

impl From<&TokenEvent> for ActivityEvent {
    fn from(event: &TokenEvent) -> Self {
        ActivityEvent {
            cursor: event.cursor.clone(),
            kind: event.kind.into(),
            token_uuid: event.token_uuid,
            token_label: event.token_label.clone(),
            origin: match event.generated_by {
                hubkey_api::Origin::Auto => TokenOrigin::Auto,
                hubkey_api::Origin::Manual => TokenOrigin::Manual,
            },
            at: event.at,
            url: event.url.clone(),
            source: event.source.clone(),
            address: event.address.clone(),
            user_agent: event.user_agent.clone(),
            related_token: event.related_token,
        }
    }
}

/// Which events a timeline page shows: one token's (or all), of some kinds (or all).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EventFilter {
    /// Only this token's events (those about it, and rotations naming it).
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    #[serde(default)]
    pub token: Option<Uuid>,
    /// Only these kinds; every kind when empty.
    #[serde(default)]
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    fn admits(&self, event: &ActivityEvent) -> bool {
        let token = self
            .token
            .is_none_or(|uuid| event.token_uuid == uuid || event.related_token == Some(uuid));
        token && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}

/// A token the timeline's filter offers: every token its kept events name.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventToken {
    /// The token.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub uuid: Uuid,
    /// Its latest label in the kept events.
    pub label: String,
}

/// One page of the timeline, newest first.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    /// The events, newest first.
    pub events: Vec<ActivityEvent>,
    /// Older kept events pass the filter: ask with `before` = the last event's cursor.
    pub more: bool,
    /// Events older than the kept ones were dropped ([`TIMELINE_CAP`]): the page's end is
    /// not the account's beginning.
    pub truncated: bool,
    /// Every token the kept events name, for the filter, ordered by label.
    pub tokens: Vec<EventToken>,
}

/// The account's events as far as read, the newest [`TIMELINE_CAP`] of them.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    username: String,
    /// Where the next read of the feed starts.
    cursor: Option<String>,
    /// Oldest first.
    events: VecDeque<ActivityEvent>,
    /// Whether events were dropped from the front.
    truncated: bool,
}

impl Timeline {
    fn new(username: &str) -> Self {
        Timeline {
            username: username.to_owned(),
            ..Timeline::default()
        }
    }

    /// Appends the feed's next events, dropping the oldest beyond [`TIMELINE_CAP`].
    fn extend(&mut self, events: &[TokenEvent], cursor: String) {
        for event in events {
            if self.events.len() == TIMELINE_CAP {
                self.events.pop_front();
                self.truncated = true;
            }
            self.events.push_back(event.into());
        }
        self.cursor = Some(cursor);
    }

    /// The kept events that pass `filter`, newest first, older than the event `before` (from
    /// the newest when `None`), at most `limit`. A `before` no longer kept answers nothing.
    fn page(&self, filter: &EventFilter, before: Option<&str>, limit: usize) -> EventPage {
        let end = match before {
            None => self.events.len(),
            Some(before) => self
                .events
                .iter()
                .position(|event| event.cursor == before)
                .unwrap_or(0),
        };
        let mut passing = self.events.range(..end).rev().filter(|e| filter.admits(e));
        let events: Vec<ActivityEvent> = passing.by_ref().take(limit).cloned().collect();
        let more = passing.next().is_some();
        let mut labels: BTreeMap<Uuid, &str> = BTreeMap::new();
        for event in &self.events {
            labels.insert(event.token_uuid, &event.token_label);
        }
        let mut tokens: Vec<EventToken> = labels
            .into_iter()
            .map(|(uuid, label)| EventToken {
                uuid,
                label: label.to_owned(),
            })
            .collect();
        tokens.sort_by_key(|token| token.label.to_lowercase());
        EventPage {
            events,
            more,
            truncated: self.truncated,
            tokens,
        }
    }
}

/// One line of a token's access log: its uses from one address and agent, doing one thing,
/// on one UTC day.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessLine {
    /// The UTC day, `YYYY-MM-DD`.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub day: NaiveDate,
    /// The address the uses came from.
    pub address: String,
    /// Their user agent.
    pub user_agent: String,
    /// What they did: `registry:NAMESPACE/NAME:ACTIONS` or `api:sign-in`.
    pub action: String,
    /// The first use that day (RFC 3339).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub first_at: DateTime<Utc>,
    /// The last use that day (RFC 3339).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub last_at: DateTime<Utc>,
    /// How many uses.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub uses: u64,
}

impl From<&TokenAccess> for AccessLine {
    fn from(line: &TokenAccess) -> Self {
        AccessLine {
            day: line.day,
            address: line.address.clone(),
            user_agent: line.user_agent.clone(),
            action: line.action.clone(),
            first_at: line.first_at,
            last_at: line.last_at,
            uses: line.uses,
        }
    }
}

/// A page of the open token's access log, newest first.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessPage {
    /// The lines, most recently used first.
    pub lines: Vec<AccessLine>,
    /// Where the next page starts (pass as `offset`), when there is one.
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub next: Option<usize>,
    /// Lines older than the kept ones were left out ([`ACCESS_CAP`]).
    pub truncated: bool,
}

/// Everything the token detail shows but its events (which come from the timeline).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenDetail {
    /// The token as the list shows it, with every field.
    pub row: TokenRow,
    /// Uses per UTC day over the access log's days, oldest first; days without use left
    /// out.
    pub days: Vec<DayUse>,
    /// The first page of its access log.
    pub access: AccessPage,
}

/// The access log of the token whose detail is open.
#[derive(Debug)]
pub(crate) struct OpenAccessLog {
    uuid: Uuid,
    /// Newest first.
    lines: Vec<AccessLine>,
    truncated: bool,
}

/// Reads a token's whole access log page by page, keeping the newest [`ACCESS_CAP`] lines
/// and counting every line's uses per day.
#[derive(Debug, Default)]
struct AccessReader {
    /// Oldest first, as the server sends them.
    kept: VecDeque<AccessLine>,
    truncated: bool,
    days: BTreeMap<NaiveDate, u64>,
}

impl AccessReader {
    fn add(&mut self, lines: &[TokenAccess]) {
        for line in lines {
            *self.days.entry(line.day).or_default() += line.uses;
            if self.kept.len() == ACCESS_CAP {
                self.kept.pop_front();
                self.truncated = true;
            }
            self.kept.push_back(line.into());
        }
    }

    fn finish(self, uuid: Uuid) -> (OpenAccessLog, Vec<DayUse>) {
        let mut lines: Vec<AccessLine> = self.kept.into();
        // Most recently used first; the server's order (by line) breaks ties.
        lines.reverse();
        lines.sort_by_key(|line| std::cmp::Reverse(line.last_at));
        let days = self
            .days
            .into_iter()
            .map(|(day, uses)| DayUse { day, uses })
            .collect();
        (
            OpenAccessLog {
                uuid,
                lines,
                truncated: self.truncated,
            },
            days,
        )
    }
}

impl OpenAccessLog {
    fn page(&self, offset: usize, limit: usize) -> AccessPage {
        let end = offset.saturating_add(limit).min(self.lines.len());
        let start = offset.min(end);
        AccessPage {
            lines: self.lines[start..end].to_vec(),
            next: (end < self.lines.len()).then_some(end),
            truncated: self.truncated,
        }
    }
}

/// What the core keeps for the Activity view and the token detail of one account.
#[derive(Debug, Default)]
pub(crate) struct ActivityState {
    timeline: Option<Timeline>,
    access: Option<OpenAccessLog>,
}

impl Desktop {
    /// A page of the account's events, newest first: the feed is read up to its end first
    /// (from where the last read stopped), then the kept events are filtered. `before` is
    /// the cursor of the last event of the previous page; `limit` is at most 500.
    pub async fn token_events(
        &self,
        server: &ServerUrl,
        filter: &EventFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, DesktopError> {
        let username = self
            .session_username(server)
            .ok_or(DesktopError::SessionEnded)?;
        if before.is_none() {
            self.read_feed(server, &username).await?;
        }
        let activity = lock(&self.activity);
        Ok(
            match activity.get(server).and_then(|a| a.timeline.as_ref()) {
                Some(timeline) if timeline.username == username => {
                    timeline.page(filter, before, limit.clamp(1, MAX_PAGE))
                }
                _ => Timeline::new(&username).page(filter, None, 0),
            },
        )
    }

    /// Reads the events feed from where the kept timeline stopped to its end.
    async fn read_feed(&self, server: &ServerUrl, username: &str) -> Result<(), DesktopError> {
        let mut cursor = {
            let mut activity = lock(&self.activity);
            let state = activity.entry(server.clone()).or_default();
            match &state.timeline {
                Some(timeline) if timeline.username == username => timeline.cursor.clone(),
                _ => {
                    state.timeline = Some(Timeline::new(username));
                    None
                }
            }
        };
        loop {
            let after = cursor.clone();
            let page = self
                .with_session(server, |client, _| {
                    let after = after.clone();
                    async move { client.events_limited(after.as_deref(), FEED_PAGE).await }
                })
                .await?;
            {
                let mut activity = lock(&self.activity);
                let Some(timeline) = activity
                    .get_mut(server)
                    .and_then(|state| state.timeline.as_mut())
                    .filter(|timeline| timeline.username == username)
                else {
                    return Ok(());
                };
                // Another read got here first: its events are kept already.
                if timeline.cursor != cursor {
                    return Ok(());
                }
                timeline.extend(&page.events, page.cursor.clone());
            }
            if !page.has_more || page.events.is_empty() {
                return Ok(());
            }
            cursor = Some(page.cursor);
        }
    }

    /// A token's detail: its row, its uses per day and the first page of its access log
    /// (the whole log is read; the newest [`ACCESS_CAP`] lines are kept for the next pages,
    /// until another token's detail opens).
    pub async fn token_detail(
        &self,
        server: &ServerUrl,
        uuid: Uuid,
        limit: usize,
    ) -> Result<TokenDetail, DesktopError> {
        let row = self
            .with_session(server, |client, this_device| async move {
                let token = client.get_token(uuid).await?;
                Ok(TokenRow::new(&token, this_device))
            })
            .await?;
        let mut reader = AccessReader::default();
        let mut after: Option<String> = None;
        loop {
            let from = after.clone();
            let page = self
                .with_session(server, |client, _| {
                    let from = from.clone();
                    async move {
                        client
                            .token_activity(uuid, from.as_deref(), Some(ACCESS_PAGE))
                            .await
                    }
                })
                .await?;
            reader.add(&page.entries);
            if !page.has_more || page.entries.is_empty() {
                break;
            }
            after = Some(page.cursor);
        }
        let (log, days) = reader.finish(uuid);
        let access = log.page(0, limit.clamp(1, MAX_PAGE));
        lock(&self.activity)
            .entry(server.clone())
            .or_default()
            .access = Some(log);
        Ok(TokenDetail { row, days, access })
    }

    /// The next page of the open detail's access log, from `offset` (an earlier page's
    /// `next`). A token whose detail is not the open one answers an error asking to reopen.
    pub fn token_access_page(
        &self,
        server: &ServerUrl,
        uuid: Uuid,
        offset: usize,
        limit: usize,
    ) -> Result<AccessPage, DesktopError> {
        let activity = lock(&self.activity);
        match activity.get(server).and_then(|state| state.access.as_ref()) {
            Some(log) if log.uuid == uuid => Ok(log.page(offset, limit.clamp(1, MAX_PAGE))),
            _ => Err(DesktopError::InvalidInput {
                message: "This token's access log is no longer loaded; open its detail again."
                    .to_owned(),
            }),
        }
    }

    /// Forgets the access log of `uuid`'s detail, which closed (not another token's detail,
    /// opened since).
    pub fn close_token_detail(&self, server: &ServerUrl, uuid: Uuid) {
        if let Some(state) = lock(&self.activity).get_mut(server) {
            if state.access.as_ref().is_some_and(|log| log.uuid == uuid) {
                state.access = None;
            }
        }
    }

    /// Forgets what was kept of `server`'s account (at sign-out).
    pub(crate) fn forget_activity(&self, server: &ServerUrl) {
        lock(&self.activity).remove(server);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: usize, token: u128, kind: TokenEventKind) -> TokenEvent {
        let at = DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(i64::try_from(id).unwrap());
        crate::fixtures::token_event(id.to_string(), at, kind, token)
    }

    fn timeline(count: usize) -> Timeline {
        let mut timeline = Timeline::new("ann");
        let kinds = [TokenEventKind::Created, TokenEventKind::Deactivated];
        let events: Vec<_> = (1..=count)
            .map(|id| event(id, u128::try_from(id % 3).unwrap(), kinds[id % 2]))
            .collect();
        for chunk in events.chunks(500) {
            let last = chunk.last().map(|e| e.cursor.clone()).unwrap_or_default();
            timeline.extend(chunk, last);
        }
        timeline
    }

    fn cursors(page: &EventPage) -> Vec<usize> {
        page.events
            .iter()
            .map(|e| e.cursor.parse().unwrap())
            .collect()
    }

    #[test]
    fn the_timeline_pages_newest_first_to_the_oldest() {
        let timeline = timeline(7);
        let all = EventFilter::default();
        let first = timeline.page(&all, None, 3);
        assert_eq!(cursors(&first), [7, 6, 5]);
        assert!(first.more);
        let second = timeline.page(&all, Some("5"), 3);
        assert_eq!(cursors(&second), [4, 3, 2]);
        let last = timeline.page(&all, Some("2"), 3);
        assert_eq!(cursors(&last), [1]);
        assert!(!last.more && !last.truncated);
    }

    #[test]
    fn the_timeline_filters_by_token_and_kind() {
        let timeline = timeline(12);
        let of_one = EventFilter {
            token: Some(Uuid::from_u128(1)),
            kinds: vec![],
        };
        assert_eq!(cursors(&timeline.page(&of_one, None, 100)), [10, 7, 4, 1]);
        let one_kind = EventFilter {
            token: Some(Uuid::from_u128(1)),
            kinds: vec![EventKind::Created],
        };
        assert_eq!(cursors(&timeline.page(&one_kind, None, 100)), [10, 4]);
        let page = timeline.page(&one_kind, None, 1);
        assert_eq!(cursors(&page), [10]);
        assert!(page.more);
        let labels: Vec<_> = page.tokens.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["token 0", "token 1", "token 2"]);
    }

    #[test]
    fn a_rotation_shows_in_both_tokens_timelines() {
        let mut timeline = Timeline::new("ann");
        let mut rotated = event(1, 1, TokenEventKind::Rotated);
        rotated.related_token = Some(Uuid::from_u128(2));
        timeline.extend(&[rotated], "1".into());
        let of_successor = EventFilter {
            token: Some(Uuid::from_u128(2)),
            kinds: vec![],
        };
        assert_eq!(cursors(&timeline.page(&of_successor, None, 10)), [1]);
    }

    #[test]
    fn the_timeline_keeps_the_newest_few_thousand_events() {
        let timeline = timeline(TIMELINE_CAP + 1_234);
        assert_eq!(timeline.events.len(), TIMELINE_CAP);
        let all = EventFilter::default();
        let newest = timeline.page(&all, None, 1);
        assert_eq!(cursors(&newest), [TIMELINE_CAP + 1_234]);
        assert!(newest.truncated);
        let oldest_kept = 1_235.to_string();
        let after_oldest = timeline.page(&all, Some(&oldest_kept), 10);
        assert!(after_oldest.events.is_empty() && !after_oldest.more);
        // A cursor no longer kept answers nothing rather than starting over.
        assert!(timeline.page(&all, Some("3"), 10).events.is_empty());
    }

    fn access(day: u32, hour: u32, uses: u64, address: &str) -> TokenAccess {
        let day = NaiveDate::from_ymd_opt(2031, 1, day).unwrap();
        let at = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
        TokenAccess {
            cursor: format!("{day}{hour}{address}"),
            day,
            address: address.into(),
            user_agent: "docker/28".into(),
            action: "registry:ann/app:pull".into(),
            first_at: at,
            last_at: at,
            uses,
        }
    }

    #[test]
    fn the_access_log_reads_newest_first_and_counts_uses_per_day() {
        let mut reader = AccessReader::default();
        reader.add(&[access(1, 9, 3, "10.0.0.1"), access(1, 12, 2, "10.0.0.2")]);
        reader.add(&[access(3, 8, 5, "10.0.0.1")]);
        let (log, days) = reader.finish(Uuid::nil());
        assert_eq!(
            days.iter()
                .map(|d| (d.day.to_string(), d.uses))
                .collect::<Vec<_>>(),
            [("2031-01-01".to_owned(), 5), ("2031-01-03".to_owned(), 5)]
        );
        let first = log.page(0, 2);
        let addresses: Vec<_> = first.lines.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(addresses, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(first.lines[0].day.to_string(), "2031-01-03");
        assert_eq!(first.next, Some(2));
        let second = log.page(2, 2);
        assert_eq!(second.lines.len(), 1);
        assert_eq!(second.next, None);
        assert!(log.page(10, 2).lines.is_empty());
    }

    #[test]
    fn the_access_log_keeps_the_newest_lines_but_counts_them_all() {
        let mut reader = AccessReader::default();
        let lines: Vec<_> = (0..ACCESS_CAP + 10)
            .map(|n| {
                access(
                    1 + u32::try_from(n % 28).unwrap(),
                    0,
                    1,
                    &format!("10.0.{}.{}", n / 256, n % 256),
                )
            })
            .collect();
        reader.add(&lines);
        let (log, days) = reader.finish(Uuid::nil());
        assert_eq!(log.lines.len(), ACCESS_CAP);
        assert!(log.truncated);
        let counted: u64 = days.iter().map(|d| d.uses).sum();
        assert_eq!(counted, (ACCESS_CAP + 10) as u64);
    }
}
