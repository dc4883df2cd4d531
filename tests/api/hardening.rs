//! Issue 11's data-loss defects, against a real broker: every body under
//! `http.max_body_bytes` is stored (on its topic, or raw in quarantine), never answered 413.
//! The refusals and quarantines that need no broker (charset, depth, a datum larger than the
//! connector produces) are in `tests/http/hardening.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use riskos_connector::delivery::kafka::Producer;
use riskos_connector::delivery::record_size;
use riskos_connector::delivery::KafkaStore;
use riskos_connector::ingress::http::tls::PeerAddr;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::helpers::decode::decode;
use crate::helpers::kafka::read_all;
use crate::helpers::{fixtures, test_config, Broker, RegistryDouble, Stack};

/// The evaluation topic's name after a connector's topic prefix.
pub(crate) const EVALUATION: &str = "evaluation_completed";

/// The evaluation fixture grown to exactly `size` bytes with a large `data_enrichments`, as
/// RiskOS sends when it includes the whole evaluation. The filler is pseudo-random letters and
/// digits, which the producer's lz4 cannot shrink: a record's size on the broker is then its
/// size as made (a run of one letter would compress under any broker limit).
pub(crate) fn evaluation_of_size(event_id: &str, size: usize) -> Vec<u8> {
    let (_, fixture) = fixtures::all()
        .into_iter()
        .find(|(n, _)| n == "riskos.evaluation_completed.docv.json")
        .unwrap();
    let mut body: Value = serde_json::from_slice(&fixture).unwrap();
    body["event_id"] = json!(event_id);
    body["data"]["data_enrichments"] = json!([{"response": {"blob": ""}}]);
    let without = serde_json::to_vec(&body).unwrap().len();
    assert!(without < size);
    body["data"]["data_enrichments"][0]["response"]["blob"] = json!(filler(size - without));
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(bytes.len(), size);
    bytes
}

/// `len` letters and digits from a fixed xorshift sequence.
fn filler(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

async fn a_body_just_under_the_limit_is_stored_on_its_topic(max_body_bytes: usize) {
    let stack = Stack::start_with(|c| c.http.max_body_bytes = max_body_bytes).await;
    let body = evaluation_of_size("large-1", max_body_bytes - 16);
    let response = stack.app.post_webhook(body.clone()).await;
    let status = response.status();
    let reply: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "accepted", "{reply}");
    let records = read_all(&stack.broker.bootstrap(), &stack.app.topic(EVALUATION));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_kafka_refuses_as_too_large_is_quarantined_raw_and_answered_200() {
    // A topic managed elsewhere with a smaller limit: here the producer's own limit, set below
    // the record (the body twice) and above the body, makes Kafka's client refuse it exactly
    // as a broker's `max.message.bytes` would (MSG_SIZE_TOO_LARGE).
    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let config = test_config(&broker.bootstrap(), &registry.url);
    let registry_client = riskos_connector::wiring::topology::registry(&config).unwrap();
    let routes =
        riskos_connector::wiring::topology::resolve_routes(&config, registry_client.as_ref())
            .await
            .unwrap();
    riskos_connector::wiring::topology::ensure_topics(&config, &routes)
        .await
        .unwrap();
    let body = evaluation_of_size("refused-1", 300_000);
    let mut small = config.kafka.clone();
    small
        .librdkafka
        .insert("batch.size".to_string(), "400000".to_string());
    let producer = Producer::new(&small, Duration::from_secs(3), 450_000).unwrap();
    let store = Arc::new(KafkaStore::new(producer, None, Default::default()));
    let router = riskos_connector::wiring::app::handlers(&config, store)
        .await
        .unwrap();
    let request = axum::http::Request::post(&config.endpoints[0].path)
        .header("content-type", "application/json")
        .extension(ConnectInfo(PeerAddr("127.0.0.1:9".parse().unwrap())))
        .body(Body::from(body.clone()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let reply: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "quarantined", "{reply}");
    let quarantined = read_all(
        &broker.bootstrap(),
        &riskos_connector::pipeline::route::quarantine_topic(&config.endpoints[0].topic_prefix),
    );
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body);
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("record_too_large")
    );
    let evaluation_topic = format!("{}{EVALUATION}", config.endpoints[0].topic_prefix);
    assert!(read_all(&broker.bootstrap(), &evaluation_topic).is_empty());
}
