//! Compaction shown working on Apache Kafka: the event id is the key of a compacted topic, so
//! the vendor's retries and replays collapse to one record per event — the latest body — and
//! a tombstone removes a key (what erasure will use).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer as _};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use support::decode::decode;
use support::kafka::{read_all, Record};
use support::{test_config, Broker, RegistryDouble, TestApp};

/// Events, each delivered `RETRIES + 1` times with the same body, then once replayed with a
/// changed body.
const EVENTS: usize = 12;
const RETRIES: usize = 3;

fn body(i: usize, version: &str) -> String {
    json!({
        "event_id": format!("compaction-{i:03}"),
        "event_at": "2025-11-02T09:16:00Z",
        "event_type": "evaluation_completed",
        "data": {"eval_id": format!("ev-{i}"), "decision": version}
    })
    .to_string()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// The topic's configs as the broker reports them (name → value).
async fn describe(bootstrap: &str, topic: &str) -> BTreeMap<String, String> {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin(bootstrap)
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource
        .entries
        .into_iter()
        .filter_map(|entry| Some((entry.name, entry.value?)))
        .collect()
}

/// The latest record of each key, in a topic read whole.
fn latest_by_key(records: &[Record]) -> HashMap<String, &Record> {
    let mut latest = HashMap::new();
    for record in records {
        latest.insert(record.key.clone().unwrap_or_default(), record);
    }
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_replays_collapse_to_the_latest_body_per_event_and_a_tombstone_removes_a_key() {
    // A broker of its own whose log cleaner looks for work every 100 ms (default 15 s).
    let broker = Broker::start_cluster(1, &["log.cleaner.backoff.ms=100"]).await;
    let bootstrap = broker.bootstrap();
    let registry = RegistryDouble::start().await;
    let mut config = test_config(&bootstrap, &registry.url);
    // Every delivery reaches Kafka: the duplicate cache would answer the retries itself.
    config.delivery.dedup.max_entries = 0;
    let app = TestApp::spawn(config).await.unwrap();
    let topic = app.topic("evaluation_completed");

    // The topics as the connector created them, as the broker reports them.
    let event_configs = describe(&bootstrap, &topic).await;
    let quarantine_configs = describe(&bootstrap, &app.topic("quarantine")).await;
    for (name, configs) in [
        (&topic, &event_configs),
        (&app.topic("quarantine"), &quarantine_configs),
    ] {
        let shown: Vec<String> = [
            "cleanup.policy",
            "retention.ms",
            "max.message.bytes",
            "min.insync.replicas",
        ]
        .iter()
        .map(|key| format!("{key}={}", configs.get(*key).map_or("?", String::as_str)))
        .collect();
        println!("topic {name}: {}", shown.join(" "));
    }
    assert_eq!(event_configs["cleanup.policy"], "compact");
    assert_eq!(
        event_configs["max.message.bytes"],
        riskos_connector::delivery::record_size::kafka_message_bytes(
            app.config.http.max_body_bytes
        )
        .to_string()
    );
    assert_eq!(quarantine_configs["cleanup.policy"], "delete");
    assert_eq!(quarantine_configs["retention.ms"], "-1");

    // Test-only overrides so the cleaner acts within seconds: roll segments after 100 ms,
    // clean any dirt at once, drop tombstones 100 ms after a cleaning. (AlterConfigs replaces
    // a topic's whole set of overrides, and rdkafka has no incremental form: the connector's
    // own two are restated.)
    let overrides = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &event_configs["max.message.bytes"])
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.001")
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", "100");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    for result in admin(&bootstrap)
        .alter_configs(&[overrides], &options)
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let overridden = describe(&bootstrap, &topic).await;
    assert_eq!(overridden["cleanup.policy"], "compact");
    assert_eq!(overridden["segment.ms"], "100");

    // The vendor: every event delivered RETRIES + 1 times (same body), then replayed with a
    // changed body — which the connector stores as the event's latest record.
    let mut deliveries = 0;
    for i in 0..EVENTS {
        for _ in 0..=RETRIES {
            assert_eq!(app.post_webhook(body(i, "REVIEW")).await.status(), 200);
            deliveries += 1;
        }
    }
    for i in 0..EVENTS {
        assert_eq!(app.post_webhook(body(i, "ACCEPT")).await.status(), 200);
        deliveries += 1;
    }
    // Every delivery was appended as a record of its own (the cleaner may already be at work,
    // so the log's end offset says it, not a count of what is left).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let (_, end) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(end, deliveries as i64, "every delivery is a record");

    // The cleaner never touches the active segment, which rolls only on an append: an
    // aborted transaction appends one, invisible to consumers (read_committed).
    let nudge = Nudge::new(&bootstrap, &topic);
    let compacted = wait_until(&nudge, &bootstrap, &topic, |records| {
        records.len() == EVENTS
    })
    .await;
    let latest = latest_by_key(&compacted);
    assert_eq!(latest.len(), EVENTS, "one key per event");
    for i in 0..EVENTS {
        let record = latest[&format!("compaction-{i:03}")];
        let value = decode(&registry.url, &record.payload).await;
        assert_eq!(value["raw"], Value::String(body(i, "ACCEPT")), "event {i}");
    }
    println!(
        "compaction: {EVENTS} events, {deliveries} deliveries ({} retries, {EVENTS} replays) \
         → {} records after compaction, each the latest body of its event id",
        EVENTS * RETRIES,
        compacted.len()
    );

    // A tombstone (null value) for the first event's key: after compaction the key is gone,
    // tombstone included (delete.retention.ms), and the other events stay.
    let erased = "compaction-000";
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<str, [u8]>::to(&topic).key(erased),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let after = wait_until(&nudge, &bootstrap, &topic, |records| {
        records.len() == EVENTS - 1 && records.iter().all(|r| r.key.as_deref() != Some(erased))
    })
    .await;
    assert!(
        after.iter().all(|r| !r.payload.is_empty()),
        "no tombstone left"
    );
    println!(
        "tombstone for {erased}: {} records after compaction, the key gone",
        after.len()
    );
}

/// Rolls a partition's active segment without adding anything a consumer reads: a record
/// written in a transaction that is then aborted (the record and the abort marker are
/// skipped by read_committed consumers, librdkafka's default, as by Kafka's own).
struct Nudge {
    producer: BaseProducer,
    topic: String,
}

impl Nudge {
    fn new(bootstrap: &str, topic: &str) -> Self {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("transactional.id", format!("compaction-nudge-{topic}"))
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        Self {
            producer,
            topic: topic.to_string(),
        }
    }

    fn roll(&self) {
        self.producer.begin_transaction().unwrap();
        self.producer
            .send(BaseRecord::to(&self.topic).key("nudge").payload("aborted"))
            .map_err(|(e, _)| e)
            .unwrap();
        self.producer.flush(Duration::from_secs(10)).unwrap();
        self.producer
            .abort_transaction(Duration::from_secs(10))
            .unwrap();
    }
}

/// Rolls the active segment (so the cleaner may take everything before it) and reads the
/// topic, until `done` holds for what is read; 60 s at most.
async fn wait_until(
    nudge: &Nudge,
    bootstrap: &str,
    topic: &str,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::task::block_in_place(|| nudge.roll());
        let records = read_all(bootstrap, topic);
        if done(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted within 60 s: {} records, keys {:?}",
            records.len(),
            latest_by_key(&records).keys().collect::<Vec<_>>()
        );
        // A segment rolls on an append only once it is older than segment.ms (100 ms).
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
