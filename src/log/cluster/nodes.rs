//! Which node incarnations are alive, from their heartbeats: the part of the cluster log that
//! frees a dead node's seats. Pure; the cluster log feeds it what it hears and acts on what it
//! says.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Node incarnations heard of (by heartbeat or by their records in the stream) and when last
/// heard, and those already gone.
#[derive(Debug)]
pub struct Liveness {
    mine: u32,
    dead_after: Duration,
    /// Live incarnations: when last heard; or, for one known only from the stream, when this
    /// node first saw its records (so each gets a full `dead_after` of grace).
    heard: HashMap<u32, Instant>,
    /// Declared gone (their `NodeGone` published), and when, to publish again if it was lost.
    declared: HashMap<u32, Instant>,
    /// Gone for good (their `NodeGone` applied): never live again.
    gone: HashSet<u32>,
}

impl Liveness {
    /// Nobody heard yet; `mine` is never declared dead.
    pub fn new(mine: u32, dead_after: Duration) -> Liveness {
        Liveness {
            mine,
            dead_after,
            heard: HashMap::new(),
            declared: HashMap::new(),
            gone: HashSet::new(),
        }
    }

    /// A heartbeat from `epoch`.
    pub fn heard(&mut self, epoch: u32, now: Instant) {
        if !self.gone.contains(&epoch) {
            self.heard.insert(epoch, now);
            self.declared.remove(&epoch);
        }
    }

    /// A record of `epoch` in the stream: known from now on, if it was not.
    pub fn saw(&mut self, epoch: u32, now: Instant) {
        if !self.gone.contains(&epoch) {
            self.heard.entry(epoch).or_insert(now);
        }
    }

    /// `epoch`'s `NodeGone` was applied: its seats are free everywhere.
    pub fn gone(&mut self, epoch: u32) {
        self.gone.insert(epoch);
        self.heard.remove(&epoch);
        self.declared.remove(&epoch);
    }

    /// This node goes on as incarnation `mine` (its old one was declared gone).
    pub fn renew(&mut self, mine: u32) {
        self.mine = mine;
    }

    /// This node was cut off from the others (NATS reconnected): nobody could be heard
    /// meanwhile, so every incarnation gets a new full grace from `now`.
    pub fn reset(&mut self, now: Instant) {
        for last in self.heard.values_mut() {
            *last = now;
        }
        self.declared.clear();
    }

    /// Incarnations silent for longer than `dead_after`, to be declared gone now: each once,
    /// and again after another `dead_after` if its `NodeGone` has not been applied by then.
    pub fn overdue(&mut self, now: Instant) -> Vec<u32> {
        let mut due = Vec::new();
        for (&epoch, &last) in &self.heard {
            if epoch == self.mine || now.saturating_duration_since(last) < self.dead_after {
                continue;
            }
            let again = self
                .declared
                .get(&epoch)
                .is_none_or(|&at| now.saturating_duration_since(at) >= self.dead_after);
            if again {
                due.push(epoch);
            }
        }
        due.sort_unstable();
        for &epoch in &due {
            self.declared.insert(epoch, now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_node_is_declared_once_then_again_only_if_its_end_was_lost() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = Liveness::new(1, 5 * s);
        l.heard(1, t0);
        l.heard(2, t0);
        l.saw(3, t0 + 2 * s);
        assert!(l.overdue(t0 + 4 * s).is_empty());
        l.heard(2, t0 + 4 * s);
        assert_eq!(
            l.overdue(t0 + 6 * s),
            Vec::<u32>::new(),
            "2 spoke, 3 has grace"
        );
        assert_eq!(l.overdue(t0 + 8 * s), vec![3]);
        assert_eq!(l.overdue(t0 + 9 * s), vec![2]);
        assert_eq!(
            l.overdue(t0 + 10 * s),
            Vec::<u32>::new(),
            "each declared once"
        );
        assert_eq!(
            l.overdue(t0 + 13 * s),
            vec![3],
            "its end was not applied: again"
        );
        l.gone(3);
        l.heard(3, t0 + 14 * s);
        l.saw(3, t0 + 14 * s);
        assert_eq!(l.overdue(t0 + 30 * s), vec![2], "gone for good; never mine");
        // After this node's own outage, nobody is overdue until a full grace has passed.
        l.reset(t0 + 40 * s);
        assert!(l.overdue(t0 + 44 * s).is_empty());
        assert_eq!(l.overdue(t0 + 45 * s), vec![2]);
    }
}
