//! Personal data protection on Apache Kafka: with protection on, every fixture and the
//! payloads written in `support::protected` leave no protected value in clear in any byte of
//! any record — value, key or header — on any topic of the prefix, the quarantine included;
//! and a quarantined body, kept encrypted, is replayed after a schema fix into a record whose
//! fields are protected again.

use riskos_connector::pipeline::protect::{self, Keyring, RawPolicy};
use riskos_connector::pipeline::schema::Catalog;
use serde_json::json;

use support::kafka::{read_all, Record};
use support::protected::{needle, protected_values, written_payloads};
use support::{edit_data_fields, fixtures, schema_copy, Stack};
use support::{TEST_ENCRYPTION_KEY, TEST_HASH_KEY};

fn protected(config: &mut riskos_connector::wiring::config::Config) {
    config.endpoints[0].protect_fields = true;
    config.endpoints[0].raw = RawPolicy::Encrypt;
}

fn leaks(record: &Record, needle: &str) -> Vec<String> {
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    let mut found = Vec::new();
    if contains(&record.payload) {
        found.push("value".to_string());
    }
    if record
        .key
        .as_deref()
        .is_some_and(|k| contains(k.as_bytes()))
    {
        found.push("key".to_string());
    }
    for (name, value) in &record.headers {
        if contains(value.as_bytes()) {
            found.push(format!("header {name}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_protected_value_is_in_clear_in_any_byte_of_any_record_on_kafka() {
    let stack = Stack::start_with(protected).await;
    let catalog = Catalog::load(&stack.app.config.schemas.dir).unwrap();
    let mut bodies = fixtures::all();
    bodies.extend(written_payloads(&catalog, &fixtures::all()));
    // And a body that is not JSON, with personal data in it: quarantined (400), encrypted.
    let not_json = b"{\"email\": \"jane.broken@example.org\", oops".to_vec();
    let mut needles: Vec<(String, String)> =
        vec![("not JSON".into(), "jane.broken@example.org".into())];
    for (name, body) in &bodies {
        let response = stack.app.post_webhook(body.clone()).await;
        assert_eq!(response.status(), 200, "{name}");
        for sent in protected_values(&catalog, body) {
            if let Some(needle) = needle(&sent.value) {
                needles.push((format!("{name}: {} ({:?})", sent.path, sent.policy), needle));
            }
        }
    }
    assert_eq!(stack.app.post_webhook(not_json).await.status(), 400);
    assert!(needles.len() > 20, "{} protected values", needles.len());

    // Every record on every topic of the prefix, the quarantine included.
    let prefix = &stack.app.config.endpoints[0].topic_prefix;
    let bootstrap = stack.broker.bootstrap();
    let mut records = 0;
    for topic in stack
        .broker
        .topics()
        .iter()
        .filter(|t| t.starts_with(prefix.as_str()))
    {
        for record in read_all(&bootstrap, topic) {
            records += 1;
            for (what, needle) in &needles {
                let found = leaks(&record, needle);
                assert!(found.is_empty(), "{what} in clear in {topic}: {found:?}");
            }
        }
    }
    assert_eq!(records, bodies.len() + 1, "every body stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_body_stays_encrypted_and_replays_into_a_protected_record() {
    // Arrange: the vendor changed `decision` to an object; the body carries an e-mail in a
    // field the test's schema encrypts.
    let schemas = schema_copy();
    let file = schemas.path().join("evaluation_completed.avsc");
    edit_data_fields(&file, |fields| {
        fields.push(
            json!({"name": "reviewer_email", "type": ["null", "string"], "default": null,
                           "riskos.protect": "encrypt"}),
        );
    });
    let dir = schemas.path().to_path_buf();
    let stack = Stack::start_with(|c| {
        protected(c);
        c.schemas.dir = dir;
    })
    .await;
    let email = "jane.reviewer@example.org";
    let body = json!({
        "event_id": "pq-1", "event_at": "2025-11-02T09:16:00Z", "event_type": "evaluation_completed",
        "data": {"eval_id": "ev-1", "decision": {"code": "ACCEPT"}, "reviewer_email": email}
    })
    .to_string();
    let response = stack.app.post_webhook(body.clone()).await;
    assert_eq!(response.status(), 200);
    let bootstrap = stack.broker.bootstrap();
    let quarantine_topic = stack.app.topic("quarantine");
    let quarantined = read_all(&bootstrap, &quarantine_topic);
    assert_eq!(quarantined.len(), 1);
    assert!(leaks(&quarantined[0], email).is_empty());
    assert!(quarantined[0].payload.starts_with(b"e2.test-e1."));

    // Act: the schema fix, then a replay, which opens the body with the keys.
    edit_data_fields(&file, |fields| {
        let decision = fields.iter_mut().find(|f| f["name"] == "decision").unwrap();
        decision["type"] = json!(["null", "string", {"type": "record", "name": "Decision",
            "fields": [{"name": "code", "type": "string"}]}]);
    });
    let report = riskos_connector::tools::replay::run(&stack.app.config, None, None)
        .await
        .unwrap();
    assert!(
        report.still_failing.is_empty(),
        "{:?}",
        report.still_failing
    );

    // Assert: the replayed record is protected again, and opens to the original.
    let topic = stack.app.topic("evaluation_completed");
    let replayed = read_all(&bootstrap, &topic);
    assert_eq!(replayed.len(), 1);
    assert!(leaks(&replayed[0], email).is_empty());
    let mut value = support::decode::decode(&stack.registry.url, &replayed[0].payload).await;
    let keys = Keyring::from_lines(&[TEST_HASH_KEY], &[TEST_ENCRYPTION_KEY]).unwrap();
    assert!(value["data"]["reviewer_email"]
        .as_str()
        .unwrap()
        .starts_with("e2."));
    let (opened, unopened) = protect::reveal(&keys, &mut value, &topic, "pq-1");
    assert_eq!((opened, unopened), (2, vec![]), "the e-mail and raw");
    assert_eq!(value["data"]["reviewer_email"], email);
    assert_eq!(value["raw"], body);
}
