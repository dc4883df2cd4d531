//! `[delivery]`, `[delivery.dedup]` and `[delivery.spool]`: when a webhook is answered, owned
//! here; the configuration layers and checks them with the rest.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[delivery]`: when a webhook is answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// How long a request waits for Kafka's ack before it is answered 503 (the vendor then
    /// retries). Default 5000; at most 8000, well under the strictest sender's ~10 s timeout.
    pub ack_timeout_ms: u64,
    /// The duplicate fast path.
    pub dedup: DedupConfig,
    /// The durable spool for Kafka outages longer than the vendor retries.
    pub spool: SpoolConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            ack_timeout_ms: 5_000,
            dedup: DedupConfig::default(),
            spool: SpoolConfig::default(),
        }
    }
}

/// `[delivery.dedup]`: events stored recently are answered 200 without producing again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Entries remembered (per (topic, key, body)); 0 turns the fast path off. Default 100000.
    pub max_entries: u64,
    /// How long an entry is remembered, in seconds. Default 3600 (the vendor retries for
    /// minutes).
    pub ttl_secs: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl_secs: 3_600,
        }
    }
}

/// `[delivery.spool]`: off unless `dir` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Folder for spool segments (use a PersistentVolume in Kubernetes). Unset = no spool:
    /// a Kafka outage is answered 503 and the vendor retries for a few minutes only.
    pub dir: Option<PathBuf>,
    /// Most bytes on disk; when full, requests that need the spool get 503. Default 1 GiB.
    pub max_bytes: u64,
    /// Size at which a segment is sealed and a new one started. Default 16 MiB.
    pub segment_bytes: u64,
    /// Readiness fails above this fraction of `max_bytes`, steering traffic to other pods.
    /// Default 0.8.
    pub high_water_mark: f64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            high_water_mark: 0.8,
        }
    }
}

impl DeliveryConfig {
    /// The ack deadline as a [`Duration`].
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}
