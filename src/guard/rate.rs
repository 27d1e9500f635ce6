//! Per-client rate limiting: a token bucket per client address, and one
//! per authenticated caller (an OAuth token's subject), so a caller is held
//! to the rate however many addresses it comes from.
//!
//! Each client may make `burst` requests at once and `per_second` on
//! average; past that it gets 429 with `Retry-After` (whole seconds until a
//! token is back). Buckets live in 16 shards, each behind a std mutex held
//! for a few arithmetic operations (never across an `.await`); idle buckets
//! are swept as shards grow.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::http::Response;
use crate::jsonrpc::{INVALID_REQUEST, RpcError};

const SHARDS: usize = 16;
/// Buckets a shard holds before idle ones are swept.
const SWEEP_AT: usize = 4096;
/// Most clients tracked in all: past it (after a sweep) the bucket used
/// least recently is dropped, so many addresses cannot grow the map
/// without bound. Default: 65 536 (16 shards of 4 096).
#[cfg(test)]
const MAX_TRACKED_CLIENTS: usize = SHARDS * SWEEP_AT;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Whose bucket: a client address (see `bucket_key`), or a caller's name,
/// kept as its hash under the limiter's random key (two names that collide
/// only share a bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
    Name(u64),
}

/// A token-bucket limiter keyed by client address (and caller).
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    shards: [Mutex<HashMap<Key, Bucket>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish()
    }
}

impl RateLimiter {
    /// `per_second` requests on average, `burst` at once, per client address.
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: per_second.max(0.001),
            burst: f64::from(burst.max(1)),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Takes a token for `client`, or says how long until one is back.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.take(Key::Addr(bucket_key(client)))
    }

    /// Takes a token for the authenticated caller `name` (besides its
    /// address's), or says how long until one is back.
    #[cfg(feature = "oauth")]
    pub fn check_caller(&self, name: &str) -> Result<(), Duration> {
        let mut h = self.hasher.build_hasher();
        h.write(name.as_bytes());
        self.take(Key::Name(h.finish()))
    }

    fn take(&self, client: Key) -> Result<(), Duration> {
        let mut h = self.hasher.build_hasher();
        std::hash::Hash::hash(&client, &mut h);
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        let mut buckets = shard.lock();
        let now = Instant::now();
        if buckets.len() >= SWEEP_AT {
            // Full buckets of idle clients carry no state worth keeping.
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.duration_since(b.at) < full_after);
            // Still full of clients that are all active: the eighth seen
            // least recently gives way (a client that returns starts again
            // with a full bucket), so the next sweeps are far apart.
            if buckets.len() >= SWEEP_AT {
                let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
                let cut = SWEEP_AT / 8;
                let (_, &mut threshold, _) = ages.select_nth_unstable(cut);
                buckets.retain(|_, b| b.at > threshold);
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }

    /// Clients tracked now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// The JSON-RPC error of a request over the limit, for a wait of
    /// `retry_after` (what a 429 carries, and what answers a WebSocket's
    /// request over it).
    pub(crate) fn error(retry_after: Duration) -> RpcError {
        let secs = Self::retry_secs(retry_after);
        RpcError::new(
            INVALID_REQUEST,
            format!("rate limited: too many requests; retry in {secs}s"),
        )
    }

    /// Whole seconds to wait, at least one.
    fn retry_secs(retry_after: Duration) -> u64 {
        retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// The 429 answer for a wait of `retry_after`.
    pub fn refusal(retry_after: Duration) -> Response {
        let secs = Self::retry_secs(retry_after);
        let e = Self::error(retry_after);
        match super::error_response(429, None, &e).try_header("retry-after", secs.to_string()) {
            Ok(r) => r,
            Err(_) => Response::new(429),
        }
    }
}

/// The key a client's bucket is kept under: see
/// [`crate::util::addr::client_network`].
fn bucket_key(ip: IpAddr) -> IpAddr {
    crate::util::addr::client_network(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_waits() {
        let limiter = RateLimiter::new(10.0, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let wait = limiter.check(a).expect_err("limited");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.check(b).is_ok(), "clients are apart");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.check(a).is_ok(), "a token came back");
        let r = RateLimiter::refusal(Duration::from_millis(1500));
        assert_eq!(r.status(), 429);
        assert_eq!(r.header_value("retry-after"), Some(&b"2"[..]));
    }

    #[test]
    fn the_map_is_bounded_whatever_the_addresses() {
        let limiter = RateLimiter::new(1.0, 5);
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 20_000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limiter.check(ip);
        }
        assert!(
            limiter.tracked() <= MAX_TRACKED_CLIENTS,
            "{}",
            limiter.tracked()
        );
        // A /64 is one client.
        let limiter = RateLimiter::new(1.0, 2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(b).is_ok());
        assert!(limiter.check(a).is_err(), "same /64, same bucket");
    }

    #[test]
    #[cfg(feature = "oauth")]
    fn a_caller_has_one_bucket_whatever_its_address() {
        let limiter = RateLimiter::new(1.0, 2);
        assert!(limiter.check_caller("sub:alice").is_ok());
        assert!(limiter.check_caller("sub:alice").is_ok());
        assert!(limiter.check_caller("sub:alice").is_err());
        assert!(limiter.check_caller("sub:bob").is_ok());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(limiter.check(a).is_ok(), "addresses and callers are apart");
    }
}
