//! Per-principal limits: one token bucket per principal (token issuer and subject), sized by
//! the most generous limit among its roles (`[rate_limits]`), and a bound on the principal's
//! requests running at once. A request finding the bucket empty, or the principal at its bound,
//! is refused with 429 RATE_LIMITED and a `Retry-After` saying when to try again. These run
//! before the gateway's shared concurrency limit: one principal's burst is refused here, and
//! never fills the slots and the queue everyone else needs.
//!
//! Buckets live in a bounded cache. One left alone long enough to be full again is forgotten
//! (its idle time-to-live is the longest refill of any limit), so forgetting it changes
//! nothing; and when `max_principals` are remembered the least recently seen go first.

use crate::access::{Principal, Role};
use crate::config::{RateLimit, RateLimitsConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The rate limiter of every principal.
pub struct RateLimiter {
    default: RateLimit,
    roles: HashMap<Role, RateLimit>,
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    /// Requests running per principal; a principal with none has no entry.
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// Why a principal's request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The bucket is empty: a token comes after this long.
    Rate(Duration),
    /// The principal already has this many requests running.
    InFlight(u32),
}

/// A principal's running request, counted until dropped.
pub struct PrincipalSlot {
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    key: String,
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.in_flight);
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters only: a panic elsewhere cannot leave them half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// From the configuration (role names are checked when it is loaded; unknown ones are
    /// ignored here).
    pub fn new(config: &RateLimitsConfig) -> Self {
        let roles: HashMap<Role, RateLimit> = config
            .roles
            .iter()
            .filter_map(|(name, limit)| Role::parse(name).map(|role| (role, *limit)))
            .collect();
        let refill = |l: &RateLimit| {
            f64::from(l.burst.max(1)) * 60.0 / f64::from(l.requests_per_minute.max(1))
        };
        let longest = roles
            .values()
            .map(refill)
            .fold(refill(&config.default), f64::max);
        Self {
            default: config.default,
            roles,
            buckets: moka::sync::Cache::builder()
                .max_capacity(config.max_principals)
                .time_to_idle(Duration::from_secs_f64(longest + 1.0))
                .build(),
            in_flight: Arc::default(),
        }
    }

    /// The limit of `principal`: the most generous of its roles' limits, else the default.
    fn limit_for(&self, principal: &Principal) -> RateLimit {
        principal
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .copied()
            .reduce(|a, b| RateLimit {
                requests_per_minute: a.requests_per_minute.max(b.requests_per_minute),
                burst: a.burst.max(b.burst),
                max_in_flight: a.max_in_flight.max(b.max_in_flight),
            })
            .unwrap_or(self.default)
    }

    /// Admits one request of `principal`: a place among its running requests, and a token of
    /// its bucket (not taken when the principal is at its bound).
    pub fn admit(&self, principal: &Principal) -> Result<PrincipalSlot, Refused> {
        let limit = self.limit_for(principal);
        let key = format!("{}\u{0}{}", principal.issuer, principal.subject);
        let mut in_flight = lock(&self.in_flight);
        let running = in_flight.get(&key).copied().unwrap_or(0);
        if running >= limit.max_in_flight.max(1) {
            return Err(Refused::InFlight(running));
        }
        self.take_token(&key, limit).map_err(Refused::Rate)?;
        *in_flight.entry(key.clone()).or_insert(0) += 1;
        Ok(PrincipalSlot {
            in_flight: Arc::clone(&self.in_flight),
            key,
        })
    }

    /// Takes a token for one request of `principal`; when there is none, how long until
    /// there is.
    pub fn check(&self, principal: &Principal) -> Result<(), Duration> {
        let limit = self.limit_for(principal);
        let key = format!("{}\u{0}{}", principal.issuer, principal.subject);
        self.take_token(&key, limit)
    }

    fn take_token(&self, key: &str, limit: RateLimit) -> Result<(), Duration> {
        let burst = f64::from(limit.burst.max(1));
        let per_second = f64::from(limit.requests_per_minute.max(1)) / 60.0;
        let key = key.to_string();
        let now = Instant::now();
        let bucket = self.buckets.get_with(key, || {
            Arc::new(Mutex::new(Bucket {
                tokens: burst,
                at: now,
            }))
        });
        let mut bucket = lock(&bucket);
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn principal(subject: &str, roles: &[&str]) -> Principal {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        Principal::from_claims("idp", subject, "UN", &roles, &[]).expect("a principal")
    }

    fn limiter(default: (u32, u32), roles: &[(&str, u32, u32)]) -> RateLimiter {
        let limit = |(requests_per_minute, burst)| RateLimit {
            requests_per_minute,
            burst,
            max_in_flight: 2,
        };
        RateLimiter::new(&RateLimitsConfig {
            default: limit(default),
            roles: roles
                .iter()
                .map(|(r, rpm, b)| (r.to_string(), limit((*rpm, *b))))
                .collect::<BTreeMap<_, _>>(),
            max_principals: 1_000,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_requests_wait_for_the_refill() {
        let rl = limiter((60, 3), &[]);
        let p = principal("alice", &["un-analyst"]);
        for _ in 0..3 {
            rl.check(&p).expect("within the burst");
        }
        let wait = rl.check(&p).expect_err("the bucket is empty");
        assert_eq!(wait, Duration::from_secs(1), "one token a second");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(rl.check(&p).is_err(), "not yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        rl.check(&p).expect("one token refilled");
        // A long pause refills the bucket to its size, no more.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..3 {
            rl.check(&p).expect("a full bucket");
        }
        assert!(rl.check(&p).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn principals_have_their_own_buckets_and_the_most_generous_role_applies() {
        let rl = limiter((60, 1), &[("un-case-officer", 600, 10), ("auditor", 6, 2)]);
        let officer = principal("olga", &["un-case-officer", "auditor"]);
        let analyst = principal("ali", &["un-analyst"]);
        for _ in 0..10 {
            rl.check(&officer).expect("the officer's burst of 10");
        }
        assert!(rl.check(&officer).is_err());
        rl.check(&analyst).expect("another principal is unaffected");
        assert!(rl.check(&analyst).is_err(), "the default burst of 1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_principal_has_at_most_max_in_flight_requests_running() {
        let rl = limiter((6_000, 100), &[]);
        let p = principal("bursty", &["un-analyst"]);
        let a = rl.admit(&p).expect("first");
        let _b = rl.admit(&p).expect("second");
        assert_eq!(rl.admit(&p).err(), Some(Refused::InFlight(2)));
        rl.admit(&principal("other", &["un-analyst"]))
            .expect("another principal has its own bound");
        drop(a);
        let _c = rl.admit(&p).expect("a place is free again");
        // Refusals for the bound took no token: 3 admitted, 97 left of the burst.
        for _ in 0..97 {
            rl.check(&p).expect("tokens left");
        }
        assert!(rl.check(&p).is_err());
    }
}
