//! The data contract at the door, from `tests/api/contract.rs`: bodies that are not envelopes
//! are quarantined raw and answered 400, and a quarantine write that fails is 503. Replay,
//! the registry, fastavro and the consumer tools stay there.

use riskos_connector::delivery::memory::Behaviour;

use crate::helpers::Connector;

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
