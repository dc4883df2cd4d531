//! Consumers holding the keys read protected records (issue 15; docs/consumers.md, "Protected
//! fields"): a Python consumer (confluent-kafka, `cryptography`'s AES-GCM, `hmac`;
//! `tests/interop/protected_consumer.py`) and a Java one (kafka-clients, Apache Avro,
//! javax.crypto; `tests/interop/java/.../ProtectedConsumer.java`) find the protected fields
//! from the writer schema's `riskos.protect` marks, open every encrypted value and the
//! encrypted body, and check every hash token, on Apache Kafka with protection on.
//!
//! Every test compares what both consumers print with the posted JSON: each opened value
//! equals the posted value at the same place, `raw` opens to the exact body, each token is
//! HMAC-SHA256(the key it names, the posted value), and the consumers opened as many values as
//! the stored record carries (no `e2.`/`h2.` value left unlisted). Python and Java print the
//! same lines. Both consumers must be there: a missing Python or Java fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::Mac;
use serde_json::{json, Value};

use support::{fixtures, interop_python, run_decoder, schema_copy, Stack, TestApp};
use support::{TEST_ENCRYPTION_KEY, TEST_HASH_KEY};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A second hash key: the same values give other tokens under it.
const OTHER_HASH_KEY: &str = "test-h2:YW5vdGhlciBoYXNoIGtleTogMzIgYnl0ZXMgbG9uZyE=";
/// The encryption key a rotation puts first.
const NEW_ENCRYPTION_KEY: &str = "test-e2:YSByb3RhdGVkIGVuY3J5cHRpb24ga2V5LCAzMiBCLi4=";

/// The marks the tests put on a copy of the shipped schemas (whatever those carry is removed
/// first): `(file, path, policy)`, with array items, arrays of strings, `riskos.json` fields
/// and `description` among them.
const MARKS: &[(&str, &str, &str)] = &[
    ("create.cases.avsc", "description", "encrypt"),
    ("create.cases.avsc", "data.sent_by", "encrypt"),
    ("create.cases.avsc", "data.entity_token", "hash"),
    ("create.cases.avsc", "data.tags[].tag_name", "encrypt"),
    (
        "update.cases.status.avsc",
        "data.external_entity_id",
        "hash",
    ),
    (
        "update.cases.status.avsc",
        "data.new_status_details",
        "encrypt",
    ),
    (
        "case_management_notification_case_closure.avsc",
        "data.reviewer_id",
        "encrypt",
    ),
    (
        "case_management_notification_case_closure.avsc",
        "data.globalWatchlist.caseDetails[].entityId",
        "hash",
    ),
    (
        "case_management_notification_case_closure.avsc",
        "data.globalWatchlist.caseDetails[].sourceList",
        "encrypt",
    ),
    (
        "create.reviews.is_entity.avsc",
        "data.agent.email",
        "encrypt",
    ),
    (
        "create.reviews.is_entity.avsc",
        "data.notes[].note_author_agent_email",
        "encrypt",
    ),
    ("create.reviews.is_entity.avsc", "data.notes[].note", "drop"),
    ("create.reviews.is_entity.avsc", "data.reviewer", "hash"),
    ("create.reviews.is_entity.avsc", "data.reasons", "hash"),
    (
        "create.reviews.is_entity.avsc",
        "data.child_entities",
        "hash",
    ),
    ("evaluation_completed.avsc", "data.id", "hash"),
    (
        "evaluation_completed.avsc",
        "data.data_enrichments",
        "encrypt",
    ),
    (
        "update.transactions.status.avsc",
        "data.transactions[].transaction_id",
        "hash",
    ),
    ("update.transactions.status.avsc", "data.sent_by", "encrypt"),
    (
        "create.bankaccountsnapshots.status_description.avsc",
        "description",
        "encrypt",
    ),
    (
        "create.bankaccountsnapshots.status_description.avsc",
        "data.bank_accounts[].bank_account_id",
        "encrypt",
    ),
    (
        "create.bankaccountsnapshots.status_description.avsc",
        "data.case_data.case_tags[].name",
        "hash",
    ),
    ("unrecognized.avsc", "data", "encrypt"),
];

/// The event type of the tests' own schema, which has what the shipped ones lack: maps (of
/// strings and of records), arrays of records and of strings, a `riskos.json` field hashed
/// (its compact JSON text) and one encrypted, a dropped field.
const CHECK_EVENT_TYPE: &str = "protection:check";

/// The `data` of the tests' own schema.
fn check_data_schema() -> Value {
    let optional = |name: &str, policy: Option<&str>| {
        let mut field = json!({"name": name, "type": ["null", "string"], "default": null});
        if let Some(policy) = policy {
            field["riskos.protect"] = policy.into();
        }
        field
    };
    let mut profile = optional("profile", Some("encrypt"));
    profile["riskos.json"] = true.into();
    let mut segments = optional("segments", Some("hash"));
    segments["riskos.json"] = true.into();
    json!({"type": "record", "name": "ProtectionCheckData", "fields": [
        optional("email", Some("encrypt")),
        optional("entity_token", Some("hash")),
        optional("note", Some("drop")),
        {"name": "aliases", "type": ["null", {"type": "array", "items": "string"}],
         "default": null, "riskos.protect": "hash"},
        {"name": "matches", "type": ["null", {"type": "array", "items": {
            "type": "record", "name": "CheckMatch", "fields": [
                {"name": "name", "type": "string", "riskos.protect": "encrypt"},
                {"name": "score", "type": "double"},
                optional("dob", Some("hash"))]}}], "default": null},
        {"name": "attributes", "type": ["null", {"type": "map", "values": "string"}],
         "default": null, "riskos.protect": "encrypt"},
        {"name": "documents", "type": ["null", {"type": "map", "values": {
            "type": "record", "name": "CheckDocument", "fields": [
                {"name": "number", "type": "string", "riskos.protect": "encrypt"},
                {"name": "country", "type": "string"}]}}], "default": null},
        profile,
        segments,
        {"name": "amount", "type": ["null", "double"], "default": null}
    ]})
}

/// The tests' own payloads: one of the check type (request-token envelope, with a
/// description), one of a type without a schema (`unrecognized`).
fn own_payloads() -> Vec<(String, Vec<u8>)> {
    let check = json!({
        "request_token": "check-1",
        "timestamp": 1_700_000_000_000_i64,
        "type": CHECK_EVENT_TYPE,
        "description": "Alice Example's onboarding",
        "data": {
            "email": "alice@example.com",
            "entity_token": "ent-42",
            "note": "called her at home",
            "aliases": ["Alice A", "A. Example"],
            "matches": [
                {"name": "Alice Example", "score": 0.91, "dob": "1990-01-01"},
                {"name": "Alicia Ex", "score": 0.5, "dob": null}
            ],
            "attributes": {"nationality": "FR", "phone": "+33 1 23 45 67 89"},
            "documents": {"passport": {"number": "X1234567", "country": "FR"}},
            "profile": {"address": {"street": "1 rue de l'Exemple", "city": "Lyon"}, "pep": false},
            "segments": ["retail", {"zone": "Île-de-France", "tier": 2}],
            "amount": 12.5
        }
    });
    let unrecognized = json!({
        "event_id": "unrecognized-1",
        "event_at": "2025-10-28T22:45:01.981Z",
        "event_type": "watchlist_hit_added",
        "data": {"name": "Bob Example", "list": "PEP"}
    });
    vec![
        (
            "check".to_string(),
            serde_json::to_vec_pretty(&check).unwrap(),
        ),
        (
            "unrecognized".to_string(),
            serde_json::to_vec(&unrecognized).unwrap(),
        ),
    ]
}

/// Every fixture and the tests' own payloads, as `(name, body)`.
fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut all = fixtures::all();
    all.extend(own_payloads());
    all
}

/// `body` with its id (`event_id` or `request_token`) suffixed by `-<round>`, every other byte
/// as it was: the same values under another Kafka key.
fn in_round(body: &[u8], round: &str) -> Vec<u8> {
    let posted: Value = serde_json::from_slice(body).unwrap();
    let id = posted
        .get("event_id")
        .or(posted.get("request_token"))
        .and_then(Value::as_str)
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let renamed = text.replacen(&format!("\"{id}\""), &format!("\"{id}-{round}\""), 1);
    assert_ne!(renamed, text, "the id {id} is in the body");
    renamed.into_bytes()
}

/// A copy of the shipped schemas plus the tests' own; with `marked`, the shipped schemas'
/// marks replaced by [`MARKS`].
fn schemas(marked: bool) -> tempfile::TempDir {
    let dir = schema_copy();
    if marked {
        let mut files: BTreeMap<&str, Value> = BTreeMap::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let mut schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            strip_marks(&mut schema);
            std::fs::write(&path, serde_json::to_vec_pretty(&schema).unwrap()).unwrap();
        }
        for (file, path, policy) in MARKS {
            let schema = files.entry(file).or_insert_with(|| {
                serde_json::from_slice(&std::fs::read(dir.path().join(file)).unwrap()).unwrap()
            });
            let steps: Vec<&str> = path.split('.').collect();
            mark(schema, &steps, policy);
        }
        for (file, schema) in files {
            let text = serde_json::to_vec_pretty(&schema).unwrap();
            std::fs::write(dir.path().join(file), text).unwrap();
        }
    }
    let mut check: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("create.cases.avsc")).unwrap())
            .unwrap();
    strip_marks(&mut check);
    check["name"] = "ProtectionCheck".into();
    check["riskos.event_type"] = CHECK_EVENT_TYPE.into();
    // Its data has no case token to partition by.
    check.as_object_mut().unwrap().remove("riskos.partition_by");
    check["doc"] = "tests/api/consumers.rs: every place a mark can be.".into();
    for field in check["fields"].as_array_mut().unwrap() {
        match field["name"].as_str() {
            Some("data") => field["type"] = check_data_schema(),
            Some("description") => field["riskos.protect"] = "encrypt".into(),
            _ => {}
        }
    }
    let text = serde_json::to_vec_pretty(&check).unwrap();
    std::fs::write(dir.path().join("protection.check.avsc"), text).unwrap();
    dir
}

fn strip_marks(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.remove("riskos.protect");
            object.values_mut().for_each(strip_marks);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_marks),
        _ => {}
    }
}

/// Marks the field at `path` (`a.b[].c`) of `record` (a record schema) with `policy`.
fn mark(record: &mut Value, path: &[&str], policy: &str) {
    let (step, rest) = path.split_first().unwrap();
    let (name, items) = match step.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (*step, false),
    };
    let field = record["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name}"));
    if rest.is_empty() {
        field["riskos.protect"] = policy.into();
        return;
    }
    let mut inner = complex(&mut field["type"]);
    if items {
        inner = complex(&mut inner["items"]);
    }
    mark(inner, rest, policy);
}

/// The record, array or map a field type is (or its union holds).
fn complex(schema: &mut Value) -> &mut Value {
    if schema.is_array() {
        schema
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|branch| branch.is_object())
            .unwrap()
    } else {
        schema
    }
}

/// Starts a connector with protection on (fields by the schemas' marks, `raw` encrypted) and
/// the schemas in `schemas`.
async fn protected_stack(schemas: &Path) -> Stack {
    let dir = schemas.to_path_buf();
    Stack::start_with(move |config| {
        config.endpoints[0].protect_fields = true;
        config.endpoints[0].raw = riskos_connector::pipeline::protect::RawPolicy::Encrypt;
        config.schemas.dir = dir;
    })
    .await
}

/// What one post became: where it went, what was posted, the keys it was protected with.
#[derive(Debug, Clone)]
struct Posted {
    name: String,
    round: String,
    topic: String,
    key: String,
    body: Vec<u8>,
    json: Value,
    /// The key line (`kid:base64`) its hash tokens are made with.
    hash_key: &'static str,
    /// The key id its encrypted values are under.
    encryption_kid: &'static str,
}

/// Posts every payload (suffixing its id with `-<round>` unless `round` is empty) to `app`,
/// which hashes with `hash_key` and encrypts with `encryption_key`.
async fn post_round(
    app: &TestApp,
    round: &str,
    hash_key: &'static str,
    encryption_key: &'static str,
) -> Vec<Posted> {
    let mut posted = Vec::new();
    for (name, body) in payloads() {
        let body = if round.is_empty() {
            body
        } else {
            in_round(&body, round)
        };
        let response = app.post_webhook(body.clone()).await;
        assert_eq!(response.status(), 200, "{name} ({round})");
        let json: Value = serde_json::from_slice(&body).unwrap();
        let key = json
            .get("event_id")
            .or(json.get("request_token"))
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        // A type without a schema of its own goes to the unrecognized topic.
        let topic = if name == "unrecognized" {
            app.topic(riskos_connector::pipeline::route::UNRECOGNIZED_TOPIC)
        } else {
            app.topic_of(&json)
        };
        posted.push(Posted {
            name,
            round: round.to_string(),
            topic,
            key,
            body,
            json,
            hash_key,
            encryption_kid: kid(encryption_key),
        });
    }
    posted
}

fn kid(key_line: &str) -> &str {
    key_line.split_once(':').unwrap().0
}

/// Key files as a consumer gets them (the connector's own key files, one `kid:base64` a line).
struct KeyFiles {
    _dir: tempfile::TempDir,
    hash: PathBuf,
    encryption: PathBuf,
}

fn key_files(hash: &[&str], encryption: &[&str]) -> KeyFiles {
    let dir = tempfile::tempdir().unwrap();
    let hash_file = dir.path().join("hash-keys");
    let encryption_file = dir.path().join("encryption-keys");
    std::fs::write(&hash_file, hash.join("\n") + "\n").unwrap();
    std::fs::write(&encryption_file, encryption.join("\n") + "\n").unwrap();
    KeyFiles {
        _dir: dir,
        hash: hash_file,
        encryption: encryption_file,
    }
}

fn topics_of(posted: &[Posted]) -> BTreeSet<String> {
    posted.iter().map(|p| p.topic.clone()).collect()
}

/// Runs both consumers over `topics` with `keys`; returns (python, java) lines, each sorted
/// by topic and offset, fields sorted.
async fn consume(stack: &Stack, keys: &KeyFiles, topics: &BTreeSet<String>) -> [Vec<Value>; 2] {
    let key_args = [
        "--hash-keys".as_ref(),
        keys.hash.as_os_str(),
        "--encryption-keys".as_ref(),
        keys.encryption.as_os_str(),
    ];
    let mut python = tokio::process::Command::new(interop_python());
    python
        .arg(format!("{ROOT}/tests/interop/protected_consumer.py"))
        .args(key_args);
    let mut java = tokio::process::Command::new(format!("{ROOT}/scripts/java-interop.sh"));
    java.env("JAVA_INTEROP_MAIN", "riskos.interop.ProtectedConsumer")
        .args(key_args);
    let bootstrap = stack.broker.bootstrap();
    let framing = ["--registry", stack.registry.url.as_str()];
    let (python, java) = tokio::join!(
        run_decoder(python, &bootstrap, framing, topics),
        run_decoder(java, &bootstrap, framing, topics),
    );
    [python, java].map(|mut lines| {
        for line in &mut lines {
            line["fields"]
                .as_array_mut()
                .expect("fields")
                .sort_by_key(|f| f.to_string());
        }
        lines.sort_by_key(|l| (l["topic"].to_string(), l["offset"].as_i64()));
        lines
    })
}

/// `h2.<kid>.<fp>.<base64url HMAC-SHA256(key, value)>`, computed here from the key line: a
/// string's UTF-8 bytes, other JSON's compact text; `fp` the key's fingerprint.
fn expected_token(key_line: &str, value: &Value) -> String {
    let (kid, key) = key_line.split_once(':').unwrap();
    let key = STANDARD.decode(key).unwrap();
    let fingerprint = expected_fingerprint(&key);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    match value {
        Value::String(text) => mac.update(text.as_bytes()),
        other => mac.update(&serde_json::to_vec(other).unwrap()),
    }
    format!(
        "h2.{kid}.{fingerprint}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A key's fingerprint as docs/protection.md defines it: base64url of the first 6 bytes of
/// SHA-256("riskos-connector key fingerprint" NUL key).
fn expected_fingerprint(key: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"riskos-connector key fingerprint\0")
        .chain_update(key)
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..6])
}

/// The path a value at `at` is bound to: names joined by `.`, an index as `[i]` (or, for
/// grouping the items of an array, as `[]`).
fn path_of(at: &[Value], indexes: bool) -> String {
    let mut path = String::new();
    for step in at {
        match step {
            Value::Number(i) if indexes => path.push_str(&format!("[{i}]")),
            Value::Number(_) => path.push_str("[]"),
            Value::String(name) if path.is_empty() => path.push_str(name),
            Value::String(name) => {
                path.push('.');
                path.push_str(name);
            }
            other => panic!("step {other}"),
        }
    }
    path
}

/// The posted value at `at`.
fn at<'v>(posted: &'v Value, steps: &[Value]) -> &'v Value {
    steps.iter().fold(posted, |value, step| match step {
        Value::Number(i) => &value[i.as_u64().unwrap() as usize],
        Value::String(name) => &value[name.as_str()],
        other => panic!("step {other}"),
    })
}

/// How many strings of a stored record (`raw` left out) are `prefix` values, a `riskos.json`
/// field's text (`"\"e2…\""`) included.
fn count_stored(record: &Value, prefix: &str) -> usize {
    match record {
        Value::String(text) => {
            let inner = serde_json::from_str::<String>(text).ok();
            usize::from(text.starts_with(prefix) || inner.is_some_and(|t| t.starts_with(prefix)))
        }
        Value::Object(object) => object
            .iter()
            .filter(|(name, _)| name.as_str() != "raw")
            .map(|(_, value)| count_stored(value, prefix))
            .sum(),
        Value::Array(items) => items.iter().map(|v| count_stored(v, prefix)).sum(),
        _ => 0,
    }
}

/// One protected value as a consumer reported it, checked.
#[derive(Debug, Clone)]
struct Opened {
    posted: Posted,
    at: Vec<Value>,
    policy: String,
    stored: String,
}

/// Checks one consumer's lines against `posted` (one line each, nothing else): `raw` opens to
/// the exact body; every encrypted value is under the post's key id and opens to the posted
/// value at its place; every token is the expected HMAC and the consumer matched it against
/// the body; as many values listed as the stored record carries. Returns the values.
fn check(consumer: &str, lines: &[Value], posted: &[Posted]) -> Vec<Opened> {
    assert_eq!(lines.len(), posted.len(), "{consumer}: records read");
    let mut opened = Vec::new();
    for line in lines {
        let (topic, key) = (
            line["topic"].as_str().unwrap(),
            line["key"].as_str().unwrap(),
        );
        let post = posted
            .iter()
            .find(|p| p.topic == topic && p.key == key)
            .unwrap_or_else(|| panic!("{consumer}: a record nobody posted: {topic} {key}"));
        let context = format!("{consumer}: {} ({}, {topic})", post.name, post.round);
        let kid = post.encryption_kid;
        let raw = line["value"]["raw"].as_str().unwrap();
        assert!(
            raw.starts_with(&format!("e2.{kid}.")),
            "{context}: raw {raw}"
        );
        assert_eq!(
            line["raw"].as_str().unwrap().as_bytes(),
            post.body,
            "{context}: raw opens to the body"
        );
        let fields = line["fields"].as_array().unwrap();
        let mut counts = BTreeMap::<&str, usize>::new();
        for field in fields {
            let path = field["path"].as_str().unwrap();
            let steps = field["at"].as_array().unwrap();
            let policy = field["policy"].as_str().unwrap();
            let stored = field["stored"].as_str().unwrap();
            let context = format!("{context}: {path}");
            assert_eq!(path_of(steps, true), path, "{context}: at {steps:?}");
            let original = at(&post.json, steps);
            assert!(!original.is_null(), "{context}: nothing posted there");
            *counts.entry(policy).or_default() += 1;
            match policy {
                "encrypt" => {
                    assert!(stored.starts_with(&format!("e2.{kid}.")), "{context}");
                    assert_eq!(&field["value"], original, "{context}: opened");
                }
                "hash" => {
                    let token = expected_token(post.hash_key, original);
                    assert_eq!(stored, token, "{context}: token");
                    assert_eq!(field["matches_body"], true, "{context}: checked");
                }
                other => panic!("{context}: policy {other} listed"),
            }
            opened.push(Opened {
                posted: post.clone(),
                at: steps.clone(),
                policy: policy.to_string(),
                stored: stored.to_string(),
            });
        }
        for (policy, prefix) in [("encrypt", "e2."), ("hash", "h2.")] {
            assert_eq!(
                counts.get(policy).copied().unwrap_or(0),
                count_stored(&line["value"], prefix),
                "{context}: every {prefix} value of the record listed: {line}"
            );
        }
    }
    opened
}

/// Checks both consumers' lines and that they are the same; returns the values.
fn check_both(lines: &[Vec<Value>; 2], posted: &[Posted]) -> Vec<Opened> {
    let opened = check("python", &lines[0], posted);
    check("java", &lines[1], posted);
    assert_eq!(lines[0], lines[1], "python and java print the same lines");
    opened
}

fn summary(test: &str, lines: &[Vec<Value>; 2], opened: &[Opened]) {
    let count = |policy: &str| opened.iter().filter(|o| o.policy == policy).count();
    println!(
        "{test}: python and java each read {} records: {} encrypted values and {0} bodies \
         opened, {} hash tokens checked",
        lines[0].len(),
        count("encrypt"),
        count("hash"),
    );
}

#[tokio::test]
async fn python_and_java_open_every_protected_value() {
    let schemas = schemas(true);
    let stack = protected_stack(schemas.path()).await;
    let posted = post_round(&stack.app, "", TEST_HASH_KEY, TEST_ENCRYPTION_KEY).await;
    let keys = key_files(&[TEST_HASH_KEY], &[TEST_ENCRYPTION_KEY]);

    let lines = consume(&stack, &keys, &topics_of(&posted)).await;
    let opened = check_both(&lines, &posted);

    // Every record has a protected value; every kind of place is reached.
    for post in &posted {
        assert!(
            opened
                .iter()
                .any(|o| o.posted.key == post.key && o.posted.topic == post.topic),
            "{}: nothing protected",
            post.name
        );
    }
    let check: BTreeSet<(String, &str)> = opened
        .iter()
        .filter(|o| o.posted.name == "check")
        .map(|o| (path_of(&o.at, false), o.policy.as_str()))
        .collect();
    let expected: BTreeSet<(String, &str)> = [
        ("description", "encrypt"),
        ("data.email", "encrypt"),
        ("data.entity_token", "hash"),
        ("data.aliases[]", "hash"),
        ("data.matches[].name", "encrypt"),
        ("data.matches[].dob", "hash"),
        ("data.attributes.nationality", "encrypt"),
        ("data.attributes.phone", "encrypt"),
        ("data.documents.passport.number", "encrypt"),
        ("data.profile", "encrypt"),
        ("data.segments", "hash"),
    ]
    .map(|(path, policy)| (path.to_string(), policy))
    .into();
    assert_eq!(check, expected, "the check payload's protected places");
    let paths: BTreeSet<String> = opened.iter().map(|o| path_of(&o.at, false)).collect();
    for path in [
        "data.tags[].tag_name",
        "data.globalWatchlist.caseDetails[].sourceList[]",
        "data.child_entities",
        "data.data_enrichments",
        "data",
    ] {
        assert!(paths.contains(path), "{path} not opened: {paths:?}");
    }
    // Dropped values are gone, not listed.
    for lines in &lines {
        let check = lines.iter().find(|l| l["key"] == "check-1").unwrap();
        assert_eq!(check["value"]["data"]["note"], Value::Null);
        let review = lines
            .iter()
            .find(|l| {
                l["topic"]
                    .as_str()
                    .unwrap()
                    .ends_with("create.reviews.is_entity")
            })
            .unwrap();
        assert_eq!(review["value"]["data"]["notes"][0]["note"], Value::Null);
    }
    summary("marked copy", &lines, &opened);
}

#[tokio::test]
async fn python_and_java_open_every_value_the_shipped_schemas_protect() {
    // The shipped schemas as they are, plus the tests' own (maps, which they do not have).
    let schemas = schemas(false);
    let stack = protected_stack(schemas.path()).await;
    let posted = post_round(&stack.app, "", TEST_HASH_KEY, TEST_ENCRYPTION_KEY).await;
    let keys = key_files(&[TEST_HASH_KEY], &[TEST_ENCRYPTION_KEY]);

    let lines = consume(&stack, &keys, &topics_of(&posted)).await;
    let opened = check_both(&lines, &posted);

    let shipped = opened
        .iter()
        .filter(|o| !["check", "unrecognized"].contains(&o.posted.name.as_str()))
        .count();
    assert!(
        shipped > 0,
        "the shipped schemas protect no value of any fixture (no riskos.protect marks yet?)"
    );
    summary("shipped schemas", &lines, &opened);
}

#[tokio::test]
async fn hash_tokens_are_stable_across_restarts_and_replicas_and_change_with_the_key() {
    let schemas = schemas(true);
    let Stack {
        broker,
        registry,
        app,
    } = protected_stack(schemas.path()).await;
    let config = app.config.clone();
    let mut posted = post_round(&app, "first", TEST_HASH_KEY, TEST_ENCRYPTION_KEY).await;
    // A replica: a second instance with the same config, at the same time.
    let replica = TestApp::spawn(config.clone()).await.unwrap();
    posted.extend(post_round(&replica, "replica", TEST_HASH_KEY, TEST_ENCRYPTION_KEY).await);
    // The first instance restarted.
    app.stop().await.unwrap();
    let app = TestApp::spawn(config.clone()).await.unwrap();
    posted.extend(post_round(&app, "restarted", TEST_HASH_KEY, TEST_ENCRYPTION_KEY).await);
    // Another instance with another hash key.
    let mut other = config.clone();
    other.protection.hash_keys = vec![riskos_connector::common::secret::Secret::new(
        OTHER_HASH_KEY,
    )];
    let other = TestApp::spawn(other).await.unwrap();
    posted.extend(post_round(&other, "other-key", OTHER_HASH_KEY, TEST_ENCRYPTION_KEY).await);

    let stack = Stack {
        broker,
        registry,
        app,
    };
    let keys = key_files(&[TEST_HASH_KEY, OTHER_HASH_KEY], &[TEST_ENCRYPTION_KEY]);
    let lines = consume(&stack, &keys, &topics_of(&posted)).await;
    let opened = check_both(&lines, &posted);

    // Each place's token, per round.
    let mut tokens: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for o in opened.iter().filter(|o| o.policy == "hash") {
        let place = (
            o.posted.name.clone(),
            Value::Array(o.at.clone()).to_string(),
        );
        let previous = tokens
            .entry(place)
            .or_default()
            .insert(o.posted.round.clone(), o.stored.clone());
        assert_eq!(previous, None, "one token per place and round");
    }
    assert!(tokens.len() > 10, "places hashed: {}", tokens.len());
    for ((name, place), rounds) in &tokens {
        let first = &rounds["first"];
        assert_eq!(&rounds["replica"], first, "{name} {place}: replica");
        assert_eq!(&rounds["restarted"], first, "{name} {place}: restart");
        let mac = |token: &str| token.rsplit_once('.').unwrap().1.to_string();
        assert!(rounds["other-key"].starts_with("h2.test-h2."));
        assert_ne!(
            mac(&rounds["other-key"]),
            mac(first),
            "{name} {place}: another key"
        );
    }
    println!(
        "{} hashed places: the same token from the first instance, its replica and after its \
         restart; another under the other key (python and java checked every token)",
        tokens.len()
    );
    drop(replica);
    drop(other);
}

#[tokio::test]
async fn after_a_key_rotation_old_records_stay_readable() {
    let schemas = schemas(true);
    let Stack {
        broker,
        registry,
        app,
    } = protected_stack(schemas.path()).await;
    let mut config = app.config.clone();
    let mut posted = post_round(&app, "old", TEST_HASH_KEY, TEST_ENCRYPTION_KEY).await;
    app.stop().await.unwrap();
    // Rotation: the new key first (it encrypts), the old one kept (it still decrypts).
    config.protection.encryption_keys = [NEW_ENCRYPTION_KEY, TEST_ENCRYPTION_KEY]
        .map(riskos_connector::common::secret::Secret::new)
        .into();
    let app = TestApp::spawn(config).await.unwrap();
    posted.extend(post_round(&app, "new", TEST_HASH_KEY, NEW_ENCRYPTION_KEY).await);

    let stack = Stack {
        broker,
        registry,
        app,
    };
    let keys = key_files(&[TEST_HASH_KEY], &[NEW_ENCRYPTION_KEY, TEST_ENCRYPTION_KEY]);
    let lines = consume(&stack, &keys, &topics_of(&posted)).await;
    // Checks each record's values are under its round's key id and open.
    let opened = check_both(&lines, &posted);
    let under = |kid: &str| {
        opened
            .iter()
            .filter(|o| o.policy == "encrypt" && o.stored.starts_with(&format!("e2.{kid}.")))
            .count()
    };
    assert!(under("test-e1") > 10 && under("test-e2") == under("test-e1"));
    println!(
        "after the rotation: {} values and {} bodies under the old key, as many under the new \
         one, all opened by python and java",
        under("test-e1"),
        lines[0].len() / 2
    );
}

/// Runs both consumers' code (riskos_protect.py and Protected.java, through
/// `tests/interop/open_values.py` and `OpenValues.java`) over a values file; returns (python,
/// java) lines.
fn open_values(file: &Path) -> [Vec<Value>; 2] {
    let python = std::process::Command::new(interop_python())
        .arg(format!("{ROOT}/tests/interop/open_values.py"))
        .arg(file)
        .output()
        .unwrap();
    let java = std::process::Command::new(format!("{ROOT}/scripts/java-interop.sh"))
        .env("JAVA_INTEROP_MAIN", "riskos.interop.OpenValues")
        .arg(file)
        .output()
        .unwrap();
    [("python", python), ("java", java)].map(|(name, output)| {
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    })
}

/// Values sealed and hashed by the connector's code now (`e2`, `h2`), in the values-file form
/// of `tests/protection/legacy-v1.json`, under `hash` and `encryption` key lines.
fn current_values(hash: &str, encryption: &str) -> Value {
    let keys =
        riskos_connector::pipeline::protect::Keyring::from_lines(&[hash], &[encryption]).unwrap();
    let (topic, key) = ("riskos.create.cases", "evt-current-1");
    let encrypted: Vec<Value> = [
        ("data.sent_by", "\"alice@example.com\""),
        ("data.tags[0].tag_name", "\"pep\""),
        ("data.tags[1].tag_name", "\"sanctions\""),
        ("data.matches[2].aliases[0]", "\"Al\""),
        ("raw", "{\"event_type\":\"create.cases\"}"),
    ]
    .iter()
    .map(|(path, plain)| {
        json!({"indexed_path": path, "plaintext": plain,
               "value": keys.encrypt(plain.as_bytes(), topic, key, path)})
    })
    .collect();
    let hashed: Vec<Value> = ["ent-42", "alice@example.com"]
        .iter()
        .map(|value| json!({"value": value, "token": keys.hash(value.as_bytes())}))
        .collect();
    json!({"hash_keys": [hash], "encryption_keys": [encryption], "topic": topic, "key": key,
           "encrypted": encrypted, "hashed": hashed})
}

/// Every box sealed so far still opens, and a key regenerated under an old id is reported:
/// python's and java's code (the code docs/consumers.md shows) open the values the first
/// formats' code sealed (`tests/protection/legacy-v1.json`: `e1` boxes bound to `[]`
/// paths, `h1` tokens) and the connector's current values (`e2`, `h2`, array items bound to
/// their index); with another key under the same ids, every value is an error naming the key,
/// none a silent "does not match".
#[test]
fn python_and_java_open_values_of_every_format_and_report_another_key_under_an_old_id() {
    let legacy_text =
        std::fs::read_to_string(format!("{ROOT}/tests/protection/legacy-v1.json")).unwrap();
    let legacy: Value = serde_json::from_str(&legacy_text).unwrap();
    let hash = legacy["hash_keys"][0].as_str().unwrap();
    let encryption = legacy["encryption_keys"][0].as_str().unwrap();
    let current = current_values(hash, encryption);
    // The same ids, other keys: what a reinstall that regenerates the keys gives.
    let mut regenerated = current.clone();
    regenerated["hash_keys"] = json!([format!("{}:{}", kid(hash), STANDARD.encode([7u8; 32]))]);
    regenerated["encryption_keys"] = json!([format!(
        "{}:{}",
        kid(encryption),
        STANDARD.encode([8u8; 32])
    )]);
    let dir = tempfile::tempdir().unwrap();
    for (name, values) in [
        ("legacy", &legacy),
        ("current", &current),
        ("regenerated", &regenerated),
    ] {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, values.to_string()).unwrap();
        let [python, java] = open_values(&file);
        // The same lines, but for the wording of errors (each language's own exception).
        let plain = |lines: &[Value]| -> Vec<Value> {
            lines
                .iter()
                .map(|line| {
                    let mut line = line.clone();
                    if line.get("error").is_some() {
                        line["error"] = json!("error");
                    }
                    line
                })
                .collect()
        };
        assert_eq!(
            plain(&python),
            plain(&java),
            "{name}: python and java agree"
        );
        for line in java.iter().filter(|l| l.get("error").is_some()) {
            let error = line["error"].as_str().unwrap();
            assert!(
                error.contains(kid(hash)) || error.contains(kid(encryption)),
                "{name}: java: {error}"
            );
        }
        let expected = values["encrypted"].as_array().unwrap().len()
            + values["hashed"].as_array().unwrap().len();
        assert_eq!(python.len(), expected, "{name}: {python:?}");
        for (line, item) in python.iter().zip(values["encrypted"].as_array().unwrap()) {
            assert_eq!(line["path"], item["indexed_path"], "{name}");
            if name == "regenerated" {
                let error = line["error"].as_str().unwrap_or_else(|| panic!("{line}"));
                assert!(error.contains(kid(encryption)), "{name}: {error}");
            } else {
                assert_eq!(line["opened"], item["plaintext"], "{name}: {line}");
            }
        }
        for line in &python[values["encrypted"].as_array().unwrap().len()..] {
            if name == "regenerated" {
                let error = line["error"].as_str().unwrap_or_else(|| panic!("{line}"));
                assert!(error.contains(kid(hash)), "{name}: {error}");
            } else {
                assert_eq!(line["matches"], true, "{name}: {line}");
            }
        }
    }
    let first = |kind: &str| legacy[kind][0]["value"].as_str().unwrap().to_string();
    assert!(first("encrypted").starts_with("e1."));
    assert!(legacy["hashed"][0]["token"]
        .as_str()
        .unwrap()
        .starts_with("h1."));
    assert!(current["encrypted"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("e2."));
    println!(
        "python and java opened {} values of the first formats and {} current ones; under \
         regenerated keys they reported each",
        legacy["encrypted"].as_array().unwrap().len() + legacy["hashed"].as_array().unwrap().len(),
        current["encrypted"].as_array().unwrap().len()
            + current["hashed"].as_array().unwrap().len()
    );
}

/// docs/protection.md's worked example runs: its Python block checks a token and opens a box
/// of the current formats with the example keys (the fingerprint, HKDF and AES-GCM as written
/// there).
#[test]
fn the_worked_example_in_protection_md_opens() {
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/protection.md")).unwrap();
    let example = doc
        .split("**Worked example.**")
        .nth(1)
        .and_then(|rest| rest.split("```python\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .expect("a python block after **Worked example.**");
    assert!(
        example.contains("e2.k1.") && example.contains("h2.k1."),
        "{example}"
    );
    let output = std::process::Command::new(interop_python())
        .args(["-c", example])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the worked example fails: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// docs/consumers.md shows the tested code: each block after a `<!-- verbatim: FILE -->`
/// line is that file, and after `<!-- verbatim: FILE#consumers.md -->` the lines of FILE
/// between its `[consumers.md] begin` and `end` comments, indentation removed.
#[test]
fn the_doc_shows_the_tested_code() {
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/consumers.md")).unwrap();
    let mut shown = BTreeSet::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(source) = line
            .strip_prefix("<!-- verbatim: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "{source}: a code block follows");
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let (file, region) = match source.split_once('#') {
            Some((file, region)) => (file, Some(region)),
            None => (source, None),
        };
        let text = std::fs::read_to_string(format!("{ROOT}/{file}")).unwrap();
        let expected = match region {
            None => text.lines().map(str::to_string).collect::<Vec<_>>(),
            Some(region) => region_of(&text, region),
        };
        assert_eq!(block, expected, "docs/consumers.md's copy of {source}");
        shown.insert(source.to_string());
    }
    let expected: BTreeSet<String> = [
        "tests/interop/riskos_protect.py",
        "tests/interop/protected_consumer.py#consumers.md",
        "tests/interop/java/src/main/java/riskos/interop/Protected.java",
        "tests/interop/java/src/main/java/riskos/interop/ProtectedConsumer.java#consumers.md",
    ]
    .map(String::from)
    .into();
    assert_eq!(shown, expected, "the snippets docs/consumers.md shows");
}

/// The lines between `[region] begin` and `[region] end`, their common indentation removed.
fn region_of(text: &str, region: &str) -> Vec<String> {
    let begin = format!("[{region}] begin");
    let end = format!("[{region}] end");
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains(&begin))
        .skip(1)
        .take_while(|l| !l.contains(&end))
        .collect();
    assert!(!lines.is_empty(), "no [{region}] lines");
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap();
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").to_string())
        .collect()
}
