//! `riskos-connector tail`: prints records of topics as JSON lines, decoding either encoding
//! (quarantined bodies print as text).

use std::io::Write;
use std::time::Duration;

use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::{json, Value};

use super::reader::{Start, TopicReader};
use crate::pipeline::protect::{self, FieldPath, Keyring, Unopened, RAW_PATH};
use crate::pipeline::schema::decode::Decoder;
use crate::pipeline::schema::{Catalog, Registry};
use crate::wiring::config::Config;

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
    /// A value that stays closed is listed in the line's `unopened` (path and why: a key not
    /// held, another key under a held id, a box that does not open here) and on stderr.
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
/// value, bound to the path `raw`) or the fields of a decoded record. Values that stay closed
/// are listed under `unopened` (and on stderr), never passed over in silence.
pub fn reveal(keys: &Keyring, line: &mut Value) {
    let topic = line["topic"].as_str().unwrap_or_default().to_string();
    let key = line["key"].as_str().unwrap_or_default().to_string();
    let value = &mut line["value"];
    let unopened = match value {
        Value::String(stored) if protect::keys::is_encrypted(stored) => {
            match keys.decrypt(stored, &topic, &key, &FieldPath::of(RAW_PATH)) {
                Ok(body) => {
                    *value = Value::String(String::from_utf8_lossy(&body).into_owned());
                    Vec::new()
                }
                Err(error) => vec![Unopened {
                    path: RAW_PATH.to_string(),
                    error,
                }],
            }
        }
        Value::String(_) => Vec::new(),
        _ => protect::reveal(keys, value, &topic, &key).1,
    };
    if unopened.is_empty() {
        return;
    }
    let at = format!(
        "topic `{topic}` partition {} offset {}",
        line["partition"], line["offset"]
    );
    line["unopened"] = unopened
        .iter()
        .map(|u| {
            eprintln!(
                "tail --reveal: `{}` at {at} stays closed: {}",
                u.path, u.error
            );
            json!({"path": u.path, "error": u.error.to_string()})
        })
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// Another key under the id `k1`: a key regenerated under an old id.
    const K1_AGAIN: &str = "k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn line(value: Value) -> Value {
        json!({"topic": "riskos.create.cases", "partition": 0, "offset": 5, "key": "ev-1",
               "headers": {}, "value": value})
    }

    #[test]
    fn reveal_opens_fields_and_bodies_and_lists_what_stays_closed() {
        let keys = Keyring::from_lines(&[], &[K1]).unwrap();
        let email = keys.encrypt(
            b"\"alice@example.com\"",
            "riskos.create.cases",
            "ev-1",
            "data.email",
        );
        let raw = keys.encrypt(b"{\"a\":1}", "riskos.create.cases", "ev-1", RAW_PATH);
        let mut record = line(json!({"data": {"email": email}, "raw": raw}));
        reveal(&keys, &mut record);
        assert_eq!(record["value"]["data"]["email"], "alice@example.com");
        assert_eq!(record["value"]["raw"], "{\"a\":1}");
        assert!(record.get("unopened").is_none(), "{record}");

        // Under a key regenerated with the same id: listed with the reason, not passed over.
        let again = Keyring::from_lines(&[], &[K1_AGAIN]).unwrap();
        let mut record = line(json!({"data": {"email": email}, "raw": raw}));
        reveal(&again, &mut record);
        assert_eq!(record["value"]["data"]["email"], email.as_str());
        let unopened = record["unopened"].as_array().unwrap();
        let paths: Vec<&str> = unopened
            .iter()
            .map(|u| u["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["data.email", "raw"]);
        assert!(unopened[0]["error"]
            .as_str()
            .unwrap()
            .contains("fingerprint"));

        // A quarantined body (the value is the box itself), under a key not held at all.
        let other = Keyring::from_lines(&[], &[K1_AGAIN.replacen("k1", "k9", 1).as_str()]).unwrap();
        let mut quarantined = line(json!(raw));
        reveal(&other, &mut quarantined);
        assert_eq!(quarantined["value"], raw.as_str());
        assert_eq!(quarantined["unopened"][0]["path"], "raw");
        assert!(quarantined["unopened"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not configured"));
    }
}
