//! Interop proof: Python confluent-kafka's AvroDeserializer, a client we did not write, decodes
//! every record we produced, with every field equal to the posted JSON.

use serde_json::Value;

use crate::helpers::decode::assert_data_matches;
use crate::helpers::{fixtures, post_all_fixtures, python_decode, Stack};

#[tokio::test]
async fn confluent_kafka_python_decodes_every_fixture() {
    let stack = Stack::start().await;
    let fixtures = fixtures::all();
    let topics = post_all_fixtures(&stack.app).await;

    let decoded = python_decode(
        &stack.broker.bootstrap(),
        ["--registry", &stack.registry.url],
        &topics,
    )
    .await;
    assert_eq!(decoded.len(), fixtures.len());

    for (name, body) in &fixtures {
        let raw = String::from_utf8(body.clone()).unwrap();
        let posted: Value = serde_json::from_slice(body).unwrap();
        let record = decoded
            .iter()
            .find(|r| r["value"]["raw"] == raw)
            .unwrap_or_else(|| panic!("{name} not decoded by Python"));
        let id = posted
            .get("event_id")
            .or(posted.get("request_token"))
            .unwrap();
        assert_eq!(&record["key"], id, "{name}");
        assert_eq!(&record["value"]["event_id"], id, "{name}");
        assert!(record["headers"]["event_type"].is_string(), "{name}");
        assert_data_matches(&record["value"]["data"], &posted["data"], name);
    }
}
