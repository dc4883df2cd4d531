//! Back-off for the token endpoint's client authentication: an address that keeps sending
//! wrong client secrets is told to wait longer and longer before it tries again.
//!
//! Per client address (IPv6 clients by their /64, like the general rate limit): the first
//! `failures_before_backoff − 1` failed authentications cost nothing; the next one, and each
//! after it, makes the address wait `initial_wait_ms`, doubling per failure up to
//! `max_wait_secs`. While it waits, a failed attempt is answered 429 with `Retry-After` (RFC 6749
//! clients handle it) instead of 401, and does not count again. A success forgets the address;
//! so does `forget_after_secs` without a failure.
//!
//! The credentials are always checked first, even while the address waits: behind an ingress
//! (or a NAT) the address is shared, and a stranger's wrong guesses must never refuse the
//! vendor's right credentials. Guessing is kept hopeless by the secrets themselves (start-up
//! refuses short ones, `token_endpoint::MIN_CLIENT_SECRET_BYTES`); the back-off tells a
//! misconfigured client to slow down and marks the address in the log.
//!
//! Memory is bounded: at most `max_clients` addresses are remembered. When the table is full,
//! forgotten addresses go first, then those with the oldest failures.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::common::setting::SettingError;

/// `[auth.oauth2.token_endpoint.failure_backoff]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureBackoffConfig {
    /// Failed client authentications from one address before it must wait: this many get
    /// their 401 at once, the last of them starts the wait. Default 5, at least 1.
    pub failures_before_backoff: u32,
    /// The first wait, in milliseconds; it doubles with each further failure. Default 1000.
    pub initial_wait_ms: u64,
    /// The longest wait, in seconds. Default 300.
    pub max_wait_secs: u64,
    /// An address without a failure for this long starts from zero again, in seconds. Default
    /// 900; at least `max_wait_secs`.
    pub forget_after_secs: u64,
    /// Addresses remembered at most (about 100 bytes each). Default 10000.
    pub max_clients: usize,
}

impl Default for FailureBackoffConfig {
    fn default() -> Self {
        Self {
            failures_before_backoff: 5,
            initial_wait_ms: 1_000,
            max_wait_secs: 300,
            forget_after_secs: 900,
            max_clients: 10_000,
        }
    }
}

impl FailureBackoffConfig {
    /// Range checks, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.failures_before_backoff == 0 {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.failure_backoff.failures_before_backoff",
                "must be at least 1",
            ));
        }
        if self.initial_wait_ms == 0 {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.failure_backoff.initial_wait_ms",
                "must be greater than 0",
            ));
        }
        if self.max_wait_secs.saturating_mul(1000) < self.initial_wait_ms {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.failure_backoff.max_wait_secs",
                "must be at least initial_wait_ms",
            ));
        }
        if self.forget_after_secs < self.max_wait_secs {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.failure_backoff.forget_after_secs",
                "must be at least max_wait_secs",
            ));
        }
        if self.max_clients == 0 {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.failure_backoff.max_clients",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// What one address has done lately.
#[derive(Debug)]
struct Record {
    /// Consecutive failed authentications.
    failures: u32,
    last_failure: Instant,
    /// Failures before this are answered 429 and not counted.
    blocked_until: Option<Instant>,
}

impl Record {
    fn forgotten(&self, now: Instant, forget_after: Duration) -> bool {
        now.saturating_duration_since(self.last_failure) >= forget_after
    }
}

struct Inner {
    failures_before_backoff: u32,
    initial_wait: Duration,
    max_wait: Duration,
    forget_after: Duration,
    max_clients: usize,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// The per-address failure table; cheap to clone.
#[derive(Clone)]
pub struct FailureBackoff(Arc<Inner>);

impl std::fmt::Debug for FailureBackoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureBackoff")
            .field("failures_before_backoff", &self.0.failures_before_backoff)
            .field("max_clients", &self.0.max_clients)
            .finish()
    }
}

/// What a failed client authentication means for its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; answer 401. `Some` when this failure starts a wait (for the log).
    Counted(Option<Duration>),
    /// The address was already waiting: answer 429, `Retry-After` this long.
    Waiting(Duration),
}

impl FailureBackoff {
    /// A table with `config`'s limits.
    pub fn new(config: &FailureBackoffConfig) -> Self {
        Self(Arc::new(Inner {
            failures_before_backoff: config.failures_before_backoff.max(1),
            initial_wait: Duration::from_millis(config.initial_wait_ms),
            max_wait: Duration::from_secs(config.max_wait_secs),
            forget_after: Duration::from_secs(config.forget_after_secs),
            max_clients: config.max_clients.max(1),
            records: Mutex::new(HashMap::new()),
        }))
    }

    /// Records a failed client authentication from `client`.
    pub fn failed(&self, client: IpAddr) -> Failure {
        let inner = &self.0;
        let key = client_key(client);
        let now = Instant::now();
        let mut records = inner.lock();
        if !records.contains_key(&key) && records.len() >= inner.max_clients {
            inner.make_room(&mut records, now);
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if record.forgotten(now, inner.forget_after) {
            record.failures = 0;
            record.blocked_until = None;
        }
        if let Some(until) = record.blocked_until.filter(|until| now < *until) {
            return Failure::Waiting(until - now);
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        let wait = inner.wait_after(record.failures);
        if let Some(wait) = wait {
            record.blocked_until = Some(now + wait);
        }
        Failure::Counted(wait)
    }

    /// `client` authenticated: its failures are forgotten.
    pub fn succeeded(&self, client: IpAddr) {
        self.0.lock().remove(&client_key(client));
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// True when no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        // The table holds no invariant a panic elsewhere could break halfway.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops forgotten addresses; if that frees nothing, the sixteenth (at least one) with the
    /// oldest failures, so the next inserts are O(1) again.
    fn make_room(&self, records: &mut HashMap<IpAddr, Record>, now: Instant) {
        records.retain(|_, r| !r.forgotten(now, self.forget_after));
        if records.len() < self.max_clients {
            return;
        }
        let mut oldest: Vec<(Instant, IpAddr)> = records
            .iter()
            .map(|(ip, r)| (r.last_failure, *ip))
            .collect();
        let evict = (self.max_clients / 16).clamp(1, oldest.len().max(1));
        if oldest.len() > evict {
            oldest.select_nth_unstable(evict - 1);
        }
        for (_, ip) in oldest.into_iter().take(evict) {
            records.remove(&ip);
        }
    }

    /// The wait after the `failures`-th consecutive failure.
    fn wait_after(&self, failures: u32) -> Option<Duration> {
        let doublings = failures.checked_sub(self.failures_before_backoff)?;
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        Some(
            self.initial_wait
                .checked_mul(factor)
                .unwrap_or(self.max_wait)
                .min(self.max_wait),
        )
    }
}

/// One IPv6 host usually owns a whole /64, so that is one client.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn backoff(failures_before_backoff: u32) -> FailureBackoff {
        FailureBackoff::new(&FailureBackoffConfig {
            failures_before_backoff,
            ..FailureBackoffConfig::default()
        })
    }

    fn fail(table: &FailureBackoff, ip: IpAddr) -> Option<Duration> {
        match table.failed(ip) {
            Failure::Counted(wait) => wait,
            Failure::Waiting(left) => panic!("still waiting {left:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_few_failures_the_wait_doubles_up_to_the_cap() {
        let table = backoff(3);
        assert_eq!(fail(&table, A), None);
        assert_eq!(fail(&table, A), None);
        assert_eq!(fail(&table, A), Some(Duration::from_secs(1)));
        // A failure while it waits is told the rest of the wait and not counted; another
        // address is unaffected.
        assert_eq!(table.failed(A), Failure::Waiting(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(
            table.failed(A),
            Failure::Waiting(Duration::from_millis(600))
        );
        assert_eq!(table.failed(B), Failure::Counted(None));
        let mut expected = Duration::from_secs(1);
        for _ in 0..12 {
            tokio::time::advance(expected).await;
            expected = (expected * 2).min(Duration::from_secs(300));
            assert_eq!(fail(&table, A), Some(expected));
            assert!(matches!(table.failed(A), Failure::Waiting(_)));
        }
        assert_eq!(expected, Duration::from_secs(300), "capped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_even_while_the_address_waits() {
        let table = backoff(3);
        fail(&table, A);
        fail(&table, A);
        table.succeeded(A);
        assert_eq!(fail(&table, A), None);
        assert_eq!(fail(&table, A), None);
        assert_eq!(fail(&table, A), Some(Duration::from_secs(1)));
        // The right credentials while the address waits (another caller behind the same
        // address): the wait is over too.
        table.succeeded(A);
        assert_eq!(fail(&table, A), None, "the back-off is over");
        assert!(table.failed(B) == Failure::Counted(None));
        table.succeeded(B);
        assert_eq!(table.len(), 1, "a success leaves nothing behind");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_forgotten_after_a_quiet_period() {
        let table = backoff(2);
        fail(&table, A);
        tokio::time::advance(Duration::from_secs(899)).await;
        assert_eq!(fail(&table, A), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(900)).await;
        assert_eq!(fail(&table, A), None, "starts from zero");
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_and_successes_leave_nothing() {
        let table = FailureBackoff::new(&FailureBackoffConfig {
            max_clients: 64,
            ..FailureBackoffConfig::default()
        });
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            fail(&table, ip);
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(table.len() <= 64, "{}", table.len());
        }
        // The newest failures are kept.
        let newest = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 999));
        for _ in 0..4 {
            fail(&table, newest);
        }
        assert!(matches!(table.failed(newest), Failure::Waiting(_)));
        let fresh = backoff(5);
        for _ in 0..10 {
            fresh.succeeded(A);
        }
        assert!(fresh.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_clients_share_their_64() {
        let table = backoff(1);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        fail(&table, one);
        assert!(matches!(table.failed(two), Failure::Waiting(_)));
        assert_eq!(
            table.failed(other),
            Failure::Counted(Some(Duration::from_secs(1)))
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(FailureBackoffConfig::default().validate().is_ok());
        let bad = |c: FailureBackoffConfig| c.validate().unwrap_err().key().to_string();
        let d = FailureBackoffConfig::default;
        assert!(bad(FailureBackoffConfig {
            failures_before_backoff: 0,
            ..d()
        })
        .ends_with("failures_before_backoff"));
        assert!(bad(FailureBackoffConfig {
            forget_after_secs: 10,
            ..d()
        })
        .ends_with("forget_after_secs"));
        assert!(bad(FailureBackoffConfig {
            max_wait_secs: 0,
            ..d()
        })
        .ends_with("max_wait_secs"));
        assert!(bad(FailureBackoffConfig {
            max_clients: 0,
            ..d()
        })
        .ends_with("max_clients"));
    }
}
