//! Partitioning by entity (`riskos.partition_by`), on Apache Kafka with 6 partitions: one
//! case's status updates land on one partition in the order accepted; its creation lands on the
//! same partition number of its own topic (co-partitioned); and that partition is the one
//! Apache Kafka's Java producer picks for the stored value, computed by kafka-clients itself
//! (`tests/interop/java/.../Partition.java`, run by `scripts/java-interop.sh`). The Kafka key
//! stays the event id.

use serde_json::{json, Value};

use rdkafka::error::RDKafkaErrorCode;
use support::TEST_HASH_KEY;

use riskos_connector::delivery::kafka::partition::partition_for;
use support::kafka::{try_read_all, Record};
use support::{Stack, TestApp};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PARTITIONS: i32 = 6;

fn created(id: &str, case_token: &str) -> Value {
    json!({
        "request_token": id,
        "timestamp": 1692223050044i64,
        "type": "create:cases",
        "description": "Notify on case creation",
        "data": {"case_token": case_token, "status": "Pending Review"}
    })
}

fn status_update(id: &str, case_token: &str, previous: &str, new: &str) -> Value {
    json!({
        "request_token": id,
        "timestamp": 1692223050044i64,
        "type": "update:cases:status",
        "description": "Notify on case status update",
        "data": {"case_token": case_token, "previous_status": previous, "new_status": new}
    })
}

/// Posts `body`, which must be answered 200 `accepted` (acked by Kafka, not quarantined).
async fn post(app: &TestApp, body: &Value) {
    let response = app.post_webhook(body.to_string()).await;
    assert_eq!(response.status(), 200, "{body}");
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["status"], "accepted", "{reply}");
}

/// What kafka-clients 4.4.0 computes for each value: `(murmur2, partitionForKey)` with
/// [`PARTITIONS`]. Fails (never skips) when Java or Maven is missing.
async fn java_partitions(values: &[&str]) -> Vec<(i32, i32)> {
    let output = tokio::process::Command::new(format!("{ROOT}/scripts/java-interop.sh"))
        .env("JAVA_INTEROP_MAIN", "riskos.interop.Partition")
        .arg(PARTITIONS.to_string())
        .args(values)
        .output()
        .await
        .expect("scripts/java-interop.sh runs (needs java and mvn)");
    assert!(
        output.status.success(),
        "java partitioner failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), values.len());
    lines
        .iter()
        .zip(values)
        .map(|(line, value)| {
            assert_eq!(line["value"], *value);
            assert_eq!(line["partition"], line["utils_partition"], "{line}");
            (
                line["murmur2"].as_i64().unwrap() as i32,
                line["partition"].as_i64().unwrap() as i32,
            )
        })
        .collect()
}

/// Every record of `topic`. Six partitions just created on a shared broker may briefly answer
/// a watermark request with NotLeaderForPartition: that answer (only) is retried, a bounded
/// number of times.
fn read_topic(app: &TestApp, topic: &str) -> Vec<Record> {
    let bootstrap = &app.config.kafka.bootstrap_servers;
    for _ in 0..50 {
        match try_read_all(bootstrap, topic) {
            Ok(records) => return records,
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NotLeaderForPartition) => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => panic!("reading {topic}: {e}"),
        }
    }
    panic!("reading {topic}: its partitions have no leader after 50 tries")
}

/// The records of `topic` with one of `keys`, in partition and offset order.
fn records_with_keys(app: &TestApp, topic: &str, keys: &[String]) -> Vec<Record> {
    let mut records: Vec<Record> = read_topic(app, topic)
        .into_iter()
        .filter(|r| r.key.as_ref().is_some_and(|k| keys.contains(k)))
        .collect();
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// One case's lifecycle: created, then status changes (new event ids, same case token) posted
/// one after another, each answered before the next is sent. Returns the event ids of the
/// updates, in posting order.
async fn post_case_lifecycle(app: &TestApp, case_token: &str, tag: &str) -> Vec<String> {
    post(app, &created(&format!("{tag}-created"), case_token)).await;
    let statuses = [
        "Pending Review",
        "In Review",
        "Escalated",
        "In Review",
        "Close",
    ];
    let mut ids = Vec::new();
    for (i, pair) in statuses.windows(2).enumerate() {
        let id = format!("{tag}-update-{i}");
        post(app, &status_update(&id, case_token, pair[0], pair[1])).await;
        ids.push(id);
    }
    ids
}

/// Reads both topics back and checks the case: its updates on one partition, offsets growing
/// in posting order, its creation on the same partition number, which is `expected`.
fn assert_case_on(app: &TestApp, updates: &[String], tag: &str, expected: i32) {
    let update_topic = app.topic("update.cases.status");
    let create_topic = app.topic("create.cases");
    let read = records_with_keys(app, &update_topic, updates);
    let keys: Vec<&str> = read.iter().map(|r| r.key.as_deref().unwrap()).collect();
    assert_eq!(
        keys,
        updates.iter().map(String::as_str).collect::<Vec<_>>(),
        "one partition, in the order accepted"
    );
    assert!(read.iter().all(|r| r.partition == expected), "{read:?}");
    assert!(read.windows(2).all(|w| w[0].offset < w[1].offset));
    let created = records_with_keys(app, &create_topic, &[format!("{tag}-created")]);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].partition, expected, "co-partitioned");
}

#[tokio::test]
async fn one_cases_events_land_on_one_partition_in_order_where_kafkas_java_producer_puts_them() {
    let stack = Stack::start_with(|config| config.topics.partitions = PARTITIONS).await;
    let app = &stack.app;

    // Two cases on different partitions, so the rule is seen to pick, not to default.
    let first = "case-tok-alpha";
    let second = (0..)
        .map(|i| format!("case-tok-{i}"))
        .find(|t| {
            partition_for(t.as_bytes(), PARTITIONS) != partition_for(first.as_bytes(), PARTITIONS)
        })
        .unwrap();
    let java = java_partitions(&[first, &second]).await;

    for (tag, token, (murmur2, java_partition)) in
        [("a", first, java[0]), ("b", second.as_str(), java[1])]
    {
        assert_eq!(
            riskos_connector::delivery::kafka::partition::murmur2(token.as_bytes()),
            murmur2
        );
        let updates = post_case_lifecycle(app, token, tag).await;
        assert_case_on(app, &updates, tag, java_partition);
        println!("case {token}: created and 4 status updates on partition {java_partition} of {PARTITIONS} (kafka-clients agrees)");
    }
    assert_ne!(java[0].1, java[1].1);

    // Without a value (a transaction update with no case data) the record is partitioned by
    // its key, as before: stored all the same.
    let no_case = json!({
        "request_token": "c-transactions-0",
        "timestamp": 1692223050044i64,
        "type": "update:transactions:status",
        "description": "Notify on transaction status update",
        "data": {"new_status": "Approved"}
    });
    post(app, &no_case).await;
}

#[tokio::test]
async fn with_protection_the_hash_token_partitions_one_case_consistently() {
    let stack = Stack::start_with(|config| {
        config.topics.partitions = PARTITIONS;
        config.endpoints[0].protect_fields = true;
    })
    .await;
    let app = &stack.app;
    let case_token = "case-tok-protected";
    let updates = post_case_lifecycle(app, case_token, "p").await;

    // The stored value is the hash token, equal in every record of the case.
    let keys =
        riskos_connector::pipeline::protect::Keyring::from_lines(&[TEST_HASH_KEY], &[]).unwrap();
    let token = keys.hash(case_token.as_bytes());
    assert!(token.starts_with("h2."), "{token}");
    let update_topic = app.topic("update.cases.status");
    for record in records_with_keys(app, &update_topic, &updates) {
        let value = support::decode::decode(&stack.registry.url, &record.payload).await;
        assert_eq!(value["data"]["case_token"], token.as_str(), "{value}");
    }

    let java = java_partitions(&[&token]).await;
    assert_case_on(app, &updates, "p", java[0].1);
    println!(
        "protected case: token {token} on partition {} of {PARTITIONS} (kafka-clients agrees)",
        java[0].1
    );
}
