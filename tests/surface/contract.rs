//! The data contract at the door: bodies that are not envelopes are quarantined raw and answered
//! 400, and a quarantine write that fails is 503; `validate` prints the record or the exact
//! error offline. Replay, the registry, fastavro and the consumer tools are in
//! `tests/kafka/contract.rs`.

use std::path::Path;
use std::process::Command;

use riskos_connector::delivery::memory::Behaviour;
use serde_json::Value;

use support::Connector;

#[tokio::test]
async fn bodies_that_are_not_envelopes_are_quarantined_and_answered_400() {
    let connector = Connector::start().await;
    let bodies = [
        ("{not json", "invalid_json", None),
        (r#"{"hello":"world"}"#, "invalid_envelope", None),
        (
            r#"{"event_id":"e","event_type":"t"}"#,
            "invalid_envelope",
            Some("event_at"),
        ),
    ];
    for (body, _, _) in bodies {
        assert_eq!(connector.post_json(body).await.status, 400, "{body}");
    }
    let quarantined = connector.quarantined();
    assert_eq!(quarantined.len(), bodies.len());
    for (record, (body, reason, field)) in quarantined.iter().zip(bodies) {
        assert_eq!(record.value, body.as_bytes());
        assert_eq!(record.header("quarantine_reason"), Some(reason));
        assert_eq!(record.header("quarantine_field"), field);
        assert_eq!(record.key, None);
    }
}

#[tokio::test]
async fn a_failed_quarantine_write_is_503_so_the_vendor_retries() {
    let connector = Connector::start().await;
    // What a stopped broker does to a write without a spool: no ack within the deadline.
    connector.store.set_behaviour(Behaviour::Timeout);
    let reply = connector.post_json(r#"{"hello":"world"}"#).await;
    assert_eq!(reply.status, 503);
    assert!(reply.headers.contains_key("retry-after"));
}

#[test]
fn validate_prints_the_record_or_the_exact_error_offline() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"event_id":"e","event_type":"evaluation_completed","event_at":"2025-01-01T00:00:00Z","data":{"eval_id":7}}"#,
    )
    .unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/request_token.create_cases.json");
    let output = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .arg("validate")
        .arg(&good)
        .arg(&bad)
        .env(
            "RISKOS_SCHEMAS__DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["topic"], "riskos.create.cases");
    assert_eq!(
        lines[0]["record"]["data"]["case_created_timestamp"],
        1692223049956_i64
    );
    assert_eq!(lines[1]["ok"], false);
    assert_eq!(lines[1]["field"], "data.eval_id");
    assert_eq!(lines[1]["reason"], "schema_mismatch");
}
