//! The CloudEvents Kafka protocol binding, binary mode (`endpoints.cloudevents`), read back by a
//! client we did not write: the CloudEvents Python SDK's `from_binary` over what
//! confluent-kafka consumed (`tests/interop/cloudevents_read.py`). Every fixture is an event
//! whose id is the event id and the Kafka key, whose type, source and time are the event's and
//! the endpoint's, and whose data is the record's value byte for byte; an endpoint without the
//! flag, and quarantined records, carry no CloudEvents headers.

use std::collections::BTreeSet;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use riskos_connector::wiring::config::{Encoding, EndpointConfig};

use support::app::unique_topic_prefix;
use support::{fixtures, interop_python, run_decoder, Stack};

/// Reads `topics` with `tests/interop/cloudevents_read.py`; one JSON line per record.
async fn read_cloudevents(bootstrap: &str, topics: &BTreeSet<String>) -> Vec<Value> {
    let mut command = tokio::process::Command::new(interop_python());
    command.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/cloudevents_read.py"
    ));
    run_decoder(
        command,
        bootstrap,
        ["--group", "riskos-cloudevents-test"],
        topics,
    )
    .await
}

/// A posted fixture as the connector reads it: event id, event type, event time (epoch ms).
fn event_of(posted: &Value) -> (String, String, i64) {
    match posted.get("event_id") {
        Some(id) => {
            let at = OffsetDateTime::parse(posted["event_at"].as_str().unwrap(), &Rfc3339).unwrap();
            (
                id.as_str().unwrap().to_string(),
                posted["event_type"].as_str().unwrap().to_string(),
                (at.unix_timestamp_nanos() / 1_000_000) as i64,
            )
        }
        None => (
            posted["request_token"].as_str().unwrap().to_string(),
            posted["type"].as_str().unwrap().to_string(),
            posted["timestamp"].as_i64().unwrap(),
        ),
    }
}

/// POSTs every fixture to `path` (each answered 200); returns the topics, under `prefix`,
/// they went to.
async fn post_fixtures_to(stack: &Stack, path: &str, prefix: &str) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    for (name, body) in fixtures::all() {
        let response = stack.app.post_json(path, body.clone()).await;
        assert_eq!(response.status(), 200, "{name} to {path}");
        let posted: Value = serde_json::from_slice(&body).unwrap();
        let (_, event_type, _) = event_of(&posted);
        topics.insert(riskos_connector::pipeline::route::topic_name(
            prefix,
            &event_type,
        ));
    }
    topics
}

fn has_cloudevents_headers(record: &Value) -> bool {
    record["headers"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("ce_") || k == "content-type")
}

/// Asserts that `records` are exactly the fixtures, each a CloudEvent with the endpoint's
/// source and `content_type` whose data is the record's value (which begins with `magic`,
/// the framing the content type names).
fn assert_every_fixture_is_a_cloudevent(
    records: &[Value],
    endpoint: &str,
    prefix: &str,
    content_type: &str,
    magic: &str,
) {
    let fixtures = fixtures::all();
    assert_eq!(records.len(), fixtures.len(), "records read");
    for (name, body) in &fixtures {
        let posted: Value = serde_json::from_slice(body).unwrap();
        let (id, event_type, occurred_at_ms) = event_of(&posted);
        // Two fixtures share a request token: one record per key and topic.
        let topic = riskos_connector::pipeline::route::topic_name(prefix, &event_type);
        let record = records
            .iter()
            .find(|r| r["key"] == id.as_str() && r["topic"] == topic.as_str())
            .unwrap_or_else(|| panic!("{name}: no record keyed {id} in {topic}"));
        assert_eq!(record["duplicate_headers"], Value::Array(vec![]), "{name}");
        let event = &record["cloudevent"];
        assert!(
            event.is_object(),
            "{name}: not read as a CloudEvent: {record}"
        );
        assert_eq!(event["specversion"], "1.0", "{name}: specversion");
        assert_eq!(event["id"], id.as_str(), "{name}: id is the event id");
        assert_eq!(event["id"], record["key"], "{name}: id is the Kafka key");
        assert_eq!(event["partitionkey"], record["key"], "{name}: partitionkey");
        assert_eq!(event["type"], event_type.as_str(), "{name}: type");
        assert_eq!(record["headers"]["event_type"], event["type"], "{name}");
        assert_eq!(
            event["source"],
            format!("/riskos-connector/endpoints/{endpoint}"),
            "{name}: source"
        );
        assert_eq!(event["datacontenttype"], content_type, "{name}");
        assert_eq!(record["headers"]["content-type"], content_type, "{name}");
        // The SDK parsed `time`; it is the event's own time, to the millisecond, in UTC.
        let time = OffsetDateTime::parse(event["time"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(
            time.unix_timestamp_nanos(),
            i128::from(occurred_at_ms) * 1_000_000,
            "{name}: time {}",
            event["time"]
        );
        let header = record["headers"]["ce_time"].as_str().unwrap();
        assert!(
            header.ends_with('Z') && header.len() == "2024-05-01T12:34:56.789Z".len(),
            "{name}: ce_time {header}"
        );
        assert_eq!(
            event["data_hex"], record["value_hex"],
            "{name}: data is the value"
        );
        assert!(
            record["value_hex"].as_str().unwrap().starts_with(magic),
            "{name}: the value's framing"
        );
        // The connector's own headers are still there.
        assert_eq!(record["headers"]["endpoint"], endpoint, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudevents_sdk_reads_every_record_of_an_opted_in_endpoint() {
    // `riskos` opts in; `plain`, on topics of its own, does not.
    let plain_prefix = unique_topic_prefix();
    let stack = Stack::start_with(|config| {
        config.endpoints[0].cloudevents = true;
        let mut plain = EndpointConfig::new("plain");
        plain.topic_prefix = plain_prefix.clone();
        plain.protect_fields = false;
        plain.raw = riskos_connector::pipeline::protect::RawPolicy::Keep;
        plain.auth.mode = Some(riskos_connector::ingress::auth::AuthMode::None);
        config.endpoints.push(plain);
    })
    .await;
    assert_eq!(stack.app.config.encoding(), Encoding::Confluent);
    let prefix = stack.app.config.endpoints[0].topic_prefix.clone();
    let topics = post_fixtures_to(&stack, "/webhooks/riskos", &prefix).await;
    let plain_topics = post_fixtures_to(&stack, "/webhooks/plain", &plain_prefix).await;
    // A body that is not an event: quarantined, and no CloudEvent.
    let response = stack.app.post_webhook(&b"{not json"[..]).await;
    assert_eq!(response.status(), 400);

    let bootstrap = stack.broker.bootstrap();
    let records = read_cloudevents(&bootstrap, &topics).await;
    assert_every_fixture_is_a_cloudevent(
        &records,
        "riskos",
        &prefix,
        "application/avro; encoding=confluent",
        // Confluent wire format: magic byte 0, then the registry's schema id.
        "00",
    );

    let plain = read_cloudevents(&bootstrap, &plain_topics).await;
    assert_eq!(plain.len(), fixtures::all().len());
    for record in &plain {
        assert!(!has_cloudevents_headers(record), "not opted in: {record}");
        assert!(record["cloudevent"].is_null());
        assert_eq!(record["headers"]["endpoint"], "plain");
    }

    let quarantine = BTreeSet::from([stack.app.topic("quarantine")]);
    let quarantined = read_cloudevents(&bootstrap, &quarantine).await;
    assert_eq!(quarantined.len(), 1);
    assert!(
        !has_cloudevents_headers(&quarantined[0]),
        "quarantined: {}",
        quarantined[0]
    );
    assert_eq!(
        quarantined[0]["headers"]["quarantine_reason"],
        "invalid_json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_content_type_names_single_object_framing() {
    let stack = Stack::start_with(|config| {
        config.endpoints[0].cloudevents = true;
        config.schemas.encoding = Some(Encoding::SingleObject);
        config.schema_registry.url = String::new();
    })
    .await;
    let prefix = stack.app.config.endpoints[0].topic_prefix.clone();
    let topics = post_fixtures_to(&stack, "/webhooks/riskos", &prefix).await;
    let records = read_cloudevents(&stack.broker.bootstrap(), &topics).await;
    assert_every_fixture_is_a_cloudevent(
        &records,
        "riskos",
        &prefix,
        "application/avro; encoding=single-object",
        // Avro single-object encoding: C3 01, then the schema's fingerprint.
        "c301",
    );
}
