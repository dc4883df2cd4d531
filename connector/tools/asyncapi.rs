//! `schemas asyncapi`: an AsyncAPI 3.0 document of the topics the connector produces to, built
//! offline from the config and `schemas/` (no Kafka, no registry).
//!
//! One channel per topic of every endpoint's prefix (the event types' topics, the
//! `unrecognized` topic, the quarantine topic), each with its Kafka channel binding (partitions,
//! replicas, cleanup policy, `max.message.bytes`, as [`crate::wiring::topology`] creates them), one
//! message with its Kafka message binding (the key), its headers and its payload (the `.avsc`
//! as an Avro multi-format schema, shared under `components.schemas`; the quarantine topic's
//! value is the raw body), the protected fields (`x-riskos-protected`: path → policy) and the
//! partition rule (`x-riskos-partition-by`, from the schema's `riskos.partition_by`), and one
//! `send` operation per channel. The checked-in `docs/asyncapi.json` is this document for
//! `docs/asyncapi.toml`; `tests/asyncapi.rs` fails when it is stale.

use anyhow::Context;
use serde_json::{json, Map, Value as Json};

use crate::delivery::record_size;
use crate::pipeline::protect::RawPolicy;
use crate::pipeline::route::{quarantine_topic, Routes};
use crate::pipeline::schema::{Catalog, SchemaEntry};
use crate::wiring::config::{Config, Encoding, EndpointConfig};

/// The Avro multi-format schema format of the payloads.
pub const AVRO_SCHEMA_FORMAT: &str = "application/vnd.apache.avro+json;version=1.9.0";

/// The Kafka bindings version the document follows.
pub const KAFKA_BINDING_VERSION: &str = "0.5.0";

/// The server host written when `kafka.bootstrap_servers` is not set.
pub const PLACEHOLDER_HOST: &str = "kafka:9092";

/// The schema attribute naming the field a type's records are partitioned by (issue 16),
/// read from the schema text.
pub const PARTITION_BY_ATTRIBUTE: &str = "riskos.partition_by";

/// The endpoint option that adds the CloudEvents headers, read from the endpoint's serialized
/// config so this module does not depend on its field.
const CLOUDEVENTS_OPTION: &str = "cloudevents";

/// Every `quarantine_reason` (see [`crate::pipeline::PrepareError::reason`]).
const QUARANTINE_REASONS: [&str; 7] = [
    "invalid_json",
    "duplicate_key",
    "invalid_envelope",
    "envelope_not_accepted",
    "too_deep",
    "schema_mismatch",
    "record_too_large",
];

/// Loads the catalog from `schemas.dir` and renders the document as pretty JSON (with a final
/// newline), as `schemas asyncapi` writes it.
pub fn render(config: &Config) -> anyhow::Result<String> {
    let catalog = Catalog::load(&config.schemas.dir).context("loading schemas")?;
    let document = document(config, &catalog)?;
    Ok(serde_json::to_string_pretty(&document)? + "\n")
}

/// The AsyncAPI 3.0.0 document of every endpoint's topics.
pub fn document(config: &Config, catalog: &Catalog) -> anyhow::Result<Json> {
    anyhow::ensure!(
        !config.endpoints.is_empty(),
        "endpoints is empty: configure at least one [[endpoints]] (its topic_prefix names the topics)"
    );
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut schemas = Map::new();
    for entry in catalog.entries() {
        let avsc: Json = serde_json::from_str(&entry.text)
            .with_context(|| format!("{}: not JSON", entry.file.display()))?;
        schemas.insert(
            schema_id(entry),
            json!({ "schemaFormat": AVRO_SCHEMA_FORMAT, "schema": avsc }),
        );
    }
    let max_message_bytes = record_size::kafka_message_bytes(config.http.max_body_bytes);
    for prefix in config.topic_prefixes() {
        let endpoints: Vec<&EndpointConfig> = config
            .endpoints
            .iter()
            .filter(|e| e.topic_prefix == prefix)
            .collect();
        let mut add = |topic: String, channel: Json, message_id: &str, summary: String| {
            operations.insert(
                format!("send.{topic}"),
                json!({
                    "action": "send",
                    "summary": summary,
                    "channel": { "$ref": format!("#/channels/{topic}") },
                    "messages": [
                        { "$ref": format!("#/channels/{topic}/messages/{message_id}") }
                    ],
                }),
            );
            channels.insert(topic, channel);
        };
        for planned in Routes::plan(catalog, prefix) {
            let entry = &planned.schema;
            let message_id = schema_id(entry);
            let (channel, summary) =
                event_channel(config, &planned.topic, entry, &endpoints, max_message_bytes)?;
            add(planned.topic, channel, &message_id, summary);
        }
        let topic = quarantine_topic(prefix);
        let channel = quarantine_channel(config, &topic, &endpoints, max_message_bytes);
        add(
            topic,
            channel,
            "Quarantined",
            "The connector keeps a body it could not store on an event topic.".into(),
        );
    }
    Ok(json!({
        "asyncapi": "3.0.0",
        "info": info(config),
        "defaultContentType": "avro/binary",
        "servers": servers(config),
        "channels": channels,
        "operations": operations,
        "components": { "schemas": schemas },
    }))
}

/// `components.schemas` id of a schema: its record's full name.
fn schema_id(entry: &SchemaEntry) -> String {
    entry
        .schema
        .name()
        .map(|name| name.fullname(None))
        .unwrap_or_else(|| entry.event_type.clone())
}

fn info(config: &Config) -> Json {
    let encoding = match config.encoding() {
        Encoding::Confluent => {
            "the Confluent wire format (magic byte 0, 4-byte big-endian schema id of subject \
             `<topic>-value`, Avro binary)"
        }
        Encoding::SingleObject => {
            "the Avro single-object encoding (`C3 01`, the 8-byte little-endian CRC-64-AVRO \
             fingerprint of the schema's Parsing Canonical Form, Avro binary)"
        }
    };
    json!({
        "title": "riskos-connector topics",
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!(
            "The Kafka topics riskos-connector produces to: one compacted topic per event type \
             (`<topic_prefix><event type>`, `:` written `.`), `<topic_prefix>unrecognized` for \
             event types without a schema of their own, and `<topic_prefix>quarantine` for raw \
             bodies that could not be stored. Event records: key = the event id, value = Avro \
             in {encoding}, headers `event_type`, `envelope`, `endpoint`, `traceparent` when the \
             request carried one, and the CloudEvents `ce_*` headers on endpoints with \
             `{CLOUDEVENTS_OPTION} = true`. A null value on an event topic is a tombstone \
             (`riskos-connector erase`). Fields marked `riskos.protect` in the schemas \
             (`x-riskos-protected` on each message) hold a hash token (`h2.`), an encrypted \
             value (`e2.`) or null (docs/protection.md). Generated by `riskos-connector schemas \
             asyncapi`; see docs/consumers.md."
        ),
        "license": { "name": "Apache-2.0" },
    })
}

fn servers(config: &Config) -> Json {
    let bootstrap = config.kafka.bootstrap_servers.trim();
    let (host, description) = match bootstrap.split(',').map(str::trim).find(|h| !h.is_empty()) {
        Some(host) => (
            host.to_string(),
            format!("The Kafka cluster (`kafka.bootstrap_servers` = `{bootstrap}`)."),
        ),
        None => (
            PLACEHOLDER_HOST.to_string(),
            format!(
                "Placeholder: `kafka.bootstrap_servers` is not set in the config this document \
                 was generated from; use your cluster's bootstrap servers instead of \
                 `{PLACEHOLDER_HOST}`."
            ),
        ),
    };
    let mut server = json!({
        "host": host,
        "protocol": "kafka",
        "description": description,
    });
    if let Some(url) = registry_url(config) {
        server["bindings"] = json!({ "kafka": {
            "schemaRegistryUrl": url,
            "schemaRegistryVendor": "confluent",
            "bindingVersion": KAFKA_BINDING_VERSION,
        }});
    }
    json!({ "kafka": server })
}

/// The registry's URL with the Confluent encoding.
fn registry_url(config: &Config) -> Option<&str> {
    let url = config.schema_registry.url.trim();
    (config.encoding() == Encoding::Confluent && !url.is_empty()).then_some(url)
}

fn channel_binding(config: &Config, topic: &str, topic_configuration: Json) -> Json {
    json!({ "kafka": {
        "topic": topic,
        "partitions": config.topics.partitions,
        "replicas": config.topics.replication_factor,
        "topicConfiguration": topic_configuration,
        "bindingVersion": KAFKA_BINDING_VERSION,
    }})
}

/// What the channel descriptions say about topic creation.
fn creation(config: &Config) -> &'static str {
    if config.topics.create {
        "Created by the connector at start-up when missing, with the partitions, replicas and \
         configuration of its binding."
    } else {
        "Managed outside the connector (`topics.create = false`); the binding shows what the \
         connector would create."
    }
}

fn names(endpoints: &[&EndpointConfig]) -> String {
    endpoints
        .iter()
        .map(|e| format!("`{}`", e.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The endpoints of `endpoints` that set the CloudEvents option.
fn cloudevents_endpoints<'a>(endpoints: &[&'a EndpointConfig]) -> Vec<&'a EndpointConfig> {
    endpoints
        .iter()
        .copied()
        .filter(|endpoint| {
            serde_json::to_value(endpoint)
                .ok()
                .and_then(|value| value.get(CLOUDEVENTS_OPTION).cloned())
                .is_some_and(|option| !matches!(option, Json::Null | Json::Bool(false)))
        })
        .collect()
}

fn endpoint_header(endpoints: &[&EndpointConfig]) -> Json {
    json!({
        "type": "string",
        "enum": endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        "description": "The name of the endpoint that received the webhook.",
    })
}

/// One event type's topic (or the unrecognized topic), and its operation's summary.
fn event_channel(
    config: &Config,
    topic: &str,
    entry: &SchemaEntry,
    endpoints: &[&EndpointConfig],
    max_message_bytes: usize,
) -> anyhow::Result<(Json, String)> {
    let avsc: Json = serde_json::from_str(&entry.text)?;
    let doc = avsc.get("doc").and_then(Json::as_str).unwrap_or_default();
    let partition_by = avsc
        .get(PARTITION_BY_ATTRIBUTE)
        .and_then(Json::as_str)
        .filter(|path| !path.is_empty());
    let what = if entry.is_fallback() {
        "Event types without a schema of their own (`data` as JSON text).".to_string()
    } else {
        format!("Event type `{}`.", entry.event_type)
    };
    let partitioning = match partition_by {
        Some(path) => format!(
            "Partitioned by `{path}` (`{PARTITION_BY_ATTRIBUTE}`): murmur2 of its value modulo \
             the partition count, as Kafka's Java producer partitions keys, so one entity's \
             events are in order and topics partitioned by the same entity with the same \
             partition count are co-partitioned; a record without the value is partitioned by \
             its key."
        ),
        None => "Partitioned by key (the event id).".to_string(),
    };
    let channel_description = format!(
        "{what} {doc} Compacted: the latest record per key (event id) wins, so retries and \
         replays collapse. {partitioning} {}",
        creation(config)
    );

    let protected: Map<String, Json> = entry
        .plan
        .targets
        .iter()
        .map(|t| (t.path(), json!(t.policy.name())))
        .collect();
    let protect_off: Vec<&EndpointConfig> = endpoints
        .iter()
        .copied()
        .filter(|e| !e.protect_fields)
        .collect();
    let mut description = vec![format!(
        "Value: the Avro record of schema `{}` (`{}` in the schemas folder).",
        schema_id(entry),
        entry
            .file
            .file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default()
    )];
    if !protected.is_empty() {
        let list = protected
            .iter()
            .map(|(path, policy)| format!("`{path}` ({})", policy.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ");
        description.push(format!(
            "Protected fields (`riskos.protect`, also in `x-riskos-protected`): {list}; `hash` \
             holds a keyed token `h2.<kid>.<fp>.<mac>`, `encrypt` an encrypted value \
             `e2.<kid>.<fp>.<box>`, `drop` null."
        ));
        if !protect_off.is_empty() {
            description.push(format!(
                "Endpoints with `protect_fields = false` store them in clear: {}.",
                names(&protect_off)
            ));
        }
    }
    description.push(raw_description(endpoints, "`raw` holds the body"));
    if let Some(path) = partition_by {
        description.push(format!("Partitioned by `{path}`."));
    }
    description
        .push("A null value is a tombstone written by `riskos-connector erase`.".to_string());

    let mut properties = Map::new();
    properties.insert(
        "event_type".into(),
        if entry.is_fallback() {
            json!({ "type": "string", "description": "The event type as sent." })
        } else {
            json!({
                "type": "string",
                "const": entry.event_type,
                "description": "The event type as sent.",
            })
        },
    );
    let mut envelopes: Vec<&str> = Vec::new();
    for endpoint in endpoints {
        for kind in &endpoint.envelopes {
            if !envelopes.contains(&kind.as_str()) {
                envelopes.push(kind.as_str());
            }
        }
    }
    properties.insert(
        "envelope".into(),
        json!({
            "type": "string",
            "enum": envelopes,
            "description": "The webhook's envelope: `EVENT` (RiskOS) or `REQUEST_TOKEN`.",
        }),
    );
    properties.insert("endpoint".into(), endpoint_header(endpoints));
    properties.insert(
        "traceparent".into(),
        json!({
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "The W3C trace context of the webhook request, when it carried a valid one.",
        }),
    );
    let mut required = vec!["event_type", "envelope", "endpoint"];
    let cloudevents = cloudevents_endpoints(endpoints);
    let presence = if cloudevents.is_empty() {
        format!(
            "Present on records of endpoints with `{CLOUDEVENTS_OPTION} = true` (none of this \
             topic's: {})",
            names(endpoints)
        )
    } else if cloudevents.len() == endpoints.len() {
        required.extend(CLOUDEVENTS_HEADERS.iter().map(|(name, _)| *name));
        format!(
            "Present: this topic's endpoints set `{CLOUDEVENTS_OPTION} = true` ({})",
            names(&cloudevents)
        )
    } else {
        format!(
            "Present on records of the endpoints with `{CLOUDEVENTS_OPTION} = true`: {}",
            names(&cloudevents)
        )
    };
    for (name, meaning) in CLOUDEVENTS_HEADERS {
        let mut header = json!({
            "type": "string",
            "description": format!(
                "CloudEvents Kafka protocol binding (binary mode): {meaning}. {presence}."
            ),
        });
        if name == "ce_specversion" {
            header["const"] = json!("1.0");
        }
        properties.insert(name.into(), header);
    }

    let mut message = json!({
        "name": entry.schema.name().map(|n| n.name().to_string()).unwrap_or_default(),
        "title": if entry.is_fallback() { "Unrecognized event".to_string() } else { entry.event_type.clone() },
        "summary": doc,
        "description": description.join(" "),
        "contentType": "avro/binary",
        "headers": {
            "type": "object",
            "required": required,
            "properties": properties,
        },
        "payload": { "$ref": format!("#/components/schemas/{}", schema_id(entry)) },
        "bindings": { "kafka": message_binding(config, json!({
            "type": "string",
            "description": "The event id: `event_id` (RiskOS envelope) or `request_token` \
                            (request-token envelope), UTF-8, at most 256 bytes. Also the \
                            record's `event_id` field.",
        })) },
        "x-riskos-protected": protected,
    });
    if !entry.is_fallback() {
        message["x-riskos-event-type"] = json!(entry.event_type);
    }
    if let Some(path) = partition_by {
        message["x-riskos-partition-by"] = json!(path);
    }
    let channel = json!({
        "address": topic,
        "title": topic,
        "description": channel_description,
        "messages": { schema_id(entry): message },
        "bindings": channel_binding(config, topic, json!({
            "cleanup.policy": ["compact"],
            "max.message.bytes": max_message_bytes,
        })),
    });
    let summary = if entry.is_fallback() {
        "The connector produces webhooks of event types without a schema of their own.".into()
    } else {
        format!("The connector produces `{}` webhooks.", entry.event_type)
    };
    Ok((channel, summary))
}

/// The CloudEvents headers and what each holds.
const CLOUDEVENTS_HEADERS: [(&str, &str); 6] = [
    ("ce_specversion", "the CloudEvents version, `1.0`"),
    ("ce_id", "the event id (the record's key)"),
    (
        "ce_source",
        "the source: the endpoint that received the webhook",
    ),
    ("ce_type", "the event type"),
    ("ce_time", "when the event occurred (RFC 3339)"),
    (
        "content-type",
        "the media type of the value's Avro encoding",
    ),
];

/// The Kafka message binding: the key, and where the schema id is with a registry.
fn message_binding(config: &Config, key: Json) -> Json {
    let mut binding = json!({ "key": key, "bindingVersion": KAFKA_BINDING_VERSION });
    if registry_url(config).is_some() {
        binding["schemaIdLocation"] = json!("payload");
        binding["schemaIdPayloadEncoding"] = json!("confluent");
        binding["schemaLookupStrategy"] = json!("TopicNameStrategy");
    }
    binding
}

/// What the endpoints' `raw` policies make of the body.
fn raw_description(endpoints: &[&EndpointConfig], subject: &str) -> String {
    let per_endpoint = endpoints
        .iter()
        .map(|e| {
            let policy = match e.raw {
                RawPolicy::Keep => "as received",
                RawPolicy::Encrypt => "as one encrypted value `e2.<kid>.<fp>.<box>`",
                RawPolicy::Drop => "empty",
            };
            format!("`{}`: {policy}", e.name)
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!("{subject} per each endpoint's `raw` policy ({per_endpoint}).")
}

/// A prefix's quarantine topic.
fn quarantine_channel(
    config: &Config,
    topic: &str,
    endpoints: &[&EndpointConfig],
    max_message_bytes: usize,
) -> Json {
    let properties = json!({
        "quarantine_reason": {
            "type": "string",
            "enum": QUARANTINE_REASONS,
            "description": "Why the body could not be stored on its event topic.",
        },
        "quarantine_error": {
            "type": "string",
            "description": "The error message (at most 1 KiB).",
        },
        "quarantine_field": {
            "type": "string",
            "description": "The failing field, when known (e.g. `data.eval_id`).",
        },
        "received_at": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "When the connector received the body, epoch milliseconds (decimal text).",
        },
        "event_id": {
            "type": "string",
            "description": "The event id, when the envelope was readable.",
        },
        "event_type": {
            "type": "string",
            "description": "The event type, when the envelope was readable.",
        },
        "endpoint": endpoint_header(endpoints),
    });
    let message = json!({
        "name": "Quarantined",
        "title": "Quarantined body",
        "summary": "A webhook body the connector could not store on an event topic, kept raw for `riskos-connector replay --from-quarantine`.",
        "description": format!(
            "Value: the request body, not Avro. {} Headers say why.",
            raw_description(endpoints, "The value holds the body")
        ),
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": ["quarantine_reason", "quarantine_error", "received_at", "endpoint"],
            "properties": properties,
        },
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "The raw webhook body (JSON as sent, an encrypted value, or empty, per the endpoint's `raw` policy).",
        },
        "bindings": { "kafka": message_binding_raw(json!({
            "type": ["string", "null"],
            "description": "The event id when the envelope was readable; otherwise no key.",
        })) },
    });
    json!({
        "address": topic,
        "title": topic,
        "description": format!(
            "Bodies that could not be normalized or encoded, raw, with `quarantine_*` headers. \
             Not compacted (records may have no key): `cleanup.policy=delete`, kept forever \
             (`retention.ms=-1`). {}",
            creation(config)
        ),
        "messages": { "Quarantined": message },
        "bindings": channel_binding(config, topic, json!({
            "cleanup.policy": ["delete"],
            "retention.ms": -1,
            "max.message.bytes": max_message_bytes,
        })),
    })
}

/// The quarantine message binding: a key, no registry (the value is not Avro).
fn message_binding_raw(key: Json) -> Json {
    json!({ "key": key, "bindingVersion": KAFKA_BINDING_VERSION })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn catalog() -> Catalog {
        Catalog::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
    }

    fn config(endpoints: Vec<EndpointConfig>) -> Config {
        Config {
            endpoints,
            ..Config::default()
        }
    }

    #[test]
    fn one_channel_and_operation_per_topic_with_bindings() {
        let mut sandbox = EndpointConfig::new("sandbox");
        sandbox.topic_prefix = "riskos.sandbox.".into();
        let catalog = catalog();
        let doc = document(
            &config(vec![EndpointConfig::new("production"), sandbox]),
            &catalog,
        )
        .unwrap();
        let channels = doc["channels"].as_object().unwrap();
        // Every schema's topic plus the quarantine topic, per prefix.
        assert_eq!(channels.len(), 2 * (catalog.entries().len() + 1));
        assert_eq!(doc["operations"].as_object().unwrap().len(), channels.len());
        let cases = &channels["riskos.create.cases"];
        let binding = &cases["bindings"]["kafka"];
        assert_eq!(binding["partitions"], 6);
        assert_eq!(binding["replicas"], 3);
        assert_eq!(
            binding["topicConfiguration"]["cleanup.policy"],
            json!(["compact"])
        );
        let message = &cases["messages"]["riskos.events.CreateCases"];
        assert_eq!(
            message["headers"]["properties"]["event_type"]["const"],
            "create:cases"
        );
        assert!(!message["x-riskos-protected"]
            .as_object()
            .unwrap()
            .is_empty());
        let quarantine = &channels["riskos.sandbox.quarantine"]["bindings"]["kafka"];
        assert_eq!(
            quarantine["topicConfiguration"]["cleanup.policy"],
            json!(["delete"])
        );
        assert_eq!(quarantine["topicConfiguration"]["retention.ms"], -1);
        assert!(channels.contains_key("riskos.sandbox.unrecognized"));
        // No bootstrap servers: the placeholder host.
        assert_eq!(doc["servers"]["kafka"]["host"], PLACEHOLDER_HOST);
    }

    #[test]
    fn the_partition_rule_is_read_from_the_schema_text() {
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/create.cases.avsc"),
        )
        .unwrap();
        let mut avsc: Json = serde_json::from_str(&text).unwrap();
        avsc[PARTITION_BY_ATTRIBUTE] = json!("data.case_token");
        let entry = SchemaEntry::parse(std::path::Path::new("create.cases.avsc"), avsc.to_string())
            .unwrap();
        let (channel, _) = event_channel(
            &config(vec![EndpointConfig::new("riskos")]),
            "riskos.create.cases",
            &entry,
            &[&EndpointConfig::new("riskos")],
            1,
        )
        .unwrap();
        let message = &channel["messages"]["riskos.events.CreateCases"];
        assert_eq!(message["x-riskos-partition-by"], "data.case_token");
        assert!(channel["description"]
            .as_str()
            .unwrap()
            .contains("Partitioned by `data.case_token`"));
    }

    #[test]
    fn no_endpoint_is_an_error() {
        let err = document(&config(Vec::new()), &catalog()).unwrap_err();
        assert!(err.to_string().contains("endpoints"), "{err}");
    }
}
