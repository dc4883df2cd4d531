//! `[[endpoints]]`: one webhook endpoint each — a path on the shared listener with its own
//! authentication, allowed sources, static required headers, envelopes, topic prefix and
//! share of the listener's capacity. A customer's Sandbox and Production environments (or a
//! second vendor) are two endpoints of one deployment, each landing in its own topics.
//!
//! Environment variables reach an endpoint by its name:
//! `RISKOS_ENDPOINTS__<NAME>__<KEY>[__<KEY>…]` (the name upper-cased, `-` written `_`) sets a
//! key of the endpoint with that name, or adds an endpoint of that name when the file has none
//! (see the configuration's layers).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::common::secret::{secret_list, Secret};
use crate::common::setting::SettingError;
use crate::ingress::auth::AuthConfig;
use crate::ingress::net::Cidr;
use crate::pipeline::envelope::EnvelopeKind;

/// Longest endpoint name: it is a metric label, a record header and a log field.
pub const MAX_NAME_LEN: usize = 63;

/// Longest topic prefix: Kafka topic names stop at 249 characters, and the event type follows.
pub const MAX_TOPIC_PREFIX_LEN: usize = 120;

/// Paths the listener serves itself; no endpoint may take them.
pub const RESERVED_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// One `[[endpoints]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    /// Required, unique: lower-case letters, digits, `-` and `_`, starting with a letter or
    /// digit, at most 63 characters (`production`, `sandbox`, `alloy`). It names the
    /// endpoint in every log line of its requests (`endpoint`), in the `endpoint` label of the
    /// request, rejection and auth-failure metrics, and in the `endpoint` header of every
    /// record it produces.
    pub name: String,
    /// Unique: the path the sender POSTs to. Default `/webhooks/<name>`. Not one of
    /// [`RESERVED_PATHS`] (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`), nor a token
    /// endpoint's path.
    pub path: String,
    /// Prepended to every topic this endpoint produces to, its quarantine topic included
    /// (`<topic_prefix>quarantine`). Default `riskos.`; e.g. `riskos.sandbox.` keeps Sandbox
    /// test events out of the Production topics. Letters, digits, `.`, `_`, `-`.
    pub topic_prefix: String,
    /// The envelopes this endpoint accepts: `event` (RiskOS: `event_id`, `event_type`, …) and
    /// `request_token` (the older envelope, e.g. Alloy). Default both. A body in another
    /// envelope is answered 400 and kept raw in the quarantine topic.
    pub envelopes: Vec<EnvelopeKind>,
    /// Client addresses allowed to call this endpoint, as CIDR blocks or single addresses;
    /// anything else gets 403. Default empty: any address. The vendor's are
    /// `35.230.191.253/32` (Sandbox) and `35.199.32.202/32`, `3.138.161.243/32` (Production).
    /// (Behind a load balancer, set `http.trusted_proxies` so the client address is read from
    /// its forwarding header.)
    pub allow_cidrs: Vec<Cidr>,
    /// Requests per second per client address (IPv6: per /64) on this endpoint, with a burst
    /// of as many; more get 429 with `Retry-After`. Default 1000: the vendor sends from a
    /// handful of addresses, so the limit must stay above its bursts and only stops a runaway
    /// sender. 0 turns the limit off.
    pub rate_limit_per_ip: u32,
    /// This endpoint's share of `http.max_in_flight`: requests it handles at once; more are
    /// shed with 503. Default: an equal share of what the endpoints with an explicit share
    /// leave, so a load test on one endpoint cannot take the slots another one needs.
    pub max_in_flight: Option<usize>,
    /// This endpoint's share of `http.max_body_bytes_in_flight`: body bytes its requests hold
    /// at once; more get 503. Default: an equal share of what explicit shares leave. At least
    /// `http.max_body_bytes`.
    pub max_body_bytes_in_flight: Option<usize>,
    /// How callers of this endpoint authenticate (`auth.mode` is required by `serve`).
    pub auth: AuthConfig,
    /// Apply the schemas' field policies (`riskos.protect`: drop, hash, encrypt) to this
    /// endpoint's records. Default true; the keys are `[protection]`'s.
    pub protect_fields: bool,
    /// What becomes of the body kept in each record's `raw` field and of quarantined bodies:
    /// `encrypt` (default: one encrypted value, so a key holder can still replay and
    /// re-derive every field, and nobody else reads it), `keep` (as received) or `drop`
    /// (empty; no replay). `encrypt` needs `protection.encryption_keys`.
    pub raw: crate::pipeline::protect::RawPolicy,
    /// Static headers the sender must present besides its credentials (RiskOS calls them
    /// "static header variables"): each a header name and its accepted secret values,
    /// compared in constant time; a missing or wrong one gets 401.
    pub required_headers: Vec<RequiredHeaderConfig>,
    /// Also write each event record as a CloudEvent in the CloudEvents Kafka binding's binary
    /// mode: headers `ce_specversion` (`1.0`), `ce_id` (the event id), `ce_source`
    /// (`/riskos-connector/endpoints/<name>`), `ce_type` (the event type as sent), `ce_time`
    /// (the event time, RFC 3339 UTC) and `content-type` (`application/avro;
    /// encoding=confluent` or `…=single-object`, the value's framing), for Knative and other
    /// CloudEvents consumers. Key, value and the other headers are unchanged. Default false.
    /// Quarantined records never carry them.
    pub cloudevents: bool,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            path: String::new(),
            topic_prefix: "riskos.".into(),
            envelopes: vec![EnvelopeKind::Event, EnvelopeKind::RequestToken],
            allow_cidrs: Vec::new(),
            rate_limit_per_ip: 1000,
            max_in_flight: None,
            max_body_bytes_in_flight: None,
            auth: AuthConfig::default(),
            protect_fields: true,
            raw: crate::pipeline::protect::RawPolicy::Encrypt,
            required_headers: Vec::new(),
            cloudevents: false,
        }
    }
}

/// One `[[endpoints.required_headers]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequiredHeaderConfig {
    /// The header name, e.g. `X-RiskOS-Environment-Key`.
    pub name: String,
    /// Accepted values (list the old and the new one while rotating).
    #[serde(deserialize_with = "secret_list")]
    pub values: Vec<Secret>,
    /// A file with one accepted value per line, read at start-up; added to `values`.
    pub values_file: Option<PathBuf>,
}

impl EndpointConfig {
    /// An endpoint named `name` at `/webhooks/<name>`, every other setting at its default
    /// (no auth mode: set one).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            path: format!("/webhooks/{name}"),
            ..Self::default()
        }
    }

    /// The section's place in the config, for keys in error messages: `endpoints[sandbox]`.
    pub fn section(&self) -> String {
        format!("endpoints[{}]", self.name)
    }

    /// Checks of this endpoint alone that need no I/O; keys relative to the endpoint
    /// (the caller nests them with [`SettingError::within`]).
    pub fn validate(&self) -> Result<(), SettingError> {
        if !self.path.starts_with('/') {
            return Err(SettingError::invalid("path", "must start with `/`"));
        }
        if RESERVED_PATHS.contains(&self.path.as_str()) {
            return Err(SettingError::invalid(
                "path",
                format!("`{}` is served by the connector itself", self.path),
            ));
        }
        let prefix_ok = self
            .topic_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if self.topic_prefix.is_empty()
            || self.topic_prefix.len() > MAX_TOPIC_PREFIX_LEN
            || !prefix_ok
        {
            return Err(SettingError::invalid(
                "topic_prefix",
                format!(
                    "must be 1 to {MAX_TOPIC_PREFIX_LEN} letters, digits, `.`, `_` or `-` (a \
                     Kafka topic name starts with it)"
                ),
            ));
        }
        if self.envelopes.is_empty() {
            return Err(SettingError::invalid(
                "envelopes",
                "must name at least one of `event`, `request_token`",
            ));
        }
        for (i, required) in self.required_headers.iter().enumerate() {
            if axum::http::HeaderName::from_bytes(required.name.as_bytes()).is_err() {
                return Err(SettingError::invalid(
                    format!("required_headers[{i}].name"),
                    format!("`{}` is not a header name", required.name),
                ));
            }
        }
        self.auth.validate()
    }
}

/// True for a usable endpoint name (see [`EndpointConfig::name`]).
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && name.len() <= MAX_NAME_LEN
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Splits `total` into one share per endpoint: explicit shares as given, the rest divided
/// equally among the endpoints without one (at least 1 each).
pub fn shares(total: usize, explicit: &[Option<usize>]) -> Vec<usize> {
    let given: usize = explicit.iter().flatten().sum();
    let open = explicit.iter().filter(|s| s.is_none()).count();
    let each = total
        .saturating_sub(given)
        .checked_div(open)
        .map_or(0, |each| each.max(1));
    explicit.iter().map(|s| s.unwrap_or(each)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["production", "sandbox-1", "a", "alloy_prod", "0"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "Prod", "-x", "_x", "a b", "a.b", "é", long.as_str()] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn open_shares_split_what_explicit_ones_leave() {
        assert_eq!(shares(256, &[None]), vec![256]);
        assert_eq!(shares(256, &[None, None]), vec![128, 128]);
        assert_eq!(shares(256, &[Some(56), None, None]), vec![56, 100, 100]);
        assert_eq!(shares(256, &[Some(300), None]), vec![300, 1]);
    }
}
