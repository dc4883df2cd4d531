//! The webhook's answers and what they leave in the store: the duplicate cache, request-token
//! ids, and the status of each bad request. What decodes the records, checks topics or
//! compaction, or stops the broker is in `tests/kafka/webhook.rs`.

use serde_json::{json, Value};

use support::{fixture, Connector};
use support::{fixtures, post_as, Framing};

fn expected_topic(body: &Value) -> String {
    let event_type = body
        .get("event_type")
        .or_else(|| body.get("type"))
        .and_then(Value::as_str)
        .unwrap();
    riskos_connector::pipeline::route::topic_name("riskos.", event_type)
}

#[tokio::test]
async fn a_retried_event_is_answered_from_the_duplicate_cache_and_stored_once() {
    let connector = Connector::start().await;
    let body = fixture("riskos.case_closure.match.json");
    let first = connector.post_json(body.clone()).await.json();
    let retry = connector.post_json(body.clone()).await;
    assert_eq!(retry.status, 200);
    let retry = retry.json();
    assert_eq!(first["status"], "accepted");
    assert_eq!(first.get("duplicate"), None);
    assert_eq!(retry["duplicate"], true);
    let records = connector.on_topic("riskos.case_management_notification_case_closure");
    assert_eq!(records.len(), 1, "the retry was not produced again");
    assert_eq!(
        records[0].key.as_deref(),
        Some("557a2863-5442-4bbb-9d1e-92c1205d0a80")
    );
}

#[tokio::test]
async fn request_token_events_sharing_an_id_are_all_stored() {
    let connector = Connector::start().await;
    let request_token: Vec<_> = fixtures::all()
        .into_iter()
        .filter(|(n, _)| n.starts_with("request_token."))
        .collect();
    for (name, body) in &request_token {
        assert_eq!(
            connector.post_json(body.clone()).await.status,
            200,
            "{name}"
        );
    }
    for (name, body) in &request_token {
        let posted: Value = serde_json::from_slice(body).unwrap();
        let records = connector.on_topic(&expected_topic(&posted));
        assert_eq!(records.len(), 1, "{name}");
        assert_eq!(records[0].key.as_deref(), Some(":request_token"), "{name}");
    }
}

#[tokio::test]
async fn bad_requests_get_their_status_and_reach_no_event_topic() {
    let connector = Connector::start_with(|c| c.http.max_body_bytes = 4096).await;
    let valid = json!({
        "event_id": "e", "event_type": "evaluation_completed",
        "event_at": "2025-01-01T00:00:00Z", "data": {"eval_id": "x"}
    });
    let sized = |body: &str| Framing::Sized(body.as_bytes().to_vec());
    let cases: Vec<(&str, Option<&str>, Framing, u16, &str)> = vec![
        (
            "no content type",
            None,
            sized(&valid.to_string()),
            415,
            "content type",
        ),
        (
            "text/plain",
            Some("text/plain"),
            sized(&valid.to_string()),
            415,
            "content type",
        ),
        (
            "not JSON",
            Some("application/json"),
            sized("{not json"),
            400,
            "not valid JSON",
        ),
        (
            "empty body",
            Some("application/json"),
            sized(""),
            400,
            "not valid JSON",
        ),
        (
            "not an envelope",
            Some("application/json"),
            sized(r#"{"hello":"world"}"#),
            400,
            "neither",
        ),
        (
            "missing event_id",
            Some("application/json"),
            sized(&json!({"event_type": "t", "event_at": "2025-01-01T00:00:00Z"}).to_string()),
            400,
            "missing field `event_id`",
        ),
        (
            "bad time",
            Some("application/json"),
            sized(&json!({"event_id": "e", "event_type": "t", "event_at": "soon"}).to_string()),
            400,
            "`event_at` is not a valid time",
        ),
        (
            "oversize with content-length",
            Some("application/json"),
            sized(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000))),
            413,
            "larger than 4096",
        ),
        (
            "oversize streamed without content-length",
            Some("application/json"),
            Framing::Streamed {
                chunks: 10,
                size: 1000,
            },
            413,
            "larger than 4096",
        ),
        (
            "nested too deep",
            Some("application/json"),
            sized(&format!("{}{}", "[".repeat(200), "]".repeat(200))),
            400,
            "nested deeper than",
        ),
    ];
    for (name, content_type, body, status, message) in cases {
        let reply = post_as(&connector, content_type, body).await;
        assert_eq!(reply.status.as_u16(), status, "{name}");
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains(message), "{name}: {text}");
    }
    // Nothing reached an event topic; the six bodies that were read but did not parse,
    // normalize, or pass the depth scan are kept raw in quarantine (415 and 413 bodies are
    // refused by the ingress limits before they are read).
    let quarantine = riskos_connector::pipeline::route::quarantine_topic(
        &connector.config.endpoints[0].topic_prefix,
    );
    for record in connector.store.kept() {
        assert_eq!(record.topic, quarantine, "{} got a record", record.topic);
    }
    let records = connector.quarantined();
    assert_eq!(records.len(), 6, "quarantined");
    assert_eq!(records[5].header("quarantine_reason"), Some("too_deep"));
}
