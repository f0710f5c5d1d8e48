//! The writer's sense of the queue's pace: whether lingering for more would batch anything.

use std::time::Duration;

/// The recent pace of the writer's queue: a moving average of the gap between operations, to
/// tell whether another is due within a linger. Gaps longer than two lingers count as two
/// lingers, so after a quiet spell the pace catches up with a burst within a few operations.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    /// When the last operation arrived.
    last: Option<std::time::Instant>,
    /// Exponentially weighted mean gap (weight 1/4 to the newest), in nanoseconds. Starts at
    /// zero: with no history the writer lingers in full.
    mean_gap_ns: u64,
    /// The longest gap counted, in nanoseconds.
    cap_ns: u64,
}

impl Pace {
    pub(super) fn new(linger: Duration) -> Pace {
        Pace {
            last: None,
            mean_gap_ns: 0,
            cap_ns: u64::try_from(linger.as_nanos().saturating_mul(2)).unwrap_or(u64::MAX),
        }
    }

    /// Notes `n` operations that arrived since the last call, the latest at `now`.
    pub(super) fn arrived(&mut self, now: std::time::Instant, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(last) = self.last {
            let span =
                u64::try_from(now.saturating_duration_since(last).as_nanos()).unwrap_or(u64::MAX);
            for gap in std::iter::repeat_n((span / n as u64).min(self.cap_ns), n) {
                self.mean_gap_ns = self.mean_gap_ns - self.mean_gap_ns / 4 + gap / 4;
            }
        }
        self.last = Some(now);
    }

    /// When the next operation is due at the recent pace (long ago if nothing came yet).
    pub(super) fn next_due(&self) -> std::time::Instant {
        match self.last {
            Some(last) => last + Duration::from_nanos(self.mean_gap_ns),
            None => std::time::Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_follows_the_gap_between_operations() {
        let linger = Duration::from_millis(4);
        let t0 = std::time::Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut pace = Pace::new(linger);
        // No history: due at once, so the writer lingers in full.
        assert!(pace.next_due() <= std::time::Instant::now());
        // Steady, one every 2 ms: the next is due 2 ms after the last.
        for k in 0..30 {
            pace.arrived(ms(2 * k), 1);
        }
        let due = pace.next_due() - ms(58);
        assert!(
            due > Duration::from_micros(1900) && due <= Duration::from_millis(2),
            "{due:?}"
        );
        // Eight that came together over 8 ms count as eight 1 ms gaps.
        pace.arrived(ms(66), 8);
        let due = pace.next_due() - ms(66);
        assert!(due < Duration::from_micros(1200), "{due:?}");
        // A quiet room: gaps of a second count as two lingers, and soon nothing is due
        // within a linger.
        for k in 1..=4 {
            pace.arrived(ms(66 + 1000 * k), 1);
        }
        let due = pace.next_due() - ms(4066);
        assert!(due > linger && due <= 2 * linger, "{due:?}");
        // A burst after it: within a few operations the writer lingers again.
        for k in 1..=4 {
            pace.arrived(ms(4066 + k), 1);
        }
        let due = pace.next_due() - ms(4070);
        assert!(due < linger, "{due:?}");
    }
}
