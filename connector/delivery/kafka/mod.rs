//! Kafka: how to reach the cluster (`[kafka]`: TLS, SASL, the passthrough), the clients made
//! from it, the shared producer, partitioning by entity and topic administration.

pub mod admin;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod msk_iam;
pub(crate) mod oidc;
pub mod partition;
pub(crate) mod permissions;
pub(crate) mod probe;
pub(crate) mod producer;
pub mod sasl;
pub(crate) mod tls;

pub use admin::{describe_durability, ensure_topics, AdminError, TopicDurability, TopicSpec};
pub use config::KafkaConfig;
pub use context::{KafkaContext, Refusal};
pub use partition::PartitionCounts;
pub use producer::Producer;

use std::sync::Arc;

use rdkafka::admin::AdminClient;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use rdkafka::ClientConfig;

use crate::common::secret::{is_secret_property, REDACTED};
use context::{MskIamTokens, TokenSource};
use sasl::SaslMechanism;

/// A librdkafka client config from `bootstrap.servers`, `defaults`, the typed `kafka.tls` and
/// `kafka.sasl` keys, then the passthrough map — each later one overriding the earlier.
///
/// Passthrough keys may be written with `_` for `.` (env vars cannot hold dots): librdkafka
/// property names contain no underscores, so `linger_ms` is read as `linger.ms`.
pub fn client_config(
    kafka: &KafkaConfig,
    defaults: &[(&str, String)],
) -> Result<ClientConfig, KafkaError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (key, value) in defaults {
        config.set(*key, value);
    }
    let security = kafka
        .security_properties()
        .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
    for (key, value) in security {
        config.set(key, value);
    }
    for (key, value) in kafka.librdkafka.iter() {
        config.set(key.replace('_', "."), value);
    }
    Ok(config)
}

/// The context of a client of `kafka`: tokens for AWS MSK IAM, nothing else to configure.
pub fn context(kafka: &KafkaConfig, stats: bool) -> KafkaContext {
    let tokens = (kafka.sasl.mechanism == Some(SaslMechanism::AwsMskIam))
        .then(|| Arc::new(MskIamTokens::new(&kafka.sasl.aws_msk_iam)) as Arc<dyn TokenSource>);
    KafkaContext::new(stats, tokens)
}

/// A client of type `T` (a consumer, a producer) of `kafka`, with `defaults` under the
/// configured properties.
pub fn create<T: FromClientConfigAndContext<KafkaContext>>(
    kafka: &KafkaConfig,
    defaults: &[(&str, String)],
) -> Result<T, KafkaError> {
    client_config(kafka, defaults)?
        .create_with_context(context(kafka, false))
        .map_err(without_secret)
}

/// An admin client of `kafka`. The admin client does not poll for token refreshes, so an
/// OAUTHBEARER token the connector signs (MSK IAM) is handed to it once here.
pub fn create_admin(kafka: &KafkaConfig) -> Result<AdminClient<KafkaContext>, KafkaError> {
    let admin: AdminClient<KafkaContext> = create(kafka, &[])?;
    KafkaContext::prime_token(admin.inner());
    Ok(admin)
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
        let mut kafka = KafkaConfig {
            bootstrap_servers: "127.0.0.1:1".into(),
            ..Default::default()
        };
        kafka.librdkafka.insert(key.to_string(), value.to_string());
        let created = create::<BaseConsumer<KafkaContext>>(&kafka, &[]);
        created.err().expect("refused").to_string()
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

    #[test]
    fn librdkafka_is_built_with_zstd_oidc_and_the_sasl_mechanisms() {
        let (_, version) = rdkafka::util::get_rdkafka_version();
        let features = builtin_features();
        for feature in ["ssl", "zstd", "sasl_scram", "sasl_oauthbearer", "oidc"] {
            assert!(
                features.split(',').any(|f| f == feature),
                "librdkafka {version} lacks {feature}: {features}"
            );
        }
    }

    fn builtin_features() -> String {
        ClientConfig::new()
            .create_native_config()
            .unwrap()
            .get("builtin.features")
            .unwrap()
    }
}
