//! Start-up: registration, topic creation, and clear failures.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use support::{test_config, Broker, RegistryDouble, Stack, TestApp};

#[tokio::test]
async fn start_up_registers_every_schema_and_creates_compacted_topics() {
    let stack = Stack::start().await;

    let subjects = stack.registry.subjects();
    let names = [
        "case_management_notification_case_closure",
        "evaluation_completed",
        "create.cases",
        "update.cases.status",
        "update.transactions.status",
        "create.bankaccountsnapshots.status_description",
        "create.reviews.is_entity",
        "unrecognized",
    ];
    let expected: Vec<String> = names.iter().map(|name| stack.app.topic(name)).collect();
    stack
        .broker
        .topics_including(&[expected.clone(), vec![stack.app.topic("quarantine")]].concat());
    for topic in expected {
        let subject = format!("{topic}-value");
        assert!(subjects.contains(&subject), "{subject} in {subjects:?}");
    }

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", stack.broker.bootstrap())
        .create()
        .unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let configs = admin
        .describe_configs(
            &[ResourceSpecifier::Topic(&stack.app.topic("create.cases"))],
            &options,
        )
        .await
        .unwrap();
    let resource = configs.into_iter().next().unwrap().unwrap();
    let policy = resource.get("cleanup.policy").and_then(|e| e.value.clone());
    assert_eq!(policy.as_deref(), Some("compact"));
}

/// A registry that does not answer at start-up does not stop the connector: start-up waits
/// for it (the listener meanwhile answers not ready, `operations::a_registry_down_at_start_…`),
/// saying so in a clear log line per try that names the registry and the next wait.
#[tokio::test]
async fn an_unreachable_registry_at_start_up_is_retried_with_a_clear_log_line() {
    let (_capturing, logs) = support::logs::capture();
    let broker = Broker::shared();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = test_config(&broker.bootstrap(), &url);
    config.schema_registry.timeout_ms = Some(1_000);
    let starting = tokio::spawn(TestApp::spawn(config));

    let message =
        "schema registry unreachable at start-up; retrying (not ready until the schemas resolve)";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let tries = loop {
        let tries = logs.with_message(message);
        if tries.len() >= 2 {
            break tries;
        }
        assert!(!starting.is_finished(), "start-up gave up");
        assert!(std::time::Instant::now() < deadline, "no retry logged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    starting.abort();
    let error = tries[0]["error"].as_str().unwrap();
    assert!(error.contains("schema registry"), "{error}");
    assert!(error.contains(&url), "{error}");
    assert_eq!(tries[0]["retry_in_ms"], 1000);
    assert_eq!(tries[1]["retry_in_ms"], 2000);
}

#[tokio::test]
async fn a_broken_schema_file_stops_start_up_naming_the_file() {
    let broker = Broker::shared();
    let registry = RegistryDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("broken.avsc"), "{\"type\": \"record\"").unwrap();
    let mut config = test_config(&broker.bootstrap(), &registry.url);
    config.schemas.dir = dir.path().to_path_buf();

    let error = TestApp::spawn(config).await.err().expect("start-up fails");

    assert!(format!("{error:#}").contains("broken.avsc"), "{error:#}");
}

#[tokio::test]
async fn shutdown_drains_and_returns() {
    let stack = Stack::start().await;
    let (_, body) = support::fixtures::all().into_iter().next().unwrap();
    assert_eq!(stack.app.post_webhook(body).await.status(), 200);
    stack.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn every_endpoints_prefix_gets_its_topics_subjects_and_quarantine_and_records_name_their_endpoint(
) {
    let sandbox_prefix = format!("{}sandbox.", support::app::unique_topic_prefix());
    let stack = Stack::start_with(|config| {
        let mut sandbox = riskos_connector::wiring::config::EndpointConfig::new("sandbox");
        sandbox.topic_prefix = sandbox_prefix.clone();
        sandbox.auth.mode = Some(riskos_connector::ingress::auth::AuthMode::None);
        config.endpoints.push(sandbox);
    })
    .await;
    let production_prefix = stack.app.config.endpoints[0].topic_prefix.clone();
    let subjects = stack.registry.subjects();
    for prefix in [&production_prefix, &sandbox_prefix] {
        let names = [
            "case_management_notification_case_closure",
            "create.cases",
            "unrecognized",
        ];
        let expected: Vec<String> = names.iter().map(|name| format!("{prefix}{name}")).collect();
        stack
            .broker
            .topics_including(&[expected.clone(), vec![format!("{prefix}quarantine")]].concat());
        for topic in expected {
            assert!(subjects.contains(&format!("{topic}-value")), "{topic}");
        }
    }

    // One body to each endpoint: each lands under its own prefix, naming its endpoint.
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/riskos.case_closure.match.json"
    ))
    .unwrap();
    for path in ["/webhooks/riskos", "/webhooks/sandbox"] {
        let response = stack.app.post_json(path, body.clone()).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    for (prefix, endpoint) in [(&production_prefix, "riskos"), (&sandbox_prefix, "sandbox")] {
        let topic = format!("{prefix}case_management_notification_case_closure");
        let records = support::kafka::read_all(&stack.broker.bootstrap(), &topic);
        assert_eq!(records.len(), 1, "{topic}");
        assert_eq!(records[0].header("endpoint"), Some(endpoint), "{topic}");
    }
}
