//! Issue 11's refusals and quarantines that need no broker: a charset other than UTF-8 is 415, a
//! body nested too deep is quarantined raw and 400, a datum larger than the connector produces
//! is quarantined raw and 200, a producer limit that cannot take the body twice stops start-up.
//! The bodies just under the limit and Kafka's own too-large refusal need a real producer:
//! `tests/kafka/hardening.rs`.

use riskos_connector::delivery::record_size;
use serde_json::{json, Value};

use support::{fixtures, logs, post_as, schema_copy, test_config, Connector, Framing};

/// A copy of the shipped schemas plus one whose typed form is 4× its JSON (`[1,1,…]` as
/// doubles).
fn schemas_with_an_expanding_type() -> tempfile::TempDir {
    let dir = schema_copy();
    let mut schema: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("update.cases.status.avsc")).unwrap(),
    )
    .unwrap();
    schema["name"] = json!("Readings");
    schema["riskos.event_type"] = json!("readings");
    // Its data has no case token to partition by.
    schema
        .as_object_mut()
        .unwrap()
        .remove("riskos.partition_by");
    let fields = schema["fields"].as_array_mut().unwrap();
    let data = fields.iter_mut().find(|f| f["name"] == "data").unwrap();
    data["type"] = json!({
        "type": "record", "name": "ReadingsData",
        "fields": [{"name": "values", "type": {"type": "array", "items": "double"}, "default": []}]
    });
    std::fs::write(
        dir.path().join("readings.avsc"),
        serde_json::to_vec_pretty(&schema).unwrap(),
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn a_datum_larger_than_the_connector_produces_is_quarantined_raw_and_answered_200() {
    let schemas = schemas_with_an_expanding_type();
    let dir = schemas.path().to_path_buf();
    let connector = Connector::start_with(|c| c.schemas.dir = dir).await;
    let limit = connector.config.http.max_body_bytes;
    let count = (limit - 200) / 2;
    let body = json!({
        "event_id": "readings-1", "event_type": "readings",
        "event_at": "2025-08-27T16:16:23Z",
        "data": {"values": vec![1; count]},
    })
    .to_string();
    assert!(body.len() <= limit);
    let reply = connector.post_json(body.clone()).await;
    let status = reply.status;
    let reply = reply.json();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "quarantined");
    assert_eq!(reply["event_id"], "readings-1");
    let quarantined = connector.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].value, body.as_bytes());
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("record_too_large")
    );
    assert_eq!(quarantined[0].key.as_deref(), Some("readings-1"));
    assert!(connector.on_topic("riskos.readings").is_empty());
}

#[tokio::test]
async fn a_charset_other_than_utf8_is_415_and_nothing_is_stored() {
    let (_logs_guard, logs) = logs::capture();
    let connector = Connector::start().await;
    let (_, body) = fixtures::all().into_iter().next().unwrap();
    for content_type in [
        "application/json; charset=latin1",
        "application/json; charset=utf-16",
    ] {
        let reply = post_as(&connector, Some(content_type), Framing::Sized(body.clone())).await;
        assert_eq!(reply.status, 415, "{content_type}");
    }
    let rejected = logs.with_message("webhook rejected");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected
        .iter()
        .all(|l| l["kind"] == "unsupported_media_type"));
    assert!(connector
        .on_topic("riskos.create.bankaccountsnapshots.status_description")
        .is_empty());
    assert!(connector.quarantined().is_empty());
    // UTF-8 said explicitly is fine.
    let reply = post_as(
        &connector,
        Some("application/json; charset=UTF-8"),
        Framing::Sized(body),
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_body_nested_too_deep_is_quarantined_raw_and_answered_400() {
    let (_logs_guard, logs) = logs::capture();
    let connector = Connector::start().await;
    let depth = connector.config.http.max_json_depth + 1;
    let body = format!(
        r#"{{"event_id":"deep-1","data":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let reply = connector.post_json(body.clone()).await;
    assert_eq!(reply.status, 400);
    let quarantined = connector.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].value, body.as_bytes());
    assert_eq!(quarantined[0].header("quarantine_reason"), Some("too_deep"));
    let rejected = logs.with_message("webhook rejected");
    assert!(
        rejected.iter().any(|l| l["kind"] == "too_deep"),
        "{rejected:?}"
    );
}

#[test]
fn a_producer_limit_that_cannot_take_the_body_twice_stops_start_up_naming_the_keys() {
    let mut config = test_config("localhost:9092", "http://localhost:8081");
    config.http.max_body_bytes = 4 << 20;
    config
        .kafka
        .librdkafka
        .insert("message.max.bytes".into(), "1000000".into());
    let message = config.validate().unwrap_err().to_string();
    assert!(
        message.contains("kafka.librdkafka.message.max.bytes"),
        "{message}"
    );
    assert!(message.contains("http.max_body_bytes"), "{message}");
    config.kafka.librdkafka.insert(
        "message_max_bytes".into(),
        record_size::kafka_message_bytes(4 << 20).to_string(),
    );
    config.kafka.librdkafka.remove("message.max.bytes");
    config.validate().unwrap();
}
