//! The webhook end to end: HTTP in, records on the broker, decoded and compared field by field.
//! The duplicate cache, request-token ids and bad requests are in `tests/surface/webhook.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::decode::{assert_data_matches, decode};
use support::kafka::read_all;
use support::{fixtures, Stack};

#[tokio::test]
async fn every_fixture_is_stored_and_decodes_field_for_field() {
    // Arrange
    let stack = Stack::start().await;
    let fixtures = fixtures::all();

    // Act
    for (name, body) in &fixtures {
        let response = stack.app.post_webhook(body.clone()).await;
        let status = response.status();
        let reply: Value = response.json().await.unwrap();
        // Assert: the reply came after the ack and names the event.
        assert_eq!(status, 200, "{name}: {reply}");
        assert_eq!(reply["status"], "accepted", "{name}");
    }

    // Assert: each fixture is on its topic with every field equal to the posted JSON.
    let bootstrap = stack.broker.bootstrap();
    let mut compared_fields = 0;
    for (name, body) in &fixtures {
        let posted: Value = serde_json::from_slice(body).unwrap();
        let topic = stack.app.topic_of(&posted);
        let raw = String::from_utf8(body.clone()).unwrap();
        let records = read_all(&bootstrap, &topic);
        let mut found = None;
        for record in &records {
            let value = decode(&stack.registry.url, &record.payload).await;
            if value["raw"] == raw {
                found = Some((record.clone(), value));
            }
        }
        let (record, value) = found.unwrap_or_else(|| panic!("{name}: not found on {topic}"));
        let is_event = posted.get("event_id").is_some();
        let id = if is_event {
            &posted["event_id"]
        } else {
            &posted["request_token"]
        };
        assert_eq!(record.key.as_deref(), id.as_str(), "{name}: key");
        assert_eq!(&value["event_id"], id, "{name}");
        let event_type = if is_event {
            &posted["event_type"]
        } else {
            &posted["type"]
        };
        assert_eq!(&value["event_type"], event_type, "{name}");
        assert_eq!(record.header("event_type"), event_type.as_str(), "{name}");
        let envelope = if is_event { "EVENT" } else { "REQUEST_TOKEN" };
        assert_eq!(value["envelope"], envelope, "{name}");
        assert_eq!(record.header("envelope"), Some(envelope), "{name}");
        if !is_event {
            assert_eq!(value["occurred_at"], posted["timestamp"], "{name}");
            assert_eq!(value["description"], posted["description"], "{name}");
        }
        assert!(
            value["received_at"].as_i64().unwrap() > 1_700_000_000_000,
            "{name}"
        );
        compared_fields += assert_data_matches(&value["data"], &posted["data"], name);
    }
    assert!(
        compared_fields > 100,
        "compared only {compared_fields} fields"
    );
}

#[tokio::test]
async fn event_time_keeps_millisecond_precision_of_nanosecond_input() {
    let stack = Stack::start().await;
    let body = json!({
        "event_id": "nanos-1", "event_type": "evaluation_completed",
        "event_at": "2025-08-27T16:16:23.104744158Z",
        "data": {"eval_id": "e-1"}
    });
    let response = stack.app.post_webhook(body.to_string()).await;
    assert_eq!(response.status(), 200);
    let records = read_all(
        &stack.broker.bootstrap(),
        &stack.app.topic("evaluation_completed"),
    );
    let value = decode(&stack.registry.url, &records[0].payload).await;
    assert_eq!(value["occurred_at"], 1_756_311_383_104_i64);
}

#[tokio::test]
async fn without_the_duplicate_cache_a_retry_is_produced_and_compaction_has_one_key() {
    let stack = Stack::start_with(|c| c.delivery.dedup.max_entries = 0).await;
    let (_, body) = fixtures::all()
        .into_iter()
        .find(|(n, _)| n == "riskos.case_closure.match.json")
        .unwrap();
    for _ in 0..2 {
        assert_eq!(stack.app.post_webhook(body.clone()).await.status(), 200);
    }
    let records = read_all(
        &stack.broker.bootstrap(),
        &stack.app.topic("case_management_notification_case_closure"),
    );
    let keys: std::collections::BTreeSet<_> = records.iter().map(|r| r.key.clone()).collect();
    assert_eq!(records.len(), 2, "both deliveries are acked records");
    assert_eq!(keys.len(), 1, "compaction collapses them to one key");
}

#[tokio::test]
async fn realistic_payloads_beyond_the_fixtures_are_stored() {
    let stack = Stack::start().await;
    let payloads = [
        // A match closure with several entities and echoed customer metadata.
        json!({
            "event_id": "c0a80101-0000-4000-8000-000000000001",
            "event_at": "2025-11-02T09:15:00.5Z",
            "event_type": "case_management_notification_case_closure",
            "customer_metadata": {"tenant": "acme", "region": "eu"},
            "data": {
                "id": "cust-991", "workflow": "consumer_onboarding",
                "eval_id": "e2d1", "reviewer_id": "analyst@example.com",
                "environment_name": "Sandbox",
                "globalWatchlist": {
                    "caseReviewStatus": "match",
                    "caseDetails": [
                        {"entityId": "A1", "entityReviewStatus": "match",
                         "sourceList": ["OFAC SDN", "UN Consolidated"], "associatedCategories": ["Sanctions"]},
                        {"entityId": "B2", "entityReviewStatus": "no match",
                         "sourceList": [], "associatedCategories": ["Pep Class 1"],
                         "reviewerComment": "a field the schema does not know"}
                    ]
                }
            }
        }),
        // An evaluation using `eval_status` and a large enrichment array.
        json!({
            "event_id": "c0a80101-0000-4000-8000-000000000002",
            "event_at": "2025-11-02T09:16:00Z",
            "event_type": "evaluation_completed",
            "data": {
                "id": "app-77", "workflow": "account_takeover", "eval_id": "ev-77",
                "decision": "REVIEW", "status": "OPEN", "sub_status": "Pending",
                "tags": ["Watchlist Hit"], "eval_status": "evaluation_completed",
                "review_queues": [{"name": "Fraud L1"}],
                "data_enrichments": (0..200).map(|i| json!({
                    "enrichment_name": format!("flow-{i}"), "status_code": 200,
                    "response": {"score": i as f64 / 200.0, "reasons": ["R940", "I912"]}
                })).collect::<Vec<_>>()
            }
        }),
        // A request-token case update with an unknown data field and a null list.
        json!({
            "request_token": "rt-3f2a", "timestamp": 1731000000123_i64,
            "type": "update:cases:status", "description": "Notify on case status update",
            "data": {
                "case_token": "ct-1", "previous_status": "Open", "new_status": "Close",
                "new_status_details": null, "assignee": "new-field@example.com",
                "sent_at": 1731000000000_i64
            }
        }),
    ];
    for payload in &payloads {
        let response = stack.app.post_webhook(payload.to_string()).await;
        let status = response.status();
        assert_eq!(status, 200, "{}", response.text().await.unwrap());
    }
    let bootstrap = stack.broker.bootstrap();
    for payload in &payloads {
        let topic = stack.app.topic_of(payload);
        let records = read_all(&bootstrap, &topic);
        assert_eq!(records.len(), 1, "{topic}");
        let value = decode(&stack.registry.url, &records[0].payload).await;
        assert_eq!(
            value["raw"],
            payload.to_string(),
            "raw keeps unknown fields"
        );
        assert_data_matches(&value["data"], &payload["data"], &topic);
        if let Some(metadata) = payload.get("customer_metadata") {
            let extra: Value = serde_json::from_str(value["extra"].as_str().unwrap()).unwrap();
            assert_eq!(&extra["customer_metadata"], metadata);
        }
    }
}

#[tokio::test]
async fn unknown_event_types_go_to_unrecognized_and_create_no_topic() {
    let stack = Stack::start().await;
    let body = json!({
        "event_id": "u-1", "event_at": "2025-11-02T09:16:00Z",
        "event_type": "watchlist_notification_monitored_search_updated",
        "data": {"search_id": 42, "changes": [{"field": "name"}]}
    });
    let response = stack.app.post_webhook(body.to_string()).await;
    assert_eq!(response.status(), 200);
    let records = read_all(&stack.broker.bootstrap(), &stack.app.topic("unrecognized"));
    assert_eq!(records.len(), 1);
    let value = decode(&stack.registry.url, &records[0].payload).await;
    assert_eq!(value["event_type"], body["event_type"]);
    assert_data_matches(&value["data"], &body["data"], "unrecognized");
    let topics = stack.broker.topics();
    assert!(
        !topics.iter().any(|t| t.contains("watchlist_notification")),
        "no topic is created from payload text: {topics:?}"
    );
}

#[tokio::test]
async fn a_stopped_broker_gives_503_with_retry_after_within_the_deadline() {
    let mut stack = Stack::start_own_broker_with(|c| c.delivery.ack_timeout_ms = 2_000).await;
    let fixtures = fixtures::all();
    assert_eq!(
        stack.app.post_webhook(fixtures[0].1.clone()).await.status(),
        200
    );

    stack.broker.kill();
    let started = Instant::now();
    let response = stack.app.post_webhook(fixtures[1].1.clone()).await;
    let elapsed = started.elapsed();

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        elapsed <= Duration::from_millis(2_000 + 1_000),
        "answered after {elapsed:?}, past the 2 s ack deadline"
    );
}
