//! Token buckets by key, kept as GCRA (the "generic cell rate algorithm": a bucket is the time
//! at which it will be full again), in integer nanoseconds so that waiting the announced time
//! always suffices. Used for each API key's rate limit and for failed authentications by source
//! address ([`FailedAuth`]).
//!
//! A bucket that is full again is the same as no bucket, so such buckets are evicted: every
//! [`SWEEP_EVERY`] new keys, and whenever the map reaches its capacity. Keys that arrive while
//! it is full of buckets still in use share one overflow bucket, so memory stays bounded
//! whatever the keys (every address of an IPv6 prefix, say).

use std::{borrow::Borrow, collections::HashMap, hash::Hash, net::IpAddr, time::Instant};

use parking_lot::Mutex;

use crate::keys::RateLimit;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// New keys between two sweeps of full buckets.
pub const SWEEP_EVERY: u64 = 1024;

/// A request over its bucket's limit: how long until one would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub nanos: u64,
}

impl Wait {
    /// Whole seconds, rounded up (a `Retry-After`).
    pub fn secs(self) -> u64 {
        self.nanos.div_ceil(NANOS_PER_SECOND)
    }
}

/// One token bucket per key, at most `capacity` of them.
pub struct Buckets<K> {
    epoch: Instant,
    capacity: usize,
    state: Mutex<State<K>>,
}

struct State<K> {
    buckets: HashMap<K, Bucket>,
    overflow: Bucket,
    new_keys: u64,
}

impl<K: Hash + Eq> Buckets<K> {
    pub fn new(capacity: usize) -> Buckets<K> {
        Buckets {
            epoch: Instant::now(),
            capacity: capacity.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                overflow: Bucket::default(),
                new_keys: 0,
            }),
        }
    }

    /// Takes one token of `key`'s bucket, or says how long until one is there.
    pub fn admit<Q>(&self, key: &Q, limit: RateLimit) -> Result<(), Wait>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.now();
        self.with_bucket(key, now, |bucket| bucket.admit(limit, now, true))
    }

    /// Whether `key`'s bucket has a token now, taking none.
    pub fn peek(&self, key: &K, limit: RateLimit) -> Result<(), Wait> {
        let now = self.now();
        let mut state = self.state.lock();
        match state.buckets.get_mut(key) {
            Some(bucket) => bucket.admit(limit, now, false),
            None => Ok(()),
        }
    }

    /// Buckets kept now.
    pub fn len(&self) -> usize {
        self.state.lock().buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn with_bucket<Q, T>(&self, key: &Q, now: u64, f: impl FnOnce(&mut Bucket) -> T) -> T
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(bucket) = state.buckets.get_mut(key) {
            return f(bucket);
        }
        state.new_keys += 1;
        if state.new_keys.is_multiple_of(SWEEP_EVERY) || state.buckets.len() >= self.capacity {
            state.buckets.retain(|_, bucket| bucket.tat_ns > now);
        }
        if state.buckets.len() >= self.capacity {
            return f(&mut state.overflow);
        }
        f(state.buckets.entry(key.to_owned()).or_default())
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Theoretical arrival time: when the bucket is full again (ns since the epoch).
    tat_ns: u64,
}

impl Bucket {
    /// Admits a request at `now_ns` (taking its token when `take`), or says how long until one
    /// would be admitted.
    fn admit(&mut self, limit: RateLimit, now_ns: u64, take: bool) -> Result<(), Wait> {
        // One request's worth of refill; at least 1 ns.
        let interval = (NANOS_PER_SECOND as f64 / limit.requests_per_second)
            .round()
            .max(1.0) as u64;
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)) - 1);
        let tat = self.tat_ns.max(now_ns);
        let ahead = tat - now_ns;
        if ahead > tolerance {
            return Err(Wait {
                nanos: ahead - tolerance,
            });
        }
        if take {
            self.tat_ns = tat.saturating_add(interval);
        }
        Ok(())
    }
}

/// Failed authentications by source address: past its limit, an address is refused before its
/// credential is looked at (correct or not) until its bucket refills. Secrets are 192 random
/// bits, so this is not what stops guessing: it stops a misconfigured or hostile client from
/// spending the server's time and filling its logs.
pub struct FailedAuth {
    limit: Option<RateLimit>,
    buckets: Buckets<IpAddr>,
}

/// Addresses tracked at most.
const FAILED_AUTH_CAPACITY: usize = 65_536;

impl FailedAuth {
    /// `limit`: failures per second and burst per address; `None`: not limited.
    pub fn new(limit: Option<RateLimit>) -> FailedAuth {
        FailedAuth {
            limit,
            buckets: Buckets::new(FAILED_AUTH_CAPACITY),
        }
    }

    /// Whether `address` may try to authenticate now.
    fn check(&self, address: IpAddr) -> Result<(), Wait> {
        match self.limit {
            Some(limit) => self.buckets.peek(&address, limit),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `address`.
    fn failed(&self, address: IpAddr) {
        if let Some(limit) = self.limit {
            // Over the limit already: the address is refused until the bucket refills.
            let _ = self.buckets.admit(&address, limit);
        }
    }

    /// Runs `authenticate` for a caller at `address` (unknown: not limited): refused at once
    /// when the address is over its failures, a failure counted when it finds no key.
    pub fn guard<T>(
        &self,
        address: Option<IpAddr>,
        authenticate: impl FnOnce() -> Option<T>,
    ) -> Result<T, AuthRefusal> {
        if let Some(address) = address {
            self.check(address).map_err(AuthRefusal::TooManyFailures)?;
        }
        authenticate().ok_or_else(|| {
            if let Some(address) = address {
                self.failed(address);
            }
            AuthRefusal::Unauthenticated
        })
    }
}

/// Why a caller was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// No valid key.
    Unauthenticated,
    /// Its address failed too often: retry after the wait.
    TooManyFailures(Wait),
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

    fn wait(nanos: u64) -> Result<(), Wait> {
        Err(Wait { nanos })
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut bucket = Bucket::default();
        let l = limit(2.0, 3);
        let t0 = 10 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.admit(l, t0, true), Ok(()));
        }
        assert_eq!(bucket.admit(l, t0, true), wait(SECOND / 2));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2 - 1, true), wait(1));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2, false), Ok(()));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2, true), Ok(()));
        assert_eq!(bucket.admit(l, t0 + SECOND / 2, true), wait(SECOND / 2));
        // Idle for long: the burst is back, not more.
        let later = t0 + 3600 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.admit(l, later, true), Ok(()));
        }
        assert!(bucket.admit(l, later, true).is_err());
    }

    #[test]
    fn full_buckets_are_evicted_and_the_map_stays_bounded() {
        let buckets: Buckets<u64> = Buckets::new(100);
        // A refill so slow that no bucket is full again during the test.
        let slow = limit(0.001, 1);
        for key in 0..100 {
            assert!(buckets.admit(&key, slow).is_ok());
        }
        assert_eq!(buckets.len(), 100);
        // At capacity with buckets in use: newcomers share the overflow bucket.
        assert!(buckets.admit(&1000, slow).is_ok());
        assert!(buckets.admit(&1001, slow).is_err());
        assert_eq!(buckets.len(), 100);
        // A bucket that refills at once is full again by the next call: swept, not kept.
        let fast = limit(1e9, 1);
        let churn: Buckets<u64> = Buckets::new(10);
        for key in 0..(3 * SWEEP_EVERY) {
            assert!(churn.admit(&key, fast).is_ok());
        }
        assert!(churn.len() <= 10, "{} buckets kept", churn.len());
    }

    #[test]
    fn an_address_over_its_failures_is_refused_until_it_refills() {
        let guard = FailedAuth::new(Some(limit(0.01, 3)));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..3 {
            assert!(guard.check(a).is_ok());
            guard.failed(a);
        }
        let refused = guard.check(a).unwrap_err();
        assert_eq!(refused.secs(), 100);
        // Refused before the credential is looked at, right or wrong.
        assert!(matches!(
            guard.guard(Some(a), || Some("a right key")),
            Err(AuthRefusal::TooManyFailures(wait)) if wait.secs() == 100
        ));
        assert_eq!(guard.guard(Some(b), || Some("key")), Ok("key"));
        assert_eq!(
            guard.guard(None::<IpAddr>, || None::<()>),
            Err(AuthRefusal::Unauthenticated)
        );
        assert!(guard.check(b).is_ok(), "another address is not refused");
        let off = FailedAuth::new(None);
        for _ in 0..100 {
            off.failed(a);
        }
        assert!(off.check(a).is_ok());
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
                match bucket.admit(l, now, true) {
                    Ok(()) => admitted += 1,
                    Err(wait) => {
                        prop_assert!(wait.nanos > 0);
                        let mut probe = bucket;
                        prop_assert!(probe.admit(l, now + wait.nanos, true).is_ok());
                    }
                }
                let allowed = u64::from(burst) + (now - start) / interval;
                prop_assert!(admitted <= allowed, "{admitted} > {allowed}");
            }
        }
    }
}
