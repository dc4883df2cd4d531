//! `[kafka]`: where the cluster is and how to reach it — TLS, SASL, the passthrough — and the
//! librdkafka properties they come to. The Kafka component owns its config section; `config`
//! only layers it with the rest and calls [`KafkaConfig::validate`].
//!
//! Typed keys first (each auth mode's own file turns its section into properties), then
//! `kafka.librdkafka` over them: the passthrough stays the way to any librdkafka property the
//! typed keys do not cover, and it wins where both set one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sasl::SaslConfig;
use super::tls::KafkaTlsConfig;
use crate::common::secret::KafkaProperties;
use crate::common::setting::SettingError;

/// `[kafka]`: the cluster records are produced to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list. Required.
    pub bootstrap_servers: String,
    /// `[kafka.tls]`: TLS to the brokers, with a private CA and a client certificate (mTLS) if
    /// the cluster wants them.
    pub tls: KafkaTlsConfig,
    /// `[kafka.sasl]`: SASL authentication (PLAIN, SCRAM, OAUTHBEARER with OIDC, AWS MSK IAM).
    pub sasl: SaslConfig,
    /// Extra librdkafka properties, passed through verbatim (e.g. `linger.ms`,
    /// `compression.type`). They override the connector's own producer defaults and the
    /// properties the typed `kafka.tls` / `kafka.sasl` keys set. In env vars write `_` for `.`:
    /// `RISKOS_KAFKA__LIBRDKAFKA__LINGER_MS=20`. Secret-bearing ones (`sasl.password`,
    /// `ssl.key.pem`, ...) are redacted in `config show`, `config check` and logs.
    pub librdkafka: KafkaProperties,
}

/// librdkafka's `security.protocol` for TLS on or off and SASL on or off.
fn security_protocol(tls: bool, sasl: bool) -> &'static str {
    match (tls, sasl) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    }
}

impl KafkaConfig {
    /// Checks that need no I/O (files are read when a client is made).
    pub fn validate(&self) -> Result<(), SettingError> {
        self.tls.validate().map_err(|e| e.within("kafka.tls"))?;
        self.sasl.validate().map_err(|e| e.within("kafka.sasl"))
    }

    /// The properties the typed keys come to, secrets read from their files now (so a
    /// rotated Secret mount is read by the next client made).
    pub fn security_properties(&self) -> Result<BTreeMap<String, String>, SettingError> {
        let mut properties = BTreeMap::new();
        properties.insert(
            "security.protocol".to_string(),
            security_protocol(self.tls.enabled, self.sasl.mechanism.is_some()).to_string(),
        );
        self.tls
            .properties(&mut properties)
            .map_err(|e| e.within("kafka.tls"))?;
        self.sasl
            .properties(&mut properties)
            .map_err(|e| e.within("kafka.sasl"))?;
        Ok(properties)
    }

    /// What the cluster is asked to authenticate with, for messages: `SCRAM-SHA-512 as
    /// riskos over TLS`. Never a secret.
    pub fn describe_security(&self) -> String {
        let transport = if self.tls.enabled { "TLS" } else { "plaintext" };
        match self.sasl.describe() {
            Some(sasl) => format!("SASL {sasl} over {transport}"),
            None if self.tls.cert_file.is_some() => {
                format!("{transport} with a client certificate")
            }
            None => transport.to_string(),
        }
    }
}

/// `[topics]`: naming and creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Partitions of topics created at start-up. Default 6.
    pub partitions: i32,
    /// Replication factor of topics created at start-up. Default 3; use 1 on a one-broker
    /// development cluster.
    pub replication_factor: i32,
    /// Create missing topics (compacted) at start-up. Default true; turn off when topics are
    /// managed elsewhere (Terraform, Strimzi) and the connector's principal may not create them.
    pub create: bool,
    /// `min.insync.replicas` of the topics the connector creates. Default: the smaller of 2
    /// and `replication_factor`, so `acks=all` means at least two brokers hold a record
    /// before it is answered 2xx (Apache Kafka's own default is 1: the leader alone).
    pub min_insync_replicas: Option<i32>,
    /// Start even when a topic it writes to is replicated (replication factor above 1) but
    /// its effective `min.insync.replicas` is below 2, so an acked record may sit on one
    /// broker only. Default false; for development clusters only.
    pub allow_single_replica_acks: bool,
}

impl TopicsConfig {
    /// The `min.insync.replicas` given to created topics.
    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas
            .unwrap_or_else(|| self.replication_factor.min(2))
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            partitions: 6,
            replication_factor: 3,
            create: true,
            min_insync_replicas: None,
            allow_single_replica_acks: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::secret::Secret;
    use crate::delivery::kafka::sasl::SaslMechanism;

    #[test]
    fn the_protocol_follows_tls_and_sasl() {
        let mut config = KafkaConfig::default();
        let protocol =
            |c: &KafkaConfig| c.security_properties().unwrap()["security.protocol"].clone();
        assert_eq!(protocol(&config), "plaintext");
        config.tls.enabled = true;
        assert_eq!(protocol(&config), "ssl");
        config.sasl.mechanism = Some(SaslMechanism::ScramSha512);
        config.sasl.username = Some("riskos".into());
        config.sasl.password = Some(Secret::new("pw"));
        assert_eq!(protocol(&config), "sasl_ssl");
        config.tls.enabled = false;
        assert_eq!(protocol(&config), "sasl_plaintext");
        assert_eq!(
            config.describe_security(),
            "SASL SCRAM-SHA-512 as riskos over plaintext"
        );
    }
}
