//! Settings, read from a TOML file and then overridden by `RISKOS_<SECTION>__<KEY>` env vars.
//!
//! Every key is documented on its field; unknown keys are an error so a typo never silently
//! falls back to a default. [`Config::load`] returns one line naming the offending key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::common::setting::SettingError;
pub use crate::delivery::kafka::KafkaConfig;

pub use crate::common::telemetry::{LogConfig, LogFormat, TracingConfig};
pub use crate::delivery::config::{DedupConfig, DeliveryConfig, SpoolConfig};
pub use crate::delivery::kafka::config::TopicsConfig;
use crate::ingress::endpoint;
pub use crate::ingress::endpoint::{EndpointConfig, RequiredHeaderConfig};
pub use crate::ingress::http::config::{HttpConfig, TlsConfig};
pub use crate::pipeline::schema::config::{Encoding, SchemasConfig};
// The schema component owns its section; re-exported so `config::SchemaRegistryConfig` and
// `config::CompatibilityLevel` keep naming it.
pub use crate::pipeline::schema::registry_config::{
    CompatibilityLevel, RegistryOAuthConfig, SchemaRegistryConfig,
};

/// Prefix of the environment variables that override the file (`RISKOS_KAFKA__BOOTSTRAP_SERVERS`).
pub const ENV_PREFIX: &str = "RISKOS_";

/// Largest `http.max_body_bytes`: the records it implies stay well under librdkafka's
/// 1,000,000,000-byte ceiling for `message.max.bytes`.
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// The strictest sender (request-token senders such as Alloy) gives up on a request after
/// about 10 s (RiskOS waits 30 s); the ack deadline must leave room for the HTTP round trip,
/// so anything above this is refused at start-up.
pub const MAX_ACK_TIMEOUT_MS: u64 = 8_000;

/// A start-up configuration problem, rendered as one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A key has the wrong type, an unknown name, or a required key is absent.
    #[error("config: {0}")]
    Invalid(String),
    /// A setting parsed but cannot be used: out of range, missing where required, or naming
    /// a file that cannot be read. Every check, whichever module makes it, reports this way.
    #[error(transparent)]
    Setting(#[from] SettingError),
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The listener every endpoint shares.
    pub http: HttpConfig,
    /// The webhook endpoints (at least one for `serve`): path, authentication, sources,
    /// topic prefix and capacity share of each.
    pub endpoints: Vec<EndpointConfig>,
    /// The Kafka cluster records are produced to.
    pub kafka: KafkaConfig,
    /// The Confluent-compatible Schema Registry the value schemas are registered in.
    pub schema_registry: SchemaRegistryConfig,
    /// Where the `.avsc` value schemas are read from.
    pub schemas: SchemasConfig,
    /// Topic naming and creation.
    pub topics: TopicsConfig,
    /// Delivery guarantees.
    pub delivery: DeliveryConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// The keys of protected fields and bodies (which fields: the schemas' `riskos.protect`;
    /// whether, and the body's policy: each endpoint's `protect_fields` and `raw`).
    pub protection: crate::pipeline::protect::ProtectionConfig,
    /// Logging.
    pub log: LogConfig,
    /// Trace export.
    pub tracing: TracingConfig,
}

/// `[shutdown]`: graceful stop on SIGTERM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Time from SIGTERM to exit: in-flight webhooks finish and the producer flushes within
    /// it. Default 20000; Kubernetes' terminationGracePeriodSeconds must be longer.
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_ms: 20_000 }
    }
}

impl ShutdownConfig {
    /// The grace period as a [`Duration`].
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }
}

impl Config {
    /// Reads `file` (when given) and then the `RISKOS_*` environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(layers(file)?)
    }

    /// Like [`Config::load`] for offline tools (`validate`): the services they do not use,
    /// Kafka and the schema registry, may be left unset; everything else is checked.
    pub fn load_offline(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config = extract(layers(file)?)?;
        config.validate_offline()?;
        Ok(config)
    }

    /// Extracts and validates a config from any figment (tests layer their own providers).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config = extract(figment)?;
        config.validate()?;
        Ok(config)
    }

    /// The effective value encoding (see [`SchemasConfig::encoding`]).
    pub fn encoding(&self) -> Encoding {
        self.schemas
            .encoding
            .unwrap_or(if self.schema_registry.url.trim().is_empty() {
                Encoding::SingleObject
            } else {
                Encoding::Confluent
            })
    }

    /// The endpoint a tool works on: the one named, or the only one configured.
    pub fn endpoint(&self, name: Option<&str>) -> Result<&EndpointConfig, ConfigError> {
        match (name, self.endpoints.as_slice()) {
            (Some(name), endpoints) => match endpoints.iter().find(|e| e.name == name) {
                Some(endpoint) => Ok(endpoint),
                None => invalid("endpoints", format!("has no endpoint named `{name}`")),
            },
            (None, [only]) => Ok(only),
            (None, []) => invalid(
                "endpoints",
                "is empty: configure at least one [[endpoints]]",
            ),
            (None, _) => invalid(
                "endpoints",
                "has several endpoints: name one with --endpoint",
            ),
        }
    }

    /// Every endpoint's topic prefix, once each, in order.
    pub fn topic_prefixes(&self) -> Vec<&str> {
        let mut prefixes: Vec<&str> = Vec::new();
        for endpoint in &self.endpoints {
            if !prefixes.contains(&endpoint.topic_prefix.as_str()) {
                prefixes.push(&endpoint.topic_prefix);
            }
        }
        prefixes
    }

    /// Each endpoint's share of `http.max_in_flight`, in the order of `endpoints`.
    pub fn in_flight_shares(&self) -> Vec<usize> {
        let explicit: Vec<_> = self.endpoints.iter().map(|e| e.max_in_flight).collect();
        endpoint::shares(self.http.max_in_flight, &explicit)
    }

    /// Each endpoint's share of `http.max_body_bytes_in_flight`, in the order of `endpoints`.
    pub fn body_bytes_shares(&self) -> Vec<usize> {
        let explicit: Vec<_> = self
            .endpoints
            .iter()
            .map(|e| e.max_body_bytes_in_flight)
            .collect();
        endpoint::shares(self.http.max_body_bytes_in_flight, &explicit)
    }

    /// Every check serde cannot express: the services' addresses, then
    /// [`Config::validate_offline`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return invalid(
                "endpoints",
                "is empty: configure at least one [[endpoints]] (name, path, auth)",
            );
        }
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return invalid(
                "kafka.bootstrap_servers",
                "is required (set it in the file or RISKOS_KAFKA__BOOTSTRAP_SERVERS)",
            );
        }
        if self.encoding() == Encoding::Confluent && self.schema_registry.url.trim().is_empty() {
            return invalid(
                "schema_registry.url",
                "is required with schemas.encoding = \"confluent\" (set it in the file or \
                 RISKOS_SCHEMA_REGISTRY__URL, or use schemas.encoding = \"single-object\")",
            );
        }
        self.validate_offline()
    }

    /// The range and presence checks of everything but the services' addresses (Kafka, the
    /// registry): what offline tools rely on.
    pub fn validate_offline(&self) -> Result<(), ConfigError> {
        if self.http.max_body_bytes == 0 || self.http.max_body_bytes > MAX_BODY_BYTES {
            return invalid(
                "http.max_body_bytes",
                format!("must be between 1 and {MAX_BODY_BYTES}"),
            );
        }
        self.validate_record_size()?;
        if self.delivery.ack_timeout_ms == 0 || self.delivery.ack_timeout_ms > MAX_ACK_TIMEOUT_MS {
            return invalid(
                "delivery.ack_timeout_ms",
                format!(
                    "must be between 1 and {MAX_ACK_TIMEOUT_MS} (request-token senders such as Alloy time out after ~10 s)"
                ),
            );
        }
        if self.topics.partitions < 1 {
            return invalid("topics.partitions", "must be at least 1");
        }
        if self.topics.replication_factor < 1 {
            return invalid("topics.replication_factor", "must be at least 1");
        }
        let min_insync = self.topics.min_insync_replicas();
        if min_insync < 1 || min_insync > self.topics.replication_factor {
            return invalid(
                "topics.min_insync_replicas",
                format!(
                    "must be between 1 and topics.replication_factor ({}): with more, no write \
                     to a created topic could ever be acknowledged",
                    self.topics.replication_factor
                ),
            );
        }
        self.kafka.validate()?;
        self.schema_registry.validate()?;
        self.validate_ingress()
    }

    /// A `message.max.bytes` set in `kafka.librdkafka` must take the largest record the
    /// connector produces for `http.max_body_bytes` (see [`crate::delivery::record_size`]): otherwise
    /// valid webhooks could be accepted by the listener and refused by the producer.
    fn validate_record_size(&self) -> Result<(), ConfigError> {
        let needed = crate::delivery::record_size::kafka_message_bytes(self.http.max_body_bytes);
        let set = self
            .kafka
            .librdkafka
            .iter()
            .find(|(key, _)| key.replace('_', ".") == "message.max.bytes");
        let Some((_, value)) = set else {
            return Ok(());
        };
        match value.trim().parse::<usize>() {
            Ok(bytes) if bytes >= needed => Ok(()),
            _ => invalid(
                "kafka.librdkafka.message.max.bytes",
                format!(
                    "is {value}, but http.max_body_bytes = {} needs at least {needed} (a record \
                     carries the body twice: typed and raw); raise it, remove it (the connector \
                     sets it), or lower http.max_body_bytes",
                    self.http.max_body_bytes
                ),
            ),
        }
    }

    /// The `http` limits and the `auth` settings of the chosen mode.
    fn validate_ingress(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        if http.max_in_flight == 0 {
            return invalid("http.max_in_flight", "must be greater than 0");
        }
        if http.max_json_depth == 0 || http.max_json_depth > 128 {
            return invalid("http.max_json_depth", "must be between 1 and 128");
        }
        if http.max_header_bytes == 0 {
            return invalid("http.max_header_bytes", "must be greater than 0");
        }
        if http.max_body_bytes_in_flight < self.http.max_body_bytes {
            return invalid(
                "http.max_body_bytes_in_flight",
                "must be at least http.max_body_bytes",
            );
        }
        if http.max_connections == 0 {
            return invalid("http.max_connections", "must be greater than 0");
        }
        for (key, value) in [
            ("http.header_read_timeout_ms", http.header_read_timeout_ms),
            ("http.idle_timeout_ms", http.idle_timeout_ms),
            ("http.body_read_timeout_ms", http.body_read_timeout_ms),
        ] {
            if value == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        if http.request_timeout_ms <= self.delivery.ack_timeout_ms {
            return invalid(
                "http.request_timeout_ms",
                "must be greater than delivery.ack_timeout_ms",
            );
        }
        if http.body_read_timeout_ms >= http.request_timeout_ms {
            return invalid(
                "http.body_read_timeout_ms",
                "must be less than http.request_timeout_ms",
            );
        }
        http.tls.validate()?;
        self.validate_endpoints()
    }

    /// Each endpoint on its own, then what they must not share: names, paths (token
    /// endpoints' included), and more capacity than the listener has.
    fn validate_endpoints(&self) -> Result<(), ConfigError> {
        let mut names: Vec<&str> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if !endpoint::is_valid_name(&endpoint.name) {
                return Err(SettingError::invalid(
                    format!("endpoints[{i}].name"),
                    format!(
                        "`{}` is not a usable name: 1 to {} lower-case letters, digits, `-` or \
                         `_`, starting with a letter or digit",
                        endpoint.name,
                        endpoint::MAX_NAME_LEN
                    ),
                )
                .into());
            }
            if names.contains(&endpoint.name.as_str()) {
                return Err(SettingError::invalid(
                    format!("{}.name", endpoint.section()),
                    "is used by another endpoint",
                )
                .into());
            }
            names.push(&endpoint.name);
            endpoint
                .validate()
                .map_err(|e| e.within(&endpoint.section()))?;
            let oauth2 = &endpoint.auth.oauth2;
            let token_path = (endpoint.auth.mode == Some(crate::ingress::auth::AuthMode::OAuth2)
                && oauth2.token_endpoint.enabled())
            .then_some(oauth2.token_endpoint.path.as_str());
            for (key, path) in [
                ("path", Some(endpoint.path.as_str())),
                ("auth.oauth2.token_endpoint.path", token_path),
            ] {
                let Some(path) = path else { continue };
                if paths.contains(&path) {
                    return Err(SettingError::invalid(
                        format!("{}.{key}", endpoint.section()),
                        format!("`{path}` is already served by an endpoint"),
                    )
                    .into());
                }
                paths.push(path);
            }
        }
        self.validate_shares()
    }

    /// Explicit capacity shares fit the listener's totals, and every share can take a
    /// request (a byte share: a body of `http.max_body_bytes`).
    fn validate_shares(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        type ShareOf = fn(&EndpointConfig) -> Option<usize>;
        let totals: [(&str, usize, ShareOf); 2] = [
            ("max_in_flight", http.max_in_flight, |e| e.max_in_flight),
            (
                "max_body_bytes_in_flight",
                http.max_body_bytes_in_flight,
                |e| e.max_body_bytes_in_flight,
            ),
        ];
        for (key, total, share_of) in totals {
            if self.endpoints.iter().filter_map(share_of).sum::<usize>() > total {
                return Err(SettingError::invalid(
                    format!("endpoints.{key}"),
                    format!("the endpoints' shares add up to more than http.{key} = {total}"),
                )
                .into());
            }
        }
        let shares = self
            .in_flight_shares()
            .into_iter()
            .zip(self.body_bytes_shares());
        for (endpoint, (slots, bytes)) in self.endpoints.iter().zip(shares) {
            if slots == 0 {
                return invalid_in(endpoint, "max_in_flight", "must be greater than 0");
            }
            if bytes < http.max_body_bytes {
                return invalid_in(
                    endpoint,
                    "max_body_bytes_in_flight",
                    format!(
                        "its share is {bytes} bytes, less than one body of http.max_body_bytes = \
                         {}: raise http.max_body_bytes_in_flight or set the shares",
                        http.max_body_bytes
                    ),
                );
            }
        }
        Ok(())
    }
}

/// `key` cannot take its value, for `reason`: the config checks' one way to fail.
fn invalid<T>(key: &'static str, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(SettingError::invalid(key, reason).into())
}

/// [`invalid`] for a key of one endpoint.
fn invalid_in<T>(
    endpoint: &EndpointConfig,
    key: &'static str,
    reason: impl Into<String>,
) -> Result<T, ConfigError> {
    Err(SettingError::invalid(key, reason)
        .within(&endpoint.section())
        .into())
}

/// The file (when given), then the `RISKOS_*` environment over it.
fn layers(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        figment = figment.merge(Toml::file(path));
    }
    endpoints_from_env(figment.merge(env_provider()))
}

/// Applies `RISKOS_ENDPOINTS__<NAME>__<KEY>…` to the endpoint with that name (or adds one of
/// that name). Endpoints are a list in the file, and a list cannot be merged key by key, so
/// the variables are matched to their entry by name here, before serde sees the list.
fn endpoints_from_env(figment: Figment) -> Result<Figment, ConfigError> {
    let overrides: figment::value::Dict =
        Figment::from(Env::prefixed(ENDPOINTS_ENV_PREFIX).split("__"))
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(e)))?;
    if overrides.is_empty() {
        return Ok(figment);
    }
    let mut endpoints: Vec<figment::value::Value> = if figment.contains("endpoints") {
        figment
            .extract_inner("endpoints")
            .map_err(|e| ConfigError::Invalid(one_line(e)))?
    } else {
        Vec::new()
    };
    for (env_name, value) in overrides {
        // Env names are upper case and cannot hold `-`: `SANDBOX_EU` is `sandbox-eu` too.
        let matches = |endpoint: &figment::value::Value| {
            endpoint
                .find_ref("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.replace('-', "_").eq_ignore_ascii_case(&env_name))
        };
        match endpoints.iter_mut().find(|e| matches(e)) {
            Some(endpoint) => merge_value(endpoint, value),
            None => {
                let mut added = figment::value::Dict::new();
                added.insert("name".into(), env_name.to_ascii_lowercase().into());
                let mut added = figment::value::Value::from(added);
                merge_value(&mut added, value);
                endpoints.push(added);
            }
        }
    }
    Ok(figment.merge(figment::providers::Serialized::default(
        "endpoints",
        endpoints,
    )))
}

/// `over` into `base`, key by key for dictionaries, replacing anything else.
fn merge_value(base: &mut figment::value::Value, over: figment::value::Value) {
    use figment::value::Value;
    match (base, over) {
        (Value::Dict(_, base), Value::Dict(_, over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge_value(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn extract(figment: Figment) -> Result<Config, ConfigError> {
    let mut config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(one_line(e)))?;
    for endpoint in &mut config.endpoints {
        if endpoint.path.is_empty() {
            endpoint.path = format!("/webhooks/{}", endpoint.name);
        }
    }
    Ok(config)
}

/// `RISKOS_<SECTION>__<KEY>` variables. Only names with a `__` are settings, so `RISKOS_CONFIG`
/// (the config file path) is not mistaken for one.
fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| {
            key.as_str().contains("__")
                && !key.as_str().to_ascii_lowercase().starts_with("endpoints__")
        })
        .split("__")
}

/// Variables of one endpoint: `RISKOS_ENDPOINTS__<NAME>__<KEY>` (see [`endpoints_from_env`]).
const ENDPOINTS_ENV_PREFIX: &str = "RISKOS_ENDPOINTS__";

/// figment errors can chain several causes; start-up prints exactly one line.
fn one_line(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if e.path.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("key `{}`: {}{source}", e.path.join("."), e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    /// One open endpoint: what every config needs to pass `validate`.
    const ONE_ENDPOINT: &str = r#"
            [[endpoints]]
            name = "riskos"
            path = "/webhooks/riskos"
            [endpoints.auth]
            mode = "none"
            "#;

    fn base() -> Figment {
        Figment::new().merge(Toml::string(&format!(
            r#"
            [kafka]
            bootstrap_servers = "localhost:9092"
            [schema_registry]
            url = "http://localhost:8081"
            {ONE_ENDPOINT}"#,
        )))
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = Config::from_figment(base()).unwrap();
        assert_eq!(config.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.http.max_body_bytes, 1024 * 1024);
        assert_eq!(config.delivery.ack_timeout_ms, 5000);
        let endpoint = config.endpoint(None).unwrap();
        assert_eq!(endpoint.topic_prefix, "riskos.");
        assert_eq!(endpoint.rate_limit_per_ip, 1000);
        assert_eq!(
            endpoint.envelopes,
            [
                crate::pipeline::envelope::EnvelopeKind::Event,
                crate::pipeline::envelope::EnvelopeKind::RequestToken
            ]
        );
        assert_eq!(config.in_flight_shares(), [4096]);
        assert_eq!(config.body_bytes_shares(), [64 << 20]);
    }

    #[test]
    fn serve_needs_an_endpoint() {
        let figment = Figment::new().merge(Toml::string("[kafka]\nbootstrap_servers='b:1'"));
        let message = Config::from_figment(figment).unwrap_err().to_string();
        assert!(message.starts_with("config key `endpoints`:"), "{message}");
    }

    #[test]
    fn env_style_keys_override_the_file() {
        let figment = base().merge(Serialized::default(
            "kafka.bootstrap_servers",
            "broker:29092",
        ));
        let config = Config::from_figment(figment).unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "broker:29092");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn real_env_vars_are_split_on_double_underscore() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("RISKOS_HTTP__LISTEN", "127.0.0.1:9999");
            jail.set_env("RISKOS_KAFKA__LIBRDKAFKA__LINGER_MS", "7");
            jail.set_env("RISKOS_SCHEMA_REGISTRY__USERNAME", "4242");
            jail.set_env("RISKOS_SCHEMA_REGISTRY__PASSWORD", "123456");
            jail.set_env("RISKOS_CONFIG", "/not/a/setting.toml");
            let figment = base().merge(env_provider());
            let config = Config::from_figment(figment).unwrap();
            assert_eq!(config.http.listen.to_string(), "127.0.0.1:9999");
            assert_eq!(config.kafka.librdkafka.get("linger_ms").unwrap(), "7");
            let password = config.schema_registry.password.as_ref().map(|p| p.expose());
            assert_eq!(password, Some("123456"));
            assert_eq!(config.schema_registry.username.as_deref(), Some("4242"));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn kafka_secrets_from_the_file_or_env_never_show_in_debug_or_check_output() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("RISKOS_KAFKA__LIBRDKAFKA__SASL_PASSWORD", "pw-from-env");
            jail.set_env("RISKOS_KAFKA__LIBRDKAFKA__SSL_KEY_PASSWORD", "271828");
            let file = Toml::string(
                r#"
                [kafka.librdkafka]
                "ssl.key.pem" = "PEM-FROM-FILE"
                "sasl.oauthbearer.client.secret" = "oauth-from-file"
                "linger.ms" = "7"
                "#,
            );
            let config = Config::from_figment(base().merge(file).merge(env_provider())).unwrap();
            let debug = format!("{config:?}");
            let check = serde_json::to_string(&config).unwrap();
            for secret in ["pw-from-env", "271828", "PEM-FROM-FILE", "oauth-from-file"] {
                assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
                assert!(!check.contains(secret), "{secret} in check: {check}");
            }
            assert!(check.contains(r#""linger.ms":"7""#), "{check}");
            // librdkafka still gets the values.
            assert_eq!(config.kafka.librdkafka["sasl_password"], "pw-from-env");
            assert_eq!(config.kafka.librdkafka["ssl.key.pem"], "PEM-FROM-FILE");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn registry_auth_keys_parse_from_file_and_env_and_their_secrets_never_show() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "RISKOS_SCHEMA_REGISTRY__OAUTH__CLIENT_SECRET",
                "oauth-secret-from-env",
            );
            let file = || {
                Toml::string(
                    r#"
                [schema_registry]
                ca_file = "/tls/ca.pem"
                cert_file = "/tls/client.pem"
                key_file = "/tls/client.key"
                url = "https://registry:8081"
                [schema_registry.oauth]
                token_endpoint_url = "https://idp/token"
                client_id = "connector"
                scope = "sr"
                logical_cluster = "lsrc-1"
                identity_pool_id = "pool-1"
                "#,
                )
            };
            let config = Config::from_figment(base().merge(file()).merge(env_provider())).unwrap();
            let registry = &config.schema_registry;
            assert!(registry.oauth.enabled());
            assert_eq!(registry.oauth.identity_pool_id.as_deref(), Some("pool-1"));
            assert_eq!(
                registry.key_file.as_deref(),
                Some(Path::new("/tls/client.key"))
            );
            let debug = format!("{config:?}");
            let check = serde_json::to_string(&config).unwrap();
            for shown in [&debug, &check] {
                assert!(!shown.contains("oauth-secret-from-env"), "{shown}");
            }

            jail.set_env("RISKOS_SCHEMA_REGISTRY__BEARER_TOKEN", "bearer-from-env");
            let both = Config::from_figment(base().merge(file()).merge(env_provider()));
            let message = both.unwrap_err().to_string();
            assert!(
                message.contains("schema_registry.bearer_token")
                    && message.contains("schema_registry.oauth"),
                "{message}"
            );
            assert!(!message.contains("bearer-from-env"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let figment = base().merge(Serialized::default("http.max_body_bytes", "lots"));
        let message = Config::from_figment(figment).unwrap_err().to_string();
        assert!(message.contains("max_body_bytes"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let figment = base().merge(Serialized::default("http.lisen", "0.0.0.0:1"));
        let message = Config::from_figment(figment).unwrap_err().to_string();
        assert!(message.contains("lisen"), "{message}");
    }

    #[test]
    fn encoding_defaults_to_the_registry_when_one_is_configured() {
        let config = Config::from_figment(base()).unwrap();
        assert_eq!(config.encoding(), Encoding::Confluent);
        let figment = Figment::new().merge(Toml::string(&format!(
            "[kafka]\nbootstrap_servers='b:1'\n{ONE_ENDPOINT}"
        )));
        let config = Config::from_figment(figment).unwrap();
        assert_eq!(config.encoding(), Encoding::SingleObject);
    }

    #[test]
    fn confluent_encoding_without_a_registry_is_refused() {
        let figment = Figment::new().merge(Toml::string(&format!(
            "[kafka]\nbootstrap_servers='b:1'\n[schemas]\nencoding='confluent'\n{ONE_ENDPOINT}",
        )));
        let message = Config::from_figment(figment).unwrap_err().to_string();
        assert!(message.contains("schema_registry.url"), "{message}");
    }

    #[test]
    fn a_missing_bootstrap_is_refused_by_name() {
        let figment = Figment::new().merge(Toml::string(&format!(
            "[schema_registry]\nurl='http://x'\n{ONE_ENDPOINT}"
        )));
        let message = Config::from_figment(figment).unwrap_err().to_string();
        assert!(message.contains("kafka.bootstrap_servers"), "{message}");
    }

    #[test]
    fn min_insync_replicas_defaults_to_two_or_the_replication_factor() {
        let config = Config::from_figment(base()).unwrap();
        assert_eq!(config.topics.min_insync_replicas(), 2);
        assert!(!config.topics.allow_single_replica_acks);
        let single = base().merge(Serialized::default("topics.replication_factor", 1));
        let config = Config::from_figment(single).unwrap();
        assert_eq!(config.topics.min_insync_replicas(), 1);
        let set = base().merge(Serialized::default("topics.min_insync_replicas", 3));
        assert_eq!(
            Config::from_figment(set)
                .unwrap()
                .topics
                .min_insync_replicas(),
            3
        );
        assert_eq!(
            config.schema_registry.check_interval(),
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn min_insync_replicas_above_the_replication_factor_is_refused_by_name() {
        for value in [0, 4] {
            let figment = base().merge(Serialized::default("topics.min_insync_replicas", value));
            let message = Config::from_figment(figment).unwrap_err().to_string();
            assert!(
                message.contains("topics.min_insync_replicas"),
                "{value}: {message}"
            );
        }
    }

    #[test]
    fn an_ack_timeout_near_the_vendor_timeout_is_refused() {
        let figment = base().merge(Serialized::default("delivery.ack_timeout_ms", 9_500));
        let message = Config::from_figment(figment).unwrap_err().to_string();
        assert!(message.contains("delivery.ack_timeout_ms"), "{message}");
    }

    #[test]
    fn tls_cert_and_key_go_together() {
        let half = TlsConfig {
            cert_file: Some("tls.crt".into()),
            ..TlsConfig::default()
        };
        assert_eq!(half.validate().unwrap_err().key(), "http.tls.cert_file");
        assert!(TlsConfig::default().validate().is_ok());
    }

    /// The ingress and auth settings, read through the whole config as a user writes them.
    mod ingress_settings {
        use super::*;
        use crate::ingress::auth::AuthMode;

        fn config_from(toml: &str) -> Result<Config, ConfigError> {
            use figment::providers::{Format, Toml};
            let base = "[kafka]\nbootstrap_servers = \"b:9092\"\n";
            Config::from_figment(
                figment::Figment::new().merge(Toml::string(&format!("{base}{toml}"))),
            )
        }

        #[test]
        fn offline_loading_leaves_out_the_services_and_checks_the_rest() {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("offline.toml");
            std::fs::write(&file, "[[endpoints]]\nname = \"x\"\npath = \"/riskos\"\n").unwrap();
            let config = Config::load_offline(Some(&file)).expect("no kafka, no registry needed");
            assert!(config.kafka.bootstrap_servers.is_empty());
            assert!(matches!(
                Config::load(Some(&file)),
                Err(ConfigError::Setting(e)) if e.key() == "kafka.bootstrap_servers"
            ));

            std::fs::write(&file, "[http]\nmax_body_bytes = 0\n").unwrap();
            let error = Config::load_offline(Some(&file)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("config key `http.max_body_bytes`:"),
                "{error}"
            );
            std::fs::write(
                &file,
                "[[endpoints]]\nname = \"alloy\"\npath = \"/a\"\n[endpoints.auth]\nmode = \"hmac\"\n\
                 [endpoints.auth.hmac]\ntolerance_secs = 0\n",
            )
            .unwrap();
            let error = Config::load_offline(Some(&file)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("config key `endpoints[alloy].auth.hmac.tolerance_secs`:"),
                "{error}"
            );
        }

        #[test]
        fn the_example_config_parses_with_its_auth_section() {
            use figment::providers::{Format, Toml};
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
            let config =
                Config::from_figment(figment::Figment::new().merge(Toml::file(path))).unwrap();
            let endpoint = config.endpoint(None).unwrap();
            assert_eq!(endpoint.auth.mode, Some(AuthMode::Bearer));
            assert!(endpoint.auth.bearer.tokens_file.is_some());
            assert_eq!(endpoint.rate_limit_per_ip, 1000);
        }

        #[test]
        fn every_documented_auth_key_parses() {
            let config = config_from(
                r#"
                [http]
                trusted_proxies = ["10.0.0.0/8"]
                forwarded_header = "forwarded"
                max_in_flight = 10
                max_json_depth = 16
                max_header_bytes = 4096
                request_timeout_ms = 9500
                [http.tls]
                cert_file = "/tls/tls.crt"
                key_file = "/tls/tls.key"
                [[endpoints]]
                name = "production"
                path = "/webhooks/riskos"
                topic_prefix = "riskos.prod."
                envelopes = ["event"]
                allow_cidrs = ["35.230.191.253/32", "3.138.161.243"]
                rate_limit_per_ip = 5
                max_in_flight = 4
                max_body_bytes_in_flight = 2097152
                [[endpoints.required_headers]]
                name = "X-Env-Key"
                values = ["v1"]
                values_file = "/s/env-key"
                [endpoints.auth]
                mode = "oauth2"
                [endpoints.auth.basic]
                credentials = ["u:p"]
                credentials_file = "/s/basic"
                [endpoints.auth.bearer]
                tokens = "single-token-value-xyz"
                tokens_file = "/s/bearer"
                [endpoints.auth.hmac]
                secrets = ["a", "b"]
                secrets_file = "/s/hmac"
                header = "X-Sig"
                encoding = "base64"
                timestamp_header = "X-Ts"
                tolerance_secs = 60
                [endpoints.auth.oauth2]
                jwks_url = "https://idp/jwks"
                issuer = "https://idp"
                audience = "riskos"
                required_scope = "webhooks"
                algorithms = ["RS256", "ES256"]
                leeway_secs = 10
                jwks_refresh_secs = 60
                jwks_min_refetch_secs = 5
                static_keys = [{ kid = "k1", alg = "RS256", file = "/s/k1.pem" }]
                [endpoints.auth.oauth2.token_endpoint]
                path = "/token"
                clients = [{ client_id = "c", client_secret_file = "/s/c" }]
                clients_file = "/s/clients"
                ttl_secs = 600
                signing_secrets_file = "/s/signing"
                [endpoints.auth.oauth2.token_endpoint.failure_backoff]
                failures_before_backoff = 3
                initial_wait_ms = 500
                max_wait_secs = 60
                forget_after_secs = 600
                max_clients = 1000
                "#,
            )
            .unwrap();
            let endpoint = config.endpoint(Some("production")).unwrap();
            assert_eq!(endpoint.auth.mode, Some(AuthMode::OAuth2));
            assert_eq!(endpoint.auth.bearer.tokens.len(), 1);
            assert_eq!(endpoint.allow_cidrs.len(), 2);
            assert_eq!(endpoint.required_headers[0].name, "X-Env-Key");
            assert_eq!(config.in_flight_shares(), [4]);
            assert!(config.http.tls.enabled());
            assert_eq!(endpoint.auth.oauth2.token_endpoint.ttl_secs, 600);
            let backoff = &endpoint.auth.oauth2.token_endpoint.failure_backoff;
            assert_eq!(backoff.failures_before_backoff, 3);
            assert_eq!(backoff.max_clients, 1000);
        }

        #[test]
        fn bad_ingress_settings_name_their_key() {
            const E: &str = "[[endpoints]]\nname = \"e\"\npath = \"/e\"\n";
            for (toml, key) in [
                (
                    &format!("{E}[endpoints.auth.bearer]\ntoken = [\"x\"]") as &str,
                    "token",
                ),
                (&format!("{E}[endpoints.auth]\nmode = \"digest\""), "mode"),
                (&format!("{E}allow_cidrs = [\"vendor\"]"), "allow_cidrs"),
                (
                    &format!("[http]\nrequest_timeout_ms = 5000\n{E}"),
                    "http.request_timeout_ms",
                ),
                (&format!("[http]\nmax_json_depth = 500\n{E}"), "http.max_json_depth"),
                (&format!("[http.tls]\ncert_file = \"/c\"\n{E}"), "http.tls.cert_file"),
                (
                    &format!("{E}[endpoints.auth]\nmode = \"oauth2\"\n[endpoints.auth.oauth2]\naudience = \"a\""),
                    "endpoints[e].auth.oauth2.issuer",
                ),
                (
                    &format!("{E}[endpoints.auth.oauth2.token_endpoint.failure_backoff]\nmax_wait = 5"),
                    "max_wait",
                ),
                (
                    &format!("{E}[endpoints.auth]\nmode = \"oauth2\"\n[endpoints.auth.oauth2]\nissuer = \"i\"\naudience = \"a\"\n\
                     [endpoints.auth.oauth2.token_endpoint]\nclients_file = \"/c\"\nsigning_secrets_file = \"/s\"\n\
                     [endpoints.auth.oauth2.token_endpoint.failure_backoff]\nforget_after_secs = 1"),
                    "endpoints[e].auth.oauth2.token_endpoint.failure_backoff.forget_after_secs",
                ),
                ("[http]\npath = \"/old\"", "path"),
                (&format!("{E}[[endpoints]]\nname = \"e\"\npath = \"/f\""), "endpoints[e].name"),
                (&format!("{E}[[endpoints]]\nname = \"f\"\npath = \"/e\""), "endpoints[f].path"),
                ("[[endpoints]]\nname = \"Prod\"\npath = \"/p\"", "endpoints[0].name"),
                ("[[endpoints]]\nname = \"m\"\npath = \"/metrics\"", "endpoints[m].path"),
                ("[[endpoints]]\nname = \"m\"\npath = \"m\"", "endpoints[m].path"),
                (&format!("{E}topic_prefix = \"riskos sandbox\""), "endpoints[e].topic_prefix"),
                (&format!("{E}envelopes = []"), "endpoints[e].envelopes"),
                (&format!("{E}envelopes = [\"soap\"]"), "envelopes"),
                (
                    &format!("{E}[[endpoints.required_headers]]\nname = \"bad header\""),
                    "endpoints[e].required_headers[0].name",
                ),
                (&format!("{E}max_in_flight = 5000"), "endpoints.max_in_flight"),
                (
                    &format!("[http]\nmax_body_bytes_in_flight = 1048576\n{E}[[endpoints]]\nname = \"f\"\npath = \"/f\""),
                    "endpoints[e].max_body_bytes_in_flight",
                ),
                (
                    &format!(
                        "{E}[endpoints.auth]\nmode = \"oauth2\"\n[endpoints.auth.oauth2]\nissuer = \"i\"\n\
                         audience = \"a\"\n[endpoints.auth.oauth2.token_endpoint]\npath = \"/e\"\n\
                         clients_file = \"/c\"\nsigning_secrets_file = \"/s\""
                    ),
                    "endpoints[e].auth.oauth2.token_endpoint.path",
                ),
            ] {
                let message = config_from(toml).unwrap_err().to_string();
                assert!(message.contains(key), "{toml}: {message}");
            }
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn env_vars_reach_an_endpoint_by_name_or_add_one() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "riskos.toml",
                r#"
                [kafka]
                bootstrap_servers = "b:9092"
                [[endpoints]]
                name = "production"
                path = "/webhooks/riskos"
                [endpoints.auth]
                mode = "bearer"
                [endpoints.auth.bearer]
                tokens_file = "/s/bearer"
                [[endpoints]]
                name = "sandbox-eu"
                path = "/webhooks/sandbox"
                [endpoints.auth]
                mode = "none"
                "#,
            )?;
            jail.set_env("RISKOS_ENDPOINTS__PRODUCTION__RATE_LIMIT_PER_IP", "50");
            jail.set_env(
                "RISKOS_ENDPOINTS__PRODUCTION__AUTH__BEARER__TOKENS_FILE",
                "/run/bearer",
            );
            jail.set_env(
                "RISKOS_ENDPOINTS__SANDBOX_EU__TOPIC_PREFIX",
                "riskos.sandbox.",
            );
            jail.set_env("RISKOS_ENDPOINTS__ALLOY__PATH", "/webhooks/alloy");
            jail.set_env("RISKOS_ENDPOINTS__ALLOY__AUTH__MODE", "none");
            jail.set_env("RISKOS_ENDPOINTS__ALLOY__ENVELOPES", "[\"request_token\"]");
            let config = Config::load(Some(std::path::Path::new("riskos.toml"))).unwrap();
            let production = config.endpoint(Some("production")).unwrap();
            assert_eq!(production.rate_limit_per_ip, 50);
            assert_eq!(production.path, "/webhooks/riskos", "file values stay");
            assert_eq!(
                production.auth.bearer.tokens_file.as_deref(),
                Some(std::path::Path::new("/run/bearer"))
            );
            let sandbox = config.endpoint(Some("sandbox-eu")).unwrap();
            assert_eq!(sandbox.topic_prefix, "riskos.sandbox.");
            let alloy = config.endpoint(Some("alloy")).unwrap();
            assert_eq!(alloy.path, "/webhooks/alloy");
            assert_eq!(
                alloy.envelopes,
                [crate::pipeline::envelope::EnvelopeKind::RequestToken]
            );
            assert_eq!(config.in_flight_shares(), [1365, 1365, 1365]);
            assert_eq!(config.topic_prefixes(), ["riskos.", "riskos.sandbox."]);
            Ok(())
        });
    }
}
