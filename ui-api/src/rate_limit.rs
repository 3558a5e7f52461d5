//! Per-key rate limits of the REST API: one token bucket per key id, kept as GCRA (the
//! "generic cell rate algorithm": a bucket is the time at which it will be full again), in
//! integer nanoseconds so that waiting the announced `Retry-After` always suffices.
//!
//! Which requests count: everything that authenticates with [`crate::auth::Caller`], i.e. the
//! REST API under `/api` (scores and the Langfuse project check included). Trace ingest (OTLP/HTTP
//! and gRPC) does not: it is bounded by the WAL backlog, which refuses with 429 / 503 by itself.

use std::{collections::HashMap, time::Instant};

use parking_lot::Mutex;
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use vigil_access::keys::RateLimit;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A request over its key's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    pub limit: RateLimit,
    /// Whole seconds, rounded up: after this long the request is admitted.
    pub retry_after_secs: u64,
}

/// The buckets of every key seen.
pub struct RateLimiter {
    /// For keys without a limit of their own; `None`: unlimited.
    default: Option<RateLimit>,
    epoch: Instant,
    buckets: Mutex<HashMap<String, Bucket>>,
    refused: Counter,
}

impl RateLimiter {
    pub fn new(default: Option<RateLimit>) -> RateLimiter {
        RateLimiter {
            default,
            epoch: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
            refused: Counter::default(),
        }
    }

    /// Counts one request of `key_id`, whose own limit is `key_limit`.
    pub fn check(&self, key_id: &str, key_limit: Option<RateLimit>) -> Result<(), Refusal> {
        let Some(limit) = key_limit.or(self.default) else {
            return Ok(());
        };
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let admitted = {
            let mut buckets = self.buckets.lock();
            match buckets.get_mut(key_id) {
                Some(bucket) => bucket.admit(limit, now),
                None => buckets
                    .entry(key_id.to_string())
                    .or_default()
                    .admit(limit, now),
            }
        };
        admitted.map_err(|wait_ns| {
            self.refused.inc();
            Refusal {
                limit,
                retry_after_secs: wait_ns.div_ceil(NANOS_PER_SECOND),
            }
        })
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Adds `vigil_api_rate_limited_total` to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vigil_api_rate_limited",
            "REST requests refused (429) because their key was over its rate limit.",
            self.refused.clone(),
        );
    }
}

#[derive(Debug, Default)]
struct Bucket {
    /// Theoretical arrival time: when the bucket is full again (ns since the limiter's epoch).
    tat_ns: u64,
}

impl Bucket {
    /// Admits a request at `now_ns`, or says how long until one would be admitted.
    fn admit(&mut self, limit: RateLimit, now_ns: u64) -> Result<(), u64> {
        // One request's worth of refill; at least 1 ns.
        let interval = (NANOS_PER_SECOND as f64 / limit.requests_per_second)
            .round()
            .max(1.0) as u64;
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)) - 1);
        let tat = self.tat_ns.max(now_ns);
        let ahead = tat - now_ns;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        self.tat_ns = tat.saturating_add(interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;

    fn limit(requests_per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            requests_per_second,
            burst,
        }
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut bucket = Bucket::default();
        let l = limit(2.0, 3);
        let t0 = 10 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.admit(l, t0), Ok(()));
        }
        assert_eq!(bucket.admit(l, t0), Err(SECOND / 2));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2 - 1), Err(1));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2), Ok(()));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2), Err(SECOND / 2));
        // Idle for long: the burst is back, not more.
        let later = t0 + 3600 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.admit(l, later), Ok(()));
        }
        assert!(bucket.admit(l, later).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets_and_refusals_are_counted() {
        let limiter = RateLimiter::new(Some(limit(0.5, 1)));
        assert!(limiter.check("a", None).is_ok());
        let refusal = limiter.check("a", None).unwrap_err();
        assert_eq!(refusal.retry_after_secs, 2);
        assert_eq!(refusal.limit, limit(0.5, 1));
        assert!(limiter.check("b", None).is_ok());
        // A key's own limit wins over the default.
        for _ in 0..100 {
            assert!(limiter.check("c", Some(limit(1.0, 100))).is_ok());
        }
        assert!(limiter.check("c", Some(limit(1.0, 100))).is_err());
        assert_eq!(limiter.refused(), 2);
        let unlimited = RateLimiter::new(None);
        for _ in 0..10_000 {
            assert!(unlimited.check("a", None).is_ok());
        }
    }

    proptest! {
        /// Over any sequence of requests, the admitted ones never exceed burst + rate × elapsed,
        /// and a request made when the announced wait is over is admitted.
        #[test]
        fn never_more_than_the_limit_and_the_wait_suffices(
            rps in 0.1f64..50.0,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..300_000_000, 1..200),
        ) {
            let l = limit(rps, burst);
            let interval = (SECOND as f64 / rps).round() as u64;
            let mut bucket = Bucket::default();
            let start = SECOND;
            let mut now = start;
            let mut admitted = 0u64;
            for gap in gaps {
                now += gap;
                match bucket.admit(l, now) {
                    Ok(()) => admitted += 1,
                    Err(wait) => {
                        prop_assert!(wait > 0);
                        let mut probe = Bucket { tat_ns: bucket.tat_ns };
                        prop_assert!(probe.admit(l, now + wait).is_ok());
                    }
                }
                let allowed = u64::from(burst) + (now - start) / interval;
                prop_assert!(admitted <= allowed, "{admitted} > {allowed}");
            }
        }
    }
}
