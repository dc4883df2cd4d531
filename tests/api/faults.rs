//! Faults, asserted on data: librdkafka's MockCluster for broker-side errors, and a real broker
//! process (tansu, SQLite storage so it keeps its data) killed and restarted under load. The
//! invariant everywhere: no 2xx unless the record was acked by Kafka or fsync'd to the spool,
//! so every event id answered 2xx is found in Kafka afterwards.

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::helpers::kafka::{read_all, try_read_all};
use crate::helpers::load::{assert_nothing_lost, event, Load};
use crate::helpers::{test_config, Broker, TestApp};

const TOPIC: &str = "riskos.evaluation_completed";

/// Creates every topic the connector needs through the mock's own API (and tells the connector
/// not to).
fn mock_topics(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    config: &mut riskos_connector::config::Config,
    replication: i32,
) {
    config.topics.create = false;
    let catalog = riskos_connector::schema::Catalog::load(&config.schemas.dir).unwrap();
    for plan in riskos_connector::route::Routes::plan(&catalog, &config.topics.prefix) {
        mock.create_topic(&plan.topic, 1, replication).unwrap();
    }
    mock.create_topic(&config.quarantine_topic(), 1, replication)
        .unwrap();
}

/// A connector (single-object encoding, no registry) on a librdkafka mock cluster.
async fn on_mock(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    ack_ms: u64,
) -> TestApp {
    let mut config = test_config(&mock.bootstrap_servers(), "");
    config.delivery.ack_timeout_ms = ack_ms;
    mock_topics(mock, &mut config, 3);
    TestApp::spawn(config)
        .await
        .expect("connector starts on the mock cluster")
}

/// Posts like the vendor after an outage: retries 503s (a bounded number of times, with the
/// vendor's backoff scaled down) until the event is stored; returns the final status.
async fn post_until_stored(app: &TestApp, run: &str, i: u64) -> u16 {
    let mut status = 0;
    for _ in 0..20 {
        status = post(app, run, i).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    status
}

async fn post(app: &TestApp, run: &str, i: u64) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.post_webhook(event(run, i)).await.status().as_u16();
    (status, started.elapsed())
}

fn keys(bootstrap: &str) -> Vec<String> {
    read_all(bootstrap, TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enough_replicas_is_retried_inside_the_deadline_and_503_beyond_it() {
    let mock = MockCluster::new(3).unwrap();
    let app = on_mock(&mock, 1_500).await;
    let bootstrap = mock.bootstrap_servers();

    // A short burst of NOT_ENOUGH_REPLICAS: librdkafka retries, the request still gets its ack.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
    );
    let (transient, _) = post(&app, "nerr", 1).await;

    // A persistent one: 503 within the deadline, never a 2xx.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 10_000],
    );
    let (persistent, took) = post(&app, "nerr", 2).await;
    mock.clear_request_errors(RDKafkaApiKey::Produce);
    let recovered = post_until_stored(&app, "nerr", 3).await;

    assert_eq!(transient, 200);
    assert_eq!(persistent, 503);
    assert!(took < Duration::from_millis(1_500 + 1_000), "{took:?}");
    assert_eq!(recovered, 200);
    let stored = keys(&bootstrap);
    assert!(stored.contains(&"nerr-000001".to_string()));
    assert!(stored.contains(&"nerr-000003".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_down_or_slow_give_503_within_the_deadline() {
    let mock = MockCluster::new(1).unwrap();
    let app = on_mock(&mock, 1_000).await;
    let (before, _) = post(&app, "down", 1).await;

    mock.broker_down(1).unwrap();
    let (down, took_down) = post(&app, "down", 2).await;
    mock.broker_up(1).unwrap();
    let up = post_until_stored(&app, "down", 3).await;

    mock.broker_round_trip_time(1, Duration::from_secs(4))
        .unwrap();
    let (slow, took_slow) = post(&app, "down", 4).await;
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();

    assert_eq!((before, down, up, slow), (200, 503, 200, 503));
    assert!(took_down < Duration::from_secs(2), "{took_down:?}");
    assert!(took_slow < Duration::from_secs(2), "{took_slow:?}");
    let stored = keys(&mock.bootstrap_servers());
    for id in ["down-000001", "down-000003"] {
        assert!(stored.contains(&id.to_string()), "{id} in {stored:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_changes_under_load_lose_no_acknowledged_event() {
    let mock = MockCluster::new(3).unwrap();
    let app = on_mock(&mock, 3_000).await;
    let load = Load::start(app.url("/webhooks/riskos"), "leader", 4);
    for leader in [2, 3, 1, 2] {
        load.until_accepted(25).await;
        mock.partition_leader(TOPIC, 0, Some(leader)).unwrap();
    }
    load.until_accepted(25).await;
    let report = load.stop().await;

    assert!(report.accepted.len() >= 125);
    assert_nothing_lost("leader changes", &mock.bootstrap_servers(), TOPIC, &report).await;
}

/// Kills the real broker under load and restarts it; with or without the spool, every event the
/// load generator got a 2xx for is in Kafka afterwards, and every 503 was retried until it was.
/// A connector for a broker that will be killed: a short ack deadline, the spool in `spool`
/// when given.
async fn connector_for_outages(broker: &Broker, spool: Option<&std::path::Path>) -> TestApp {
    let mut config = test_config(&broker.bootstrap(), "");
    config.delivery.ack_timeout_ms = 1_000;
    // tansu 0.6's SQLite engine panics ("more or less than one row") on the first idempotent
    // produce after a kill that interrupted one, and its storage task never recovers; a plain
    // producer exercises the same connector paths. Real Kafka keeps idempotence (the default).
    config
        .kafka
        .librdkafka
        .insert("enable.idempotence".into(), "false".into());
    config.delivery.spool.dir = spool.map(std::path::Path::to_path_buf);
    TestApp::spawn(config).await.unwrap()
}

async fn broker_killed_and_restarted_under_load(spool: bool) {
    let mut broker = Broker::start_sqlite().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let app = connector_for_outages(&broker, spool.then(|| spool_dir.path())).await;
    let run = if spool { "kill-spool" } else { "kill-503" };
    let load = Load::start(app.url("/webhooks/riskos"), run, 4);

    load.until_accepted(40).await;
    broker.kill();
    if spool {
        // Answered from the spool while the broker is gone.
        load.until_accepted(40).await;
    } else {
        // Answered 503 while the broker is gone; the load generator retries.
        load.until_retried(8).await;
    }
    broker.restart().await;
    load.until_accepted(40).await;
    let report = load.stop().await;

    assert_nothing_lost(
        &format!("broker kill (spool {spool})"),
        &broker.bootstrap(),
        TOPIC,
        &report,
    )
    .await;
    if !spool {
        assert!(
            report.retried > 0,
            "the outage was answered 503 and retried"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_under_load_with_the_spool_loses_nothing() {
    broker_killed_and_restarted_under_load(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_under_load_without_the_spool_is_retried_until_stored() {
    broker_killed_and_restarted_under_load(false).await;
}

/// The connector binary with a spool, on a fixed port so a restart keeps the address.
struct ConnectorProcess {
    child: std::process::Child,
    port: u16,
    spool: std::path::PathBuf,
    bootstrap: String,
}

impl ConnectorProcess {
    async fn start(port: u16, spool: &std::path::Path, bootstrap: &str) -> Self {
        let mut process = Self {
            child: Self::spawn(port, spool, bootstrap),
            port,
            spool: spool.to_path_buf(),
            bootstrap: bootstrap.to_string(),
        };
        process.wait_healthy().await;
        process
    }

    fn spawn(port: u16, spool: &std::path::Path, bootstrap: &str) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .arg("serve")
            .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("RISKOS_AUTH__MODE", "none")
            .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
            // See broker_killed_and_restarted_under_load: tansu 0.6 + idempotence + kill.
            .env("RISKOS_KAFKA__LIBRDKAFKA__ENABLE_IDEMPOTENCE", "false")
            .env(
                "RISKOS_SCHEMAS__DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"),
            )
            .env("RISKOS_TOPICS__PARTITIONS", "1")
            .env("RISKOS_TOPICS__REPLICATION_FACTOR", "1")
            .env("RISKOS_DELIVERY__ACK_TIMEOUT_MS", "1000")
            .env("RISKOS_DELIVERY__SPOOL__DIR", spool)
            .env("RISKOS_SHUTDOWN__GRACE_MS", "10000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("connector exited during start-up: {status}");
            }
            let healthy = client
                .get(format!("http://127.0.0.1:{}/healthz", self.port))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "connector did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.spool, &self.bootstrap);
        self.wait_healthy().await;
    }
}

impl Drop for ConnectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_killed_and_terminated_mid_load_loses_nothing_it_acknowledged() {
    // Arrange: a real broker, the connector binary with a spool, a steady vendor-like load.
    let mut broker = Broker::start_sqlite().await;
    let spool = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let mut connector = ConnectorProcess::start(port, spool.path(), &broker.bootstrap()).await;
    let load = Load::start(
        format!("http://127.0.0.1:{port}/webhooks/riskos"),
        "crash",
        4,
    );
    load.until_accepted(30).await;

    // Act 1: Kafka goes away; the connector acknowledges from the spool; then SIGKILL.
    broker.kill();
    load.until_accepted(30).await;
    let spooled_segments = std::fs::read_dir(spool.path()).unwrap().count();
    connector.signal("-KILL");
    let killed = connector.child.wait().unwrap();
    connector.restart().await;
    load.until_accepted(20).await;

    // Act 2: Kafka returns; the restarted connector drains; then SIGTERM mid-load.
    broker.restart().await;
    load.until_accepted(20).await;
    let terminated_at = Instant::now();
    connector.signal("-TERM");
    let terminated = connector.child.wait().unwrap();
    let drain_time = terminated_at.elapsed();
    connector.restart().await;
    load.until_accepted(20).await;
    let report = load.stop().await;

    // Assert: every 2xx is in Kafka.
    assert_nothing_lost(
        "connector SIGKILL + SIGTERM mid-load (spool on)",
        &broker.bootstrap(),
        TOPIC,
        &report,
    )
    .await;
    assert!(spooled_segments > 0, "records were spooled before the kill");
    assert!(!killed.success(), "SIGKILL");
    assert!(terminated.success(), "SIGTERM exits 0: {terminated}");
    assert!(drain_time < Duration::from_secs(10), "{drain_time:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_and_a_full_producer_queue_answer_503_at_once() {
    let mock = MockCluster::new(1).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut config = test_config(&mock.bootstrap_servers(), "");
    config.delivery.ack_timeout_ms = 1_000;
    mock_topics(&mock, &mut config, 1);
    // Room for about one record.
    config.delivery.spool.dir = Some(spool.path().to_path_buf());
    config.delivery.spool.max_bytes = 1_500;
    let app = TestApp::spawn(config).await.unwrap();
    mock.broker_down(1).unwrap();

    let mut statuses = Vec::new();
    let mut last_took = Duration::ZERO;
    for i in 1..=20 {
        let (status, took) = post(&app, "full", i).await;
        statuses.push(status);
        last_took = took;
        if status == 503 {
            break;
        }
    }

    assert_eq!(
        statuses[0], 200,
        "the first record is spooled: {statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&503),
        "then the spool is full: {statuses:?}"
    );
    assert!(
        last_took < Duration::from_millis(500),
        "queued behind the spool, no ack wait: {last_took:?}"
    );

    // A producer queue with room for one message: the second concurrent request is shed.
    let queue_mock = MockCluster::new(1).unwrap();
    let mut config = test_config(&queue_mock.bootstrap_servers(), "");
    config.delivery.ack_timeout_ms = 2_000;
    mock_topics(&queue_mock, &mut config, 1);
    config
        .kafka
        .librdkafka
        .insert("queue.buffering.max.messages".into(), "1".into());
    let app = TestApp::spawn(config).await.unwrap();
    queue_mock.broker_down(1).unwrap();
    let waiting = {
        let client = app.client.clone();
        let url = app.url("/webhooks/riskos");
        tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(event("queue", 1))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // The first request occupies the queue until its deadline; poll until it is queued.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (shed, shed_took) = loop {
        let (status, took) = post(&app, "queue", 2).await;
        if status == 503 && took < Duration::from_millis(500) {
            break (status, took);
        }
        assert!(
            Instant::now() < deadline,
            "never shed: {status} after {took:?}"
        );
    };
    assert_eq!(shed, 503);
    assert!(shed_took < Duration::from_millis(500));
    assert_eq!(
        waiting.await.unwrap(),
        503,
        "the queued one times out: broker down"
    );
}

/// The quarantine write goes through delivery: with the spool on and Kafka down, a readable
/// envelope whose data does not fit its schema is answered 200 (spooled) like any other body,
/// not 503 — Socure deletes a webhook after 5 failed deliveries — and reaches the quarantine
/// topic once Kafka is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_spool_a_body_that_does_not_fit_is_quarantined_through_an_outage() {
    let mut broker = Broker::start_sqlite().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let app = connector_for_outages(&broker, Some(spool_dir.path())).await;
    broker.kill();

    // `eval_id` is a string in the schema: the vendor "changed its type".
    let body = serde_json::json!({
        "event_id": "outage-quarantine-1", "event_type": "evaluation_completed",
        "event_at": "2025-08-27T16:16:23Z", "data": {"eval_id": 42}
    })
    .to_string();
    let response = app.post_webhook(body.clone()).await;
    let status = response.status();
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "quarantined", "{reply}");
    assert_eq!(reply["spooled"], true, "{reply}");

    broker.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let quarantined = loop {
        let records = try_read_all(&broker.bootstrap(), "riskos.quarantine").unwrap_or_default();
        if !records.is_empty() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "the spooled quarantine record never reached Kafka"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body.as_bytes());
    assert_eq!(quarantined[0].key.as_deref(), Some("outage-quarantine-1"));
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("schema_mismatch")
    );
}
