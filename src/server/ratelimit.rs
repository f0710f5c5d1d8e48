//! Token buckets: the per-user message rate limit and the failed-login throttles.
//!
//! A [`TokenBucket`] is pure (time is passed in) and unit-tested. A [`Limiter`] keys buckets by
//! user, address or account name behind a mutex held only for a map lookup and a few float
//! operations, never across an await.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before full (idle) ones are swept out.
const SWEEP_AT: usize = 10_000;

/// A bucket of `burst` tokens refilled at `per_sec` tokens per second.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// Capacity and refill rate shared by a family of buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Most tokens a bucket holds (and starts with).
    pub burst: f64,
    /// Tokens added per second; 0 disables the limit.
    pub per_sec: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = now;
    }

    /// How long until one token is available; zero if one is there now.
    pub fn wait(&mut self, rate: Rate, now: Instant) -> Duration {
        if rate.per_sec <= 0.0 {
            return Duration::ZERO;
        }
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate.per_sec)
        }
    }

    /// Takes a token if there is one; otherwise says how long until there will be.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        match self.wait(rate, now) {
            Duration::ZERO => {
                if rate.per_sec > 0.0 {
                    self.tokens -= 1.0;
                }
                Ok(())
            }
            wait => Err(wait),
        }
    }

    /// Takes a token even if that leaves the bucket in debt (for counting failures).
    pub fn charge(&mut self, rate: Rate, now: Instant) {
        self.refill(rate, now);
        self.tokens = (self.tokens - 1.0).max(-rate.burst);
    }

    fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// Token buckets keyed by `K`, all with the same [`Rate`].
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter whose buckets hold `burst` tokens and refill at `per_sec`.
    pub fn new(burst: f64, per_sec: f64) -> Self {
        Limiter {
            rate: Rate { burst, per_sec },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limit is off (`per_sec` 0).
    pub fn disabled(&self) -> bool {
        self.rate.per_sec <= 0.0
    }

    fn with<T>(&self, key: &K, f: impl FnOnce(&mut TokenBucket, Rate, Instant) -> T) -> T {
        let now = Instant::now();
        let rate = self.rate;
        // A poisoned lock only means another thread panicked mid-update of a counter: go on.
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT && !map.contains_key(key) {
            map.retain(|_, b| !b.is_full(rate, now));
        }
        let bucket = map
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(rate, now));
        f(bucket, rate, now)
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        if self.disabled() {
            return Ok(());
        }
        self.with(key, |b, rate, now| b.take(rate, now))
    }

    /// How long until `key` has a token, without taking it. A key with no bucket has a full
    /// one, and gets none: checking every connection's address keeps nothing for it.
    pub fn wait(&self, key: &K) -> Duration {
        if self.disabled() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(key) {
            Some(b) => b.wait(self.rate, now),
            None => TokenBucket::new(self.rate, now).wait(self.rate, now),
        }
    }

    /// Takes a token for `key`, into debt if need be (a failed login).
    pub fn charge(&self, key: &K) {
        if !self.disabled() {
            self.with(key, |b, rate, now| b.charge(rate, now));
        }
    }
}

/// Milliseconds to wait, rounded up, as `ERR ratelimit retry-after=MS` states it.
pub fn retry_after_ms(wait: Duration) -> u64 {
    let ms = wait.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3.0,
        per_sec: 2.0,
    };

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RATE, t0);
        for _ in 0..3 {
            assert_eq!(b.take(RATE, t0), Ok(()));
        }
        assert_eq!(b.take(RATE, t0), Err(Duration::from_millis(500)));
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(b.take(RATE, t1), Err(Duration::from_millis(250)));
        let t2 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(RATE, t2), Ok(()));
        // Long idle refills to the burst, no further.
        let t3 = t2 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(RATE, t3), Ok(()));
        }
        assert!(b.take(RATE, t3).is_err());
    }

    #[test]
    fn zero_rate_disables() {
        let off = Rate {
            burst: 1.0,
            per_sec: 0.0,
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(off, t0);
        for _ in 0..100 {
            assert_eq!(b.take(off, t0), Ok(()));
        }
    }

    #[test]
    fn charge_goes_into_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(RATE, t0);
        for _ in 0..5 {
            b.charge(RATE, t0);
        }
        // 3 - 5 = -2 tokens: 1.5 s until one is back.
        assert_eq!(b.wait(RATE, t0), Duration::from_millis(1500));
    }

    #[test]
    fn keyed() {
        let l: Limiter<u32> = Limiter::new(1.0, 1.0);
        assert!(l.take(&1).is_ok());
        assert!(l.take(&1).is_err());
        assert!(l.take(&2).is_ok());
        assert_eq!(retry_after_ms(Duration::from_micros(1)), 1);
        assert_eq!(retry_after_ms(Duration::from_micros(1500)), 2);
    }

    /// Checking keeps no bucket for a key that has none; a charged key's debt is seen.
    #[test]
    fn waiting_keeps_nothing_for_a_fresh_key() {
        let l: Limiter<u32> = Limiter::new(2.0, 1.0);
        for k in 0..1000 {
            assert_eq!(l.wait(&k), Duration::ZERO);
        }
        let held = || l.buckets.lock().unwrap().len();
        assert_eq!(held(), 0);
        l.charge(&7);
        assert_eq!(l.wait(&7), Duration::ZERO);
        l.charge(&7);
        assert!(l.wait(&7) > Duration::from_millis(900));
        assert_eq!(held(), 1);
    }
}
