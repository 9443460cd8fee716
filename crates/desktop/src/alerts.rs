//! The alert rules: which events of the account's feed and which tokens of its list a person
//! is told about, as a pure function of (events, tokens, now, settings, remembered, this
//! device) — [`alerts`]. The watcher ([`crate::watcher::poll_once`]) feeds it; the shell shows
//! each [`Alert`] as a notification whose action opens the token.
//!
//! Kinds ([`AlertKind`]), each on unless turned off in Settings:
//! - a token used from an address it was never used from (`new_address` events);
//! - a token created on another device (a `created` event whose creator's User-Agent is not
//!   this app's: the app's agent names its device, see [`crate::Desktop::user_agent`]);
//! - a token found leaked (`leaked`) or reported (`reported`), both deactivated by the server;
//! - a rotated-away token used again (`reuse_detected`);
//! - a token expiring within 7 days, and within 1 day: each once per token and threshold,
//!   remembered across restarts ([`ExpiryNoted`]), also while the kind is off (turning it on
//!   later does not bring back old warnings).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use hubkey_api::{AccessToken, TokenEvent, TokenEventKind, TokenState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The first expiry warning: this long before.
pub const EXPIRY_WEEK: TimeDelta = TimeDelta::days(7);
/// The last expiry warning: this long before.
pub const EXPIRY_DAY: TimeDelta = TimeDelta::days(1);

/// The kinds of alert, each with its own switch in Settings.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A token used from a new address.
    NewAddress,
    /// A token created on another device.
    OtherDevice,
    /// A token found leaked or reported, and deactivated.
    Leaked,
    /// A rotated-away token used again.
    Reuse,
    /// A token expiring in 7 days, then in 1 day.
    Expiring,
}

impl AlertKind {
    /// Every kind, in the Settings screen's order.
    pub const ALL: [AlertKind; 5] = [
        AlertKind::NewAddress,
        AlertKind::OtherDevice,
        AlertKind::Leaked,
        AlertKind::Reuse,
        AlertKind::Expiring,
    ];
}

/// Which alert kinds are on (all by default; a missing field reads as on).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertSettings {
    /// A token used from a new address.
    pub new_address: bool,
    /// A token created on another device.
    pub other_device: bool,
    /// A token found leaked or reported.
    pub leaked: bool,
    /// A rotated-away token used again.
    pub reuse: bool,
    /// A token expiring soon.
    pub expiring: bool,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            new_address: true,
            other_device: true,
            leaked: true,
            reuse: true,
            expiring: true,
        }
    }
}

impl AlertSettings {
    /// Whether `kind` is on.
    pub fn is_on(&self, kind: AlertKind) -> bool {
        match kind {
            AlertKind::NewAddress => self.new_address,
            AlertKind::OtherDevice => self.other_device,
            AlertKind::Leaked => self.leaked,
            AlertKind::Reuse => self.reuse,
            AlertKind::Expiring => self.expiring,
        }
    }

    /// These settings with `kind` switched `on` or off.
    #[must_use]
    pub fn with(mut self, kind: AlertKind, on: bool) -> Self {
        let switch = match kind {
            AlertKind::NewAddress => &mut self.new_address,
            AlertKind::OtherDevice => &mut self.other_device,
            AlertKind::Leaked => &mut self.leaked,
            AlertKind::Reuse => &mut self.reuse,
            AlertKind::Expiring => &mut self.expiring,
        };
        *switch = on;
        self
    }
}

/// The expiry warnings already given, per threshold; kept in the watcher's state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryNoted {
    /// Tokens warned about 7 days ahead (or less).
    pub week: BTreeSet<Uuid>,
    /// Tokens warned about 1 day ahead (or less).
    pub day: BTreeSet<Uuid>,
}

/// How far ahead an expiry warning is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryThreshold {
    /// Within 7 days.
    Week,
    /// Within 1 day.
    Day,
}

/// One thing to tell, about one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum Alert {
    /// The token was used from an address it was never used from.
    NewAddress {
        /// The token.
        token: Uuid,
        /// Its label.
        label: String,
        /// The address.
        address: String,
        /// The request's User-Agent, if it sent one.
        user_agent: Option<String>,
    },
    /// The token was created on another device.
    CreatedElsewhere {
        /// The token.
        token: Uuid,
        /// Its label.
        label: String,
        /// The creating request's User-Agent.
        user_agent: String,
        /// The creating request's address, if known.
        address: Option<String>,
    },
    /// The token was found in public (`leaked`) or sent to the revocation endpoint
    /// (`reported`); the server deactivated it.
    Leaked {
        /// The token.
        token: Uuid,
        /// Its label.
        label: String,
        /// Where it was found (secret scanning), if said.
        url: Option<String>,
        /// True for the public revocation endpoint, false for a secret scanner's finding.
        reported: bool,
    },
    /// A rotated-away token was used after its overlap, and refused.
    Reuse {
        /// The token.
        token: Uuid,
        /// Its label.
        label: String,
        /// The request's address, if known.
        address: Option<String>,
        /// The request's User-Agent, if known.
        user_agent: Option<String>,
    },
    /// The token expires soon.
    Expiring {
        /// The token.
        token: Uuid,
        /// Its label.
        label: String,
        /// When it expires.
        expires_at: DateTime<Utc>,
        /// Which warning this is.
        threshold: ExpiryThreshold,
    },
}

impl Alert {
    /// The token the alert is about (its notification's action opens it).
    pub fn token(&self) -> Uuid {
        match self {
            Alert::NewAddress { token, .. }
            | Alert::CreatedElsewhere { token, .. }
            | Alert::Leaked { token, .. }
            | Alert::Reuse { token, .. }
            | Alert::Expiring { token, .. } => *token,
        }
    }

    /// The switch that silences it.
    pub fn kind(&self) -> AlertKind {
        match self {
            Alert::NewAddress { .. } => AlertKind::NewAddress,
            Alert::CreatedElsewhere { .. } => AlertKind::OtherDevice,
            Alert::Leaked { .. } => AlertKind::Leaked,
            Alert::Reuse { .. } => AlertKind::Reuse,
            Alert::Expiring { .. } => AlertKind::Expiring,
        }
    }

    /// The notification's title.
    pub fn title(&self) -> String {
        match self {
            Alert::NewAddress { .. } => "A token was used from a new address".to_owned(),
            Alert::CreatedElsewhere { .. } => "A token was created on another device".to_owned(),
            Alert::Leaked {
                reported: false, ..
            } => "A token was found leaked and deactivated".to_owned(),
            Alert::Leaked { reported: true, .. } => {
                "A token was reported and deactivated".to_owned()
            }
            Alert::Reuse { .. } => "A rotated token was used again".to_owned(),
            Alert::Expiring {
                threshold: ExpiryThreshold::Week,
                ..
            } => "A token expires within a week".to_owned(),
            Alert::Expiring {
                threshold: ExpiryThreshold::Day,
                ..
            } => "A token expires within a day".to_owned(),
        }
    }

    /// The notification's text (plain: the shell escapes it for markup).
    pub fn body(&self) -> String {
        let from = |address: &Option<String>, agent: &Option<String>| match (address, agent) {
            (Some(address), Some(agent)) => format!(" from {address} ({agent})"),
            (Some(address), None) => format!(" from {address}"),
            (None, Some(agent)) => format!(" by {agent}"),
            (None, None) => String::new(),
        };
        match self {
            Alert::NewAddress {
                label,
                address,
                user_agent,
                ..
            } => format!(
                "{label} was used{}. If that was not you, deactivate it.",
                from(&Some(address.clone()), user_agent)
            ),
            Alert::CreatedElsewhere {
                label,
                user_agent,
                address,
                ..
            } => format!(
                "{label} was created{}.",
                from(address, &Some(user_agent.clone()))
            ),
            Alert::Leaked {
                label,
                url,
                reported,
                ..
            } => match (reported, url) {
                (false, Some(url)) => format!("{label} was found at {url}. Rotate it."),
                (false, None) => format!("{label} was found in public. Rotate it."),
                (true, _) => format!("Someone reported {label} as exposed. Rotate it."),
            },
            Alert::Reuse {
                label,
                address,
                user_agent,
                ..
            } => format!(
                "{label} was presented{} after it was rotated away, and refused. Someone may hold a copy.",
                from(address, user_agent)
            ),
            Alert::Expiring {
                label, expires_at, ..
            } => format!(
                "{label} expires on {}.",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}

/// The alerts for `events` (the feed after the watcher's cursor, in order) and `tokens` (the
/// account's list) at `now`, with the kinds `settings` leaves on; `noted` are the expiry
/// warnings given before, and the answer's second part is what to remember instead (tokens
/// that no longer exist are forgotten). `this_device` is this app's User-Agent: a `created`
/// event with it is this device's own.
pub fn alerts(
    events: &[TokenEvent],
    tokens: &[AccessToken],
    now: DateTime<Utc>,
    settings: &AlertSettings,
    noted: &ExpiryNoted,
    this_device: &str,
) -> (Vec<Alert>, ExpiryNoted) {
    let mut found = Vec::new();
    for event in events {
        let token = event.token_uuid;
        let label = event.token_label.clone();
        let alert = match event.kind {
            TokenEventKind::NewAddress => event.address.clone().map(|address| Alert::NewAddress {
                token,
                label,
                address,
                user_agent: event.user_agent.clone(),
            }),
            TokenEventKind::Created => {
                let creator = event.user_agent.clone().or_else(|| {
                    tokens
                        .iter()
                        .find(|listed| listed.uuid == token)
                        .map(|listed| listed.creator_ua.clone())
                        .filter(|agent| !agent.is_empty())
                });
                creator
                    .filter(|agent| agent != this_device)
                    .map(|user_agent| Alert::CreatedElsewhere {
                        token,
                        label,
                        user_agent,
                        address: event.address.clone(),
                    })
            }
            TokenEventKind::Leaked | TokenEventKind::Reported => Some(Alert::Leaked {
                token,
                label,
                url: event.url.clone(),
                reported: event.kind == TokenEventKind::Reported,
            }),
            TokenEventKind::ReuseDetected => Some(Alert::Reuse {
                token,
                label,
                address: event.address.clone(),
                user_agent: event.user_agent.clone(),
            }),
            _ => None,
        };
        found.extend(alert.filter(|alert| settings.is_on(alert.kind())));
    }

    let existing: BTreeSet<Uuid> = tokens.iter().map(|token| token.uuid).collect();
    let mut kept = ExpiryNoted {
        week: noted.week.intersection(&existing).copied().collect(),
        day: noted.day.intersection(&existing).copied().collect(),
    };
    for token in tokens {
        let Some(expires_at) = token.expires_at else {
            continue;
        };
        if expires_at <= now || token.state != TokenState::Active {
            continue;
        }
        let left = expires_at - now;
        let threshold = if left <= EXPIRY_DAY {
            // The day's warning also stands for the week's.
            kept.week.insert(token.uuid);
            kept.day.insert(token.uuid).then_some(ExpiryThreshold::Day)
        } else if left <= EXPIRY_WEEK {
            kept.week
                .insert(token.uuid)
                .then_some(ExpiryThreshold::Week)
        } else {
            None
        };
        if let Some(threshold) = threshold.filter(|_| settings.expiring) {
            found.push(Alert::Expiring {
                token: token.uuid,
                label: token.token_label.clone(),
                expires_at,
                threshold,
            });
        }
    }
    (found, kept)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hubkey_api::Origin;

    use super::*;

    const ME: &str = "hubkey/1.0 (laptop)";

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + TimeDelta::hours(hours)
    }

    fn event(kind: TokenEventKind, token: u128) -> TokenEvent {
        crate::fixtures::token_event("ev1", at(0), kind, token)
    }

    fn token(id: u128, expires_in_hours: Option<i64>) -> AccessToken {
        AccessToken {
            uuid: Uuid::from_u128(id),
            client_id: String::new(),
            creator_ip: "127.0.0.1".into(),
            creator_ua: ME.into(),
            created_at: at(-100),
            last_used: None,
            generated_by: Origin::Manual,
            is_active: true,
            token: String::new(),
            token_label: format!("token {id}"),
            scopes: Vec::new(),
            expires_at: expires_in_hours.map(at),
            token_hint: String::new(),
            state: TokenState::Active,
            usage: Vec::new(),
            rotated_from: None,
            rotated_to: None,
            overlap_until: None,
            last_addresses: Vec::new(),
            new_address_alerts: true,
        }
    }

    fn run(events: &[TokenEvent], settings: &AlertSettings) -> Vec<Alert> {
        alerts(events, &[], at(0), settings, &ExpiryNoted::default(), ME).0
    }

    #[test]
    fn each_event_kind_becomes_its_alert_about_its_token() {
        let mut used = event(TokenEventKind::NewAddress, 1);
        used.address = Some("203.0.113.9".into());
        used.user_agent = Some("curl/8".into());
        let mut leaked = event(TokenEventKind::Leaked, 2);
        leaked.url = Some("https://github.com/ann/app/blob/main/.env".into());
        let reported = event(TokenEventKind::Reported, 3);
        let mut reuse = event(TokenEventKind::ReuseDetected, 4);
        reuse.address = Some("198.51.100.7".into());
        let quiet = [
            TokenEventKind::Activated,
            TokenEventKind::Deactivated,
            TokenEventKind::Relabelled,
            TokenEventKind::Deleted,
            TokenEventKind::Pruned,
            TokenEventKind::Expired,
            TokenEventKind::Rotated,
        ]
        .map(|kind| event(kind, 9));
        let mut events = vec![used, leaked, reported, reuse];
        events.extend(quiet);
        let found = run(&events, &AlertSettings::default());
        let kinds: Vec<(AlertKind, u128)> = found
            .iter()
            .map(|alert| (alert.kind(), alert.token().as_u128()))
            .collect();
        assert_eq!(
            kinds,
            [
                (AlertKind::NewAddress, 1),
                (AlertKind::Leaked, 2),
                (AlertKind::Leaked, 3),
                (AlertKind::Reuse, 4)
            ]
        );
        assert_eq!(
            found[0].body(),
            "token 1 was used from 203.0.113.9 (curl/8). If that was not you, deactivate it."
        );
        assert!(found[1].body().contains(".env"), "{}", found[1].body());
        assert_eq!(found[2].title(), "A token was reported and deactivated");
        assert!(found[3].body().contains("198.51.100.7"));
    }

    #[test]
    fn a_token_created_on_this_device_is_no_alert_and_one_from_another_is() {
        let mut mine = event(TokenEventKind::Created, 1);
        mine.user_agent = Some(ME.into());
        let mut other = event(TokenEventKind::Created, 2);
        other.user_agent = Some("hubkey/1.0 (desktop-pc)".into());
        other.address = Some("192.0.2.4".into());
        // An event without an agent: the listed token's creator tells.
        let from_list = event(TokenEventKind::Created, 3);
        let mut listed = token(3, None);
        listed.creator_ua = "docker/28".into();
        // Neither says: nothing is claimed.
        let unknown = event(TokenEventKind::Created, 4);
        let (found, _) = alerts(
            &[mine, other, from_list, unknown],
            &[listed],
            at(0),
            &AlertSettings::default(),
            &ExpiryNoted::default(),
            ME,
        );
        assert_eq!(
            found
                .iter()
                .map(|a| a.token().as_u128())
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(found[0].kind(), AlertKind::OtherDevice);
        assert_eq!(
            found[0].body(),
            "token 2 was created from 192.0.2.4 (hubkey/1.0 (desktop-pc))."
        );
    }

    #[test]
    fn a_switch_turned_off_silences_only_its_kind() {
        let mut used = event(TokenEventKind::NewAddress, 1);
        used.address = Some("203.0.113.9".into());
        let mut created = event(TokenEventKind::Created, 2);
        created.user_agent = Some("elsewhere".into());
        let events = [
            used,
            created,
            event(TokenEventKind::Leaked, 3),
            event(TokenEventKind::ReuseDetected, 4),
        ];
        for kind in AlertKind::ALL {
            let settings = AlertSettings::default().with(kind, false);
            assert!(!settings.is_on(kind));
            let found = run(&events, &settings);
            assert!(found.iter().all(|alert| alert.kind() != kind), "{kind:?}");
            let expected = if kind == AlertKind::Expiring { 4 } else { 3 };
            assert_eq!(found.len(), expected, "{kind:?}: {found:?}");
        }
        let tokens = [token(7, Some(48))];
        let off = AlertSettings::default().with(AlertKind::Expiring, false);
        let (found, noted) = alerts(&[], &tokens, at(0), &off, &ExpiryNoted::default(), ME);
        assert!(found.is_empty());
        // Remembered while off: turning it on later brings no old warning.
        let (later, _) = alerts(&[], &tokens, at(1), &AlertSettings::default(), &noted, ME);
        assert!(later.is_empty(), "{later:?}");
    }

    #[test]
    fn an_expiry_is_told_once_a_week_ahead_and_once_a_day_ahead() {
        let settings = AlertSettings::default();
        let tokens = [
            token(1, Some(24 * 5)),
            token(2, Some(24 * 30)),
            token(3, None),
            token(4, Some(-1)),
        ];
        let (first, noted) = alerts(&[], &tokens, at(0), &settings, &ExpiryNoted::default(), ME);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(matches!(
            first[0],
            Alert::Expiring {
                threshold: ExpiryThreshold::Week,
                ..
            }
        ));
        assert_eq!(first[0].token(), Uuid::from_u128(1));
        // An hour later: nothing new (also after a restart, with what was remembered).
        let reread: ExpiryNoted =
            serde_json::from_str(&serde_json::to_string(&noted).unwrap()).unwrap();
        let (again, noted) = alerts(&[], &tokens, at(1), &settings, &reread, ME);
        assert!(again.is_empty(), "{again:?}");
        // Four days and a bit later, less than a day is left: the day's warning, once.
        let (day, noted) = alerts(&[], &tokens, at(24 * 4 + 1), &settings, &noted, ME);
        assert_eq!(day.len(), 1);
        assert_eq!(day[0].title(), "A token expires within a day");
        let (none, noted) = alerts(&[], &tokens, at(24 * 4 + 2), &settings, &noted, ME);
        assert!(none.is_empty());
        // A token first seen with less than a day left gets the day's warning only.
        let late = [token(5, Some(3))];
        let (found, _) = alerts(&[], &late, at(0), &settings, &noted, ME);
        assert_eq!(found.len(), 1);
        assert!(matches!(
            found[0],
            Alert::Expiring {
                threshold: ExpiryThreshold::Day,
                ..
            }
        ));
        // Tokens that are gone are forgotten; an inactive one is not warned about.
        assert!(noted.week.contains(&Uuid::from_u128(1)));
        let (_, forgotten) = alerts(&[], &[], at(0), &settings, &noted, ME);
        assert!(forgotten.week.is_empty() && forgotten.day.is_empty());
        let mut off = token(6, Some(2));
        off.state = TokenState::Inactive;
        let (found, _) = alerts(&[], &[off], at(0), &settings, &ExpiryNoted::default(), ME);
        assert!(found.is_empty());
    }

    #[test]
    fn settings_read_back_with_missing_switches_on() {
        let settings: AlertSettings = serde_json::from_str(r#"{"reuse":false}"#).unwrap();
        assert_eq!(
            settings,
            AlertSettings::default().with(AlertKind::Reuse, false)
        );
    }
}
