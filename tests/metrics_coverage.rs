//! Every metric an alert rule (`deploy/prometheus/riskos-connector.rules.yaml`) or a dashboard
//! panel (`deploy/grafana/riskos-connector.json`) queries exists in `/metrics`, with the labels
//! the query uses, once the connector has seen traffic of every kind: accepted, duplicate,
//! quarantined, spooled, rejected (400, 401, 403, 413, 415, 429, 503), a connection closed at
//! accept. Two connectors in this one process (its own binary, so the process-wide recorder
//! holds this test's traffic only): the HTTP side served over the in-memory store (which can
//! answer "queue full" on demand), and the Kafka store on librdkafka's MockCluster with a spool,
//! whose broker is stopped and restarted so a record is spooled and forwarded (ack latency,
//! delay, produced, spool and producer gauges, broker round trip), with the Confluent encoding
//! through a registry double (the registry check's gauge). The `process_*` metrics come with
//! every scrape.

use rdkafka::mocking::MockCluster;
use riskos_connector::delivery::memory::Behaviour;

const TOKEN: &str = "0f5c3a1e-7d0b-4b8e-9a51-3c2f0d6e8a11";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_rule_or_panel_queries_is_exported_with_its_labels() {
    let served = support::Served::start_with(|c| {
        c.endpoints[0].auth.mode = Some(riskos_connector::ingress::auth::AuthMode::Bearer);
        c.endpoints[0].auth.bearer.tokens =
            vec![riskos_connector::common::secret::Secret::new(TOKEN)];
        c.endpoints[0].rate_limit_per_ip = 12;
        c.http.max_body_bytes = 64 * 1024;
        c.http.max_body_bytes_in_flight = 64 * 1024 * 4;
        let mut closed = riskos_connector::wiring::config::EndpointConfig::new("closed");
        closed.allow_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
        closed.auth.mode = Some(riskos_connector::ingress::auth::AuthMode::None);
        closed.raw = riskos_connector::pipeline::protect::RawPolicy::Keep;
        closed.protect_fields = false;
        c.endpoints.push(closed);
    })
    .await;
    let url = served.url(&served.config.endpoints[0].path);
    let post = |body: Vec<u8>, content_type: &'static str, token: bool| {
        let mut request = served
            .client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if token {
            request = request.bearer_auth(TOKEN);
        }
        request.send()
    };
    let case = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/riskos.case_closure.match.json"
    ))
    .unwrap();
    let mut statuses = Vec::new();
    // Accepted, duplicate, quarantined (schema), 400, 401, 413, 415.
    for (body, content_type, token) in [
        (case.clone(), "application/json", true),
        (case.clone(), "application/json", true),
        (
            br#"{"event_id":"m-1","event_at":"2025-11-02T09:16:00Z","event_type":"evaluation_completed","data":{"eval_id":7}}"#.to_vec(),
            "application/json",
            true,
        ),
        (b"{oops".to_vec(), "application/json", true),
        (case.clone(), "application/json", false),
        (vec![b' '; 65 * 1024], "application/json", true),
        (case.clone(), "text/plain", true),
    ] {
        statuses.push(post(body, content_type, token).await.unwrap().status().as_u16());
    }
    // Spooled, then 503 (queue full).
    for (behaviour, id) in [
        (Behaviour::Spool, "metrics-spooled"),
        (Behaviour::QueueFull, "metrics-queue-full"),
    ] {
        served.store.set_behaviour(behaviour);
        let body = with_event_id(&case, id);
        let response = post(body, "application/json", true).await.unwrap();
        statuses.push(response.status().as_u16());
    }
    // 429: over the rate limit of 12/s (the requests above count).
    let mut limited = 0;
    while limited == 0 {
        let status = post(case.clone(), "application/json", true)
            .await
            .unwrap()
            .status();
        if status == 429 {
            limited += 1;
        }
    }
    // 403: an endpoint that does not allow loopback.
    let closed = served
        .client
        .post(served.url("/webhooks/closed"))
        .header("content-type", "application/json")
        .body(case.clone())
        .send()
        .await
        .unwrap();
    statuses.push(closed.status().as_u16());
    // A connection closed at accept: a listener with room for one connection, which one holds.
    let full = support::Served::start_with(|c| c.http.max_connections = 1).await;
    let _held = tokio::net::TcpStream::connect(full.addr).await.unwrap();
    let mut over = tokio::net::TcpStream::connect(full.addr).await.unwrap();
    // The listener drops the second at accept, after counting it: its EOF is the signal.
    let mut buf = [0u8; 16];
    let read = tokio::io::AsyncReadExt::read(&mut over, &mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "closed at accept: {read:?}");
    for expected in [200, 400, 401, 403, 413, 415, 503] {
        assert!(statuses.contains(&expected), "{expected} in {statuses:?}");
    }

    // The same process-wide recorder: the Kafka store's traffic joins the HTTP side's.
    let kafka = KafkaStoreTraffic::run(&case).await;
    // librdkafka's statistics arrive on their own clock: wait (bounded) until the scrape shows
    // them, then check every queried metric against that scrape.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = kafka.scrape().await;
        let complete = [
            "riskos_broker_rtt_seconds{",
            "riskos_producer_queue_messages ",
            "riskos_schema_registry_up ",
        ]
        .iter()
        .all(|m| text.contains(m));
        if complete || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let checked = support::metric_queries::assert_exported(&text);
    assert!(checked >= 15, "{checked} metrics checked");
}

/// `case` with another event id.
fn with_event_id(case: &[u8], id: &str) -> Vec<u8> {
    let mut body: serde_json::Value = serde_json::from_slice(case).unwrap();
    body["event_id"] = id.into();
    serde_json::to_vec(&body).unwrap()
}

/// The Kafka store's share of the traffic: a connector on a one-broker MockCluster with a spool.
struct KafkaStoreTraffic {
    _stop: tokio::sync::oneshot::Sender<()>,
    _task: tokio::task::JoinHandle<anyhow::Result<()>>,
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    _spool: tempfile::TempDir,
    _registry: support::RegistryDouble,
    client: reqwest::Client,
    addr: std::net::SocketAddr,
}

impl KafkaStoreTraffic {
    /// Accepted, duplicate, quarantined; then the broker stopped (spooled, 200) and restarted
    /// (the spool drains: waited for on the spool gauge). Schemas registered in a registry
    /// double, which the background check then watches.
    async fn run(case: &[u8]) -> Self {
        let mock = MockCluster::new(1).unwrap();
        let spool = tempfile::tempdir().unwrap();
        let registry = support::RegistryDouble::start().await;
        let mut config = support::in_memory::config();
        config.schemas.encoding = Some(riskos_connector::wiring::config::Encoding::Confluent);
        config.schema_registry.url = registry.url.clone();
        config.kafka.bootstrap_servers = mock.bootstrap_servers();
        config
            .kafka
            .librdkafka
            .insert("statistics.interval.ms".into(), "100".into());
        config.delivery.ack_timeout_ms = 1_000;
        config.delivery.spool.dir = Some(spool.path().to_path_buf());
        config.topics.create = false;
        // The mock has no DescribeConfigs (and min.insync.replicas 1): nothing to check there.
        config.topics.allow_single_replica_acks = true;
        let prefix = config.endpoints[0].topic_prefix.clone();
        let catalog =
            riskos_connector::pipeline::schema::Catalog::load(&config.schemas.dir).unwrap();
        for plan in riskos_connector::pipeline::route::Routes::plan(&catalog, &prefix) {
            mock.create_topic(&plan.topic, 1, 1).unwrap();
        }
        mock.create_topic(
            &riskos_connector::pipeline::route::quarantine_topic(&prefix),
            1,
            1,
        )
        .unwrap();
        config.validate().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = riskos_connector::wiring::app::Application::build(&config, listener)
            .await
            .expect("the connector starts on the mock cluster");
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let this = Self {
            _stop: stop,
            _task: task,
            mock,
            _spool: spool,
            _registry: registry,
            client: reqwest::Client::new(),
            addr,
        };
        let url = format!("http://{addr}{}", config.endpoints[0].path);
        let post = |body: Vec<u8>| {
            this.client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let with_id = |id: &str| with_event_id(case, id);
        for body in [
            with_id("kafka-accepted"),
            with_id("kafka-accepted"),
            br#"{"event_id":"kafka-q","event_at":"2025-11-02T09:16:00Z","event_type":"evaluation_completed","data":{"eval_id":7}}"#.to_vec(),
        ] {
            let response = post(body).await.unwrap();
            assert_eq!(response.status(), 200);
            let reply: serde_json::Value = response.json().await.unwrap();
            assert_ne!(reply["spooled"], true, "acked by the broker: {reply}");
        }
        this.mock.broker_down(1).unwrap();
        let reply: serde_json::Value = post(with_id("kafka-spooled"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["spooled"], true, "{reply}");
        this.mock.broker_up(1).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !this.scrape().await.contains("riskos_spool_records 0\n") {
            assert!(std::time::Instant::now() < deadline, "the spool drains");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        this
    }

    async fn scrape(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}
