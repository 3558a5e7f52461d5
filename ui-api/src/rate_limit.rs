//! Per-key rate limits of the REST API: one token bucket per key id
//! ([`vigil_access::throttle`], GCRA in integer nanoseconds, so that waiting the announced
//! `Retry-After` always suffices).
//!
//! Which requests count: everything that authenticates with [`crate::auth::Caller`], i.e. the
//! REST API under `/api` (scores and the Langfuse project check included). Trace ingest (OTLP/HTTP
//! and gRPC) does not: it is bounded by the WAL backlog, which refuses with 429 / 503 by itself.

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use vigil_access::{keys::RateLimit, throttle::Buckets};

/// Keys whose buckets are kept at most (a bucket that is full again is dropped).
const CAPACITY: usize = 65_536;

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
    buckets: Buckets<String>,
    refused: Counter,
}

impl RateLimiter {
    pub fn new(default: Option<RateLimit>) -> RateLimiter {
        RateLimiter {
            default,
            buckets: Buckets::new(CAPACITY),
            refused: Counter::default(),
        }
    }

    /// Counts one request of `key_id`, whose own limit is `key_limit`.
    pub fn check(&self, key_id: &str, key_limit: Option<RateLimit>) -> Result<(), Refusal> {
        let Some(limit) = key_limit.or(self.default) else {
            return Ok(());
        };
        self.buckets.admit(key_id, limit).map_err(|wait| {
            self.refused.inc();
            Refusal {
                limit,
                retry_after_secs: wait.secs(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests_per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            requests_per_second,
            burst,
        }
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
}
