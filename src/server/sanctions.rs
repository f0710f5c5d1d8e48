//! The bans and mutes in force, in memory: every new connection is checked against the banned
//! networks and every chat line against the mutes, without a database read. The store is the
//! truth (an admin's verb commits there first, and so does the operator's offline tool); the
//! daemon re-reads it after each admin action and every [`REFRESH`], and closes the sessions
//! a ban covers (see `Shared::refresh_sanctions`).

use crate::UserId;
use crate::protocol::sanction::{Ban, Until};
use crate::store::Snapshot;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the daemon re-reads the bans and mutes (so the offline tool's bans and every
/// ban's end count without a restart).
pub const REFRESH: Duration = Duration::from_secs(2);

/// Bans and mutes, as last read from the store.
#[derive(Debug, Default)]
pub struct Sanctions {
    state: RwLock<Snapshot>,
    /// Whether any network is banned: a connection then costs no lock.
    any_networks: AtomicBool,
    /// Whether anyone is muted: a chat line then costs no lock.
    any_mutes: AtomicBool,
    /// Held from an admin action's commit to the refresh that acts on it, and by the periodic
    /// refresh: the admin hears how many sessions their ban closed.
    pub refreshing: tokio::sync::Mutex<()>,
}

impl Sanctions {
    /// The ban covering `ip` now, if any. Without banned networks it costs one atomic load.
    pub fn network_ban(&self, ip: IpAddr) -> Option<Ban> {
        if !self.any_networks.load(Ordering::Acquire) {
            return None;
        }
        self.network_ban_at(ip, Utc::now())
    }

    /// Until when `user` is muted now, if they are. Without mutes it costs one atomic load.
    pub fn muted(&self, user: UserId) -> Option<Until> {
        if !self.any_mutes.load(Ordering::Acquire) {
            return None;
        }
        self.muted_at(user, Utc::now())
    }

    /// The ban covering `ip` at `now`, if any (the longest, if several do).
    pub fn network_ban_at(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<Ban> {
        let ip = ip.to_canonical();
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .networks
            .iter()
            .filter(|(net, ban)| net.contains(&ip) && !ban.until.is_over(now))
            .max_by_key(|(_, ban)| ban.until)
            .map(|(_, ban)| ban.clone())
    }

    /// Until when `user` is muted at `now`, if they are.
    pub fn muted_at(&self, user: UserId, now: DateTime<Utc>) -> Option<Until> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .muted
            .iter()
            .find(|(u, until)| *u == user && !until.is_over(now))
            .map(|(_, until)| *until)
    }

    /// Takes a new read of the store.
    pub fn replace(&self, next: Snapshot) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        self.any_networks
            .store(!next.networks.is_empty(), Ordering::Release);
        self.any_mutes
            .store(!next.muted.is_empty(), Ordering::Release);
        *state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sanction::parse_network;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ban(until: &str, reason: &str) -> Ban {
        Ban {
            until: Until::Time(at(until)),
            reason: reason.into(),
        }
    }

    #[test]
    fn networks_cover_their_addresses_until_the_ban_ends() {
        let s = Sanctions::default();
        let now = at("2026-12-02T10:00:00Z");
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(s.network_ban_at(ip("203.0.113.9"), now), None);
        s.replace(Snapshot {
            networks: vec![
                (
                    parse_network("203.0.113.0/24").unwrap(),
                    ban("2026-12-02T11:00:00Z", "spam"),
                ),
                (
                    parse_network("2001:db8::/32").unwrap(),
                    ban("2026-12-03T00:00:00Z", ""),
                ),
            ],
            ..Snapshot::default()
        });
        let got = s.network_ban_at(ip("203.0.113.9"), now).unwrap();
        assert_eq!(got.text(), "until 2026-12-02T11:00:00Z: spam");
        // An IPv4 peer on a dual-stack socket is the same address.
        assert!(s.network_ban_at(ip("::ffff:203.0.113.200"), now).is_some());
        assert!(s.network_ban_at(ip("2001:db8:1::7"), now).is_some());
        assert_eq!(s.network_ban_at(ip("203.0.114.1"), now), None);
        assert_eq!(
            s.network_ban_at(ip("203.0.113.9"), at("2026-12-02T11:00:00Z")),
            None,
            "ended"
        );
    }

    #[test]
    fn mutes_end_and_an_empty_read_clears_the_fast_paths() {
        let s = Sanctions::default();
        let now = at("2026-12-02T10:00:00Z");
        s.replace(Snapshot {
            banned: vec![(7, ban("2026-12-09T00:00:00Z", "x"))],
            muted: vec![(8, Until::Time(at("2026-12-02T10:30:00Z")))],
            ..Snapshot::default()
        });
        assert_eq!(
            s.muted_at(8, now),
            Some(Until::Time(at("2026-12-02T10:30:00Z")))
        );
        assert_eq!(s.muted_at(8, at("2026-12-02T10:30:00Z")), None, "ended");
        assert_eq!(s.muted_at(7, now), None, "banned is not muted");
        s.replace(Snapshot::default());
        assert!(!s.any_mutes.load(Ordering::Acquire));
        assert_eq!(s.muted(8), None);
    }
}
