//! Keyed token-bucket rate limits with a hard bound on memory.
//!
//! A bucket that has refilled to its burst size says nothing a missing bucket would not, so such
//! buckets are dropped; the table only holds keys seen within the last refill period. If it is
//! still full after that, new keys are refused rather than old ones evicted: evicting would let
//! an attacker reset a victim's limit by flooding the table.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// Limits for one kind of key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts allowed at once.
    pub burst: u32,
    /// Attempts regained per minute.
    pub per_minute: u32,
}

struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

/// A rate limiter over keys of type `K`.
//
// LIMITATION: the buckets live in this process. Servers sharing one PostgreSQL store each count
// on their own, so behind a balancer of N servers an attacker gets up to N times the budget.
// The way out is a shared bucket table beside the replay table (one upsert per credential
// check), or limits set per server as budget / N.
pub struct RateLimiter<K> {
    limit: Limit,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter that tracks at most `max_keys` keys at once.
    pub fn new(limit: Limit, max_keys: usize) -> Self {
        Self {
            limit,
            max_keys,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `key` at `now_ms`, or says how long to wait.
    pub fn check(&self, key: &K, now_ms: u64) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let per_ms = f64::from(self.limit.per_minute.max(1)) / 60_000.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(Duration::from_secs(1));
        };

        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| refilled(b, now_ms, per_ms) < burst);
            if buckets.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }

        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        bucket.tokens = refilled(bucket, now_ms, per_ms).min(burst);
        bucket.updated_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - bucket.tokens) / per_ms).ceil() as u64;
        Err(Duration::from_millis(wait_ms.max(1000)))
    }

    /// Keys tracked right now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

fn refilled(bucket: &Bucket, now_ms: u64, per_ms: f64) -> f64 {
    bucket.tokens + now_ms.saturating_sub(bucket.updated_ms) as f64 * per_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        burst: 3,
        per_minute: 60,
    };

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let limiter = RateLimiter::new(LIMIT, 10);
        for _ in 0..3 {
            assert!(limiter.check(&"k", 0).is_ok());
        }
        assert!(limiter.check(&"k", 0).is_err());
        assert!(limiter.check(&"k", 1_000).is_ok());
    }

    #[test]
    fn a_full_table_drops_idle_keys_and_refuses_rather_than_evicting_live_ones() {
        let limiter = RateLimiter::new(LIMIT, 2);
        assert!(limiter.check(&1, 0).is_ok());
        assert!(limiter.check(&2, 0).is_ok());
        assert!(
            limiter.check(&3, 0).is_err(),
            "live keys must not be evicted"
        );
        assert!(
            limiter.check(&3, 10_000).is_ok(),
            "refilled keys are dropped"
        );
        assert!(limiter.tracked() <= 2);
    }
}
