//! The open-file limit and the connection cap that fits in it.
//!
//! Every connection is a file descriptor, and so is everything else the process holds. A
//! process's soft `RLIMIT_NOFILE` is commonly 1024 while `http.max_connections` defaults to
//! 4096: the cap would never take effect, `accept` would fail with `EMFILE` instead and valid
//! webhooks would wait behind it. So at start-up [`connection_cap`]:
//!
//! 1. raises the soft limit to the hard limit (what Go's runtime does for every program; the
//!    hard limit is what the container runtime or the pod allows, often 1 048 576);
//! 2. keeps [`reserve`] descriptors for everything besides client connections;
//! 3. caps connections at the smaller of `http.max_connections` and what is left, saying so in
//!    one start-up warning naming both numbers and the limit when it lowers the cap.
//!
//! TLS handshakes in progress (at most 1024, `ingress/http/tls.rs`) are held before a connection is
//! counted against the cap; they are short-lived (`http.tls.handshake_timeout_ms`) and not
//! part of this budget.

use crate::wiring::config::Config;

/// Descriptors kept for the process itself, whatever the config: stdin, stdout and stderr
/// (3), the listening socket (1), the runtime's epoll and waker descriptors and the signal
/// handler's pipe (about 5), the spool's directory, the segment being appended to and the
/// one being forwarded (3), the certificate and key files TLS re-reads when they change
/// (2), the `/proc` files read for the process metrics (2), the HTTP clients of the schema
/// registry, the JWKS endpoints and the OTLP exporter with their pooled connections (about
/// 10), DNS look-ups (2): about 30, doubled for what a later change adds without thinking of
/// this budget.
pub const BASE_RESERVE: usize = 64;

/// Brokers the Kafka reserve assumes when `kafka.bootstrap_servers` lists fewer: the
/// bootstrap list is often a subset of the cluster, and librdkafka connects to every broker
/// that leads a partition it writes to.
pub const ASSUMED_BROKERS: usize = 16;

/// Descriptors per broker: librdkafka keeps a socket and a wake-up pipe (two descriptors) per
/// broker in each client, and the connector may hold two clients at once (the producer, and
/// the admin client that creates and checks topics).
pub const PER_BROKER: usize = 6;

/// The cap never goes below this share of the limit: with a limit so small that the reserve
/// would leave almost nothing, half the descriptors still serve connections (the reserve is
/// generous; the start-up warning says the limit should be raised).
const MIN_SHARE_DIVISOR: usize = 2;

/// Descriptors kept for everything besides the connections `http.max_connections` counts:
/// [`BASE_RESERVE`], [`PER_BROKER`] for each of at least [`ASSUMED_BROKERS`] brokers, and the
/// pool of connections from refused addresses (`refused_pool`, the listener's) when every endpoint
/// has an allow-list (only then can the listener refuse a peer at accept).
pub fn reserve(config: &Config, refused_pool: usize) -> usize {
    let listed = config
        .kafka
        .bootstrap_servers
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .count();
    let refused_pool = if !config.endpoints.is_empty()
        && config.endpoints.iter().all(|e| !e.allow_cidrs.is_empty())
    {
        refused_pool
    } else {
        0
    };
    BASE_RESERVE + PER_BROKER * listed.max(ASSUMED_BROKERS) + refused_pool
}

/// The connection cap that fits `soft_limit` with `reserve` descriptors kept: `configured`
/// when it fits, otherwise what the limit leaves (at least half the limit, at least 1).
pub fn fit(configured: usize, soft_limit: u64, reserve: usize) -> usize {
    let limit = usize::try_from(soft_limit).unwrap_or(usize::MAX);
    let room = limit
        .saturating_sub(reserve)
        .max(limit / MIN_SHARE_DIVISOR)
        .max(1);
    configured.min(room)
}

/// The open-file limit after start-up raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit before raising.
    pub was: u64,
    /// The soft limit in force.
    pub soft: u64,
    /// The hard limit (the most the soft limit can be raised to without privileges).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and returns both. `None` where the
/// limit cannot be read (then nothing is lowered: there is nothing to fit).
pub fn raise_soft_limit() -> Option<FileLimit> {
    let (was, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(error) => {
            tracing::debug!(%error, "the open-file limit cannot be read");
            return None;
        }
    };
    let soft = match rlimit::increase_nofile_limit(hard) {
        Ok(soft) => soft,
        Err(error) => {
            tracing::warn!(%error, soft = was, hard, "the open-file soft limit cannot be raised");
            was
        }
    };
    if soft != was {
        tracing::info!(
            from = was,
            to = soft,
            "open-file soft limit raised to the hard limit"
        );
    }
    Some(FileLimit { was, soft, hard })
}

/// The effective `http.max_connections`: the soft open-file limit raised to the hard limit,
/// then the configured cap lowered when it and [`reserve`] do not fit in it, with one
/// start-up warning naming the configured cap, the effective cap and the limit.
pub fn connection_cap(config: &Config, refused_pool: usize) -> usize {
    let configured = config.http.max_connections;
    let Some(limit) = raise_soft_limit() else {
        return configured;
    };
    let reserve = reserve(config, refused_pool);
    let effective = fit(configured, limit.soft, reserve);
    if effective < configured {
        tracing::warn!(
            configured,
            effective,
            file_limit = limit.soft,
            hard_limit = limit.hard,
            reserve,
            "http.max_connections {configured} does not fit the open-file limit {}: at most \
             {effective} connections (the limit less {reserve} descriptors kept for Kafka, the \
             spool, TLS and the rest); raise the nofile limit (ulimit -n, the container \
             runtime's) or lower http.max_connections",
            limit.soft
        );
    }
    effective
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener's refused-address pool (`http::server::REFUSED_CONNECTIONS`).
    const REFUSED_POOL: usize = 256;

    #[test]
    fn a_cap_that_fits_is_kept() {
        assert_eq!(fit(4096, 1_048_576, 160), 4096);
        assert_eq!(fit(4096, 4096 + 160, 160), 4096);
        assert_eq!(fit(4096, u64::MAX, 160), 4096);
    }

    #[test]
    fn a_cap_over_the_limit_is_lowered_to_what_the_reserve_leaves() {
        assert_eq!(fit(4096, 1024, 160), 864);
        assert_eq!(fit(4096, 4096, 160), 3936);
    }

    #[test]
    fn a_tiny_limit_still_serves_half_of_it() {
        assert_eq!(fit(4096, 200, 160), 100);
        assert_eq!(fit(4096, 1, 160), 1);
        assert_eq!(fit(4096, 0, 160), 1);
    }

    #[test]
    fn the_reserve_counts_brokers_and_the_refused_pool() {
        let mut config = Config::default();
        config.kafka.bootstrap_servers = "a:9092,b:9092".into();
        config
            .endpoints
            .push(crate::wiring::config::EndpointConfig::new("riskos"));
        assert_eq!(
            reserve(&config, REFUSED_POOL),
            BASE_RESERVE + PER_BROKER * ASSUMED_BROKERS
        );
        config.kafka.bootstrap_servers = (0..20)
            .map(|i| format!("b{i}:9092"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            reserve(&config, REFUSED_POOL),
            BASE_RESERVE + PER_BROKER * 20
        );
        config.endpoints[0].allow_cidrs = vec!["192.0.2.0/24".parse().unwrap()];
        assert_eq!(
            reserve(&config, REFUSED_POOL),
            BASE_RESERVE + PER_BROKER * 20 + REFUSED_POOL
        );
    }
}
