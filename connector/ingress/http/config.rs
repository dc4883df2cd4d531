//! `[http]` and `[http.tls]`: the listener's settings, owned here; the configuration layers and
//! checks them with the rest.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::common::setting::SettingError;

/// `[http]`: the listener every endpoint shares (address, TLS, body and header limits,
/// timeouts, connection cap, and the capacity the endpoints share).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port to listen on. Default `0.0.0.0:8080`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes; larger bodies get 413 (when `Content-Length`
    /// says so, before they are read). Default 1 MiB, at most 256 MiB. Every body up to it can
    /// be stored: the producer's `message.max.bytes` and the created topics'
    /// `max.message.bytes` are set from it (twice the body plus a margin).
    pub max_body_bytes: usize,
    /// Load balancers and proxies in front of the connector. Only when the TCP peer is one of
    /// them is the forwarding header read (right to left, skipping trusted hops) for the client
    /// address. Default empty: the TCP peer is the client.
    pub trusted_proxies: Vec<crate::ingress::net::Cidr>,
    /// The header trusted proxies record clients in: `x-forwarded-for` (default) or
    /// `forwarded` (RFC 7239). The other one is ignored.
    pub forwarded_header: crate::ingress::net::ForwardedHeader,
    /// Webhook and token requests handled at once over all endpoints, shared among them (see
    /// `endpoints.max_in_flight`); more are shed with 503 and `Retry-After` instead of
    /// queueing. Default 4096, as many as `max_connections`: memory is bounded by
    /// `max_body_bytes_in_flight`, so a burst of small webhooks is not shed as if each were as
    /// large as `max_body_bytes`. In modes whose credentials are in the body (`hmac`,
    /// `standard-webhooks`) a request takes its slot only once the signature is verified, so
    /// unauthenticated uploads cannot hold the slots signed webhooks need.
    pub max_in_flight: usize,
    /// Bytes of request bodies being read or held at once over all endpoints, shared among
    /// them (see `endpoints.max_body_bytes_in_flight`); a request whose body would go over its
    /// endpoint's share gets 503 and `Retry-After`. Bytes are counted as they arrive, so slow
    /// uploads hold only what they sent. This is what bounds the memory requests can hold
    /// (each body also lives as its record until Kafka acks it: README's worst case).
    /// Default 64 MiB.
    pub max_body_bytes_in_flight: usize,
    /// Open connections at most; a connection over the cap is closed as soon as it is
    /// accepted. Default 4096. At start-up the soft open-file limit is raised to the hard
    /// limit, and a cap that still does not fit beside what the process needs besides is
    /// lowered, with one warning naming both numbers (`fd_limit.rs`).
    pub max_connections: usize,
    /// Longest a client may take to send a complete request head, from the connection's
    /// accept (or from the first byte of a later request on a kept-alive connection); bytes
    /// trickled one at a time do not extend it. Then the connection is closed. Default 10000.
    pub header_read_timeout_ms: u64,
    /// Longest a kept-alive connection may sit idle between a response and the next request
    /// before it is closed. Default 75000: above the 60 s idle timeout of common load
    /// balancers, which must close first or they may reuse a connection being closed (502).
    pub idle_timeout_ms: u64,
    /// Longest the request body may take to arrive, counted once the head has passed its
    /// checks (credentials included; a JWKS refetch has its own bound); then 408.
    /// Default 5000; must be below `request_timeout_ms`, which bounds the whole request.
    pub body_read_timeout_ms: u64,
    /// Deepest JSON nesting accepted (`{}` is 1); deeper bodies get 400 before they are
    /// parsed. Default 64, at most 128.
    pub max_json_depth: usize,
    /// Largest total size of request header names and values in bytes; larger get 431.
    /// Default 16384.
    pub max_header_bytes: usize,
    /// Longest a request may take from its complete head to the reply, body upload included;
    /// then 408 (the head itself is bounded by `header_read_timeout_ms`). Default 9000; must
    /// be above `delivery.ack_timeout_ms`.
    pub request_timeout_ms: u64,
    /// Native HTTPS.
    pub tls: TlsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 1024 * 1024,
            trusted_proxies: Vec::new(),
            forwarded_header: Default::default(),
            max_in_flight: 4096,
            max_body_bytes_in_flight: 64 << 20,
            max_connections: 4096,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            body_read_timeout_ms: 5_000,
            max_json_depth: 64,
            max_header_bytes: 16 * 1024,
            request_timeout_ms: 9_000,
            tls: Default::default(),
        }
    }
}

/// `[http.tls]`: native HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Set with `key_file` to serve HTTPS; default none
    /// (plain HTTP, e.g. behind a TLS-terminating ingress). Reloaded when it changes.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1). Reloaded when it changes.
    pub key_file: Option<PathBuf>,
    /// How often both files are checked for changes, in milliseconds. Default 10000.
    pub reload_interval_ms: u64,
    /// Longest TLS handshake, in milliseconds; slower clients are dropped. Default 10000.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval_ms: 10_000,
            handshake_timeout_ms: 10_000,
        }
    }
}

impl TlsConfig {
    /// True when HTTPS is configured.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(SettingError::invalid(
                "http.tls.cert_file",
                "set http.tls.cert_file and http.tls.key_file together",
            ));
        }
        if self.reload_interval_ms == 0 {
            return Err(SettingError::invalid(
                "http.tls.reload_interval_ms",
                "must be greater than 0",
            ));
        }
        if self.handshake_timeout_ms == 0 {
            return Err(SettingError::invalid(
                "http.tls.handshake_timeout_ms",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}
