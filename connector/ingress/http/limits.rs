//! Limits that keep a flood cheap: total header size, a per-client rate limit (governor's GCRA,
//! IPv6 clients keyed by their /64), and a global cap on requests in flight that sheds load
//! with a 503 instead of queueing.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often idle rate-limit entries are dropped.
const RATE_LIMIT_HOUSEKEEPING: Duration = Duration::from_secs(60);

/// Total bytes of header names and values.
pub(crate) fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// Requests per second per client; `None` when disabled.
pub(crate) struct RateLimit(Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>);

impl RateLimit {
    /// `per_second` requests per second with a burst of as many; 0 disables the limit. Spawns
    /// a task that drops idle clients every minute while the limiter lives.
    pub(crate) fn per_second(per_second: u32) -> Self {
        let Some(rate) = NonZeroU32::new(per_second) else {
            return Self(None);
        };
        let limiter = Arc::new(RateLimiter::keyed(Quota::per_second(rate)));
        let weak: Weak<DefaultKeyedRateLimiter<IpAddr>> = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RATE_LIMIT_HOUSEKEEPING);
            loop {
                ticks.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Self(Some(limiter))
    }

    /// `Err(seconds to wait)` when `client` is over its rate.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), u32> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(&client_key(client)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs_f64().ceil().max(1.0) as u32
        })
    }
}

/// One IPv6 host usually owns a whole /64, so that is one client (the rate limiter's key, and
/// the body budget's per-address count).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// The global in-flight cap.
pub(crate) struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// At most `max` requests at once.
    pub(crate) fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }

    /// A slot, held until the permit is dropped; `None` when all are taken (shed the request).
    pub(crate) fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn header_bytes_add_names_and_values() {
        let mut headers = HeaderMap::new();
        headers.insert("a", HeaderValue::from_static("bc"));
        headers.append("a", HeaderValue::from_static("d"));
        assert_eq!(header_bytes(&headers), 5);
    }

    #[tokio::test]
    async fn the_rate_limit_is_per_client_and_says_when_to_retry() {
        let limit = RateLimit::per_second(1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limit.check(a), Ok(()));
        // Bounded: a slow machine may refill one slot between two checks, never a hundred.
        let refused = (0..100).find_map(|_| limit.check(a).err());
        assert_eq!(refused, Some(1));
        assert_eq!(limit.check(b), Ok(()));
        assert_eq!(RateLimit::per_second(0).check(a), Ok(()));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(one), client_key(two));
        assert_ne!(client_key(one), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_in_flight_cap_sheds_and_frees_slots() {
        let cap = InFlight::new(1);
        let held = cap.try_enter().expect("first slot");
        assert!(cap.try_enter().is_none());
        drop(held);
        assert!(cap.try_enter().is_some());
    }
}
