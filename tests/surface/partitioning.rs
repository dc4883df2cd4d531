//! Partitioning by entity as the pipeline decides it: each record carries the stored value of
//! its schema's `riskos.partition_by` field (the hash token when the field is protected), or
//! none. Where that value sends a record on Kafka is tested in `tests/kafka/partitioning.rs`.

use serde_json::json;

use support::{Connector, TEST_HASH_KEY};

fn status_update(id: &str, case_token: Option<&str>) -> String {
    let mut data = json!({"new_status": "Close"});
    if let Some(token) = case_token {
        data["case_data"] = json!({"case_token": token});
    }
    json!({
        "request_token": id, "timestamp": 1692223050044i64,
        "type": "update:transactions:status", "data": data,
    })
    .to_string()
}

#[tokio::test]
async fn a_record_carries_its_stored_partition_value_or_none() {
    let plain = Connector::start().await;
    let protected = Connector::start_with(|c| c.endpoints[0].protect_fields = true).await;
    let token = riskos_connector::pipeline::protect::Keyring::from_lines(&[TEST_HASH_KEY], &[])
        .unwrap()
        .hash(b"case-1");
    for (connector, expected) in [(&plain, "case-1"), (&protected, token.as_str())] {
        for (id, case_token) in [("t-1", Some("case-1")), ("t-2", None), ("t-3", Some(""))] {
            let reply = connector.post_json(status_update(id, case_token)).await;
            assert_eq!(reply.status, 200, "{}", reply.json());
        }
        let topic = format!(
            "{}update.transactions.status",
            connector.config.endpoints[0].topic_prefix
        );
        let kept = connector.on_topic(&topic);
        let keys: Vec<_> = kept
            .iter()
            .map(|k| (k.key.as_deref(), k.partition_key.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                (Some("t-1"), Some(expected)),
                (Some("t-2"), None),
                (Some("t-3"), None)
            ]
        );
    }
}
