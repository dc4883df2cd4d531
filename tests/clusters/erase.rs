//! Erasure shown on Apache Kafka: `riskos-connector erase` writes tombstones for one entity's
//! records (found through a hashed field, and by event id), compaction then removes every one
//! of them — and only them: the other entity's records, one of them under the same key in
//! another topic, all stay. The quarantined body of the entity is reported, not touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer as _};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use riskos_connector::tools::erase::{self, EraseOptions, MatchedBy};

use support::kafka::{read_all, Record};
use support::{schema_copy, test_config, Broker, RegistryDouble, Stack, StackBroker, TestApp};
use support::{TEST_ENCRYPTION_KEY, TEST_HASH_KEY};

const ENTITY_A: &str = "ent-A-7f3c2d";
const ENTITY_B: &str = "ent-B-91d2e0";
const PARTITIONS: i32 = 2;

/// Marks the field at `path` (under `data`, through nested records, arrays and unions) of a
/// schema file with `"riskos.protect": policy`.
fn mark(dir: &Path, file: &str, path: &[&str], policy: &str) {
    fn record_fields(schema: &mut Value) -> Option<&mut Vec<Value>> {
        match schema {
            Value::Array(union) => union.iter_mut().find_map(record_fields),
            Value::Object(object) => match object.get("type").and_then(Value::as_str) {
                Some("record") => object.get_mut("fields")?.as_array_mut(),
                Some("array") => record_fields(object.get_mut("items")?),
                _ => record_fields(object.get_mut("type")?),
            },
            _ => None,
        }
    }
    let file = dir.join(file);
    let mut schema: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut fields = schema["fields"].as_array_mut().unwrap();
    let mut steps = std::iter::once("data")
        .chain(path.iter().copied())
        .peekable();
    while let Some(name) = steps.next() {
        let field = fields
            .iter_mut()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{}: no field {name}", file.display()));
        if steps.peek().is_none() {
            field["riskos.protect"] = json!(policy);
            break;
        }
        fields = record_fields(&mut field["type"]).expect("a record on the way");
    }
    std::fs::write(&file, serde_json::to_vec_pretty(&schema).unwrap()).unwrap();
}

/// Removes every `riskos.protect` attribute from the schema files in `dir`, so the test's
/// marks are the only ones (the shipped schemas' own choices may change).
fn unmark_all(dir: &Path) {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(object) => {
                object.remove(riskos_connector::pipeline::protect::PROTECT_ATTRIBUTE);
                object.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = entry.unwrap().path();
        let mut schema: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        strip(&mut schema);
        std::fs::write(&file, serde_json::to_vec_pretty(&schema).unwrap()).unwrap();
    }
}

/// One webhook of the test: event id, type and data.
fn event(id: &str, event_type: &str, data: Value) -> (String, String, String) {
    let body = json!({
        "event_id": id, "event_at": "2025-11-02T09:16:00Z", "event_type": event_type, "data": data,
    });
    (id.to_string(), event_type.to_string(), body.to_string())
}

fn case(entity: &str, case_token: &str, external: &str, sent_by: &str) -> Value {
    json!({
        "case_token": case_token, "case_type": "watchlist", "status": "Pending Review",
        "entity_token": entity, "external_entity_id": external, "sent_by": sent_by,
        "tags": [{"tag_name": "kyc", "occurred_at": 1692033234473i64}],
    })
}

fn review(token: &str, entity: &str, email: &str) -> Value {
    json!({
        "review_token": token, "entity_token": entity, "reviewer": email,
        "agent": {"email": email, "external_id": "agent-7"}, "outcome": "Approved",
        "notes": [{"note": "checked the documents", "note_author_agent_email": email}],
    })
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Test-only overrides so the log cleaner acts within seconds (as in compaction.rs): roll
/// segments after 100 ms, clean any dirt at once, drop tombstones 100 ms after a cleaning.
/// AlterConfigs replaces a topic's whole set of overrides: the connector's own are restated.
async fn compact_fast(bootstrap: &str, topics: &[String], max_message_bytes: usize) {
    let max = max_message_bytes.to_string();
    let overrides: Vec<AlterConfig<'_>> = topics
        .iter()
        .map(|topic| {
            AlterConfig::new(ResourceSpecifier::Topic(topic))
                .set("cleanup.policy", "compact")
                .set("max.message.bytes", &max)
                .set("segment.ms", "100")
                .set("min.cleanable.dirty.ratio", "0.001")
                .set("min.compaction.lag.ms", "0")
                .set("delete.retention.ms", "100")
        })
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    for result in admin(bootstrap)
        .alter_configs(&overrides, &options)
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

/// The high watermark of every partition of `topics`.
fn ends(bootstrap: &str, topics: &[String]) -> BTreeMap<(String, i32), i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut ends = BTreeMap::new();
    for topic in topics {
        for partition in 0..PARTITIONS {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap();
            ends.insert((topic.clone(), partition), high);
        }
    }
    ends
}

/// Every record of `topics`, as (topic, partition, key) → payloads (empty: a tombstone).
fn contents(bootstrap: &str, topics: &[String]) -> BTreeMap<(String, i32, String), Vec<Vec<u8>>> {
    let mut contents: BTreeMap<_, Vec<Vec<u8>>> = BTreeMap::new();
    for topic in topics {
        for Record {
            partition,
            key,
            payload,
            ..
        } in read_all(bootstrap, topic)
        {
            contents
                .entry((topic.clone(), partition, key.unwrap_or_default()))
                .or_default()
                .push(payload);
        }
    }
    contents
}

/// Rolls every partition's active segment without adding a record consumers read (an aborted
/// transaction), so the cleaner may take the tombstones (see compaction.rs).
struct Nudge {
    producer: BaseProducer,
    topics: Vec<String>,
}

impl Nudge {
    fn new(bootstrap: &str, topics: &[String]) -> Self {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("transactional.id", format!("erase-nudge-{}", topics[0]))
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        Self {
            producer,
            topics: topics.to_vec(),
        }
    }

    fn roll(&self) {
        self.producer.begin_transaction().unwrap();
        for topic in &self.topics {
            for partition in 0..PARTITIONS {
                self.producer
                    .send(
                        BaseRecord::to(topic)
                            .partition(partition)
                            .key("nudge")
                            .payload("aborted"),
                    )
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
        }
        self.producer.flush(Duration::from_secs(10)).unwrap();
        self.producer
            .abort_transaction(Duration::from_secs(10))
            .unwrap();
    }
}

/// The connector's config as a TOML file, for the binary.
fn config_file(dir: &Path, stack: &Stack, schemas: &Path) -> std::path::PathBuf {
    let file = dir.join("erase.toml");
    let text = format!(
        "[[endpoints]]\nname = \"riskos\"\ntopic_prefix = \"{prefix}\"\nprotect_fields = true\n\
         raw = \"encrypt\"\n[endpoints.auth]\nmode = \"none\"\n[kafka]\nbootstrap_servers = \
         \"{bootstrap}\"\n[schema_registry]\nurl = \"{registry}\"\n[schemas]\ndir = \
         \"{schemas}\"\n[protection]\nhash_keys = [\"{TEST_HASH_KEY}\"]\nencryption_keys = \
         [\"{TEST_ENCRYPTION_KEY}\"]\n",
        prefix = stack.app.config.endpoints[0].topic_prefix,
        bootstrap = stack.broker.bootstrap(),
        registry = stack.registry.url,
        schemas = schemas.display(),
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_and_compaction_remove_every_record_of_one_entity_and_nothing_else() {
    // Arrange: the schemas' personal fields marked (this test's own choice of fields), entity
    // and case tokens hashed, e-mails and external ids encrypted.
    let schemas = schema_copy();
    unmark_all(schemas.path());
    for file in ["create.cases.avsc", "update.cases.status.avsc"] {
        mark(schemas.path(), file, &["entity_token"], "hash");
        mark(schemas.path(), file, &["case_token"], "hash");
        mark(schemas.path(), file, &["external_entity_id"], "encrypt");
        mark(schemas.path(), file, &["sent_by"], "encrypt");
    }
    let reviews = "create.reviews.is_entity.avsc";
    mark(schemas.path(), reviews, &["entity_token"], "hash");
    mark(schemas.path(), reviews, &["reviewer"], "encrypt");
    mark(schemas.path(), reviews, &["agent", "email"], "encrypt");
    mark(
        schemas.path(),
        reviews,
        &["notes", "note_author_agent_email"],
        "encrypt",
    );
    // A broker of its own whose log cleaner looks for work every 100 ms (default 15 s).
    let broker = Broker::start_cluster(1, &["log.cleaner.backoff.ms=100"]).await;
    let registry = RegistryDouble::start().await;
    let mut config = test_config(&broker.bootstrap(), &registry.url);
    config.endpoints[0].protect_fields = true;
    config.endpoints[0].raw = riskos_connector::pipeline::protect::RawPolicy::Encrypt;
    config.schemas.dir = schemas.path().to_path_buf();
    config.topics.partitions = PARTITIONS;
    let app = TestApp::spawn(config).await.expect("connector starts");
    let stack = Stack {
        broker: StackBroker::Own(broker),
        registry,
        app,
    };
    let bootstrap = stack.broker.bootstrap();
    let app = &stack.app;
    let topics: Vec<String> = [
        "create.cases",
        "update.cases.status",
        "create.reviews.is_entity",
        "evaluation_completed",
    ]
    .iter()
    .map(|name| app.topic(name))
    .collect();
    let quarantine = app.topic("quarantine");
    let max_message_bytes = riskos_connector::delivery::record_size::kafka_message_bytes(
        app.config.http.max_body_bytes,
    );
    compact_fast(&bootstrap, &topics, max_message_bytes).await;

    // Two entities. `shared-1` is A's case in create.cases and B's status update: the same key
    // (event id) in two topics, two different entities. `a-eval-1` carries no entity token:
    // it goes by event id. `a-bad-1` does not fit its schema (quarantined).
    let events = [
        event(
            "a-case-1",
            "create:cases",
            case(ENTITY_A, "case-A1", "ext-A", "alice@example.com"),
        ),
        event(
            "shared-1",
            "create:cases",
            case(ENTITY_A, "case-A2", "ext-A", "alice@example.com"),
        ),
        event(
            "a-case-2",
            "update:cases:status",
            case(ENTITY_A, "case-A1", "ext-A", "alice@example.com"),
        ),
        event(
            "a-review-1",
            "create:reviews:is_entity",
            review("rev-1", ENTITY_A, "alice@example.com"),
        ),
        event(
            "a-eval-1",
            "evaluation_completed",
            json!({"eval_id": "ev-A", "decision": "REVIEW"}),
        ),
        event(
            "b-case-1",
            "create:cases",
            case(ENTITY_B, "case-B1", "ext-B", "bob@example.com"),
        ),
        event(
            "shared-1",
            "update:cases:status",
            case(ENTITY_B, "case-B1", "ext-B", "bob@example.com"),
        ),
        event(
            "b-review-1",
            "create:reviews:is_entity",
            review("rev-2", ENTITY_B, "bob@example.com"),
        ),
        event(
            "b-eval-1",
            "evaluation_completed",
            json!({"eval_id": "ev-B", "decision": "ACCEPT"}),
        ),
    ];
    for (id, _, body) in &events {
        let response = app.post_webhook(body.clone()).await;
        assert_eq!(response.status(), 200, "{id}");
    }
    let bad = json!({
        "event_id": "a-bad-1", "event_at": "2025-11-02T09:16:00Z", "event_type": "create:cases",
        "data": {"case_token": "case-A3", "case_type": {"not": "a string"}, "entity_token": ENTITY_A},
    });
    let reply: Value = app
        .post_webhook(bad.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["status"], "quarantined");

    // Another producer (a Java client's partitioner, a mirror) stored a copy of A's case in
    // the other partition: erase must tombstone the key where each copy is.
    let cases = read_all(&bootstrap, &topics[0]);
    let original = cases
        .iter()
        .find(|r| r.key.as_deref() == Some("a-case-1"))
        .unwrap();
    let elsewhere = (original.partition + 1) % PARTITIONS;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topics[0])
                .partition(elsewhere)
                .key("a-case-1")
                .payload(&original.payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    // Nothing in clear: the tokens and values the conditions name are not in any record.
    let mut all_topics = topics.clone();
    all_topics.push(quarantine.clone());
    let before = contents(&bootstrap, &all_topics);
    for ((topic, _, key), payloads) in &before {
        for payload in payloads {
            let text = String::from_utf8_lossy(payload);
            for secret in [ENTITY_A, ENTITY_B, "alice@", "bob@", "ext-A"] {
                assert!(!text.contains(secret), "{secret} in {topic}/{key}");
            }
        }
    }
    let a_keys: BTreeSet<(String, String)> = [
        (&topics[0], "a-case-1"),
        (&topics[0], "shared-1"),
        (&topics[1], "a-case-2"),
        (&topics[2], "a-review-1"),
        (&topics[3], "a-eval-1"),
    ]
    .iter()
    .map(|(t, k)| (t.to_string(), k.to_string()))
    .collect();
    let b_records: BTreeMap<(String, i32, String), Vec<Vec<u8>>> = before
        .iter()
        .filter(|((topic, _, key), _)| {
            *topic != quarantine && !a_keys.contains(&(topic.clone(), key.clone()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        b_records
            .keys()
            .map(|(_, _, k)| k.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["b-case-1", "b-eval-1", "b-review-1", "shared-1"]),
    );
    let where_a = format!("data.entity_token={ENTITY_A}");

    // Act 1: the dry run, through the real binary, both kinds of condition at once.
    let dir = tempfile::tempdir().unwrap();
    let config_path = config_file(dir.path(), &stack, schemas.path());
    let ends_before = ends(&bootstrap, &all_topics);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["erase", "--config"])
        .arg(&config_path)
        .args(["--where", &where_a])
        .args([
            "--event-id",
            "a-eval-1",
            "--event-id",
            "a-bad-1",
            "--dry-run",
        ])
        .env_remove("RISKOS_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    println!("erase --dry-run:\n{stdout}");

    // Assert: it listed A's records (the mirrored copy too) and wrote nothing.
    assert_eq!(
        ends(&bootstrap, &all_topics),
        ends_before,
        "a dry run writes nothing"
    );
    for secret in [ENTITY_A, "alice@", "ext-A"] {
        assert!(!stdout.contains(secret), "{secret} printed");
    }
    let listed: BTreeSet<(String, String)> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("would erase: topic "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            (words[0].to_string(), words[6].to_string())
        })
        .collect();
    assert_eq!(listed, a_keys);
    assert!(
        stdout.contains(&format!("not erasable by tombstone: topic {quarantine} ")),
        "{stdout}"
    );
    // The same run with the condition kept off the command line: read from standard input,
    // then from a file (the documented form), lists the same records.
    let where_file = dir.path().join("where.txt");
    std::fs::write(&where_file, format!("# request 17\n{where_a}\n")).unwrap();
    for (source, stdin) in [
        ("-", Some(format!("{where_a}\n"))),
        (where_file.to_str().unwrap(), None),
    ] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .args(["erase", "--config"])
            .arg(&config_path)
            .args(["--where-file", source])
            .args([
                "--event-id",
                "a-eval-1",
                "--event-id",
                "a-bad-1",
                "--dry-run",
            ])
            .env_remove("RISKOS_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes())
                .await
                .unwrap();
        }
        drop(input);
        let output = child.wait_with_output().await.unwrap();
        let from_file = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "--where-file {source}: {}\n{from_file}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let listed_from_file: BTreeSet<(String, String)> = from_file
            .lines()
            .filter_map(|line| line.strip_prefix("would erase: topic "))
            .map(|rest| {
                let words: Vec<&str> = rest.split_whitespace().collect();
                (words[0].to_string(), words[6].to_string())
            })
            .collect();
        assert_eq!(listed_from_file, a_keys, "--where-file {source}");
        assert!(!from_file.contains(ENTITY_A), "--where-file {source}");
    }
    assert_eq!(ends(&bootstrap, &all_topics), ends_before);

    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["erase"], "dry_run");
    assert_eq!(summary["tombstones_written"], 0);
    assert_eq!(summary["tombstones_planned"], 6, "{summary}");
    assert_eq!(summary["matched"][&topics[0]], 3, "{summary}");
    assert_eq!(summary["not_erasable_by_tombstone"]["count"], 1);

    // Without the hash key, a hashed field cannot be decided: an error, nothing written.
    let mut keyless = app.config.clone();
    keyless.protection.hash_keys.clear();
    let error = erase::run(
        &keyless,
        &EraseOptions {
            conditions: vec![where_a.parse().unwrap()],
            ..EraseOptions::default()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("hash_keys") && error.contains("data.entity_token"),
        "{error}"
    );
    assert!(!error.contains(ENTITY_A), "{error}");
    assert_eq!(ends(&bootstrap, &all_topics), ends_before);

    // Act 2: erase A by its hashed entity token, then its evaluation by event id.
    let by_token = erase::run(
        &app.config,
        &EraseOptions {
            conditions: vec![where_a.parse().unwrap()],
            ..EraseOptions::default()
        },
    )
    .await
    .unwrap();
    let mut printed = Vec::new();
    by_token.print(&mut printed).unwrap();
    println!("erase --where:\n{}", String::from_utf8_lossy(&printed));
    let by_id = erase::run(
        &app.config,
        &EraseOptions {
            event_ids: vec!["a-eval-1".into(), "a-bad-1".into()],
            ..EraseOptions::default()
        },
    )
    .await
    .unwrap();
    let erased_at = Instant::now();

    // Assert: one tombstone per (topic, partition, key) found — the mirrored copy's partition
    // too — and only in the topics where A's records were: B's `shared-1` has none.
    assert!(by_token.ok() && by_id.ok(), "{by_token:?} {by_id:?}");
    let tombstones: BTreeSet<(String, i32, String)> = by_token
        .tombstones
        .iter()
        .chain(&by_id.tombstones)
        .map(|t| {
            assert!(t.offset.is_some(), "{t:?} acked");
            (t.topic.clone(), t.partition, t.key.clone())
        })
        .collect();
    let expected: BTreeSet<(String, i32, String)> = before
        .keys()
        .filter(|(topic, _, key)| a_keys.contains(&(topic.clone(), key.clone())))
        .cloned()
        .collect();
    assert_eq!(tombstones, expected);
    assert_eq!(tombstones.len(), 6, "a-case-1 in both partitions");
    assert!(by_token
        .matched
        .iter()
        .all(|m| m.matched_by == MatchedBy::Where("data.entity_token".into())));
    for report in [&by_token, &by_id] {
        let [left] = report.not_erasable.as_slice() else {
            panic!("one quarantined record reported: {:?}", report.not_erasable);
        };
        assert_eq!(left.record.topic, quarantine);
        assert_eq!(left.record.key.as_deref(), Some("a-bad-1"));
    }
    assert_eq!(by_id.summary()["tombstones_written"], 1);

    // Act 3: compaction, the segments rolled until the cleaner has taken every record of A.
    let nudge = Nudge::new(&bootstrap, &topics);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut values_gone = None;
    let after = loop {
        tokio::task::block_in_place(|| nudge.roll());
        let now = contents(&bootstrap, &topics);
        let a_left: Vec<_> = now
            .iter()
            .filter(|((topic, _, key), _)| a_keys.contains(&(topic.clone(), key.clone())))
            .collect();
        if values_gone.is_none() && a_left.iter().all(|(_, p)| p.iter().all(Vec::is_empty)) {
            values_gone = Some(erased_at.elapsed());
        }
        if a_left.is_empty() {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "A's records (or their tombstones) still there after 120 s: {a_left:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "compaction removed A's {} records in {:.1} s, their tombstones too in {:.1} s",
        expected.len(),
        values_gone.unwrap_or_default().as_secs_f64(),
        erased_at.elapsed().as_secs_f64()
    );

    // Assert: B's records are all there, byte for byte, and nothing else is; A's quarantined
    // body too (reported as not erasable by a tombstone).
    assert_eq!(after, b_records);
    let quarantined = read_all(&bootstrap, &quarantine);
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].key.as_deref(), Some("a-bad-1"));

    // A second run finds nothing left to erase.
    let again = erase::run(
        &app.config,
        &EraseOptions {
            conditions: vec![where_a.parse().unwrap()],
            event_ids: vec!["a-eval-1".into()],
            dry_run: true,
            ..EraseOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(again.matched.is_empty(), "{:?}", again.matched);
    assert!(again.ok());
}
