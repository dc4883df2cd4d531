//! Faults, asserted on data. librdkafka's MockCluster injects broker-side errors; a real
//! 3-node Apache Kafka cluster (KRaft, `Broker::start_cluster`) has nodes killed (SIGKILL) and
//! restarted under a vendor-like load, with the connector on its production producer settings
//! (idempotent, acks=all) and its topics at replication factor 3 with min.insync.replicas=2.
//! The invariant everywhere: no 2xx unless the record was acked by Kafka or fsync'd to the
//! spool, so every event id answered 2xx is found in Kafka afterwards. Each real-cluster test
//! prints sent / 2xx / retried / found in Kafka / lost / duplicates (`assert_nothing_lost`).

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use riskos_connector::wiring::config::Config;

use support::kafka::{read_all, try_read_all};
use support::load::{assert_nothing_lost, event, Load, LoadReport};
use support::{test_config, Broker, TestApp};

/// The topic the load's `evaluation_completed` events go to, under the config's prefix.
fn event_topic(config: &Config) -> String {
    riskos_connector::pipeline::route::topic_name(
        &config.endpoints[0].topic_prefix,
        "evaluation_completed",
    )
}

/// Creates every topic the connector needs through the mock's own API (and tells the connector
/// not to).
fn mock_topics(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    config: &mut riskos_connector::wiring::config::Config,
    replication: i32,
) {
    config.topics.create = false;
    // The mock has no DescribeConfigs (and min.insync.replicas 1): nothing to check there.
    config.topics.allow_single_replica_acks = true;
    let catalog = riskos_connector::pipeline::schema::Catalog::load(&config.schemas.dir).unwrap();
    for plan in
        riskos_connector::pipeline::route::Routes::plan(&catalog, &config.endpoints[0].topic_prefix)
    {
        mock.create_topic(&plan.topic, 1, replication).unwrap();
    }
    mock.create_topic(
        &riskos_connector::pipeline::route::quarantine_topic(&config.endpoints[0].topic_prefix),
        1,
        replication,
    )
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

fn keys(bootstrap: &str, topic: &str) -> Vec<String> {
    read_all(bootstrap, topic)
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
    let stored = keys(&bootstrap, &event_topic(&app.config));
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
    let stored = keys(&mock.bootstrap_servers(), &event_topic(&app.config));
    for id in ["down-000001", "down-000003"] {
        assert!(stored.contains(&id.to_string()), "{id} in {stored:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_changes_under_load_lose_no_acknowledged_event() {
    let mock = MockCluster::new(3).unwrap();
    let app = on_mock(&mock, 3_000).await;
    let topic = event_topic(&app.config);
    let load = Load::start(app.url(&app.config.endpoints[0].path), "leader", 4);
    for leader in [2, 3, 1, 2] {
        load.until_accepted(25).await;
        mock.partition_leader(&topic, 0, Some(leader)).unwrap();
    }
    load.until_accepted(25).await;
    let report = load.stop().await;

    assert!(report.accepted.len() >= 125);
    assert_nothing_lost("leader changes", &mock.bootstrap_servers(), &topic, &report).await;
}

/// The brokers' settings in the 3-node fault tests. `min.insync.replicas=2` is the production
/// setting for replication factor 3; as a broker default it applies to the topics the connector
/// creates (`Cluster::start` checks it through DescribeConfigs). Test-only: a shorter broker
/// session (default 9 s, heartbeat 2 s), so that a killed node is fenced, and a cluster killed
/// as a whole restarts, a few seconds sooner.
/// The nodes' settings: Apache Kafka's defaults but for faster fencing. In particular no
/// broker-wide `min.insync.replicas` (Kafka's default is 1, as on a customer's cluster left
/// as installed): the topics' `min.insync.replicas=2` is the connector's own doing
/// (`topics.min_insync_replicas`), and the outage tests below rely on it.
const THREE_NODES: &[&str] = &[
    "broker.session.timeout.ms=4000",
    "broker.heartbeat.interval.ms=500",
];

/// The ack deadline of the connectors in outage tests: short, so an outage shows as 503s (or
/// spooling) quickly, yet well above acks=all latency on a busy 2-core machine.
const ACK_TIMEOUT_MS: u64 = 2_000;

/// The pace of loads that go through the spool: each of 4 senders waits this long after an
/// event (at most 10 events/s). The spool forwarder produces one record at a time and waits
/// for its ack (about 50/s with acks=all on these 3 nodes), and while the spool holds anything,
/// every new request is spooled behind it: a load faster than the forwarder keeps the spool
/// from ever draining (measured: an unpaced load of ~300/s here never got back to Kafka).
const SPOOL_LOAD_PAUSE: Duration = Duration::from_millis(400);

/// A connector for a cluster whose nodes will be killed: production producer settings
/// (idempotence, acks=all), topics at `replication`, a short ack deadline, the spool in `spool`
/// when given.
async fn connector_for_outages(broker: &Broker, replication: i32, spool: Option<&Path>) -> TestApp {
    let mut config = test_config(&broker.bootstrap(), "");
    config.topics.replication_factor = replication;
    config.delivery.ack_timeout_ms = ACK_TIMEOUT_MS;
    config.delivery.spool.dir = spool.map(Path::to_path_buf);
    TestApp::spawn(config).await.unwrap()
}

/// Asserts that every topic the connector created (the event topics, `unrecognized`,
/// `quarantine`) is what the fault tests claim, read back through Kafka's admin API: 3
/// replicas, min.insync.replicas=2 — on brokers whose own default is 1.
async fn assert_three_replicas_two_in_sync_required(broker: &Broker, prefix: &str) {
    let topics = [
        riskos_connector::pipeline::route::topic_name(prefix, "evaluation_completed"),
        riskos_connector::pipeline::route::topic_name(
            prefix,
            riskos_connector::pipeline::route::UNRECOGNIZED_TOPIC,
        ),
        riskos_connector::pipeline::route::quarantine_topic(prefix),
    ];
    for topic in &topics {
        let (replicas, _) = broker.replicas(topic, 0);
        assert_eq!(replicas.len(), 3, "{topic}: replicas {replicas:?}");
        assert_eq!(
            broker
                .topic_config(topic, "min.insync.replicas")
                .await
                .as_deref(),
            Some("2"),
            "{topic}: min.insync.replicas"
        );
    }
}

/// A 3-node cluster of its own and an in-process connector on it.
struct Cluster {
    broker: Broker,
    app: TestApp,
    /// The event topic the load writes to.
    topic: String,
    spool: Option<tempfile::TempDir>,
}

impl Cluster {
    async fn start(spool: bool) -> Self {
        Self::on(Broker::start_cluster(3, THREE_NODES).await, spool).await
    }

    /// The cluster has 3 broker-only nodes and one dedicated controller (the KRaft quorum).
    async fn start_with_controller(spool: bool) -> Self {
        Self::on(
            Broker::start_cluster_with_controller(3, THREE_NODES).await,
            spool,
        )
        .await
    }

    async fn on(broker: Broker, spool: bool) -> Self {
        let spool = spool.then(|| tempfile::tempdir().unwrap());
        let app = connector_for_outages(&broker, 3, spool.as_ref().map(|d| d.path())).await;
        let topic = event_topic(&app.config);
        assert_three_replicas_two_in_sync_required(&broker, &app.config.endpoints[0].topic_prefix)
            .await;
        Self {
            broker,
            app,
            topic,
            spool,
        }
    }

    /// Four vendor-like senders, event ids `run-NNNNNN`; paced when the spool is on.
    fn load(&self, run: &str) -> Load {
        let url = self.app.url(&self.app.config.endpoints[0].path);
        match self.spool {
            Some(_) => Load::start_paced(url, run, 4, SPOOL_LOAD_PAUSE),
            None => Load::start(url, run, 4),
        }
    }

    async fn assert_nothing_lost(&self, label: &str, report: &LoadReport) {
        assert_nothing_lost(label, &self.broker.bootstrap(), &self.topic, report).await;
    }
}

/// Asserts how an outage was answered: with the spool, 200 (spooled) and never 503; without,
/// 503 that the vendor retried.
fn assert_outage_answered(report: &LoadReport, spool: bool) {
    let answered_503 = report.retried_by_status.get(&503).copied().unwrap_or(0);
    if spool {
        assert!(report.spooled > 0, "the outage was answered from the spool");
        assert_eq!(answered_503, 0, "no 503 with the spool on: {report:?}");
    } else {
        assert!(answered_503 > 0, "the outage was answered 503 and retried");
        assert_eq!(report.spooled, 0);
    }
}

/// The partition leader of the event topic is killed under load: the controller fences it and
/// elects an in-sync follower; two nodes still meet min.insync.replicas=2, so writes go on
/// without it; it is restarted and catches up. Without the spool: the gap is 503s, retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partition_leader_killed_under_load_loses_nothing() {
    let mut cluster = Cluster::start(false).await;
    let load = cluster.load("leader-kill");
    load.until_accepted(40).await;

    let leader = cluster.broker.leader(&cluster.topic, 0);
    cluster.broker.kill_node(leader);
    load.until_accepted(40).await;
    let new_leader = cluster.broker.leader(&cluster.topic, 0);
    let (_, in_sync_without_it) = cluster.broker.replicas(&cluster.topic, 0);
    cluster.broker.restart_node(leader).await;
    cluster
        .broker
        .until_in_sync(&cluster.topic, 0, Duration::from_secs(60))
        .await;
    load.until_accepted(40).await;
    let report = load.stop().await;

    cluster
        .assert_nothing_lost(
            &format!("partition leader (node {leader}) killed, then node {new_leader} led"),
            &report,
        )
        .await;
    assert_ne!(new_leader, leader);
    assert_eq!(in_sync_without_it.len(), 2, "{in_sync_without_it:?}");
}

/// Both followers of the event topic's partition are killed under load. The cluster has a
/// dedicated controller (with combined nodes, killing two of three would also kill the KRaft
/// quorum: nothing would be fenced, the ISR would never shrink, and the leader would just hold
/// acks=all writes until the ack deadline). The controller fences both after the broker session
/// timeout and shrinks the ISR to the leader alone, which then refuses every produce with
/// NOT_ENOUGH_REPLICAS (below min.insync.replicas=2); librdkafka retries that inside
/// `message.timeout.ms` (the ack deadline), and the connector answers 503 (the vendor retries)
/// or, with the spool, 200 from the spool. Both brokers are restarted from their data folders.
///
/// What the test checks happened: the partition's ISR in metadata becomes exactly the leader
/// (waited for, with a deadline) before a second load starts, whose 503s or spooled 200s are the
/// ones counted as the outage's, and still is once they are counted; in that window the leader
/// logged NotEnoughReplicasException for the partition. The evidence is the broker's: the
/// connector only sees librdkafka's final error, a local "Message timed out" (librdkafka retries
/// NOT_ENOUGH_REPLICAS until `message.timeout.ms`), which it answers as an ack timeout.
async fn two_of_three_nodes_killed_and_restarted(spool: bool) {
    let mut cluster = Cluster::start_with_controller(spool).await;
    let topic = cluster.topic.clone();
    let run = if spool { "two-down-spool" } else { "two-down" };
    let load = cluster.load(run);
    load.until_accepted(40).await;

    let leader = cluster.broker.leader(&topic, 0);
    for node in (0..3).filter(|&node| node != leader) {
        cluster.broker.kill_node(node);
    }
    let alone = [i32::try_from(leader).unwrap()];
    cluster
        .broker
        .until_isr(&topic, 0, &alone, Duration::from_secs(30))
        .await;
    let leader_log = cluster.broker.log_position(leader);
    let outage = cluster.load(&format!("{run}-isr1"));
    if spool {
        outage.until_accepted(20).await;
    } else {
        outage.until_retried(8).await;
    }
    let (_, isr_after) = cluster.broker.replicas(&topic, 0);
    let refusals = not_enough_replicas(&cluster.broker, leader, leader_log, &topic).await;
    // While the leader alone held the partition, Kafka acknowledged nothing: every 200 came
    // from the spool (min.insync.replicas=2 on the topic, set by the connector).
    let acked_while_alone = outage.acked();

    cluster.broker.restart().await;
    outage.until_acked(40).await;
    let (before, during) = (load.stop().await, outage.stop().await);
    let report = merged(before, &during);

    cluster
        .assert_nothing_lost(
            &format!(
                "two of three brokers killed (dedicated controller), leader {leader} kept \
                 (spool {spool})"
            ),
            &report,
        )
        .await;
    let answered_503 = during.retried_by_status.get(&503).copied().unwrap_or(0);
    println!(
        "two of three brokers killed (spool {spool}): ISR shrank to {alone:?}; the load started \
         then: 503 {answered_503}, spooled {}; by the restart the leader had refused {} appends \
         with NotEnoughReplicasException, the first: {:?}",
        during.spooled,
        refusals.len(),
        refusals[0],
    );
    assert_eq!(isr_after, alone, "the ISR stayed the leader alone");
    assert_eq!(
        acked_while_alone, 0,
        "answered 200 with an ack of the leader alone"
    );
    assert_outage_answered(&during, spool);
    assert_outage_answered(&report, spool);
}

/// Waits (up to 20 s) until node `node` has logged, since `position`, that it refused an append
/// to `topic`'s partition 0 for want of in-sync replicas; returns those exception lines. Kafka
/// logs the refusal of an acks=all produce below min.insync.replicas as
/// "Error processing append operation on partition …" followed by
/// "NotEnoughReplicasException: The size of the current ISR : 1 is insufficient to satisfy the
/// min.isr requirement of 2 for partition TOPIC-0, …".
async fn not_enough_replicas(
    broker: &Broker,
    node: usize,
    position: u64,
    topic: &str,
) -> Vec<String> {
    let partition = format!("for partition {topic}-0,");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refusals: Vec<String> = broker
            .log_since(node, position)
            .lines()
            .filter(|line| line.contains("NotEnoughReplicasException") && line.contains(&partition))
            .map(str::to_string)
            .collect();
        if !refusals.is_empty() {
            return refusals;
        }
        assert!(
            Instant::now() < deadline,
            "node {node} logged no NotEnoughReplicasException for {topic}-0 while the ISR was \
             [{node}]"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One report of two loads on the same topic (distinct event ids).
fn merged(mut into: LoadReport, other: &LoadReport) -> LoadReport {
    into.sent += other.sent;
    into.accepted.extend(other.accepted.iter().cloned());
    into.spooled += other.spooled;
    into.gave_up.extend(other.gave_up.iter().cloned());
    into.retried += other.retried;
    for (status, n) in &other.retried_by_status {
        *into.retried_by_status.entry(*status).or_default() += n;
    }
    into
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_nodes_killed_without_the_spool_is_retried_until_stored() {
    two_of_three_nodes_killed_and_restarted(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_nodes_killed_with_the_spool_loses_nothing() {
    two_of_three_nodes_killed_and_restarted(true).await;
}

/// The whole cluster is killed under load and restarted from its data folders (the controller
/// quorum and every replica come back from disk). Without the spool: 503s, retried; with it:
/// 200 from the spool, drained once the cluster is back.
async fn whole_cluster_killed_and_restarted(spool: bool) {
    let mut cluster = Cluster::start(spool).await;
    let load = cluster.load(if spool { "all-down-spool" } else { "all-down" });
    load.until_accepted(40).await;

    cluster.broker.kill();
    if spool {
        load.until_accepted(40).await;
    } else {
        load.until_retried(8).await;
    }
    cluster.broker.restart().await;
    load.until_acked(40).await;
    let report = load.stop().await;

    cluster
        .assert_nothing_lost(&format!("whole cluster killed (spool {spool})"), &report)
        .await;
    assert_outage_answered(&report, spool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_killed_under_load_with_the_spool_loses_nothing() {
    whole_cluster_killed_and_restarted(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_killed_under_load_without_the_spool_is_retried_until_stored() {
    whole_cluster_killed_and_restarted(false).await;
}

/// The connector binary with a spool, on a fixed port so a restart keeps the address, on its
/// production producer settings; its log goes to a file, printed when a test fails.
struct ConnectorProcess {
    child: std::process::Child,
    port: u16,
    spool: std::path::PathBuf,
    bootstrap: String,
    prefix: String,
    log: tempfile::NamedTempFile,
}

impl ConnectorProcess {
    async fn start(port: u16, spool: &Path, bootstrap: &str, prefix: &str) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut process = Self {
            child: Self::spawn(port, spool, bootstrap, prefix, &log),
            port,
            spool: spool.to_path_buf(),
            bootstrap: bootstrap.to_string(),
            prefix: prefix.to_string(),
            log,
        };
        process.wait_healthy().await;
        process
    }

    fn spawn(
        port: u16,
        spool: &Path,
        bootstrap: &str,
        prefix: &str,
        log: &tempfile::NamedTempFile,
    ) -> std::process::Child {
        let log = || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(log.path())
                .unwrap()
        };
        std::process::Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .arg("serve")
            .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("RISKOS_ENDPOINTS__RISKOS__AUTH__MODE", "none")
            .envs(support::app::test_keys_env())
            .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
            .env(
                "RISKOS_SCHEMAS__DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"),
            )
            .env("RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX", prefix)
            .env("RISKOS_TOPICS__PARTITIONS", "1")
            .env("RISKOS_TOPICS__REPLICATION_FACTOR", "3")
            .env(
                "RISKOS_DELIVERY__ACK_TIMEOUT_MS",
                ACK_TIMEOUT_MS.to_string(),
            )
            .env("RISKOS_DELIVERY__SPOOL__DIR", spool)
            .env("RISKOS_SHUTDOWN__GRACE_MS", "10000")
            .stdout(log())
            .stderr(log())
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
            let base = format!("http://127.0.0.1:{}", self.port);
            if support::started(&client, &base).await {
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
        self.child = Self::spawn(
            self.port,
            &self.spool,
            &self.bootstrap,
            &self.prefix,
            &self.log,
        );
        self.wait_healthy().await;
    }
}

impl Drop for ConnectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- connector log (last 40 lines) ---");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// The connector binary is SIGKILLed while its spool holds records acknowledged during a whole-
/// cluster outage, restarted (still during the outage: it comes up on the spool), then, once
/// the cluster is back, SIGTERMed mid-load and restarted again. Nothing it answered 2xx is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_killed_and_terminated_mid_load_loses_nothing_it_acknowledged() {
    // Arrange: a 3-node cluster, the connector binary with a spool, a steady vendor-like load.
    let mut broker = Broker::start_cluster(3, THREE_NODES).await;
    let spool = tempfile::tempdir().unwrap();
    let port = support::broker::restartable_port();
    let prefix = "crash.";
    let topic = riskos_connector::pipeline::route::topic_name(prefix, "evaluation_completed");
    let mut connector =
        ConnectorProcess::start(port, spool.path(), &broker.bootstrap(), prefix).await;
    assert_three_replicas_two_in_sync_required(&broker, prefix).await;
    let load = Load::start_paced(
        format!("http://127.0.0.1:{port}/webhooks/riskos"),
        "crash",
        4,
        SPOOL_LOAD_PAUSE,
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
    load.until_acked(20).await;
    let report = load.stop().await;

    // Assert: every 2xx is in Kafka.
    assert_nothing_lost(
        "connector SIGKILL + SIGTERM mid-load (spool on)",
        &broker.bootstrap(),
        &topic,
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
        let url = app.url(&app.config.endpoints[0].path);
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
    // Whichever request reaches the queue first occupies it until its deadline; poll (each
    // poll a new event id, so none joins a pending store of the same event, and given up
    // client-side after 500 ms, so a poll that took the queue itself does not hold the loop)
    // until one is shed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut next_id = 2;
    let (shed, shed_took) = loop {
        let polled =
            tokio::time::timeout(Duration::from_millis(500), post(&app, "queue", next_id)).await;
        next_id += 1;
        if let Ok((status @ 503, took)) = polled {
            break (status, took);
        }
        assert!(
            Instant::now() < deadline,
            "never shed: last poll {polled:?}"
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
/// topic once Kafka is back. (Issue 12; a single node is enough.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_spool_a_body_that_does_not_fit_is_quarantined_through_an_outage() {
    let mut broker = Broker::start_cluster(1, &[]).await;
    let spool_dir = tempfile::tempdir().unwrap();
    let app = connector_for_outages(&broker, 1, Some(spool_dir.path())).await;
    let quarantine_topic =
        riskos_connector::pipeline::route::quarantine_topic(&app.config.endpoints[0].topic_prefix);
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
    let quarantined = records_once_there(&broker, &quarantine_topic).await;
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body.as_bytes());
    assert_eq!(quarantined[0].key.as_deref(), Some("outage-quarantine-1"));
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("schema_mismatch")
    );
}

/// The records on `topic` once there are any: the spool's forwarder drains after a restart
/// (polled every 200 ms, for at most 30 s).
async fn records_once_there(broker: &Broker, topic: &str) -> Vec<support::kafka::Record> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = try_read_all(&broker.bootstrap(), topic).unwrap_or_default();
        if !records.is_empty() {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "the spooled record never reached {topic}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A record spooled during an outage (answered 200) that Kafka then refuses as too large — its
/// topic, managed elsewhere, takes smaller records than the connector makes — is kept raw in
/// quarantine by the spool's forwarder, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_record_kafka_refuses_as_too_large_is_kept_raw_in_quarantine() {
    use riskos_connector::delivery::kafka::admin::{ensure_topics, TopicSpec};
    use support::fixtures::{evaluation_of_size, EVALUATION};

    let mut broker = Broker::start_cluster(1, &[]).await;
    let spool_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&broker.bootstrap(), "");
    config.delivery.ack_timeout_ms = ACK_TIMEOUT_MS;
    config.delivery.spool.dir = Some(spool_dir.path().to_path_buf());
    let prefix = config.endpoints[0].topic_prefix.clone();
    // The evaluation topic exists already with a limit above the body and below the record
    // (which holds the body twice); the connector leaves an existing topic as it is.
    let event_topic = format!("{prefix}{EVALUATION}");
    let managed_elsewhere = TopicSpec::compacted(&event_topic).max_message_bytes(450_000);
    ensure_topics(&config.kafka, &[managed_elsewhere], 1, 1)
        .await
        .unwrap();
    let app = TestApp::spawn(config).await.unwrap();
    let body = evaluation_of_size("spooled-too-large-1", 300_000);
    broker.kill();

    let response = app.post_webhook(body.clone()).await;
    let status = response.status();
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "accepted", "{reply}");
    assert_eq!(reply["spooled"], true, "{reply}");

    broker.restart().await;
    let quarantine_topic = riskos_connector::pipeline::route::quarantine_topic(&prefix);
    let quarantined = records_once_there(&broker, &quarantine_topic).await;
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].payload, body);
    assert_eq!(quarantined[0].key.as_deref(), Some("spooled-too-large-1"));
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("record_too_large")
    );
    assert_eq!(quarantined[0].header("endpoint"), Some("riskos"));
    assert!(read_all(&broker.bootstrap(), &event_topic).is_empty());
}

/// A replicated topic made elsewhere with `min.insync.replicas=1` (the broker default, as a
/// topic made by hand or by Terraform often has) lets the leader alone acknowledge a record:
/// start-up refuses it, naming the topic, both values and the settings to change. Topics the
/// connector creates itself on the same cluster pass. `topics.allow_single_replica_acks`
/// lets it start (development).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_topic_made_elsewhere_that_acks_on_one_broker_stops_start_up() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let broker = Broker::start_cluster(3, THREE_NODES).await;
    let mut config = test_config(&broker.bootstrap(), "");
    config.topics.replication_factor = 3;
    let topic = event_topic(&config);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let made = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(3))
                .set("cleanup.policy", "compact")
                .set("min.insync.replicas", "1")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(made[0].is_ok(), "{made:?}");

    let refused = TestApp::spawn(config.clone())
        .await
        .err()
        .map(|error| format!("{error:#}"))
        .expect("start-up refused");
    for needle in [
        format!("topic `{topic}`"),
        "replication factor 3".to_string(),
        "min.insync.replicas 1".to_string(),
        "min.insync.replicas=2".to_string(),
        "topics.allow_single_replica_acks".to_string(),
    ] {
        assert!(refused.contains(&needle), "{needle:?} not in: {refused}");
    }

    config.topics.allow_single_replica_acks = true;
    let app = TestApp::spawn(config)
        .await
        .expect("allowed for development");
    let posted = app.post_webhook(event("elsewhere", 1)).await.status();
    assert_eq!(posted, 200);
    app.stop().await.unwrap();
}
