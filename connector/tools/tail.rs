//! `riskos-connector tail`: prints records of topics as JSON lines, decoding either encoding
//! (quarantined bodies print as text).

use std::io::Write;
use std::time::Duration;

use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::{json, Value};

use super::reader::{Start, TopicReader};
use crate::config::Config;
use crate::protect::{self, associated_data, Keyring, RAW_PATH};
use crate::schema::decode::Decoder;
use crate::schema::{Catalog, Registry};

/// What to print.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Topics; empty means every topic starting with the endpoint's topic prefix (every
    /// endpoint's prefix when no endpoint is named).
    pub topics: Vec<String>,
    /// The endpoint whose topics to read when `topics` is empty.
    pub endpoint: Option<String>,
    /// Start at the oldest record instead of only new ones.
    pub from_beginning: bool,
    /// Stop after this many records.
    pub max: Option<u64>,
    /// Stop once caught up with the records that existed at start.
    pub exit_at_end: bool,
    /// Open encrypted fields and bodies with `[protection]`'s keys (hash tokens stay tokens).
    pub reveal: bool,
}

/// Runs until `max` records, the end (with `exit_at_end`), or forever. Returns records printed.
pub async fn run(
    config: &Config,
    options: &TailOptions,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let topics = if options.topics.is_empty() {
        let prefixes = match &options.endpoint {
            Some(name) => vec![config.endpoint(Some(name))?.topic_prefix.as_str()],
            None => config.topic_prefixes(),
        };
        let mut topics = Vec::new();
        for prefix in prefixes {
            // `riskos.` must not take `riskos.sandbox.`'s topics: a topic belongs to the
            // longest endpoint prefix it starts with.
            let longer: Vec<&str> = config
                .topic_prefixes()
                .into_iter()
                .filter(|other| other.len() > prefix.len() && other.starts_with(prefix))
                .collect();
            for topic in TopicReader::topics_with_prefix(config, prefix)? {
                let owned = !longer.iter().any(|other| topic.starts_with(other));
                if owned && !topics.contains(&topic) {
                    topics.push(topic);
                }
            }
        }
        topics
    } else {
        options.topics.clone()
    };
    let catalog = Catalog::load(&config.schemas.dir)?;
    let registry = if config.schema_registry.url.trim().is_empty() {
        None
    } else {
        Some(Registry::new(&config.schema_registry)?)
    };
    let mut decoder = Decoder::new(&catalog, registry);
    let keys = if options.reveal {
        Some(Keyring::from_config(&config.protection).map_err(|e| e.within("protection"))?)
    } else {
        None
    };
    let start = if options.from_beginning {
        Start::Beginning
    } else {
        Start::End
    };
    let mut reader = TopicReader::new(config, &topics, start)?;
    let mut printed = 0u64;
    loop {
        if options.max.is_some_and(|max| printed >= max)
            || (options.exit_at_end && reader.caught_up())
        {
            return Ok(printed);
        }
        let Some(message) =
            tokio::task::block_in_place(|| reader.poll(Duration::from_millis(500)))?
        else {
            continue;
        };
        let mut line = render(&message, &mut decoder).await;
        if let Some(keys) = &keys {
            reveal(keys, &mut line);
        }
        writeln!(out, "{line}")?;
        out.flush()?;
        printed += 1;
    }
}

/// Opens the encrypted values of a rendered record in place: a quarantined body (a string
/// value, bound to the path `raw`) or the fields of a decoded record.
pub fn reveal(keys: &Keyring, line: &mut Value) {
    let topic = line["topic"].as_str().unwrap_or_default().to_string();
    let key = line["key"].as_str().unwrap_or_default().to_string();
    let value = &mut line["value"];
    if let Value::String(sealed) = value {
        let aad = associated_data(&topic, &key, RAW_PATH);
        if let Ok(body) = keys.decrypt(sealed, &aad) {
            *value = Value::String(String::from_utf8_lossy(&body).into_owned());
        }
        return;
    }
    protect::reveal(keys, value, &topic, &key);
}

/// One record as a JSON line: topic, partition, offset, key, headers, decoded value.
pub async fn render(message: &OwnedMessage, decoder: &mut Decoder) -> Value {
    let headers: serde_json::Map<String, Value> = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| {
                    let value = header
                        .value
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    (header.key.to_string(), Value::String(value.into_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let value = match decoder.decode(message.payload().unwrap_or_default()).await {
        Ok(value) => value,
        Err(error) => json!({"decode_error": error.to_string()}),
    };
    json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().map(String::from_utf8_lossy),
        "headers": headers,
        "value": value,
    })
}
