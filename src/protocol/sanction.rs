//! What bans and mutes are made of, pure: how long they last ([`Until`]), what they aim at
//! ([`Target`]), and the words for both on the wire.

use super::ProtoError;
use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

/// How `Until::Forever` is stored: a time after every real one, so SQL compares it like any
/// other (`banned_until > now`).
pub const FOREVER_STORED: &str = "9999-12-31T23:59:59.999Z";

/// The longest duration a ban or mute can be given; longer ones are for good.
const LONGEST: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// When a ban or mute ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Until {
    /// At this time.
    Time(DateTime<Utc>),
    /// Never (no duration was given).
    Forever,
}

impl Until {
    /// `duration` from `now`; none, or one past a century, is for good.
    pub fn after(now: DateTime<Utc>, duration: Option<Duration>) -> Until {
        let Some(d) = duration.filter(|d| *d <= LONGEST) else {
            return Until::Forever;
        };
        match chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
        {
            Some(t) => Until::Time(t),
            None => Until::Forever,
        }
    }

    /// Whether it has ended at `now`.
    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        match self {
            Until::Time(t) => *t <= now,
            Until::Forever => false,
        }
    }

    /// As clients read it: RFC 3339 UTC to the second, or `forever`.
    pub fn text(&self) -> String {
        match self {
            Until::Time(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
            Until::Forever => "forever".into(),
        }
    }

    /// As the database stores it: RFC 3339 UTC with milliseconds, [`FOREVER_STORED`] for good.
    pub fn stored(&self) -> String {
        match self {
            Until::Time(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            Until::Forever => FOREVER_STORED.into(),
        }
    }

    /// The present moment in the stored form, for comparing with stored ends in SQL.
    pub fn now_stored() -> String {
        Until::Time(Utc::now()).stored()
    }

    /// Reads [`Until::stored`] back; `None` for text that is not a time.
    pub fn from_stored(text: &str) -> Option<Until> {
        if text == FOREVER_STORED {
            return Some(Until::Forever);
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Until::Time(t.with_timezone(&Utc)))
    }
}

/// A ban in force: until when, and why (may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// When it ends.
    pub until: Until,
    /// Why, as the admin gave it.
    pub reason: String,
}

impl Ban {
    /// The words after the code in `ERR banned` and in the moderation log:
    /// `until TIME: REASON` (`until TIME` without a reason).
    pub fn text(&self) -> String {
        if self.reason.is_empty() {
            format!("until {}", self.until.text())
        } else {
            format!("until {}: {}", self.until.text(), self.reason)
        }
    }
}

/// What `#ban` and `#unban` aim at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An account, by name (validated).
    Account(&'a str),
    /// An address or a network (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`), its host
    /// bits cleared.
    Network(IpNet),
}

impl Target<'_> {
    /// How it is written back: the name, or the network in CIDR form (`/32` for one IPv4
    /// address).
    pub fn text(&self) -> String {
        match self {
            Target::Account(name) => name.to_string(),
            Target::Network(net) => net.to_string(),
        }
    }
}

/// A ban's target: an address or a network if the word has `.` or `:` (a name has neither),
/// else an account name, validated.
pub fn parse_target(word: &str) -> Result<Target<'_>, ProtoError> {
    if word.contains(['.', ':']) {
        return parse_network(word)
            .map(Target::Network)
            .ok_or_else(|| ProtoError::not_a_network(word));
    }
    super::validate_name(word)?;
    Ok(Target::Account(word))
}

/// Reads an address or a network: a word with `.` or `:` in it (a name has neither). An
/// IPv4-mapped IPv6 address counts as its IPv4 address. `None` if it is not one.
pub fn parse_network(word: &str) -> Option<IpNet> {
    let net = match word.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(word.parse::<IpAddr>().ok()?.to_canonical()),
    };
    // An IPv4-mapped IPv6 network (::ffff:203.0.113.0/120) is the IPv4 network it maps: peers
    // are compared by their canonical address, so it must be stored as one to ever match.
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
    {
        return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
            .ok()
            .map(|n| IpNet::V4(n.trunc()));
    }
    Some(net.trunc())
}

/// Reads a duration word: digits then a unit (`90s`, `30m`, `12h`, `7d`, `2w`, or several,
/// `1h30m`), as humantime reads it. Anything else (a reason's first word) is `None`.
pub fn parse_duration(word: &str) -> Option<Duration> {
    if !word.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    humantime::parse_duration(word)
        .ok()
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn durations_are_digits_and_units() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1w"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        for not in ["spam", "", "0s", "5", "h2", "-1h", "1x", "forever"] {
            assert_eq!(parse_duration(not), None, "{not:?}");
        }
    }

    #[test]
    fn until_reads_back_and_ends() {
        let now = at("2026-12-02T10:00:00.250Z");
        let u = Until::after(now, Some(Duration::from_secs(3600)));
        assert_eq!(u.text(), "2026-12-02T11:00:00Z");
        assert_eq!(u.stored(), "2026-12-02T11:00:00.250Z");
        assert_eq!(Until::from_stored(&u.stored()), Some(u));
        assert!(!u.is_over(now));
        assert!(u.is_over(at("2026-12-02T11:00:00.250Z")));
        let f = Until::after(now, None);
        assert_eq!(
            (f.text().as_str(), f.stored()),
            ("forever", FOREVER_STORED.into())
        );
        assert_eq!(Until::from_stored(FOREVER_STORED), Some(Until::Forever));
        assert!(!f.is_over(at("9999-12-31T23:59:59Z")));
        // Past a century is for good, and the stored forms compare as times do.
        let long = Until::after(now, Some(Duration::from_secs(200 * 366 * 86400)));
        assert_eq!(long, Until::Forever);
        assert!(u.stored().as_str() < FOREVER_STORED);
        assert_eq!(Until::from_stored("soon"), None);
    }

    #[test]
    fn networks_are_normalised() {
        let n = |s: &str| parse_network(s).map(|n| n.to_string());
        assert_eq!(n("203.0.113.7"), Some("203.0.113.7/32".into()));
        assert_eq!(n("203.0.113.77/24"), Some("203.0.113.0/24".into()));
        assert_eq!(n("2001:db8::1/32"), Some("2001:db8::/32".into()));
        assert_eq!(n("::ffff:198.51.100.9"), Some("198.51.100.9/32".into()));
        assert_eq!(n("::ffff:198.51.100.9/120"), Some("198.51.100.0/24".into()));
        assert_eq!(n("::ffff:0:0/96"), Some("0.0.0.0/0".into()));
        assert_eq!(n("::/0"), Some("::/0".into()));
        for not in ["bob", "1.2.3.4/33", "1.2.3", "::g", "1.2.3.4/"] {
            assert_eq!(n(not), None, "{not}");
        }
    }

    #[test]
    fn ban_text_names_the_end_and_the_reason() {
        let b = Ban {
            until: Until::Forever,
            reason: "spam".into(),
        };
        assert_eq!(b.text(), "until forever: spam");
        let b = Ban {
            until: Until::Forever,
            reason: String::new(),
        };
        assert_eq!(b.text(), "until forever");
    }
}
