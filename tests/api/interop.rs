//! Interop proof: Python confluent-kafka's AvroDeserializer, a client we did not write, decodes
//! every record we produced, with every field equal to the posted JSON.

use serde_json::Value;

use crate::helpers::decode::assert_data_matches;
use crate::helpers::{fixtures, Stack};

fn python() -> String {
    std::env::var("INTEROP_PYTHON").expect(
        "INTEROP_PYTHON must point at a Python with confluent-kafka[avro]; run scripts/test.sh",
    )
}

#[tokio::test]
async fn confluent_kafka_python_decodes_every_fixture() {
    let python = python();
    let stack = Stack::start().await;
    let fixtures = fixtures::all();
    let mut topics = std::collections::BTreeSet::new();
    for (name, body) in &fixtures {
        assert_eq!(
            stack.app.post_webhook(body.clone()).await.status(),
            200,
            "{name}"
        );
        let posted: Value = serde_json::from_slice(body).unwrap();
        let event_type = posted.get("event_type").or(posted.get("type")).unwrap();
        topics.insert(riskos_connector::route::topic_name(
            "riskos.",
            event_type.as_str().unwrap(),
        ));
    }

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/decode_topics.py"
    );
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(script)
        .args(["--bootstrap", &stack.broker.bootstrap()])
        .args(["--registry", &stack.registry.url]);
    for topic in &topics {
        command.args(["--topic", topic]);
    }
    let output = command.output().await.expect("python runs");
    assert!(
        output.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
