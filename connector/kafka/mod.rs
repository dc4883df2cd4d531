//! Kafka: the shared producer, partitioning by entity and topic administration.

pub mod admin;
pub mod partition;
pub mod producer;

pub use admin::{describe_durability, ensure_topics, AdminError, TopicDurability, TopicSpec};
pub use partition::PartitionCounts;
pub use producer::{Delivered, ProduceError, Producer};

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

/// A librdkafka client config from `bootstrap.servers`, defaults, then the passthrough map.
///
/// Passthrough keys may be written with `_` for `.` (env vars cannot hold dots): librdkafka
/// property names contain no underscores, so `linger_ms` is read as `linger.ms`.
pub fn client_config(
    bootstrap_servers: &str,
    defaults: &[(&str, String)],
    passthrough: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers);
    for (key, value) in defaults {
        config.set(*key, value);
    }
    for (key, value) in passthrough {
        config.set(key.replace('_', "."), value);
    }
    config
}
