//! Kafka: the shared producer, partitioning by entity and topic administration.

pub mod admin;
pub mod msk_iam;
pub mod partition;
pub mod producer;

pub use admin::{describe_durability, ensure_topics, AdminError, TopicDurability, TopicSpec};
pub use partition::PartitionCounts;
pub use producer::{Delivered, ProduceError, Producer};

use std::collections::BTreeMap;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use rdkafka::ClientConfig;

use crate::secret::{is_secret_property, REDACTED};

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

/// `error` without the property value rdkafka's client-config error quotes (`Client config
/// error: ... sasl.password <value>`) when the property holds a secret, or when librdkafka does
/// not know it (it may be a misspelt secret). Every client a config creates goes through it, so
/// a start-up or tool error line never shows a Kafka credential.
pub fn without_secret(error: KafkaError) -> KafkaError {
    match error {
        KafkaError::ClientConfig(code, description, key, _)
            if code == RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN || is_secret_property(&key) =>
        {
            KafkaError::ClientConfig(code, description, key, REDACTED.to_string())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::BaseConsumer;

    use super::*;

    fn create_error(key: &str, value: &str) -> String {
        let passthrough = BTreeMap::from([(key.to_string(), value.to_string())]);
        let created = client_config("127.0.0.1:1", &[], &passthrough).create::<BaseConsumer>();
        without_secret(created.err().expect("refused")).to_string()
    }

    #[test]
    fn a_refused_property_shows_its_value_only_when_it_holds_no_secret() {
        for (key, value) in [("sasl.passwd.typo", "hunter2"), ("sasl.pw", "hunter3")] {
            let message = create_error(key, value);
            assert!(message.contains(key), "{message}");
            assert!(!message.contains(value), "{message}");
        }
        let message = create_error("linger.ms", "soon");
        assert!(message.contains("soon"), "{message}");
    }
}
