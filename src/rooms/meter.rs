//! A per-second event counter over the last minute (deliveries per second for `#stats`).

/// Seconds in the delivery-rate window.
const METER_SECS: usize = 60;

/// Counts events per second over the last minute, in a ring of one-second buckets.
#[derive(Debug)]
pub struct Meter {
    counts: [u64; METER_SECS],
    stamps: [u64; METER_SECS],
    total: u64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            counts: [0; METER_SECS],
            stamps: [0; METER_SECS],
            total: 0,
        }
    }
}

impl Meter {
    /// Adds `n` events in second `now`.
    pub fn add(&mut self, now: u64, n: u64) {
        let i = (now % METER_SECS as u64) as usize;
        if self.stamps[i] != now {
            self.stamps[i] = now;
            self.counts[i] = 0;
        }
        self.counts[i] += n;
        self.total += n;
    }

    /// Events ever.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Events per second over the minute ending at second `now`.
    pub fn rate(&self, now: u64) -> f64 {
        let total: u64 = (0..METER_SECS)
            .filter(|&i| now.saturating_sub(self.stamps[i]) < METER_SECS as u64)
            .map(|i| self.counts[i])
            .sum();
        total as f64 / METER_SECS as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_averages_the_last_minute() {
        let mut m = Meter::default();
        m.add(0, 60);
        m.add(30, 60);
        assert_eq!(m.rate(30), 2.0);
        assert_eq!(m.rate(59), 2.0);
        assert_eq!(m.rate(60), 1.0); // second 0 has left the window
        assert_eq!(m.rate(200), 0.0);
        m.add(200, 6);
        assert_eq!(m.rate(200), 0.1);
    }
}
