//! Issue 11's data-loss defects, against a real broker: every body under
//! `http.max_body_bytes` is stored (on its topic, or raw in quarantine), never answered 413;
//! bodies the connector must refuse are refused with the right status and the reason logged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use riskos_connector::delivery::KafkaStore;
use riskos_connector::http::guard::Ingress;
use riskos_connector::http::tls::PeerAddr;
use riskos_connector::http::{self, AppState};
use riskos_connector::kafka::Producer;
use riskos_connector::record_size;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::helpers::decode::decode;
use crate::helpers::kafka::read_all;
use crate::helpers::{fixtures, logs, schema_copy, test_config, Broker, RegistryDouble, Stack};

const EVALUATION_TOPIC: &str = "riskos.evaluation_completed";

/// The evaluation fixture grown to exactly `size` bytes with a large `data_enrichments`, as
/// RiskOS sends when it includes the whole evaluation.
fn evaluation_of_size(event_id: &str, size: usize) -> Vec<u8> {
    let (_, fixture) = fixtures::all()
        .into_iter()
        .find(|(n, _)| n == "riskos.evaluation_completed.docv.json")
        .unwrap();
    let mut body: Value = serde_json::from_slice(&fixture).unwrap();
    body["event_id"] = json!(event_id);
    body["data"]["data_enrichments"] = json!([{"response": {"blob": ""}}]);
    let without = serde_json::to_vec(&body).unwrap().len();
    assert!(without < size);
    body["data"]["data_enrichments"][0]["response"]["blob"] = json!("x".repeat(size - without));
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(bytes.len(), size);
    bytes
}

async fn a_body_just_under_the_limit_is_stored_on_its_topic(max_body_bytes: usize) {
    let stack = Stack::start_with(|c| c.http.max_body_bytes = max_body_bytes).await;
    let body = evaluation_of_size("large-1", max_body_bytes - 16);
    let response = stack.app.post_webhook(body.clone()).await;
    let status = response.status();
    let reply: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "accepted", "{reply}");
    let records = read_all(&stack.broker.bootstrap(), EVALUATION_TOPIC);
    assert_eq!(records.len(), 1);
    let value = decode(&stack.registry.url, &records[0].payload).await;
    assert_eq!(value["raw"].as_str().unwrap().as_bytes(), &body[..]);
    assert!(records[0].payload.len() > 2 * (max_body_bytes - 16) - 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_just_under_the_default_limit_is_stored_on_its_topic() {
    a_body_just_under_the_limit_is_stored_on_its_topic(1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_just_under_a_4_mib_limit_is_stored_on_its_topic() {
    a_body_just_under_the_limit_is_stored_on_its_topic(4 << 20).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datum_larger_than_the_connector_produces_is_quarantined_raw_and_answered_200() {
    let schemas = schemas_with_an_expanding_type();
    let dir = schemas.path().to_path_buf();
    let stack = Stack::start_with(|c| c.schemas.dir = dir).await;
    let limit = stack.app.config.http.max_body_bytes;
    let count = (limit - 200) / 2;
    let body = json!({
        "event_id": "readings-1", "event_type": "readings",
        "event_at": "2025-08-27T16:16:23Z",
        "data": {"values": vec![1; count]},
    })
    .to_string();
    assert!(body.len() <= limit);
    let response = stack.app.post_webhook(body.clone()).await;
    let status = response.status();
    let reply: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "quarantined");
    assert_eq!(reply["event_id"], "readings-1");
    let quarantined = read_all(&stack.broker.bootstrap(), "riskos.quarantine");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body.as_bytes());
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("record_too_large")
    );
    assert_eq!(quarantined[0].key.as_deref(), Some("readings-1"));
    assert!(read_all(&stack.broker.bootstrap(), "riskos.readings").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_kafka_refuses_as_too_large_is_quarantined_raw_and_answered_200() {
    // A topic managed elsewhere with a smaller limit: here the producer's own limit, set below
    // the record (the body twice) and above the body, makes Kafka's client refuse it exactly
    // as a broker's `max.message.bytes` would (MSG_SIZE_TOO_LARGE).
    let broker = Broker::start_memory().await;
    let registry = RegistryDouble::start().await;
    let config = test_config(&broker.bootstrap(), &registry.url);
    let registry_client = riskos_connector::topology::registry(&config).unwrap();
    let routes = riskos_connector::topology::resolve_routes(&config, registry_client.as_ref())
        .await
        .unwrap();
    riskos_connector::topology::ensure_topics(&config, &routes)
        .await
        .unwrap();
    let body = evaluation_of_size("refused-1", 300_000);
    let small = BTreeMap::from([("batch.size".to_string(), "400000".to_string())]);
    let producer =
        Producer::new(&broker.bootstrap(), &small, Duration::from_secs(3), 450_000).unwrap();
    let store = Arc::new(KafkaStore::new(producer, None));
    let pipeline = riskos_connector::topology::pipeline_over(&config, routes, store);
    let ingress = Ingress::from_config(&config).await.unwrap();
    let state = AppState::new(pipeline, config.http.max_body_bytes, ingress, None);
    let request = axum::http::Request::post(&config.http.path)
        .header("content-type", "application/json")
        .extension(ConnectInfo(PeerAddr("127.0.0.1:9".parse().unwrap())))
        .body(Body::from(body.clone()))
        .unwrap();
    let response = http::router(state, &config.http.path)
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let reply: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "quarantined", "{reply}");
    let quarantined = read_all(&broker.bootstrap(), "riskos.quarantine");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body);
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("record_too_large")
    );
    assert!(read_all(&broker.bootstrap(), EVALUATION_TOPIC).is_empty());
}

#[tokio::test]
async fn a_charset_other_than_utf8_is_415_and_nothing_is_stored() {
    let (_logs_guard, logs) = logs::capture();
    let stack = Stack::start().await;
    let (_, body) = fixtures::all().into_iter().next().unwrap();
    for content_type in [
        "application/json; charset=latin1",
        "application/json; charset=utf-16",
    ] {
        let response = stack
            .app
            .client
            .post(stack.app.url("/webhooks/riskos"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
    }
    let rejected = logs.with_message("webhook rejected");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected
        .iter()
        .all(|l| l["kind"] == "unsupported_media_type"));
    assert!(read_all(
        &stack.broker.bootstrap(),
        "riskos.create.bankaccountsnapshots.status_description"
    )
    .is_empty());
    assert!(read_all(&stack.broker.bootstrap(), "riskos.quarantine").is_empty());
    // UTF-8 said explicitly is fine.
    let response = stack
        .app
        .client
        .post(stack.app.url("/webhooks/riskos"))
        .header("content-type", "application/json; charset=UTF-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_body_nested_too_deep_is_quarantined_raw_and_answered_400() {
    let (_logs_guard, logs) = logs::capture();
    let stack = Stack::start().await;
    let depth = stack.app.config.http.max_json_depth + 1;
    let body = format!(
        r#"{{"event_id":"deep-1","data":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let response = stack.app.post_webhook(body.clone()).await;
    assert_eq!(response.status(), 400);
    let quarantined = read_all(&stack.broker.bootstrap(), "riskos.quarantine");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body.as_bytes());
    assert_eq!(quarantined[0].header("quarantine_reason"), Some("too_deep"));
    let rejected = logs.with_message("webhook rejected");
    assert!(
        rejected.iter().any(|l| l["kind"] == "too_deep"),
        "{rejected:?}"
    );
}
