//! Personal data protection on the HTTP path, over the in-memory store: with protection on
//! (the shipped schemas' `riskos.protect` marks, `raw = "encrypt"`), no protected value of any
//! fixture or of the payloads written here is anywhere in clear in a stored record — value,
//! key or header, searched byte by byte — and every protected value is what its policy says:
//! encrypted values open to the original with the keys, hash tokens are HMACs of the original
//! under the hash key, dropped fields are null. Tokens are the same across replicas and
//! restarts, and change with the key; after a rotation old records still open. The same on
//! Apache Kafka, with quarantine and replay, is in `tests/kafka/protection.rs`.

use riskos_connector::common::secret::Secret;
use riskos_connector::delivery::memory::Kept;
use riskos_connector::pipeline::envelope::normalize;
use riskos_connector::pipeline::protect::{self, Keyring, Policy, ProtectionConfig, RawPolicy};
use riskos_connector::pipeline::schema::{decode, Catalog};
use riskos_connector::wiring::config::Config;
use serde_json::{json, Value};

use support::fixtures;
use support::{Connector, TEST_ENCRYPTION_KEY, TEST_HASH_KEY};

use support::protected::{first_at, needle, protected_values, written_payloads};

/// Single-object framing: `C3 01` and the 8-byte fingerprint before the datum.
const SINGLE_OBJECT_PREFIX: usize = 10;

/// Endpoint 0 protected as deployed: the schemas' field policies and an encrypted `raw`.
fn protected(config: &mut Config) {
    config.endpoints[0].protect_fields = true;
    config.endpoints[0].raw = RawPolicy::Encrypt;
}

fn keyring(hash: &[&str], encryption: &[&str]) -> Keyring {
    Keyring::from_lines(hash, encryption).unwrap()
}

fn catalog() -> Catalog {
    Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
}

/// Every place in a kept record where `needle` appears: value, key or a header.
fn leaks(kept: &Kept, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    if contains(&kept.value) {
        found.push(format!("{}: value", kept.topic));
    }
    if kept.key.as_deref().is_some_and(|k| contains(k.as_bytes())) {
        found.push(format!("{}: key", kept.topic));
    }
    for (name, value) in &kept.headers {
        if contains(value.as_bytes()) {
            found.push(format!("{}: header {name}", kept.topic));
        }
    }
    found
}

#[tokio::test]
async fn no_protected_value_is_stored_in_clear_and_each_is_what_its_policy_says() {
    let connector = Connector::start_with(protected).await;
    let catalog = catalog();
    let keys = keyring(&[TEST_HASH_KEY], &[TEST_ENCRYPTION_KEY]);
    let mut bodies = fixtures::all();
    bodies.extend(written_payloads(&catalog, &fixtures::all()));
    let mut searched = 0;
    let mut by_policy = std::collections::BTreeMap::<&str, usize>::new();
    for (name, body) in &bodies {
        let before = connector.store.kept().len();
        let reply = connector.post_json(body.clone()).await;
        assert_eq!(
            reply.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let kept = connector.store.kept();
        let stored = &kept[before..];
        assert_eq!(stored.len(), 1, "{name}: one record");
        let record_kept = &stored[0];

        // No protected value, nor the body, in any byte of the record.
        let sent = protected_values(&catalog, body);
        for s in &sent {
            if let Some(needle) = needle(&s.value) {
                let found = leaks(record_kept, &needle);
                assert!(
                    found.is_empty(),
                    "{name}: {} ({:?}) in clear at {found:?}",
                    s.path,
                    s.policy
                );
                searched += 1;
            }
        }

        // Each protected value is what its policy says, and `raw` opens to the body.
        let event = normalize(serde_json::from_slice(body).unwrap()).unwrap();
        let schema = catalog
            .get(&event.event_type)
            .unwrap_or_else(|| catalog.fallback());
        let mut record =
            decode::datum(&schema.schema, &record_kept.value[SINGLE_OBJECT_PREFIX..]).unwrap();
        let key = record_kept.key.clone().unwrap();
        let stored_record = record.clone();
        let (opened, unopened) = protect::reveal(&keys, &mut record, &record_kept.topic, &key);
        assert_eq!(unopened, vec![], "{name}");
        assert_eq!(
            record["raw"],
            String::from_utf8(body.clone()).unwrap(),
            "{name}: raw opens"
        );
        let encrypted = sent.iter().filter(|s| s.policy == Policy::Encrypt).count();
        assert_eq!(
            opened,
            encrypted + 1,
            "{name}: every encrypted value and raw opened"
        );
        for s in &sent {
            *by_policy.entry(s.policy.name()).or_default() += 1;
            let stored_value = first_at(&stored_record, &s.path);
            match s.policy {
                Policy::Drop => assert!(stored_value.is_null(), "{name}: {} dropped", s.path),
                Policy::Hash => assert_eq!(
                    stored_value.as_str(),
                    Some(keys.hash(&protect::canonical(&s.value)).as_str()),
                    "{name}: {} hashed",
                    s.path
                ),
                Policy::Encrypt => {
                    assert!(stored_value.as_str().unwrap().starts_with("e2.test-e1."));
                }
            }
        }
        // Revealed, every encrypted value is the original (first occurrence per path).
        for s in sent.iter().filter(|s| s.policy == Policy::Encrypt) {
            let revealed = first_at(&record, &s.path);
            let first_sent = sent.iter().find(|o| o.path == s.path).unwrap();
            assert_eq!(revealed, first_sent.value, "{name}: {}", s.path);
        }
    }
    // The shipped schemas protect something of every kind, and the fixtures carry it.
    assert!(searched >= 20, "only {searched} protected values searched");
    for policy in ["hash", "encrypt"] {
        assert!(
            by_policy.get(policy).is_some_and(|n| *n > 0),
            "{by_policy:?}"
        );
    }
}

#[tokio::test]
async fn quarantined_bodies_are_kept_encrypted() {
    let connector = Connector::start_with(protected).await;
    let keys = keyring(&[], &[TEST_ENCRYPTION_KEY]);
    let email = "jane.quarantined@example.org";
    // Not JSON (400) and a readable envelope the schema refuses (200 quarantined).
    let not_json = format!("{{\"email\": \"{email}\", oops");
    let mut misfit: Value =
        serde_json::from_slice(&support::fixture("riskos.evaluation_completed.docv.json")).unwrap();
    misfit["data"]["decision"] = json!({"code": "ACCEPT", "by": email});
    for (body, status) in [
        (not_json.into_bytes(), 400),
        (serde_json::to_vec(&misfit).unwrap(), 200),
    ] {
        let reply = connector.post_json(body.clone()).await;
        assert_eq!(reply.status, status);
        let kept = connector.quarantined();
        let last = kept.last().unwrap();
        assert!(leaks(last, email).is_empty(), "{:?}", leaks(last, email));
        let key = last.key.clone().unwrap_or_default();
        let raw = protect::FieldPath::of(protect::RAW_PATH);
        let opened = keys
            .decrypt(
                std::str::from_utf8(&last.value).unwrap(),
                &last.topic,
                &key,
                &raw,
            )
            .unwrap();
        assert_eq!(opened, body, "the quarantined body opens to what was sent");
    }
}

/// The hashed values of the case closure fixture as a connector with `hash_key` stores them.
async fn hashed_with(hash_key: &'static str) -> Vec<Value> {
    let body = support::fixture("riskos.case_closure.match.json");
    let connector = Connector::start_with(move |c| {
        protected(c);
        c.protection.hash_keys = vec![Secret::new(hash_key)];
    })
    .await;
    assert_eq!(connector.post_json(body.clone()).await.status, 200);
    let kept = connector.store.kept();
    let catalog = catalog();
    let schema = catalog
        .get("case_management_notification_case_closure")
        .unwrap();
    let record = decode::datum(&schema.schema, &kept[0].value[SINGLE_OBJECT_PREFIX..]).unwrap();
    protected_values(&catalog, &body)
        .iter()
        .filter(|s| s.policy == Policy::Hash)
        .map(|s| first_at(&record, &s.path))
        .collect()
}

#[tokio::test]
async fn hash_tokens_are_the_same_across_replicas_and_restarts_and_change_with_the_key() {
    // Two connectors with the same key: two replicas, or one before and after a restart.
    let replica_a = hashed_with(TEST_HASH_KEY).await;
    let replica_b = hashed_with(TEST_HASH_KEY).await;
    assert!(!replica_a.is_empty(), "the case closure has hashed fields");
    assert_eq!(replica_a, replica_b, "same key, same tokens");
    let other = hashed_with("other-h:b3RoZXIgaGFzaCBrZXksIDMyIGJ5dGVzIGxvbmcuLi4=").await;
    assert_eq!(other.len(), replica_a.len());
    for (a, b) in replica_a.iter().zip(&other) {
        assert_ne!(a, b, "another key, another token");
        assert!(b.as_str().unwrap().starts_with("h2.other-h."));
    }
}

#[tokio::test]
async fn after_a_rotation_new_records_use_the_new_key_and_old_ones_still_open() {
    const NEW: &str = "test-e2:bmV3IGVuY3J5cHRpb24ga2V5LCAzMiBieXRlcy4uLi4=";
    let body = support::fixture("request_token.create_cases.json");
    let stored_with = |keys: Vec<&'static str>| {
        let body = body.clone();
        async move {
            let connector = Connector::start_with(move |c| {
                protected(c);
                c.protection.encryption_keys = keys.into_iter().map(Secret::new).collect();
            })
            .await;
            assert_eq!(connector.post_json(body).await.status, 200);
            connector.store.kept().remove(0)
        }
    };
    let old = stored_with(vec![TEST_ENCRYPTION_KEY]).await;
    let new = stored_with(vec![NEW, TEST_ENCRYPTION_KEY]).await;
    let rotated = keyring(&[], &[NEW, TEST_ENCRYPTION_KEY]);
    let catalog = catalog();
    let schema = catalog.get("create:cases").unwrap();
    for (kept, kid) in [(&old, "test-e1"), (&new, "test-e2")] {
        let mut record =
            decode::datum(&schema.schema, &kept.value[SINGLE_OBJECT_PREFIX..]).unwrap();
        assert!(record["raw"]
            .as_str()
            .unwrap()
            .starts_with(&format!("e2.{kid}.")));
        let key = kept.key.clone().unwrap();
        protect::reveal(&rotated, &mut record, &kept.topic, &key);
        assert_eq!(
            record["raw"],
            String::from_utf8(body.clone()).unwrap(),
            "{kid}"
        );
    }
}

#[tokio::test]
async fn without_the_keys_its_policies_need_the_connector_does_not_start() {
    let error = Connector::try_start_with(|c| {
        protected(c);
        c.protection.encryption_keys.clear();
    })
    .await
    .err()
    .expect("no encryption key");
    let error = format!("{error:#}");
    assert!(error.contains("protection.encryption_keys"), "{error}");
    assert!(error.contains("keys generate"), "{error}");
    // `raw = "keep"` and no field policy need no key.
    Connector::start_with(|c| {
        c.protection = ProtectionConfig::default();
    })
    .await;
}
