//! Interop proof: clients we did not write read every record we produced, with every field
//! equal to the posted JSON.
//!
//! - Python confluent-kafka's AvroDeserializer (`tests/interop/decode_topics.py`).
//! - Java: the Apache Kafka client and Apache Avro (`tests/interop/java`, run by
//!   `scripts/java-interop.sh`), what Flink, Spark and Kafka Streams applications run on, in
//!   both framings: Confluent (writer schema from the registry by id) and single-object
//!   (Avro's own `BinaryMessageDecoder` over the `.avsc` files).
//! - Apache Kafka's console consumer, for keys and headers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::decode::assert_data_matches;
use support::{fixtures, post_all_fixtures, python_decode, run_decoder, Stack};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The top-level fields the two envelopes define; any other goes to the `extra` JSON text.
const ENVELOPE_FIELDS: [&str; 8] = [
    "event_id",
    "event_at",
    "event_type",
    "data",
    "request_token",
    "timestamp",
    "type",
    "description",
];

fn event_type(posted: &Value) -> &str {
    posted
        .get("event_type")
        .or(posted.get("type"))
        .and_then(Value::as_str)
        .unwrap()
}

/// Asserts that `decoded` (JSON lines as `decode_topics.py` prints them) holds exactly one record
/// per fixture, each with key, headers and every value field equal to what was posted; returns
/// how many fields were compared.
fn assert_every_fixture(stack: &Stack, decoded: &[Value], decoder: &str) -> usize {
    let fixtures = fixtures::all();
    assert_eq!(decoded.len(), fixtures.len(), "{decoder}: records decoded");
    let mut compared = 0;
    for (name, body) in &fixtures {
        let raw = String::from_utf8(body.clone()).unwrap();
        let posted: Value = serde_json::from_slice(body).unwrap();
        let record = decoded
            .iter()
            .find(|r| r["value"]["raw"] == raw)
            .unwrap_or_else(|| panic!("{decoder}: {name} not decoded"));
        let context = format!("{decoder}: {name}");
        let value = &record["value"];
        let event_type = event_type(&posted);
        let topic = stack.app.topic_of(&posted);
        let (id, envelope, occurred_at) = match posted.get("event_id") {
            Some(id) => {
                let at = posted["event_at"].as_str().unwrap();
                let at =
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .unwrap();
                (id, "EVENT", (at.unix_timestamp_nanos() / 1_000_000) as i64)
            }
            None => (
                &posted["request_token"],
                "REQUEST_TOKEN",
                posted["timestamp"].as_i64().unwrap(),
            ),
        };
        let extra: serde_json::Map<String, Value> = posted
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !ENVELOPE_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        assert_eq!(record["topic"], topic.as_str(), "{context}: topic");
        assert_eq!(&record["key"], id, "{context}: key");
        assert_eq!(
            record["headers"]["event_type"], event_type,
            "{context}: header"
        );
        assert_eq!(record["headers"]["envelope"], envelope, "{context}: header");
        assert_eq!(&value["event_id"], id, "{context}: event_id");
        assert_eq!(value["event_type"], event_type, "{context}: event_type");
        assert_eq!(value["envelope"], envelope, "{context}: envelope");
        assert_eq!(value["occurred_at"], occurred_at, "{context}: occurred_at");
        assert!(value["received_at"].is_i64(), "{context}: received_at");
        let description = posted.get("description").cloned().unwrap_or(Value::Null);
        assert_eq!(value["description"], description, "{context}: description");
        match value["extra"].as_str() {
            None => assert!(extra.is_empty(), "{context}: extra missing"),
            Some(text) => assert_eq!(
                serde_json::from_str::<Value>(text).unwrap(),
                Value::Object(extra),
                "{context}: extra"
            ),
        }
        assert_nothing_dropped(&value["data"], &posted["data"], &format!("{context}: data"));
        compared += 8 + assert_data_matches(&value["data"], &posted["data"], &context);
    }
    compared
}

/// Asserts that every field of the posted `data`, at any depth, is in the decoded `data`
/// (`assert_data_matches` compares the decoded fields; this catches a field left out).
fn assert_nothing_dropped(decoded: &Value, posted: &Value, context: &str) {
    match (decoded, posted) {
        (Value::Object(decoded), Value::Object(posted)) => {
            for (key, sent) in posted {
                let field = format!("{context}.{key}");
                let Some(value) = decoded.get(key) else {
                    panic!("{field}: posted but not decoded");
                };
                assert_nothing_dropped(value, sent, &field);
            }
        }
        (Value::Array(decoded), Value::Array(posted)) => {
            for (i, (item, sent)) in decoded.iter().zip(posted).enumerate() {
                assert_nothing_dropped(item, sent, &format!("{context}[{i}]"));
            }
        }
        // A scalar, or JSON text standing for an object or array (checked by
        // assert_data_matches).
        _ => {}
    }
}

#[tokio::test]
async fn confluent_kafka_python_decodes_every_fixture() {
    let stack = Stack::start().await;
    let topics = post_all_fixtures(&stack.app).await;

    let started = Instant::now();
    let decoded = python_decode(
        &stack.broker.bootstrap(),
        ["--registry", &stack.registry.url],
        &topics,
    )
    .await;
    let elapsed = started.elapsed();
    let fields = assert_every_fixture(&stack, &decoded, "python");
    summary(
        "python decoder (confluent-kafka, Confluent framing)",
        &decoded,
        fields,
        elapsed,
    );
}

#[tokio::test]
async fn java_avro_decodes_every_fixture_through_the_registry() {
    let stack = Stack::start().await;
    let topics = post_all_fixtures(&stack.app).await;

    let started = Instant::now();
    let decoded = java_decode(
        &stack.broker.bootstrap(),
        ["--registry", &stack.registry.url],
        &topics,
    )
    .await;
    let elapsed = started.elapsed();
    let fields = assert_every_fixture(&stack, &decoded, "java");
    summary(
        "java decoder (kafka-clients + Avro GenericDatumReader, Confluent framing)",
        &decoded,
        fields,
        elapsed,
    );
}

#[tokio::test]
async fn java_avro_decodes_every_fixture_single_object() {
    let stack = Stack::start_with(|config| {
        config.schemas.encoding = Some(riskos_connector::wiring::config::Encoding::SingleObject);
        config.schema_registry.url = String::new();
    })
    .await;
    let topics = post_all_fixtures(&stack.app).await;

    let started = Instant::now();
    let schemas = format!("{ROOT}/schemas");
    let decoded = java_decode(&stack.broker.bootstrap(), ["--schemas", &schemas], &topics).await;
    let elapsed = started.elapsed();
    let fields = assert_every_fixture(&stack, &decoded, "java single-object");
    summary(
        "java decoder (kafka-clients + Avro BinaryMessageDecoder, single-object)",
        &decoded,
        fields,
        elapsed,
    );
}

/// Runs `scripts/java-interop.sh` (which builds the Java decoder first when its sources
/// changed) with `framing` (`--registry URL` or `--schemas DIR`) over `topics`; returns its
/// JSON lines.
async fn java_decode(bootstrap: &str, framing: [&str; 2], topics: &BTreeSet<String>) -> Vec<Value> {
    let command = tokio::process::Command::new(format!("{ROOT}/scripts/java-interop.sh"));
    run_decoder(command, bootstrap, framing, topics).await
}

/// The one line a `--nocapture` run shows for a decoder that passed.
fn summary(decoder: &str, decoded: &[Value], fields: usize, elapsed: Duration) {
    println!(
        "{decoder}: {}/{} records, {fields} fields, every field equal ({:.1} s)",
        decoded.len(),
        fixtures::all().len(),
        elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn kafka_console_consumer_prints_every_key_and_event_type() {
    let stack = Stack::start().await;
    let topics = post_all_fixtures(&stack.app).await;
    let fixtures = fixtures::all();

    // One consumer over all the topics (a regex of their exact names), values left out: they
    // are Avro binary.
    let include = topics
        .iter()
        .map(|t| regex_quote(t))
        .collect::<Vec<_>>()
        .join("|");
    let count = fixtures.len().to_string();
    let started = Instant::now();
    let output = tokio::process::Command::new(format!("{ROOT}/scripts/kafka.sh"))
        .args(["console-consumer", "--bootstrap-server"])
        .arg(stack.broker.bootstrap())
        .args(["--include", &include, "--from-beginning"])
        .args(["--max-messages", &count, "--timeout-ms", "20000"])
        .args(["--formatter-property", "print.key=true"])
        .args(["--formatter-property", "print.headers=true"])
        .args(["--formatter-property", "print.value=false"])
        .args(["--formatter-property", "key.separator=\t"])
        .args(["--formatter-property", "headers.separator=,"])
        .output()
        .await
        .expect("scripts/kafka.sh console-consumer runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "console consumer failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // Each line: `name:value,name:value<TAB>key`.
    let printed: Vec<(BTreeMap<&str, &str>, &str)> = stdout
        .lines()
        .map(|line| {
            let (headers, key) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("no key separator: {line:?}"));
            let headers = headers
                .split(',')
                .map(|h| h.split_once(':').unwrap_or_else(|| panic!("header {h:?}")))
                .collect();
            (headers, key)
        })
        .collect();
    assert_eq!(printed.len(), fixtures.len(), "records printed:\n{stdout}");
    let mut expected: Vec<(String, String)> = fixtures
        .iter()
        .map(|(_, body)| {
            let posted: Value = serde_json::from_slice(body).unwrap();
            let id = posted.get("event_id").or(posted.get("request_token"));
            let id = id.and_then(Value::as_str).unwrap();
            (id.to_string(), event_type(&posted).to_string())
        })
        .collect();
    let mut seen: Vec<(String, String)> = printed
        .iter()
        .map(|(headers, key)| {
            let event_type = headers.get("event_type").copied().unwrap_or_default();
            (key.to_string(), event_type.to_string())
        })
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "(key, event_type header) pairs:\n{stdout}");
    println!(
        "kafka console consumer: {}/{} records, every key with its event_type header ({:.1} s)",
        printed.len(),
        fixtures.len(),
        started.elapsed().as_secs_f64()
    );
}

/// `text` as a Java regex matching only itself.
fn regex_quote(text: &str) -> String {
    format!("\\Q{text}\\E")
}
