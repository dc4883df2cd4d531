//! Issue 11's data-loss defects, against a real broker: every body under
//! `http.max_body_bytes` is stored (on its topic, or raw in quarantine), never answered 413.
//! The refusals and quarantines that need no broker (charset, depth, a datum larger than the
//! connector produces) and the producer limit checked at start-up are in
//! `tests/surface/hardening.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use riskos_connector::delivery::kafka::Producer;
use riskos_connector::delivery::KafkaStore;
use riskos_connector::ingress::http::tls::PeerAddr;
use serde_json::Value;
use tower::ServiceExt as _;

use support::decode::decode;
use support::fixtures::{evaluation_of_size, EVALUATION};
use support::kafka::read_all;
use support::{test_config, Broker, RegistryDouble, Stack};

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
