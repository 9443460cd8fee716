//! The background watcher's core: one poll of the account's events feed and token list,
//! turned into the notifications a person should see, plus the polling schedule.
//!
//! Invariants: a notification is derived only from events after the cursor the caller kept,
//! so a caller that persists [`WatchCursor`] never shows one twice, also across restarts; a
//! first poll (no cursor yet) starts at the current end of the feed and tells nothing about
//! history; an expiry warning is given once per token and threshold. What to tell about the
//! events and tokens is [`crate::alerts::alerts`]'s.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hubkey_api::TokenEventKind;
use hubkey_client::{ClientError, HubClient};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::alerts::{alerts, Alert, AlertSettings, ExpiryNoted};
/// The longest wait between polls while the server is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// Where the watcher is: its position in the events feed and the tokens whose expiry it
/// already announced. The shell persists it (per server and user) between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCursor {
    /// The feed cursor after the last event seen; `None` before the first poll.
    pub feed: Option<String>,
    /// Tokens already warned about 7 days ahead; tokens that no longer exist are dropped.
    #[serde(default)]
    pub expiry_warned: BTreeSet<Uuid>,
    /// Tokens already warned about 1 day ahead.
    #[serde(default)]
    pub expiry_warned_day: BTreeSet<Uuid>,
}

/// An auto token the server pruned, as a notification names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedToken {
    /// The token's label (it names the device).
    pub label: String,
    /// The client that created it (`hubkey`, `docker-desktop`…).
    pub client: String,
    /// When it was last used, if ever.
    pub last_used: Option<DateTime<Utc>>,
}

/// Something the person should be told about, sent through the shell's one notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationEvent {
    /// Auto tokens were pruned because the account had more than five (one notification per
    /// poll, naming all of them).
    AutoTokensPruned {
        /// The pruned tokens, in feed order.
        tokens: Vec<PrunedToken>,
    },
    /// Something about one token ([`crate::alerts`]): the notification's action opens it.
    Alert {
        /// What happened.
        alert: Alert,
    },
    /// The server ended the session because its refresh token was used again elsewhere; the
    /// app signed out.
    SessionRevoked,
}

impl NotificationEvent {
    /// The notification's title.
    pub fn title(&self) -> String {
        match self {
            NotificationEvent::AutoTokensPruned { tokens } if tokens.len() == 1 => {
                "An old auto token was removed".to_owned()
            }
            NotificationEvent::AutoTokensPruned { tokens } => {
                format!("{} old auto tokens were removed", tokens.len())
            }
            NotificationEvent::Alert { alert } => alert.title(),
            NotificationEvent::SessionRevoked => "You were signed out of hubkey".to_owned(),
        }
    }

    /// The notification's text: every token named, with its client and last use.
    pub fn body(&self) -> String {
        match self {
            NotificationEvent::AutoTokensPruned { tokens } => {
                let lines: Vec<String> = tokens
                    .iter()
                    .map(|token| {
                        let client = if token.client.is_empty() {
                            "the API"
                        } else {
                            token.client.as_str()
                        };
                        let used = token.last_used.map_or_else(
                            || "never used".to_owned(),
                            |at| format!("last used {}", at.format("%Y-%m-%d %H:%M UTC")),
                        );
                        format!("{} ({client}, {used})", token.label)
                    })
                    .collect();
                format!(
                    "{}\nA sign-in keeps only the five most recently used auto tokens.",
                    lines.join("\n")
                )
            }
            NotificationEvent::Alert { alert } => alert.body(),
            NotificationEvent::SessionRevoked => crate::DesktopError::SessionRevoked.to_string(),
        }
    }

    /// The token the notification is about, if one: its action opens that token.
    pub fn token(&self) -> Option<Uuid> {
        match self {
            NotificationEvent::Alert { alert } => Some(alert.token()),
            _ => None,
        }
    }
}

/// `text` as a notification body for a server that renders markup. The freedesktop
/// notification spec lets the body carry a markup subset (`<b>`, `<a href>`, `<img src>`), and
/// servers that render it would turn a token label such as `<a href="…">` into a link or an
/// image; so `&`, `<`, `>`, `"` and `'` are written as their entities, which every server shows
/// as the characters themselves. Every notification body goes through here on Linux; the
/// other platforms' notifications are plain text.
pub fn escape_markup(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The result of one poll: the cursor to keep and what to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOutcome {
    /// Persist this before showing the notifications' effects, and pass it to the next poll.
    pub cursor: WatchCursor,
    /// What to tell, in order.
    pub notifications: Vec<NotificationEvent>,
    /// Whether the feed had anything after `cursor` (any token created, changed, deleted or
    /// pruned): a list on screen is out of date.
    pub changed: bool,
}

/// What the watcher's alerts depend on besides the feed: the kinds turned on, and this app's
/// User-Agent ([`crate::Desktop::user_agent`]), which tells its own creations from another
/// device's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertContext {
    /// The kinds on.
    pub settings: AlertSettings,
    /// This app's User-Agent.
    pub this_device: String,
}

/// One poll as the session behind `client`: the feed after `cursor` (to its end) and the
/// token list for expiries, as of `now`, told as `context` says. A first poll (`cursor.feed`
/// is `None`) skips the feed's history.
pub async fn poll_once(
    client: &HubClient,
    cursor: &WatchCursor,
    now: DateTime<Utc>,
    context: &AlertContext,
) -> Result<WatchOutcome, ClientError> {
    let first_run = cursor.feed.is_none();
    let mut feed = cursor.feed.clone();
    let mut pruned = Vec::new();
    let mut events = Vec::new();
    let mut changed = false;
    loop {
        let page = client.events(feed.as_deref()).await?;
        if !first_run {
            changed |= !page.events.is_empty();
            pruned.extend(
                page.events
                    .iter()
                    .filter(|event| event.kind == TokenEventKind::Pruned)
                    .map(|event| PrunedToken {
                        label: event.token_label.clone(),
                        client: event.client_id.clone(),
                        last_used: event.last_used,
                    }),
            );
            events.extend(page.events);
        }
        let advanced = feed.as_deref() != Some(page.cursor.as_str());
        feed = Some(page.cursor);
        if !page.has_more || !advanced {
            break;
        }
    }

    let tokens = client.list_all_tokens().await?;
    let mut notifications = Vec::new();
    if !pruned.is_empty() {
        notifications.push(NotificationEvent::AutoTokensPruned { tokens: pruned });
    }
    let noted = ExpiryNoted {
        week: cursor.expiry_warned.clone(),
        day: cursor.expiry_warned_day.clone(),
    };
    let (found, noted) = alerts(
        &events,
        &tokens,
        now,
        &context.settings,
        &noted,
        &context.this_device,
    );
    notifications.extend(
        found
            .into_iter()
            .map(|alert| NotificationEvent::Alert { alert }),
    );
    Ok(WatchOutcome {
        cursor: WatchCursor {
            feed,
            expiry_warned: noted.week,
            expiry_warned_day: noted.day,
        },
        notifications,
        changed,
    })
}

/// The wait before the next poll: `interval` after a success, doubling with each
/// consecutive failure (`failures`) up to [`MAX_BACKOFF`] (or `interval`, when that is
/// longer).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    let cap = MAX_BACKOFF.max(interval);
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    interval
        .checked_mul(factor)
        .map_or(cap, |delay| delay.min(cap))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_failure_up_to_the_cap() {
        let minute = Duration::from_secs(60);
        assert_eq!(next_delay(minute, 0), minute);
        assert_eq!(next_delay(minute, 1), 2 * minute);
        assert_eq!(next_delay(minute, 3), 8 * minute);
        assert_eq!(next_delay(minute, 4), MAX_BACKOFF);
        assert_eq!(next_delay(minute, 40), MAX_BACKOFF);
        let hour = Duration::from_secs(3600);
        assert_eq!(next_delay(hour, 5), hour);
        assert_eq!(
            next_delay(Duration::from_secs(1), 2),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn pruned_notification_names_every_token() {
        let event = NotificationEvent::AutoTokensPruned {
            tokens: vec![
                PrunedToken {
                    label: "hubkey on laptop".into(),
                    client: "hubkey".into(),
                    last_used: None,
                },
                PrunedToken {
                    label: "docker desktop on pc".into(),
                    client: "docker-desktop".into(),
                    last_used: Some(DateTime::from_timestamp(0, 0).unwrap()),
                },
            ],
        };
        assert_eq!(event.title(), "2 old auto tokens were removed");
        let body = event.body();
        assert!(
            body.contains("hubkey on laptop (hubkey, never used)"),
            "{body}"
        );
        assert!(
            body.contains("docker desktop on pc (docker-desktop, last used 1970-01-01 00:00 UTC)"),
            "{body}"
        );
    }

    #[test]
    fn markup_in_a_label_is_escaped_for_the_notification_body() {
        let label = r#"<a href="https://evil.example/?a=1&b=2">it's</a><img src='x'>"#;
        let event = NotificationEvent::Alert {
            alert: Alert::Expiring {
                token: Uuid::nil(),
                label: label.into(),
                expires_at: DateTime::from_timestamp(0, 0).unwrap(),
                threshold: crate::alerts::ExpiryThreshold::Week,
            },
        };
        let body = escape_markup(&event.body());
        assert_eq!(
            body,
            "&lt;a href=&quot;https://evil.example/?a=1&amp;b=2&quot;&gt;it&apos;s&lt;/a&gt;\
             &lt;img src=&apos;x&apos;&gt; expires on 1970-01-01 00:00 UTC."
        );
        assert!(!body.contains(['<', '>', '"', '\'']), "{body}");
        // Text without markup characters is unchanged, also beyond ASCII.
        assert_eq!(escape_markup("ann's laptop"), "ann&apos;s laptop");
        assert_eq!(escape_markup("Zoë 🐳 \u{202e}x"), "Zoë 🐳 \u{202e}x");
        // Escaping is done once: an entity in a label shows as typed.
        assert_eq!(escape_markup("&amp;"), "&amp;amp;");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_markup_and_unescapes_to_the_original(text in ".*") {
            let escaped = escape_markup(&text);
            proptest::prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            let unescaped = escaped
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            proptest::prop_assert_eq!(unescaped, text);
        }
    }

    #[test]
    fn cursor_reads_back_without_expiry_set() {
        let cursor: WatchCursor = serde_json::from_str(r#"{"feed":"12"}"#).unwrap();
        assert_eq!(cursor.feed.as_deref(), Some("12"));
        assert!(cursor.expiry_warned.is_empty());
    }
}
